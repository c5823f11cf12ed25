import type { Compression } from "@connectrpc/connect/protocol";
import {
  grpcAcceptEncoding as acceptEncodingOf,
  grpcAcceptEncodingHeader,
} from "../protocol/accept-encoding.js";
import { parseRequestType } from "../protocol/content-type.js";
import type { Middleware } from "./middleware.js";

/**
 * The HTTP chain's step that names the encodings the server reads on every
 * gRPC and gRPC-Web answer it gives (connect's handlers, unknown paths), by
 * the rule the engine follows too (src/protocol/accept-encoding.ts).
 */
export function grpcAcceptEncoding(
  compressions: readonly Compression[],
): Middleware {
  return (next) => (req, res) => {
    const value = acceptEncodingOf(
      parseRequestType(req.headers["content-type"])?.protocol,
      compressions,
    );
    if (value !== undefined) res.setHeader(grpcAcceptEncodingHeader, value);
    next(req, res);
  };
}
