import type { Transport } from "@connectrpc/connect";
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
}

/** Create the @connectrpc/connect-node transport for a protocol and HTTP version. */
export function createTransport(options: TransportOptions): Transport {
  const { url: baseUrl, httpVersion } = options;
  switch (options.protocol) {
    case "connect":
      return createConnectTransport({ baseUrl, httpVersion });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion });
    case "grpc":
      // gRPC is defined over HTTP/2 only; the argument parser rejects 1.1 for it.
      return createGrpcTransport({ baseUrl });
  }
}
