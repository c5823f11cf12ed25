import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { connectNodeAdapter } from "@connectrpc/connect-node";

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
}

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
}

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
  if (options.tls) {
    const server = http2.createSecureServer(
      {
        ...options.http2,
        ...options.tls,
        allowHTTP1: true,
        ALPNProtocols: ["h2", "http/1.1"],
      },
      handler,
    );
    server.on("connection", track);
    return { server, http2Server: server, http1Server: undefined, sockets };
  }
  const http1Server = http.createServer(options.http1 ?? {}, handler);
  const http2Server = http2.createServer(options.http2 ?? {}, handler);
  const firstBytesTimeoutMs = options.firstBytesTimeoutMs ?? 10_000;
  const server = net.createServer((socket) => {
    track(socket);
    sniff(socket, firstBytesTimeoutMs, (isHttp2) =>
      (isHttp2 ? http2Server : http1Server).emit("connection", socket),
    );
  });
  return { server, http2Server, http1Server, sockets };
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
    socket.off("error", onError);
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
  const onEnd = () => {
    done();
    socket.destroy();
  };
  const onError = () => {
    done();
    socket.destroy();
  };
  socket.on("readable", onReadable);
  socket.once("end", onEnd);
  socket.once("error", onError);
  socket.on("timeout", onEnd);
  socket.setTimeout(timeoutMs);
}
