import { parseContentType as parseConnect } from "@connectrpc/connect/protocol-connect";
import { parseContentType as parseGrpc } from "@connectrpc/connect/protocol-grpc";
import { parseContentType as parseGrpcWeb } from "@connectrpc/connect/protocol-grpc-web";

/** The three protocols the server speaks. */
export type Protocol = "grpc" | "grpc-web" | "connect";

/** What a request's content type tells. */
export interface RequestType {
  readonly protocol: Protocol;
  /** Protobuf (true) or JSON (false). */
  readonly binary: boolean;
  /** A Connect streaming call (application/connect+...); gRPC and gRPC-Web calls are always enveloped. */
  readonly stream: boolean;
  /** gRPC-Web's text mode (application/grpc-web-text): the body in base64. */
  readonly text: boolean;
}

/**
 * Tell a request's protocol and encoding by its content type, with connect's
 * own parsers, so that this server and connect's handlers never disagree on
 * what a request is; undefined for anything else (a Connect GET has none).
 */
export function parseRequestType(
  contentType: string | null | undefined,
): RequestType | undefined {
  if (contentType === undefined || contentType === null) return undefined;
  const grpc = parseGrpc(contentType);
  if (grpc !== undefined) return grpc.binary ? grpcProto : grpcJson;
  const connect = parseConnect(contentType);
  if (connect !== undefined) {
    return {
      protocol: "connect",
      binary: connect.binary,
      stream: connect.stream,
      text: false,
    };
  }
  const web = parseGrpcWeb(contentType);
  if (web !== undefined) {
    return {
      protocol: "grpc-web",
      binary: web.binary,
      stream: true,
      text: web.text,
    };
  }
  return undefined;
}

const grpcProto: RequestType = {
  protocol: "grpc",
  binary: true,
  stream: true,
  text: false,
};
const grpcJson: RequestType = {
  protocol: "grpc",
  binary: false,
  stream: true,
  text: false,
};
