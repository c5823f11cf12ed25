import type { Transport } from "@connectrpc/connect";
import { createTransport as createGrpcProtocolTransport } from "@connectrpc/connect/protocol-grpc";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  createNodeHttpClient,
} from "@connectrpc/connect-node";

/** The three protocols the server speaks on one port. */
export const protocols = ["connect", "grpc", "grpc-web"] as const;
export type Protocol = (typeof protocols)[number];

/** The HTTP versions a client may use. */
export const httpVersions = ["1.1", "2"] as const;
export type HttpVersion = (typeof httpVersions)[number];

/** Options of a test transport. */
export interface TestTransportOptions {
  /** Trusted CA certificate for https URLs (the test's self-signed one). */
  ca?: Buffer;
  /** A client certificate and its key, for servers that ask for one (mutual TLS). */
  cert?: Buffer;
  key?: Buffer;
  /** Use Connect's JSON encoding instead of binary protobuf. @default false */
  json?: boolean;
}

/**
 * A connect-node client transport for `protocol` over HTTP `httpVersion`.
 *
 * connect-node's createGrpcTransport always uses HTTP/2 (it overrides
 * httpVersion), so gRPC over HTTP/1.1 is Connect's own gRPC protocol
 * implementation on connect-node's HTTP/1.1 client: the same code, with the
 * HTTP version the test asks for.
 */
export function testTransport(
  protocol: Protocol,
  httpVersion: HttpVersion,
  baseUrl: string,
  options: TestTransportOptions = {},
): Transport {
  const { ca, cert, key } = options;
  const nodeOptions = {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert, key }),
  };
  const useBinaryFormat = !options.json;
  switch (protocol) {
    case "connect":
      return createConnectTransport({
        baseUrl,
        httpVersion,
        nodeOptions,
        useBinaryFormat,
      });
    case "grpc-web":
      return createGrpcWebTransport({
        baseUrl,
        httpVersion,
        nodeOptions,
        useBinaryFormat,
      });
    case "grpc":
      if (httpVersion === "2")
        return createGrpcTransport({ baseUrl, nodeOptions });
      return createGrpcProtocolTransport({
        baseUrl,
        httpClient: createNodeHttpClient({ httpVersion, nodeOptions }),
        useBinaryFormat: true,
        interceptors: [],
        acceptCompression: [],
        sendCompression: null,
        compressMinBytes: 1024,
        readMaxBytes: 0xffffffff,
        writeMaxBytes: 0xffffffff,
      });
  }
}
