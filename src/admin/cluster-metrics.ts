import { AggregatorRegistry, type Registry } from "prom-client";
import type { MetricsSource } from "./metrics-endpoint.js";

/**
 * The metrics of every worker of cluster mode, summed by prom-client's
 * AggregatorRegistry, for the primary's admin port: workers share the API
 * port, and a scrape answered by whichever worker got the connection would
 * see that worker's counts only.
 */
export class ClusterMetrics implements MetricsSource {
  readonly #aggregator = new AggregatorRegistry();
  readonly contentType = this.#aggregator.contentType;

  /** Every worker's metrics, asked for now and summed. */
  metrics(): Promise<string> {
    return this.#aggregator.clusterMetrics();
  }
}

/**
 * In a worker of cluster mode: answer the primary's requests for the
 * metrics in `registry` (prom-client's cluster protocol), so that the
 * primary serves them all, summed, on the one admin port (ClusterMetrics).
 */
export function shareMetricsWithPrimary(registry: Registry): void {
  // Constructing one installs the worker's message listener.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
}
