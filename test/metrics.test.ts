import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
} from "@connectrpc/connect-node";
import { Greeter } from "../gen/helloworld_pb.js";
import { createGreeter } from "../src/services/greeter.js";
import { rawH2 } from "./support/raw.js";
import { startTestServer } from "./support/server.js";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Scrape GET /metrics and parse the text exposition format's samples. */
async function scrape(url: string | undefined): Promise<Sample[]> {
  assert.ok(url, "the server serves metrics");
  const res = await fetch(url);
  assert.equal(res.status, 200);
  const samples: Sample[] = [];
  for (const line of (await res.text()).split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] as string] = l[2] as string;
    }
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and exactly these labels; 0 when absent. */
function sampleValue(
  samples: Sample[],
  name: string,
  labels: Record<string, string>,
): number {
  const found = samples.filter(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(found.length <= 1, `one series ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value ?? 0;
}

function method(
  grpc_method: string,
  grpc_type: string,
  protocol: string,
): Record<string, string> {
  return { grpc_type, grpc_service: "Greeter", grpc_method, protocol };
}

/** An async iterable a test feeds one message at a time, and ends. */
function feed<T>(): { push(v: T): void; end(): void; it: AsyncIterable<T> } {
  const queue: T[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  return {
    push(v) {
      queue.push(v);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    it: {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          const v = queue.shift();
          if (v !== undefined) {
            yield v;
            continue;
          }
          if (ended) return;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      },
    },
  };
}

test("GET /metrics on the admin port serves the Prometheus text format with the process metrics", async (t) => {
  const server = await startTestServer(t);
  assert.match(server.metricsUrl ?? "", /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  assert.notEqual(new URL(server.metricsUrl ?? "").port, String(server.port));
  const res = await fetch(server.metricsUrl ?? "");
  assert.equal(res.status, 200);
  assert.match(
    res.headers.get("content-type") ?? "",
    /^text\/plain; version=0\.0\.4/,
  );
  const text = await res.text();
  assert.match(text, /^# TYPE process_cpu_user_seconds_total counter$/m);
  assert.match(text, /^# TYPE nodejs_eventloop_lag_seconds gauge$/m);
  assert.match(text, /^# TYPE grpc_server_handled_total counter$/m);
  assert.match(text, /^# TYPE grpc_server_handling_seconds histogram$/m);
});

test("POST /metrics and other paths of the admin port are not metrics", async (t) => {
  const server = await startTestServer(t);
  const admin = new URL(server.metricsUrl ?? "");
  const post = await fetch(admin, { method: "POST" });
  assert.equal(post.status, 404);
  await post.body?.cancel();
  const other = await fetch(new URL("/metrics/x", admin));
  assert.equal(other.status, 404);
  await other.body?.cancel();
});

test("the API port does not serve metrics, over HTTP/1.1 or HTTP/2", async (t) => {
  const server = await startTestServer(t);
  const h1 = await fetch(`${server.url}/metrics`);
  assert.equal(h1.status, 404);
  assert.doesNotMatch(await h1.text(), /grpc_server|process_cpu/);
  const h2 = await rawH2(server.url, {
    headers: { ":method": "GET", ":path": "/metrics" },
    body: [],
  });
  assert.equal(h2.status, 404);
});

test("with the admin port off, nothing serves metrics", async (t) => {
  const server = await startTestServer(t, { adminPort: undefined });
  assert.equal(server.metricsUrl, undefined);
  const res = await fetch(`${server.url}/metrics`);
  assert.equal(res.status, 404);
  await res.body?.cancel();
});

test("calls move the started, handled and message counters by their method, protocol and code", async (t) => {
  const server = await startTestServer(t);
  const connect = createClient(
    Greeter,
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  );
  const grpc = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  const before = await scrape(server.metricsUrl);
  await connect.sayHello({ name: "a" });
  await connect.sayHello({ name: "b" });
  await assert.rejects(grpc.sayHello({ name: "" }));
  let replies = 0;
  for await (const _ of grpc.streamHello({ name: "c" })) replies++;
  assert.equal(replies, 5);
  await grpc.collectGreetings(
    (async function* () {
      yield { name: "x" };
      yield { name: "y" };
      yield { name: "z" };
    })(),
  );
  const after = await scrape(server.metricsUrl);
  const delta = (name: string, labels: Record<string, string>) =>
    sampleValue(after, name, labels) - sampleValue(before, name, labels);

  const helloConnect = method("SayHello", "unary", "connect");
  const helloGrpc = method("SayHello", "unary", "grpc");
  const stream = method("StreamHello", "server_stream", "grpc");
  const collect = method("CollectGreetings", "client_stream", "grpc");
  assert.equal(delta("grpc_server_started_total", helloConnect), 2);
  assert.equal(delta("grpc_server_started_total", helloGrpc), 1);
  assert.equal(delta("grpc_server_started_total", stream), 1);
  assert.equal(delta("grpc_server_started_total", collect), 1);
  assert.equal(
    delta("grpc_server_handled_total", { ...helloConnect, grpc_code: "OK" }),
    2,
  );
  assert.equal(
    delta("grpc_server_handled_total", {
      ...helloGrpc,
      grpc_code: "InvalidArgument",
    }),
    1,
  );
  assert.equal(
    delta("grpc_server_handled_total", { ...helloGrpc, grpc_code: "OK" }),
    0,
  );
  assert.equal(
    delta("grpc_server_handled_total", { ...stream, grpc_code: "OK" }),
    1,
  );
  assert.equal(
    delta("grpc_server_handled_total", { ...collect, grpc_code: "OK" }),
    1,
  );
  assert.equal(delta("grpc_server_msg_received_total", helloConnect), 2);
  assert.equal(delta("grpc_server_msg_sent_total", helloConnect), 2);
  assert.equal(delta("grpc_server_msg_received_total", helloGrpc), 1);
  assert.equal(delta("grpc_server_msg_sent_total", helloGrpc), 0);
  assert.equal(delta("grpc_server_msg_received_total", stream), 1);
  assert.equal(delta("grpc_server_msg_sent_total", stream), 5);
  assert.equal(delta("grpc_server_msg_received_total", collect), 3);
  assert.equal(delta("grpc_server_msg_sent_total", collect), 1);
});

test("the handling-time histogram counts every finished call", async (t) => {
  const server = await startTestServer(t);
  const client = createClient(
    Greeter,
    createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
  );
  const labels = method("SayHello", "unary", "connect");
  const before = await scrape(server.metricsUrl);
  for (let i = 0; i < 3; i++) await client.sayHello({ name: "a" });
  await assert.rejects(client.sayHello({ name: "" }));
  const after = await scrape(server.metricsUrl);
  const delta = (name: string, l: Record<string, string>) =>
    sampleValue(after, name, l) - sampleValue(before, name, l);
  assert.equal(delta("grpc_server_handling_seconds_count", labels), 4);
  assert.equal(
    delta("grpc_server_handling_seconds_bucket", { ...labels, le: "+Inf" }),
    4,
  );
  assert.ok(delta("grpc_server_handling_seconds_sum", labels) > 0);
  const buckets = after.filter(
    (s) =>
      s.name === "grpc_server_handling_seconds_bucket" &&
      s.labels.grpc_method === "SayHello",
  );
  for (let i = 1; i < buckets.length; i++) {
    assert.ok(
      (buckets[i] as Sample).value >= (buckets[i - 1] as Sample).value,
      "buckets are cumulative",
    );
  }
});

test("the in-flight gauge counts an open Chat stream and drops when it ends", async (t) => {
  const server = await startTestServer(t);
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  const chat = method("Chat", "bidi_stream", "grpc");
  const gauge = "grpc_server_streams_in_flight";
  assert.equal(sampleValue(await scrape(server.metricsUrl), gauge, chat), 0);

  const requests = feed<{ name: string }>();
  const replies = client.chat(requests.it)[Symbol.asyncIterator]();
  requests.push({ name: "a" });
  assert.equal((await replies.next()).value?.message, "Hello, a!");
  assert.equal(sampleValue(await scrape(server.metricsUrl), gauge, chat), 1);

  requests.end();
  assert.equal((await replies.next()).done, true);
  const after = await scrape(server.metricsUrl);
  assert.equal(sampleValue(after, gauge, chat), 0);
  assert.equal(
    sampleValue(after, "grpc_server_handled_total", {
      ...chat,
      grpc_code: "OK",
    }),
    1,
  );
});

test("the engine's counter counts the calls the engine served, and not those connect's handlers served", async (t) => {
  const greeter = createGreeter({ streamIntervalMs: 0 });
  const server = await startTestServer(t, {
    routes(router) {
      // A method registered with options of its own is left to connect.
      router.rpc(Greeter.method.sayHello, greeter.sayHello, {});
      router.rpc(Greeter.method.streamHello, greeter.streamHello);
    },
  });
  const counter = "connect_greeter_engine_calls_total";
  const client = createClient(
    Greeter,
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  );
  assert.equal(sampleValue(await scrape(server.metricsUrl), counter, {}), 0);
  await client.sayHello({ name: "a" });
  for await (const _ of client.streamHello({ name: "c" }));
  for await (const _ of client.streamHello({ name: "d" }));
  assert.equal(server.engine.calls, 2);
  assert.equal(sampleValue(await scrape(server.metricsUrl), counter, {}), 2);
});

test("each server counts only its own calls", async (t) => {
  const one = await startTestServer(t);
  const two = await startTestServer(t);
  const client = createClient(
    Greeter,
    createConnectTransport({ baseUrl: one.url, httpVersion: "1.1" }),
  );
  await client.sayHello({ name: "a" });
  const labels = method("SayHello", "unary", "connect");
  assert.equal(
    sampleValue(
      await scrape(one.metricsUrl),
      "grpc_server_started_total",
      labels,
    ),
    1,
  );
  assert.equal(
    sampleValue(
      await scrape(two.metricsUrl),
      "grpc_server_started_total",
      labels,
    ),
    0,
  );
});

test("a StreamHello the client cancels is counted as Canceled and leaves the in-flight gauge at zero", async (t) => {
  // A long pause between replies: the handler is waiting when the client cancels.
  const server = await startTestServer(t, { streamIntervalMs: 60_000 });
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  const stream = method("StreamHello", "server_stream", "grpc");
  const abort = new AbortController();
  const replies = client
    .streamHello({ name: "a" }, { signal: abort.signal })
    [Symbol.asyncIterator]();
  assert.equal((await replies.next()).value?.message, "Hello a, message 0");
  assert.equal(
    sampleValue(
      await scrape(server.metricsUrl),
      "grpc_server_streams_in_flight",
      stream,
    ),
    1,
  );
  abort.abort();
  await assert.rejects(replies.next());
  await server.inflight.whenIdle();
  const after = await scrape(server.metricsUrl);
  assert.equal(sampleValue(after, "grpc_server_streams_in_flight", stream), 0);
  assert.equal(
    sampleValue(after, "grpc_server_handled_total", {
      ...stream,
      grpc_code: "Canceled",
    }),
    1,
  );
  assert.equal(sampleValue(after, "grpc_server_msg_sent_total", stream), 1);
});
