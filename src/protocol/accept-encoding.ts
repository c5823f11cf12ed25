import type { Compression } from "@connectrpc/connect/protocol";
import type { Protocol } from "./content-type.js";

/** The header that names the encodings the server reads (gRPC's compression spec). */
export const grpcAcceptEncodingHeader = "grpc-accept-encoding";

/**
 * The value of `grpc-accept-encoding` on an answer in `protocol`, or
 * undefined for a protocol without that header (Connect).
 *
 * The gRPC compression spec asks for it on the UNIMPLEMENTED answer to a
 * message in an unsupported encoding, so that the client can pick another;
 * connect puts the list only in the error message (it drops protocol
 * headers from error metadata). Sending it on every gRPC and gRPC-Web
 * answer is what grpc-go does, and lets a client choose an encoding before
 * its first compressed call. The engine's answers and the HTTP chain's
 * (src/http/grpc-accept-encoding.ts) follow this one rule.
 */
export function grpcAcceptEncoding(
  protocol: Protocol | undefined,
  compressions: readonly Compression[],
): string | undefined {
  if (protocol !== "grpc" && protocol !== "grpc-web") return undefined;
  let value = names.get(compressions);
  if (value === undefined) {
    value = compressions.map((c) => c.name).join(",");
    names.set(compressions, value);
  }
  return value;
}

const names = new WeakMap<readonly Compression[], string>();
