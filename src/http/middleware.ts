import type { RequestHandler } from "../transport/listener.js";

/**
 * One step of the HTTP handler chain: it answers a request itself or hands
 * it to `next`. Every wrapper in src/http/ has this shape, as each hono
 * middleware does, so the chain reads as a list (src/server.ts).
 */
export type Middleware = (next: RequestHandler) => RequestHandler;

/** Chain `steps` in front of `last`: a request meets them in list order. */
export function chain(
  steps: readonly Middleware[],
  last: RequestHandler,
): RequestHandler {
  return steps.reduceRight<RequestHandler>((next, step) => step(next), last);
}
