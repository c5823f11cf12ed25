import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Greeter } from "../gen/helloworld_pb.js";
import { startPrometheus } from "./prometheus/prometheus.js";
import { startTestServer } from "./support/server.js";
import { testTransport } from "./support/transports.js";

// A real scraper: Debian's Prometheus reads the admin port's /metrics every
// second and is asked over its HTTP API, so the exposition is checked by the
// parser that matters, not only by our own (test/metrics.test.ts).

test("after a known set of calls, Prometheus scrapes and reports exactly those counts per method, protocol and code", {
  timeout: 90_000,
}, async (t) => {
  const server = await startTestServer(t);
  assert.ok(server.metricsUrl);
  const prometheus = await startPrometheus(t, [
    new URL(server.metricsUrl).host,
  ]);
  const grpc = createClient(Greeter, testTransport("grpc", "2", server.url));
  const connect = createClient(
    Greeter,
    testTransport("connect", "1.1", server.url),
  );
  const grpcWeb = createClient(
    Greeter,
    testTransport("grpc-web", "2", server.url),
  );
  for (let i = 0; i < 3; i++) await grpc.sayHello({ name: "Ada" });
  for (let i = 0; i < 2; i++) await connect.sayHello({ name: "Bob" });
  for (let i = 0; i < 4; i++) {
    await assert.rejects(
      grpc.sayHello({ name: "" }),
      (e) => ConnectError.from(e).code === Code.InvalidArgument,
    );
  }
  for await (const _ of grpcWeb.streamHello({ name: "Cy" }));
  const done = Date.now();

  await prometheus.scrapedSince(done);
  const handled = await prometheus.query(
    'grpc_server_handled_total{job="connect-greeter"}',
  );
  const counts = Object.fromEntries(
    handled.map((s) => [
      `${s.metric.grpc_type} ${s.metric.grpc_service}/${s.metric.grpc_method} ${s.metric.protocol} ${s.metric.grpc_code}`,
      s.value,
    ]),
  );
  assert.deepEqual(counts, {
    "unary Greeter/SayHello grpc OK": 3,
    "unary Greeter/SayHello connect OK": 2,
    "unary Greeter/SayHello grpc InvalidArgument": 4,
    "server_stream Greeter/StreamHello grpc-web OK": 1,
  });
  const [started] = await prometheus.query(
    'sum(grpc_server_started_total{job="connect-greeter"})',
  );
  assert.equal(started?.value, 10);
  const [latencies] = await prometheus.query(
    'sum(grpc_server_handling_seconds_count{job="connect-greeter"})',
  );
  assert.equal(latencies?.value, 10, "one latency observation per call");
  const [sent] = await prometheus.query(
    'grpc_server_msg_sent_total{job="connect-greeter",grpc_method="StreamHello"}',
  );
  assert.equal(sent?.value, 5, "StreamHello's five replies");
  const [inFlight] = await prometheus.query(
    'sum(grpc_server_streams_in_flight{job="connect-greeter"})',
  );
  assert.equal(inFlight?.value, 0);
});
