import { cors as connectCors } from "@connectrpc/connect";
import type { Middleware } from "./middleware.js";

/** How long a browser may cache a preflight answer, in seconds (as connectrpc.com/cors recommends). */
export const corsMaxAgeSeconds = 7200;

/**
 * Let browsers on the given origins call the server cross-origin with the
 * Connect and gRPC-Web protocols; "*" allows any origin, an empty list none
 * (the handler is returned unchanged).
 *
 * Preflight requests (OPTIONS with Origin and Access-Control-Request-Method)
 * are answered here with 204: with the methods and headers Connect's
 * protocols need (`cors` from @connectrpc/connect) for an allowed origin, with
 * no CORS header for any other, which the browser reads as a refusal. Actual
 * requests go on to `handler`, with Access-Control-Allow-Origin and the
 * headers a browser client must read (grpc-status, grpc-message, ...)
 * exposed for an allowed origin.
 */
export function cors(origins: readonly string[]): Middleware {
  if (origins.length === 0) return (next) => next;
  const anyOrigin = origins.includes("*");
  const allowed = new Set(origins.map((o) => o.toLowerCase()));
  const isAllowed = (origin: string) =>
    anyOrigin || allowed.has(origin.toLowerCase());
  return (next) => (req, res) => {
    const origin = req.headers.origin;
    if (
      req.method === "OPTIONS" &&
      origin !== undefined &&
      req.headers["access-control-request-method"] !== undefined
    ) {
      const headers: Record<string, string> = {
        vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
      };
      if (isAllowed(origin)) {
        headers["access-control-allow-origin"] = anyOrigin ? "*" : origin;
        headers["access-control-allow-methods"] =
          connectCors.allowedMethods.join(", ");
        headers["access-control-allow-headers"] =
          connectCors.allowedHeaders.join(", ");
        headers["access-control-max-age"] = String(corsMaxAgeSeconds);
      }
      res.writeHead(204, headers);
      res.end();
      return;
    }
    // The answer depends on Origin unless every origin gets the same one;
    // say so, or a cache could hand one origin's answer to another.
    if (!anyOrigin) res.setHeader("vary", "Origin");
    if (origin !== undefined && isAllowed(origin)) {
      res.setHeader("access-control-allow-origin", anyOrigin ? "*" : origin);
      res.setHeader(
        "access-control-expose-headers",
        connectCors.exposedHeaders.join(", "),
      );
    }
    next(req, res);
  };
}
