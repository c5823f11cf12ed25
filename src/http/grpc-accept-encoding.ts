import { parseRequestType } from "./content-type.js";
import type { Middleware } from "./middleware.js";

/**
 * Wrap a handler so that every gRPC and gRPC-Web response names the message
 * encodings the server reads, in `grpc-accept-encoding`.
 *
 * The gRPC compression spec asks for this header on the UNIMPLEMENTED answer
 * to a message in an unsupported encoding, so that the client can pick another;
 * Connect puts the list only in the error message (it drops protocol headers
 * from error metadata). Sending it on every response is what grpc-go does, and
 * lets a client choose an encoding before its first compressed call.
 */
export function grpcAcceptEncoding(encodings: readonly string[]): Middleware {
  const value = encodings.join(",");
  return (next) => (req, res) => {
    const protocol = parseRequestType(req.headers["content-type"])?.protocol;
    if (protocol === "grpc" || protocol === "grpc-web") {
      res.setHeader("grpc-accept-encoding", value);
    }
    next(req, res);
  };
}
