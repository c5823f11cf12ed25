import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type * as tls from "node:tls";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { claimStreams, type StreamClaim } from "./claim-streams.js";
import { type Connections, trackConnections } from "./connections.js";
import { goAwayInTwoSteps } from "./goaway.js";
import { closeWhenIdle } from "./idle.js";
import type { SessionPolicy } from "./session-policy.js";
import { sniff } from "./sniff.js";

/** A request handler for both HTTP/1.1 and HTTP/2, as Connect's Node adapter returns. */
export type RequestHandler = ReturnType<typeof connectNodeAdapter>;

/** Options of the one-port listener. */
export interface ListenerOptions {
  /**
   * PEM certificate and key, and for mutual TLS the client CA and whether a
   * client certificate is asked for and required. When set, the port speaks
   * TLS only and ALPN picks h2 or http/1.1; when unset, the port speaks
   * cleartext HTTP/1.1 and h2c.
   * @default undefined (cleartext)
   */
  tls?: { cert: Buffer; key: Buffer } & Pick<
    tls.TlsOptions,
    "ca" | "requestCert" | "rejectUnauthorized"
  >;
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
   * `handler` never sees it (src/engine/engine.ts).
   * @default undefined (every stream goes to `handler`)
   */
  claimStream?: StreamClaim;
}

/** A server answering HTTP/1.1 and HTTP/2 on one port, with its connections at hand for shutdown. */
export interface Listener extends Connections {
  /** The TCP (or TLS) server to listen on. */
  readonly server: net.Server;
  /** The HTTP/2 server every HTTP/2 session belongs to (for sessions and GOAWAY). */
  readonly http2Server: http2.Http2Server | http2.Http2SecureServer;
  /** The HTTP/1.1 server, or undefined under TLS, where the HTTP/2 server also serves HTTP/1.1. */
  readonly http1Server: http.Server | undefined;
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
 * Under TLS, ALPN picks the protocol and Node's `allowHTTP1` suffices; on a
 * cleartext port a connection's first bytes do (src/transport/sniff.ts).
 * Its sockets, sessions and responses are tracked for shutdown
 * (src/transport/connections.ts), streams are offered to `claimStream`
 * first (src/transport/claim-streams.ts), and every HTTP/2 session is put
 * under the connection policies (src/transport/session-policy.ts).
 */
export function createListener(
  handler: RequestHandler,
  options: ListenerOptions = {},
): Listener {
  const connections = trackConnections();
  const goAway = (session: http2.ServerHttp2Session) =>
    goAwayInTwoSteps(session, connections.socketOf(session));
  // Each HTTP/2 session is put under every connection policy as it opens.
  const policies: SessionPolicy[] = [closeWhenIdle(options.idleTimeoutMs ?? 0)];
  const onSession = (session: http2.ServerHttp2Session) => {
    connections.session(session);
    for (const policy of policies) policy(session, () => goAway(session));
  };
  const claim = options.claimStream;
  const serveHttp2 = (server: http2.Http2Server | http2.Http2SecureServer) => {
    server.on("session", onSession);
    server.on("request", connections.response);
    if (claim === undefined) return;
    claimStreams(server, (stream, headers, rawHeaders) => {
      if (!claim(stream, headers, rawHeaders)) return false;
      connections.stream(stream);
      return true;
    });
  };
  const tracked = {
    sockets: connections.sockets,
    sessions: connections.sessions,
    responses: connections.responses,
    goAway,
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
      // Stryker disable next-line ConditionalExpression: equivalent, src/server.ts sets every one of them
      if (value !== undefined) Object.assign(server, { [key]: value });
    }
    server.on("connection", connections.socket);
    serveHttp2(server);
    return { server, http2Server: server, http1Server: undefined, ...tracked };
  }
  const http1Server = http.createServer(options.http1 ?? {}, handler);
  // Node starts enforcing headersTimeout and requestTimeout, and tracks the
  // connections closeIdleConnections() closes, when the server emits
  // "listening"; this one never listens (its sockets come from the sniffer).
  http1Server.emit("listening");
  http1Server.on("request", connections.response);
  const http2Server = http2.createServer(options.http2 ?? {}, handler);
  serveHttp2(http2Server);
  const firstBytesTimeoutMs = options.firstBytesTimeoutMs ?? 10_000;
  const server = net.createServer((socket) => {
    connections.socket(socket);
    sniff(socket, firstBytesTimeoutMs, (isHttp2) => {
      if (isHttp2) connections.handOff(socket, http2Server);
      else http1Server.emit("connection", socket);
    });
  });
  return { server, http2Server, http1Server, ...tracked };
}
