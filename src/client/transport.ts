import type { Interceptor, Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import type { HttpVersion, Protocol } from "./args.js";

/** Where and how to reach the server. */
export interface TransportOptions {
  /** The server's base URL, such as http://localhost:50051. */
  readonly url: string;
  /** The wire protocol. */
  readonly protocol: Protocol;
  /** The HTTP version; gRPC always uses HTTP/2. */
  readonly httpVersion: HttpVersion;
  /** A bearer token for every call. @default undefined */
  readonly token?: string | undefined;
  /** PEM contents for TLS: the CA to trust, and a client certificate and key. @default Node's CAs, no client certificate */
  readonly tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

/** Create the @connectrpc/connect-node transport for a protocol and HTTP version. */
export function createTransport(options: TransportOptions): Transport {
  const { url: baseUrl, httpVersion, token, tls = {} } = options;
  // TLS options of Node's HTTP/2 session and HTTPS request alike.
  const nodeOptions = { ca: tls.ca, cert: tls.cert, key: tls.key };
  const interceptors = token === undefined ? [] : [bearer(token)];
  const common = { baseUrl, nodeOptions, interceptors };
  switch (options.protocol) {
    case "connect":
      return createConnectTransport({ ...common, httpVersion });
    case "grpc-web":
      return createGrpcWebTransport({ ...common, httpVersion });
    case "grpc":
      // gRPC is defined over HTTP/2 only; the argument parser rejects 1.1 for it.
      return createGrpcTransport(common);
  }
}

/** Sends `Authorization: Bearer <token>` with every call (RFC 6750, section 2.1). */
function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}
