import type { Registry } from "prom-client";

/**
 * The latency buckets, in seconds: Prometheus client_golang's DefBuckets,
 * which go-grpc-prometheus uses and prom-client's Histogram defaults to, so
 * existing gRPC dashboards' quantiles work unchanged.
 */
export const latencyBuckets = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

/** One label set's latencies: a count per bucket (not cumulative), their sum and count. */
export class Latencies {
  readonly labels: Readonly<Record<string, string>>;
  readonly counts = new Float64Array(latencyBuckets.length);
  sum = 0;
  count = 0;

  constructor(labels: Readonly<Record<string, string>>) {
    this.labels = labels;
  }

  /** One observation, in seconds. */
  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < latencyBuckets.length; i++) {
      if (seconds <= (latencyBuckets[i] as number)) {
        (this.counts[i] as number)++;
        return;
      }
    }
  }
}

interface Value {
  readonly labels: Record<string, string | number>;
  readonly sharedLabels?: Record<string, string>;
  readonly value: number;
  readonly metricName: string;
}

/**
 * A Prometheus histogram whose observations are plain additions to a
 * `Latencies` per label set, made when scraped into what prom-client's own
 * Histogram exports (its getForPromString and get, the same text and the
 * same JSON for cluster aggregation). prom-client's Histogram validates and
 * hashes the labels object on every observation, a cost every call would
 * pay; here the label sets are made once, by whoever holds a `Latencies`.
 */
export class LatencyHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #series: () => Iterable<Latencies>;

  constructor(
    readonly name: string,
    readonly help: string,
    registry: Registry,
    series: () => Iterable<Latencies>,
  ) {
    this.#series = series;
    registry.registerMetric(this as never);
  }

  /** As prom-client's Histogram.getForPromString: bucket labels apart from the series' own. */
  async getForPromString() {
    const values: Value[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.#series()) {
      let total = 0;
      for (let i = 0; i < latencyBuckets.length; i++) {
        total += s.counts[i] as number;
        values.push({
          labels: { le: latencyBuckets[i] as number },
          sharedLabels: { ...s.labels },
          value: total,
          metricName: bucket,
        });
      }
      values.push({
        labels: { le: "+Inf" },
        sharedLabels: { ...s.labels },
        value: s.count,
        metricName: bucket,
      });
      values.push({
        labels: {},
        sharedLabels: { ...s.labels },
        value: s.sum,
        metricName: `${this.name}_sum`,
      });
      values.push({
        labels: {},
        sharedLabels: { ...s.labels },
        value: s.count,
        metricName: `${this.name}_count`,
      });
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    };
  }

  /** As prom-client's Histogram.get (its splayLabels): every value's labels in one object, for cluster aggregation. */
  async get() {
    const data = await this.getForPromString();
    return {
      ...data,
      values: data.values.map(({ sharedLabels, ...v }) => ({
        ...v,
        labels: { ...v.labels, ...sharedLabels },
      })),
    };
  }

  /** Nothing to reset: the counts are the series', kept for the server's life. */
  reset(): void {}
}
