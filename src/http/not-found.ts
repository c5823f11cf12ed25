import { Code } from "@connectrpc/connect";
import { parseRequestType } from "../protocol/content-type.js";
import {
  encodeGrpcMessage,
  grpcMessageHeader,
} from "../protocol-grpc/grpc-message.js";
import type { RequestHandler } from "../transport/listener.js";

type Request = Parameters<RequestHandler>[0];
type Response = Parameters<RequestHandler>[1];

/**
 * Answer a request for a path no route serves, in the caller's protocol.
 *
 * gRPC clients expect `unimplemented` as HTTP 200 with `grpc-status: 12` in a
 * trailers-only response (gRPC over HTTP/2 spec), not a bare 404 they would
 * report as `UNIMPLEMENTED` only by guesswork; gRPC-Web likewise carries the
 * status in headers. Everything else gets 404, with a Connect error body for
 * Connect clients and plain text for people.
 */
export function notFound(req: Request, res: Response): void {
  const contentType = req.headers["content-type"] ?? "";
  const protocol = parseRequestType(contentType)?.protocol;
  const message = `unknown procedure ${sanitizePath(req.url ?? "")}`;
  if (protocol === "grpc" || protocol === "grpc-web") {
    // Headers set before end(), not writeHead(): on HTTP/2, writeHead sends its
    // HEADERS frame at once and end() follows with an empty DATA frame, which
    // gRPC clients read as a call without status (grpc-js: INTERNAL). This way
    // the status goes out in one HEADERS frame with END_STREAM.
    res.statusCode = 200;
    res.setHeader("content-type", contentType);
    res.setHeader("grpc-status", String(Code.Unimplemented));
    res.setHeader(grpcMessageHeader, encodeGrpcMessage(message));
    res.end();
    return;
  }
  if (req.method === "POST" && protocol === "connect") {
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: "unimplemented", message }));
    return;
  }
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
  res.end("404 Not Found\n");
}

/** Keep what a client sent from being echoed back verbatim at length. */
function sanitizePath(path: string): string {
  const p = path.split("?")[0] ?? "";
  return p.length > 200 ? `${p.slice(0, 200)}…` : p;
}
