import type * as http from "node:http";
import type * as http2 from "node:http2";
import type * as net from "node:net";
import type * as tls from "node:tls";

/** A response of either HTTP server, or an HTTP/2 stream answered by a stream claim. */
export type Response =
  | http.ServerResponse
  | http2.Http2ServerResponse
  | http2.ServerHttp2Stream;

/** A listener's open connections and what they carry: what shutdown waits for and closes. */
export interface Connections {
  /** Every open socket, whatever its protocol. */
  readonly sockets: ReadonlySet<net.Socket>;
  /** Every open HTTP/2 session (for GOAWAY on shutdown). */
  readonly sessions: ReadonlySet<http2.ServerHttp2Session>;
  /**
   * Every response not yet sent in full, HTTP/1.1 and HTTP/2: shutdown waits
   * for them (a request still arriving has no handler running yet) and closes
   * HTTP/1.1 connections after them.
   */
  readonly responses: ReadonlySet<Response>;
}

/** The connections, and the functions the listener calls on its servers' events to track them. */
export interface ConnectionTracker extends Connections {
  /** A new socket (a server's "connection" event), forgotten when it closes. */
  socket(socket: net.Socket): void;
  /** A new HTTP/2 session (the "session" event), forgotten when it closes. */
  session(session: http2.ServerHttp2Session): void;
  /** A new response (the "request" event), forgotten once sent or when its client leaves. */
  response(req: unknown, res: Response): void;
  /** A stream a stream claim answers, forgotten when it closes. */
  stream(stream: http2.ServerHttp2Stream): void;
  /**
   * Hand a cleartext socket to `server`, noting it as the socket of the
   * session the server makes of it (`socketOf`).
   */
  handOff(socket: net.Socket, server: http2.Http2Server): void;
  /**
   * A TLS socket a secure server is about to make a session of (its
   * "secureConnection" event, before Node's own listener), noted as the
   * socket under that session (`socketUnder`).
   */
  secureConnection(socket: tls.TLSSocket): void;
  /**
   * The TCP socket a cleartext session speaks on, for the shutdown notice
   * (src/transport/goaway.ts); undefined under TLS.
   */
  socketOf(session: http2.ServerHttp2Session): net.Socket | undefined;
  /** The socket a session speaks on, TCP or TLS: what dropping the connection destroys. */
  socketUnder(session: http2.ServerHttp2Session): net.Socket | undefined;
}

/** Start tracking a listener's sockets, HTTP/2 sessions and responses. */
export function trackConnections(): ConnectionTracker {
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  // The TCP socket each cleartext session speaks on, for the shutdown
  // notice. Node emits "session" synchronously inside its connection
  // listener, while the socket being handed to it is in `handingOff`.
  const sessionSockets = new WeakMap<http2.ServerHttp2Session, net.Socket>();
  let handingOff: net.Socket | undefined;
  // The socket under every session, TCP or TLS, noted the same way.
  const under = new WeakMap<http2.ServerHttp2Session, net.Socket>();
  let securing: tls.TLSSocket | undefined;
  const responses = new Set<Response>();
  // One listener function for every response, called with the response as
  // `this`: no closure per call. Each event fires at most once; on() saves
  // once()'s wrapper.
  const untrack = function (this: Response) {
    responses.delete(this);
  };
  return {
    sockets,
    sessions,
    responses,
    socket: (socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    },
    session: (session) => {
      sessions.add(session);
      // Stryker disable next-line ConditionalExpression: equivalent, undefined stored for a TLS session is found as none
      if (handingOff !== undefined) sessionSockets.set(session, handingOff);
      const socket = handingOff ?? securing;
      if (socket !== undefined) under.set(session, socket);
      handingOff = undefined;
      securing = undefined;
      session.once("close", () => sessions.delete(session));
    },
    response: (_req, res) => {
      responses.add(res);
      // Stryker disable next-line StringLiteral,CallExpression: equivalent, close follows finish on every response and untracks it too
      res.on("finish", untrack);
      res.on("close", untrack);
    },
    stream: (stream) => {
      // An answered stream is a response shutdown waits for, as a request
      // is, until it closes (a stream always does; one listener, not two).
      // Stryker disable next-line ConditionalExpression: unreachable, Node closes a stream after the claim returns
      if (!stream.closed) {
        responses.add(stream);
        stream.on("close", untrack);
      }
    },
    handOff: (socket, server) => {
      handingOff = socket;
      server.emit("connection", socket);
      handingOff = undefined;
    },
    secureConnection: (socket) => {
      securing = socket;
      // Node makes the session at once, in its own listener of the same event.
      queueMicrotask(() => {
        if (securing === socket) securing = undefined;
      });
    },
    socketOf: (session) => sessionSockets.get(session),
    socketUnder: (session) => under.get(session),
  };
}
