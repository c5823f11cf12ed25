import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { goAwayInTwoSteps } from "./goaway.js";

/** A request handler for both HTTP/1.1 and HTTP/2, as Connect's Node adapter returns. */
export type RequestHandler = ReturnType<typeof connectNodeAdapter>;

/** The first bytes every HTTP/2 prior-knowledge (h2c) client sends (RFC 9113, 3.4). */
const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** Options of the one-port listener. */
export interface ListenerOptions {
  /**
   * PEM certificate and key. When set, the port speaks TLS only and ALPN picks
   * h2 or http/1.1; when unset, the port speaks cleartext HTTP/1.1 and h2c.
   * @default undefined (cleartext)
   */
  tls?: { cert: Buffer; key: Buffer };
  /** Options for the HTTP/1.1 side. @default {} */
  http1?: http.ServerOptions;
  /** Options for the HTTP/2 side. @default {} */
  http2?: http2.ServerOptions;
  /**
   * How long a new cleartext connection may take to send its first bytes before it is closed, in milliseconds.
   * @default 10000
   */
  firstBytesTimeoutMs?: number;
  /**
   * How long an HTTP/2 connection with no stream open stays open before it is
   * closed with GOAWAY, in milliseconds (0: no limit). HTTP/1.1 idles by `http1.keepAliveTimeout`.
   * @default 0
   */
  idleTimeoutMs?: number;
  /**
   * Offered every HTTP/2 stream before Node's compatibility layer makes a
   * request of it; a stream it returns true for is its own to answer, and
   * `handler` never sees it (src/fast-path/router.ts).
   * @default undefined (every stream goes to `handler`)
   */
  claimStream?: StreamClaim;
}

/** Takes an HTTP/2 stream (true) or leaves it to the request handler (false, untouched). */
export type StreamClaim = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
) => boolean;

/** A response of either HTTP server, or an HTTP/2 stream answered by `claimStream`. */
export type Response =
  | http.ServerResponse
  | http2.Http2ServerResponse
  | http2.ServerHttp2Stream;

/** A server answering HTTP/1.1 and HTTP/2 on one port, with its connections at hand for shutdown. */
export interface Listener {
  /** The TCP (or TLS) server to listen on. */
  readonly server: net.Server;
  /** The HTTP/2 server every HTTP/2 session belongs to (for sessions and GOAWAY). */
  readonly http2Server: http2.Http2Server | http2.Http2SecureServer;
  /** The HTTP/1.1 server, or undefined under TLS, where the HTTP/2 server also serves HTTP/1.1. */
  readonly http1Server: http.Server | undefined;
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
  /**
   * Close an HTTP/2 session gracefully, in two steps (src/transport/goaway.ts): a
   * GOAWAY that refuses no stream, then, a PING round trip later, the final
   * GOAWAY; the session closes when its streams are done. Calling it again
   * does nothing.
   */
  goAway(session: http2.ServerHttp2Session): void;
}

/** The HTTP/1.1 options the TLS server's HTTP/1.1 fallback honours when set on it. */
const http1FallbackSettings = [
  "headersTimeout",
  "requestTimeout",
  "keepAliveTimeout",
  "maxHeaderSize",
  "connectionsCheckingInterval",
] as const;

/**
 * Create a server that serves `handler` over HTTP/1.1 and HTTP/2 on one port.
 *
 * Node's HTTP/2 server cannot fall back to HTTP/1.1 on a cleartext port
 * (nodejs/node#44887), so cleartext connections are told apart by their first
 * bytes: the HTTP/2 connection preface goes to an HTTP/2 server, anything else
 * to an HTTP/1.1 server. Under TLS, ALPN does it and Node's `allowHTTP1` suffices.
 */
export function createListener(
  handler: RequestHandler,
  options: ListenerOptions = {},
): Listener {
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const sessions = new Set<http2.ServerHttp2Session>();
  // The TCP socket each cleartext session speaks on, for the shutdown
  // notice. Node emits "session" synchronously inside its connection
  // listener, while the socket being handed to it is in `handingOff`.
  const sessionSockets = new WeakMap<http2.ServerHttp2Session, net.Socket>();
  let handingOff: net.Socket | undefined;
  const goAway = (session: http2.ServerHttp2Session) =>
    goAwayInTwoSteps(session, sessionSockets.get(session));
  const trackSession = (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    if (handingOff !== undefined) sessionSockets.set(session, handingOff);
    handingOff = undefined;
    session.once("close", () => sessions.delete(session));
    closeWhenIdle(session, options.idleTimeoutMs ?? 0, goAway);
  };
  const responses = new Set<Response>();
  // One listener function for every response, called with the response as
  // `this`: no closure per call. Each event fires at most once; on() saves
  // once()'s wrapper.
  const untrack = function (this: Response) {
    responses.delete(this);
  };
  const trackResponse = (_req: unknown, res: Response) => {
    responses.add(res);
    res.on("finish", untrack);
    res.on("close", untrack);
  };
  const claim = options.claimStream;
  const trackClaims = (server: http2.Http2Server | http2.Http2SecureServer) => {
    if (claim === undefined) return;
    claimStreams(server, (stream, headers) => {
      if (!claim(stream, headers)) return false;
      // An answered stream is a response shutdown waits for, as a request
      // is, until it closes (a stream always does; one listener, not two).
      if (!stream.closed) {
        responses.add(stream);
        stream.on("close", untrack);
      }
      return true;
    });
  };
  if (options.tls) {
    const server = http2.createSecureServer(
      {
        ...options.http2,
        ...options.tls,
        // A TLS handshake that stalls is cut off like a cleartext connection that sends nothing.
        handshakeTimeout: options.firstBytesTimeoutMs ?? 10_000,
        // ALPN offers h2 and http/1.1: Node sets ALPNProtocols from it.
        allowHTTP1: true,
      },
      handler,
    );
    // Node's HTTP/1.1 fallback under TLS takes its timeouts and header size
    // limit from properties of the server, not from its options.
    for (const key of http1FallbackSettings) {
      const value = options.http1?.[key];
      if (value !== undefined) Object.assign(server, { [key]: value });
    }
    server.on("connection", track);
    server.on("session", trackSession);
    server.on("request", trackResponse);
    trackClaims(server);
    return {
      server,
      http2Server: server,
      http1Server: undefined,
      sockets,
      sessions,
      responses,
      goAway,
    };
  }
  const http1Server = http.createServer(options.http1 ?? {}, handler);
  // Node starts enforcing headersTimeout and requestTimeout, and tracks the
  // connections closeIdleConnections() closes, when the server emits
  // "listening"; this one never listens (its sockets come from the sniffer).
  http1Server.emit("listening");
  http1Server.on("request", trackResponse);
  const http2Server = http2.createServer(options.http2 ?? {}, handler);
  http2Server.on("session", trackSession);
  http2Server.on("request", trackResponse);
  trackClaims(http2Server);
  const firstBytesTimeoutMs = options.firstBytesTimeoutMs ?? 10_000;
  const server = net.createServer((socket) => {
    track(socket);
    sniff(socket, firstBytesTimeoutMs, (isHttp2) => {
      if (!isHttp2) {
        http1Server.emit("connection", socket);
        return;
      }
      handingOff = socket;
      http2Server.emit("connection", socket);
      handingOff = undefined;
    });
  });
  return {
    server,
    http2Server,
    http1Server,
    sockets,
    sessions,
    responses,
    goAway,
  };
}

/**
 * Offer every stream of `server` to `claim` before Node's compatibility layer,
 * which listens to the same "stream" event and would answer it too.
 *
 * Node has no hook between a stream and its request objects; an event
 * listener cannot stop the others, so the server's own `emit` is wrapped for
 * this one event. Every other event, and every stream not claimed, goes on as
 * before.
 */
export function claimStreams(
  server: http2.Http2Server | http2.Http2SecureServer,
  claim: StreamClaim,
): void {
  const emit = server.emit;
  server.emit = function (
    this: typeof server,
    event: string | symbol,
    ...args: unknown[]
  ): boolean {
    if (
      event === "stream" &&
      claim(
        args[0] as http2.ServerHttp2Stream,
        args[1] as http2.IncomingHttpHeaders,
      )
    ) {
      return true;
    }
    return emit.call(this, event, ...args);
  } as typeof emit;
}

/**
 * Close an HTTP/2 session with `goAway` once it has had no stream open for
 * `idleMs`. Unlike a socket timeout, a long call that sends nothing for a
 * while (a quiet Chat) does not count as idle. A balancer may reuse an idle
 * connection at the very moment it is closed, so it is closed in two steps
 * like a draining one.
 */
function closeWhenIdle(
  session: http2.ServerHttp2Session,
  idleMs: number,
  goAway: (session: http2.ServerHttp2Session) => void,
): void {
  if (idleMs <= 0) return;
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => goAway(session), idleMs);
    timer.unref();
  };
  session.on("stream", (stream) => {
    open++;
    clearTimeout(timer);
    stream.on("close", () => {
      if (--open === 0 && !session.closed) arm();
    });
  });
  session.once("close", () => clearTimeout(timer));
  arm();
}

/**
 * Read a new connection's first bytes until they do or do not start the HTTP/2
 * preface, put them back, and tell which it was. A connection that sends nothing
 * in time, or closes first, is destroyed.
 */
function sniff(
  socket: net.Socket,
  timeoutMs: number,
  handOff: (isHttp2: boolean) => void,
): void {
  let seen: Buffer = Buffer.alloc(0);
  const done = () => {
    socket.off("readable", onReadable);
    socket.off("end", onEnd);
    socket.off("error", onEnd);
    socket.off("timeout", onEnd);
    socket.setTimeout(0);
  };
  const onReadable = () => {
    for (
      let chunk: Buffer | null = socket.read();
      chunk !== null;
      chunk = socket.read()
    ) {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    }
    const n = Math.min(seen.length, h2Preface.length);
    const startsPreface = seen.subarray(0, n).equals(h2Preface.subarray(0, n));
    if (startsPreface && seen.length < h2Preface.length) return;
    done();
    socket.unshift(seen);
    handOff(startsPreface);
  };
  // An end, an error or the first-bytes timeout before the hand-off.
  const onEnd = () => {
    done();
    socket.destroy();
  };
  socket.on("readable", onReadable);
  socket.once("end", onEnd);
  socket.once("error", onEnd);
  socket.on("timeout", onEnd);
  socket.setTimeout(timeoutMs);
}
