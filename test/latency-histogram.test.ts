import assert from "node:assert/strict";
import { test } from "node:test";
import { Registry } from "prom-client";
import {
  Latencies,
  LatencyHistogram,
  latencyBuckets,
} from "../src/calls/latency-histogram.js";

// The call latency histogram (grpc_server_handling_seconds): observations
// counted per bucket by plain additions, exported as prom-client exports a
// Histogram, cumulative, with the le label first.

test("an observation lands in the first bucket whose bound it does not pass: bounds are inclusive, in seconds", async () => {
  const registry = new Registry();
  const a = new Latencies({ grpc_method: "SayHello" });
  new LatencyHistogram("h_seconds", "latency", registry, () => [a]);
  a.observe(0.005); // on the first bound: in it
  a.observe(0.0051); // just past it: the second
  a.observe(0.3); // 0.5
  a.observe(11); // past the last bound: +Inf only
  const text = await registry.metrics();
  const lines = text.split("\n").filter((l) => l.startsWith("h_seconds"));
  assert.deepEqual(lines, [
    'h_seconds_bucket{le="0.005",grpc_method="SayHello"} 1',
    'h_seconds_bucket{le="0.01",grpc_method="SayHello"} 2',
    'h_seconds_bucket{le="0.025",grpc_method="SayHello"} 2',
    'h_seconds_bucket{le="0.05",grpc_method="SayHello"} 2',
    'h_seconds_bucket{le="0.1",grpc_method="SayHello"} 2',
    'h_seconds_bucket{le="0.25",grpc_method="SayHello"} 2',
    'h_seconds_bucket{le="0.5",grpc_method="SayHello"} 3',
    'h_seconds_bucket{le="1",grpc_method="SayHello"} 3',
    'h_seconds_bucket{le="2.5",grpc_method="SayHello"} 3',
    'h_seconds_bucket{le="5",grpc_method="SayHello"} 3',
    'h_seconds_bucket{le="10",grpc_method="SayHello"} 3',
    'h_seconds_bucket{le="+Inf",grpc_method="SayHello"} 4',
    'h_seconds_sum{grpc_method="SayHello"} 11.3101',
    'h_seconds_count{grpc_method="SayHello"} 4',
  ]);
  assert.match(text, /^# TYPE h_seconds histogram$/m);
  assert.equal(latencyBuckets.length, 11);
});

test("the histogram's JSON, which cluster mode sums across workers, carries every label in one object", async () => {
  const registry = new Registry();
  const a = new Latencies({ protocol: "grpc" });
  new LatencyHistogram("h_seconds", "latency", registry, () => [a]);
  a.observe(0.02);
  const [metric] = await registry.getMetricsAsJSON();
  assert.equal(metric?.type, "histogram");
  assert.equal(metric?.aggregator, "sum");
  const values = (
    metric as unknown as {
      values: { labels: object; value: number; metricName: string }[];
    }
  ).values;
  assert.deepEqual(values[2], {
    labels: { le: 0.025, protocol: "grpc" },
    value: 1,
    metricName: "h_seconds_bucket",
  });
  assert.deepEqual(values.at(-1), {
    labels: { protocol: "grpc" },
    value: 1,
    metricName: "h_seconds_count",
  });
});
