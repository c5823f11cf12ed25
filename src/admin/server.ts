import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { type Readiness, serveHealth } from "./health-endpoint.js";
import { type MetricsSource, serveMetrics } from "./metrics-endpoint.js";

/** The admin listener: metrics and HTTP probes on a port of their own, apart from the API. */
export interface AdminServer {
  /** The port it listens on (the real one when 0 was asked for). */
  readonly port: number;
  /** Stop listening and close every connection; resolves once the port is closed. */
  close(): Promise<void>;
}

/**
 * Serve `GET /metrics` (and HEAD) from `metrics` on a port of its own
 * (src/admin/metrics-endpoint.ts), `/healthz` and `/readyz` from `readiness`
 * (src/admin/health-endpoint.ts), and 404 everything else.
 *
 * Metrics stay off the API port so that a Service, Ingress or balancer that
 * exposes the API does not expose the process's internals; Prometheus scrapes
 * this port directly, as it does every pod's.
 */
export async function startAdminServer(
  metrics: MetricsSource,
  port: number,
  host: string | undefined,
  readiness: Readiness,
): Promise<AdminServer> {
  const server = http.createServer(
    // Scrapes are short: a slow client gets the same limits as the API's defaults.
    { headersTimeout: 10_000, requestTimeout: 30_000 },
    serveMetrics(
      metrics,
      serveHealth(readiness, (_req, res) => {
        res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
        res.end("404 Not Found\n");
      }),
    ),
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
