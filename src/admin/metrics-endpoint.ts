import type { RequestHandler } from "../transport/listener.js";

/** The path metrics are served on. */
export const metricsPath = "/metrics";

/**
 * Where a scrape's text comes from, as a prom-client registry gives it: one
 * server's registry (src/calls/metrics.ts) or the cluster's sum
 * (src/admin/cluster-metrics.ts).
 */
export interface MetricsSource {
  /** Every metric, in Prometheus text format. */
  metrics(): Promise<string>;
  /** The content type of that format. */
  readonly contentType: string;
}

/** Answer `GET` (and `HEAD`) `/metrics` with what `source` gives, 500 if it fails; pass every other request on to `next`. */
export function serveMetrics(
  source: MetricsSource,
  next: RequestHandler,
): RequestHandler {
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (
      path !== metricsPath ||
      (req.method !== "GET" && req.method !== "HEAD")
    ) {
      next(req, res);
      return;
    }
    source.metrics().then(
      (text) => {
        res.writeHead(200, { "content-type": source.contentType });
        if (req.method === "HEAD") res.end();
        else res.end(text);
      },
      () => {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end("cannot collect metrics\n");
      },
    );
  };
}
