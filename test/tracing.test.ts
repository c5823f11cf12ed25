import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
} from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Greeter } from "../gen/helloworld_pb.js";
import { flushTracesMs } from "../src/calls/tracing.js";
import { parseInvocation, UsageError } from "../src/client/args.js";
import { ConfigError, helpText, loadConfig } from "../src/config.js";
import { otelSettings } from "../src/otel-config.js";
import type { RunningServer, ServerOptions } from "../src/server.js";
import { authSettings } from "./support/auth.js";
import { listeningOn, runClient, startChild } from "./support/child.js";
import { LogCapture, type LogLine } from "./support/log-capture.js";
import { startTestServer } from "./support/server.js";
import { jwksOf, TestIssuer } from "./support/tokens.js";
import {
  type HttpVersion,
  type Protocol,
  testTransport,
} from "./support/transports.js";
import { OtlpReceiver, type ReceivedSpan } from "./tracing/otlp-receiver.js";

/** A caller's span, as a W3C traceparent names it. */
interface Parent {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceparent: string;
}

function parent(sampled = true): Parent {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return {
    traceId,
    spanId,
    traceparent: `00-${traceId}-${spanId}-${sampled ? "01" : "00"}`,
  };
}

/** A server exporting to a receiver of its own, quickly (10 ms batches unless `env` says otherwise). */
async function tracedServer(
  t: TestContext,
  env: Record<string, string> = {},
  options: ServerOptions = {},
  receiver?: OtlpReceiver,
): Promise<{
  server: RunningServer;
  receiver: OtlpReceiver;
  log: LogCapture;
}> {
  const collector = receiver ?? (await OtlpReceiver.start(t));
  const tracing = loadConfig([], {
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    OTEL_BSP_SCHEDULE_DELAY: "10",
    ...env,
  }).tracing;
  assert.ok(tracing, "tracing is on");
  const log = new LogCapture();
  const server = await startTestServer(t, {
    tracing,
    logLevel: "info",
    logDestination: log.destination,
    ...options,
  });
  return { server, receiver: collector, log };
}

function greeter(
  server: RunningServer,
  protocol: Protocol,
  httpVersion: HttpVersion,
): Client<typeof Greeter> {
  return createClient(
    Greeter,
    testTransport(protocol, httpVersion, server.url),
  );
}

/**
 * The log line of the `n`th call (from 1), once it is written. Found by its
 * place, not by its trace id, so that a wrong id fails the assertion at once.
 */
async function callLine(log: LogCapture, n: number): Promise<LogLine> {
  await log.waitFor(() => log.calls().length >= n);
  return log.calls()[n - 1] as LogLine;
}

/** The next exported span, which must be the call made with `caller`'s traceparent. */
async function spanOf(
  receiver: OtlpReceiver,
  caller: Parent,
): Promise<ReceivedSpan> {
  const span = await receiver.nextSpan();
  assert.equal(span.traceId, caller.traceId, "the caller's trace");
  assert.equal(span.parentSpanId, caller.spanId, "child of the caller");
  return span;
}

/** The attributes every span of a successful call has, by the RPC semantic conventions. */
function expectedAttributes(
  server: RunningServer,
  method: string,
  protocol: Protocol,
  httpVersion: HttpVersion,
  peerPort: unknown,
): Record<string, unknown> {
  const grpcSystem = protocol !== "connect";
  return {
    "rpc.system.name": grpcSystem ? "grpc" : "connectrpc",
    "rpc.method": `Greeter/${method}`,
    ...(grpcSystem ? { "rpc.status_code": "OK" } : {}),
    "server.address": "127.0.0.1",
    "server.port": server.port,
    "network.peer.address": "127.0.0.1",
    "network.peer.port": peerPort,
    "network.protocol.name": "http",
    "network.protocol.version": httpVersion,
  };
}

async function* names(...list: string[]) {
  for (const name of list) yield { name };
}

/** Each RPC, called with the caller's traceparent. */
const rpcs = {
  SayHello: (c: Client<typeof Greeter>, headers: HeadersInit) =>
    c.sayHello({ name: "Ada" }, { headers }),
  StreamHello: async (c: Client<typeof Greeter>, headers: HeadersInit) => {
    for await (const _ of c.streamHello({ name: "Ada" }, { headers }));
  },
  CollectGreetings: (c: Client<typeof Greeter>, headers: HeadersInit) =>
    c.collectGreetings(names("Ada", "Bob"), { headers }),
  Chat: async (c: Client<typeof Greeter>, headers: HeadersInit) => {
    for await (const _ of c.chat(names("Ada", "Bob"), { headers }));
  },
};

// Every protocol and HTTP version, through the fast path (gRPC and Connect
// unary over HTTP/2) and through connect's handlers (the rest, and
// ENGINE=off).
const cases: {
  protocol: Protocol;
  httpVersion: HttpVersion;
  engine: boolean;
}[] = [
  { protocol: "grpc", httpVersion: "2", engine: true },
  { protocol: "grpc", httpVersion: "2", engine: false },
  { protocol: "grpc-web", httpVersion: "1.1", engine: true },
  { protocol: "grpc-web", httpVersion: "2", engine: true },
  { protocol: "connect", httpVersion: "1.1", engine: true },
  { protocol: "connect", httpVersion: "2", engine: true },
  { protocol: "connect", httpVersion: "2", engine: false },
];

for (const { protocol, httpVersion, engine } of cases) {
  const methods = Object.keys(rpcs).filter(
    // Full duplex needs HTTP/2.
    (m) => httpVersion === "2" || m !== "Chat",
  ) as (keyof typeof rpcs)[];
  test(`each RPC over ${protocol} on HTTP/${httpVersion}${engine ? "" : " with the fast path off"} exports one SERVER span, the child of the caller's span, with the RPC attributes, and logs its ids`, async (t) => {
    const { server, receiver, log } = await tracedServer(t, {}, { engine });
    const client = greeter(server, protocol, httpVersion);
    for (const [i, method] of methods.entries()) {
      const caller = parent();
      await rpcs[method](client, { traceparent: caller.traceparent });
      const span = await spanOf(receiver, caller);
      assert.equal(span.name, `Greeter/${method}`);
      assert.equal(span.kind, "SPAN_KIND_SERVER");
      assert.deepEqual(
        span.attributes,
        expectedAttributes(
          server,
          method,
          protocol,
          httpVersion,
          span.attributes["network.peer.port"],
        ),
      );
      const sockets = [...server.listener.sockets].map((s) => s.remotePort);
      assert.ok(
        sockets.includes(span.attributes["network.peer.port"] as number),
        `peer port ${span.attributes["network.peer.port"]} is one of the server's sockets ${sockets}`,
      );
      assert.deepEqual(span.status, { code: "STATUS_CODE_UNSET", message: "" });
      assert.deepEqual(span.events, [], "no message events");
      assert.ok(span.endTimeUnixNano >= span.startTimeUnixNano);
      assert.equal(span.scope, "connect-greeter");
      assert.equal(span.resource["service.name"], "connect-greeter");
      const line = await callLine(log, i + 1);
      assert.equal(line.procedure, `/Greeter/${method}`);
      assert.equal(line.trace_id, caller.traceId, "the log names the trace");
      assert.equal(line.span_id, span.spanId, "and the span");
      assert.equal(line.trace_flags, "01");
    }
    assert.equal(
      receiver.spans.length,
      methods.length,
      "one span per call, no more",
    );
    assert.deepEqual(receiver.errors, []);
    // Which path served: the fast path counts its calls.
    const fastCalls = server.engine.calls;
    if (!engine) assert.equal(fastCalls, 0);
    else if (httpVersion === "2" && protocol !== "grpc-web") {
      assert.ok(fastCalls > 0, "the fast path served some of them");
    }
  });
}

test("a call without a traceparent starts a trace of its own: a root span, whose ids the log line has", async (t) => {
  const { server, receiver, log } = await tracedServer(t);
  await greeter(server, "grpc", "2").sayHello({ name: "Ada" });
  const span = await receiver.nextSpan();
  assert.equal(span.parentSpanId, "", "no parent");
  assert.match(span.traceId, /^[0-9a-f]{32}$/);
  assert.notEqual(span.traceId, "0".repeat(32));
  const line = await callLine(log, 1);
  assert.equal(line.trace_id, span.traceId);
  assert.equal(line.span_id, span.spanId);
});

test("a failure the caller caused (INVALID_ARGUMENT) is in rpc.status_code only; the span is not an error", async (t) => {
  const { server, receiver } = await tracedServer(t);
  for (const [protocol, httpVersion, status] of [
    ["grpc", "2", "INVALID_ARGUMENT"],
    ["connect", "1.1", "invalid_argument"],
  ] as const) {
    const caller = parent();
    await assert.rejects(
      greeter(server, protocol, httpVersion).sayHello(
        { name: "" },
        { headers: { traceparent: caller.traceparent } },
      ),
      (e) => ConnectError.from(e).code === Code.InvalidArgument,
    );
    const span = await spanOf(receiver, caller);
    assert.equal(span.attributes["rpc.status_code"], status);
    assert.equal(span.attributes["error.type"], undefined);
    assert.equal(span.status.code, "STATUS_CODE_UNSET");
  }
});

test("a missed deadline ends the span with DEADLINE_EXCEEDED, an error of the server's", async (t) => {
  // Replies a minute apart: the deadline comes first.
  const { server, receiver } = await tracedServer(
    t,
    {},
    { streamIntervalMs: 60_000 },
  );
  for (const [protocol, httpVersion, status] of [
    ["grpc", "2", "DEADLINE_EXCEEDED"],
    ["connect", "1.1", "deadline_exceeded"],
  ] as const) {
    const caller = parent();
    await assert.rejects(
      rpcs.StreamHello(greeter(server, protocol, httpVersion), {
        traceparent: caller.traceparent,
        [protocol === "grpc" ? "grpc-timeout" : "connect-timeout-ms"]:
          protocol === "grpc" ? "200m" : "200",
      }),
      (e) => ConnectError.from(e).code === Code.DeadlineExceeded,
    );
    const span = await spanOf(receiver, caller);
    assert.equal(span.attributes["rpc.status_code"], status);
    assert.equal(span.attributes["error.type"], status);
    assert.equal(span.status.code, "STATUS_CODE_ERROR");
  }
});

test("a client that goes away ends the span with CANCELLED, not OK, and not an error of the server's", async (t) => {
  const { server, receiver } = await tracedServer(
    t,
    {},
    { streamIntervalMs: 60_000 },
  );
  for (const [protocol, httpVersion, status] of [
    ["grpc", "2", "CANCELLED"],
    ["grpc-web", "1.1", "CANCELLED"],
    ["connect", "2", "canceled"],
  ] as const) {
    const caller = parent();
    const abort = new AbortController();
    const stream = greeter(server, protocol, httpVersion).streamHello(
      { name: "Ada" },
      { headers: { traceparent: caller.traceparent }, signal: abort.signal },
    );
    await assert.rejects(async () => {
      for await (const _ of stream) abort.abort();
    });
    const span = await spanOf(receiver, caller);
    assert.equal(span.attributes["rpc.status_code"], status, protocol);
    assert.equal(span.attributes["error.type"], undefined);
    assert.equal(span.status.code, "STATUS_CODE_UNSET");
  }
});

test("a call that shutdown ends gets UNAVAILABLE, and its span is exported by the shutdown itself, not by a batch timer", async (t) => {
  // A batch timer of ten minutes: only the flush at shutdown can send it.
  const { server, receiver } = await tracedServer(
    t,
    { OTEL_BSP_SCHEDULE_DELAY: "600000" },
    { streamIntervalMs: 60_000 },
  );
  const caller = parent();
  const stream = greeter(server, "grpc", "2").streamHello(
    { name: "Ada" },
    { headers: { traceparent: caller.traceparent } },
  );
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  const ended = assert.rejects(
    it.next(),
    (e) => ConnectError.from(e).code === Code.Unavailable,
  );
  await server.shutdown(100);
  await ended;
  // The shutdown has resolved: the span must be there already.
  const span = receiver.spans.find((s) => s.traceId === caller.traceId);
  assert.ok(span, "exported by the time shutdown resolved");
  assert.equal(span.attributes["rpc.status_code"], "UNAVAILABLE");
  assert.equal(span.attributes["error.type"], "UNAVAILABLE");
  assert.deepEqual(span.status, {
    code: "STATUS_CODE_ERROR",
    message: "the server is shutting down",
  });
});

test("a collector that never answers holds shutdown up for the flush bound, no longer", async (t) => {
  const receiver = await OtlpReceiver.start(t, { hold: true });
  const { server } = await tracedServer(
    t,
    { OTEL_BSP_SCHEDULE_DELAY: "600000" },
    {},
    receiver,
  );
  await greeter(server, "grpc", "2").sayHello({ name: "Ada" });
  const started = performance.now();
  const shutdown = server.shutdown(0);
  await receiver.waitForRequests(1);
  await shutdown;
  const ms = performance.now() - started;
  assert.ok(ms >= flushTracesMs - 100, `waited for the export: ${ms} ms`);
  assert.ok(ms < flushTracesMs + 3000, `then gave up: ${ms} ms`);
});

test("with a parent that was not sampled, nothing is exported (parentbased), but the log line still has the caller's trace id", async (t) => {
  const { server, receiver, log } = await tracedServer(t);
  const client = greeter(server, "grpc", "2");
  const unsampled = parent(false);
  await client.sayHello(
    { name: "Ada" },
    { headers: { traceparent: unsampled.traceparent } },
  );
  const line = await callLine(log, 1);
  assert.equal(line.trace_id, unsampled.traceId);
  assert.equal(line.trace_flags, "00");
  assert.match(String(line.span_id), /^[0-9a-f]{16}$/);
  // A sampled call after it: once its span is in, the first one would be too.
  const sampled = parent();
  await client.sayHello(
    { name: "Bob" },
    { headers: { traceparent: sampled.traceparent } },
  );
  // The first span exported is the sampled call's: the other was not.
  await spanOf(receiver, sampled);
  assert.equal(receiver.spans.length, 1);
});

test("OTEL_TRACES_SAMPLER=parentbased_traceidratio with 0 exports no root call, and still a call whose caller was sampled", async (t) => {
  const { server, receiver, log } = await tracedServer(t, {
    OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
    OTEL_TRACES_SAMPLER_ARG: "0",
  });
  const client = greeter(server, "connect", "2");
  for (let i = 0; i < 5; i++) await client.sayHello({ name: "Ada" });
  const sampled = parent();
  await client.sayHello(
    { name: "Bob" },
    { headers: { traceparent: sampled.traceparent } },
  );
  await spanOf(receiver, sampled);
  assert.equal(receiver.spans.length, 1);
  assert.equal(
    log.calls().filter((l) => l.trace_flags === "00").length,
    5,
    "the root calls have ids, not sampled",
  );
});

test("OTLP/JSON (OTEL_EXPORTER_OTLP_PROTOCOL=http/json), gzip, headers and a traces endpoint of its own reach the collector as configured", async (t) => {
  const receiver = await OtlpReceiver.start(t);
  const { server } = await tracedServer(
    t,
    {
      // The base endpoint is wrong on purpose: the traces endpoint wins.
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
      OTEL_EXPORTER_OTLP_HEADERS: "x-api-key=a%20secret,x-team=greeters",
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-team=traces",
      OTEL_SERVICE_NAME: "greeter-eu",
      OTEL_RESOURCE_ATTRIBUTES:
        "deployment.environment.name=test,service.name=overridden",
    },
    {},
    receiver,
  );
  const caller = parent();
  await greeter(server, "grpc", "2").sayHello(
    { name: "Ada" },
    { headers: { traceparent: caller.traceparent } },
  );
  const span = await spanOf(receiver, caller);
  const [request] = receiver.requests;
  assert.ok(request);
  assert.equal(request.contentType, "application/json");
  assert.equal(request.contentEncoding, "gzip");
  assert.equal(request.headers["x-api-key"], "a secret");
  assert.equal(request.headers["x-team"], "traces");
  assert.equal(span.resource["service.name"], "greeter-eu");
  assert.equal(span.resource["deployment.environment.name"], "test");
  assert.equal(span.resource["telemetry.sdk.language"], "nodejs");
});

test("an export that fails is logged by the server, which keeps serving", async (t) => {
  // Nothing listens on the discard port of loopback.
  const { server, log } = await tracedServer(t, {
    OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9",
    OTEL_EXPORTER_OTLP_TIMEOUT: "200",
  });
  const client = greeter(server, "grpc", "2");
  await client.sayHello({ name: "Ada" });
  const line = await log.waitFor((l) => l.component === "opentelemetry");
  assert.ok(line.level >= 40, JSON.stringify(line));
  assert.equal((await client.sayHello({ name: "Bob" })).message, "Hello, Bob!");
});

test("tracing is off unless the environment asks for it, and then calls export nothing and log no ids", async (t) => {
  const receiver = await OtlpReceiver.start(t);
  const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
  assert.equal(loadConfig([], {}).tracing, undefined, "nothing set");
  for (const off of [
    { ...endpoint, OTEL_TRACES_EXPORTER: "none" },
    { ...endpoint, OTEL_SDK_DISABLED: "true" },
    { OTEL_TRACES_EXPORTER: "otlp", OTEL_SDK_DISABLED: "TRUE" },
  ]) {
    assert.equal(loadConfig([], off).tracing, undefined, JSON.stringify(off));
  }
  for (const on of [
    endpoint,
    { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces` },
    { OTEL_TRACES_EXPORTER: "otlp" },
  ]) {
    assert.ok(loadConfig([], on).tracing, JSON.stringify(on));
  }
  const log = new LogCapture();
  const server = await startTestServer(t, {
    tracing: loadConfig([], { ...endpoint, OTEL_TRACES_EXPORTER: "none" })
      .tracing,
    logLevel: "info",
    logDestination: log.destination,
  });
  await greeter(server, "grpc", "2").sayHello(
    { name: "Ada" },
    { headers: { traceparent: parent().traceparent } },
  );
  const [line] = log.calls();
  assert.ok(line);
  assert.equal("trace_id" in line, false, JSON.stringify(line));
  await server.shutdown(0);
  assert.equal(receiver.requests.length, 0);
});

test("the OTLP endpoint, protocol and traces variables are read as the specification says", () => {
  const tracing = (env: Record<string, string>) => {
    const config = loadConfig([], {
      OTEL_TRACES_EXPORTER: "otlp",
      ...env,
    }).tracing;
    assert.ok(config);
    return config;
  };
  assert.equal(tracing({}).url, "http://localhost:4318/v1/traces");
  assert.equal(tracing({}).protocol, "http/protobuf");
  assert.equal(tracing({}).serviceName, "connect-greeter");
  assert.equal(tracing({}).sampler, "parentbased_always_on");
  assert.equal(
    tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://collector:4318/otlp" }).url,
    "https://collector:4318/otlp/v1/traces",
  );
  assert.equal(
    tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }).url,
    "http://collector:4318/v1/traces",
  );
  assert.equal(
    tracing({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:4318/custom",
    }).url,
    "http://b:4318/custom",
  );
  assert.equal(
    tracing({
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/protobuf",
    }).protocol,
    "http/protobuf",
  );
  assert.deepEqual(
    tracing({
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.01",
    }).samplerRatio,
    0.01,
  );
  assert.deepEqual(
    tracing({ OTEL_EXPORTER_OTLP_HEADERS: "authorization=Basic dXNlcjpwdw==" })
      .headers,
    { authorization: "Basic dXNlcjpwdw==" },
  );
  assert.deepEqual(tracing({ OTEL_BSP_SCHEDULE_DELAY: "0" }).batch, {
    scheduledDelayMs: 0,
    exportTimeoutMs: 30000,
    maxQueueSize: 2048,
    maxExportBatchSize: 512,
  });
});

test("the server's --help lists every OpenTelemetry variable it reads", () => {
  const text = helpText();
  for (const s of Object.values(otelSettings)) {
    assert.ok(text.includes(`  ${s.env} `), `--help names ${s.env}`);
  }
});

test("a bad OpenTelemetry variable stops the start with one line naming it", () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ OTEL_SDK_DISABLED: "yes" }, /^OTEL_SDK_DISABLED must be true or false/],
    [
      { OTEL_TRACES_EXPORTER: "console" },
      /^OTEL_TRACES_EXPORTER must be otlp or none/,
    ],
    [{ OTEL_TRACES_EXPORTER: "otlp,zipkin" }, /^OTEL_TRACES_EXPORTER/],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" },
      /^OTEL_EXPORTER_OTLP_ENDPOINT must be an http/,
    ],
    [
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "ftp://x" },
      /^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http/,
    ],
    [
      { OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" },
      /^OTEL_EXPORTER_OTLP_PROTOCOL .*OTLP\/gRPC is not offered/,
    ],
    [
      { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/xml" },
      /must be one of http\/protobuf, http\/json/,
    ],
    [
      { OTEL_EXPORTER_OTLP_HEADERS: "novalue" },
      /^OTEL_EXPORTER_OTLP_HEADERS must be key=value/,
    ],
    [
      { OTEL_EXPORTER_OTLP_TIMEOUT: "10s" },
      /^OTEL_EXPORTER_OTLP_TIMEOUT must be a whole number/,
    ],
    [
      { OTEL_EXPORTER_OTLP_COMPRESSION: "br" },
      /^OTEL_EXPORTER_OTLP_COMPRESSION must be gzip or none/,
    ],
    [
      { OTEL_RESOURCE_ATTRIBUTES: "a=b,c" },
      /^OTEL_RESOURCE_ATTRIBUTES must be key=value/,
    ],
    [{ OTEL_RESOURCE_ATTRIBUTES: "a=b=c" }, /^OTEL_RESOURCE_ATTRIBUTES/],
    [
      { OTEL_RESOURCE_ATTRIBUTES: "a=%zz" },
      /^OTEL_RESOURCE_ATTRIBUTES: cannot percent-decode/,
    ],
    [
      { OTEL_TRACES_SAMPLER: "sometimes" },
      /^OTEL_TRACES_SAMPLER must be one of always_on/,
    ],
    [
      { OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "1.5" },
      /^OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1/,
    ],
    [
      { OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "1%" },
      /^OTEL_TRACES_SAMPLER_ARG/,
    ],
    [
      { OTEL_BSP_SCHEDULE_DELAY: "-1" },
      /^OTEL_BSP_SCHEDULE_DELAY must be a whole number/,
    ],
    [
      { OTEL_BSP_MAX_QUEUE_SIZE: "10", OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "20" },
      /^OTEL_BSP_MAX_EXPORT_BATCH_SIZE \(20\) must not exceed OTEL_BSP_MAX_QUEUE_SIZE \(10\)/,
    ],
  ];
  for (const [env, message] of bad) {
    // Checked with tracing off too: a typo fails now, not when tracing is turned on.
    assert.throws(
      () => loadConfig([], env),
      (e) =>
        e instanceof ConfigError &&
        message.test(e.message) &&
        !e.message.includes("\n"),
      JSON.stringify(env),
    );
  }
  // The sampler's argument is the ratio samplers' only.
  assert.doesNotThrow(() =>
    loadConfig([], {
      OTEL_TRACES_SAMPLER: "always_on",
      OTEL_TRACES_SAMPLER_ARG: "anything",
    }),
  );
});

// An independent client: grpc-js, the contract loaded at run time by proto-loader.
const GrpcJsGreeter = grpc.loadPackageDefinition(
  protoLoader.loadSync(
    fileURLToPath(new URL("../proto/helloworld.proto", import.meta.url)),
  ),
).Greeter as grpc.ServiceClientConstructor;

test("a grpc-js client's traceparent metadata makes the server span its child, and the log line has its trace id", async (t) => {
  const { server, receiver, log } = await tracedServer(t);
  const client = new GrpcJsGreeter(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  );
  t.after(() => client.close());
  const caller = parent();
  const metadata = new grpc.Metadata();
  metadata.set("traceparent", caller.traceparent);
  metadata.set("tracestate", "vendor=value");
  const reply = await new Promise<{ message: string }>((resolve, reject) =>
    client.sayHello({ name: "Ada" }, metadata, (e: unknown, r: unknown) =>
      e ? reject(e) : resolve(r as { message: string }),
    ),
  );
  assert.equal(reply.message, "Hello, Ada!");
  const span = await spanOf(receiver, caller);
  assert.equal(span.attributes["rpc.system.name"], "grpc");
  const line = await callLine(log, 1);
  assert.equal(line.trace_id, caller.traceId);
  assert.equal(line.span_id, span.spanId);
});

test("server.address and server.port are the authority the client asked for (HTTP/2 :authority, HTTP/1.1 Host), not the socket's", async (t) => {
  const { server, receiver } = await tracedServer(t);
  // grpc-js, over the fast path, naming another authority than the address it dials.
  const client = new GrpcJsGreeter(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
    { "grpc.default_authority": "greeter.example:8443" },
  );
  t.after(() => client.close());
  const viaGrpcJs = parent();
  const metadata = new grpc.Metadata();
  metadata.set("traceparent", viaGrpcJs.traceparent);
  await new Promise((resolve, reject) =>
    client.sayHello({ name: "Ada" }, metadata, (e: unknown, r: unknown) =>
      e ? reject(e) : resolve(r),
    ),
  );
  // Connect over HTTP/1.1, through connect's handlers, with a Host of its own.
  const viaHost = parent();
  const res = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port: server.port,
        method: "POST",
        path: "/Greeter/SayHello",
        headers: {
          host: "greeter.example",
          "content-type": "application/json",
          traceparent: viaHost.traceparent,
        },
      },
      (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      },
    );
    req.on("error", reject);
    req.end('{"name":"Ada"}');
  });
  assert.equal(res, 200);
  const a = await spanOf(receiver, viaGrpcJs);
  assert.equal(a.attributes["server.address"], "greeter.example");
  assert.equal(a.attributes["server.port"], 8443);
  const b = await spanOf(receiver, viaHost);
  assert.equal(b.attributes["server.address"], "greeter.example");
  assert.equal(b.attributes["server.port"], undefined, "no port in the Host");
});

test("the CLI's --traceparent reaches the server: the span is its child and the log line has its trace id", {
  timeout: 120_000,
}, async (t) => {
  const { server, receiver, log } = await tracedServer(t);
  for (const [i, protocol] of ["grpc", "connect"].entries()) {
    const caller = parent();
    const exit = await runClient(t, [
      "say-hello",
      "Ada",
      "--url",
      server.url,
      "--protocol",
      protocol,
      "--traceparent",
      caller.traceparent,
    ]);
    assert.equal(exit.code, 0, exit.stderr);
    await spanOf(receiver, caller);
    const line = await callLine(log, i + 1);
    assert.equal(line.trace_id, caller.traceId);
  }
});

test("the CLI refuses a malformed --traceparent, which the server would ignore without a word", () => {
  for (const bad of [
    "00-abc-def-01",
    `00-${"0".repeat(32)}-${"1".repeat(16)}-01`,
    `ff-${"a".repeat(32)}-${"1".repeat(16)}-01`,
  ]) {
    assert.throws(
      () => parseInvocation(["say-hello", "Ada", "--traceparent", bad]),
      (e) =>
        e instanceof UsageError &&
        /^--traceparent must be a W3C traceparent/.test(e.message),
      bad,
    );
  }
  const good = parent().traceparent;
  assert.equal(
    parseInvocation(["say-hello", "Ada", "--traceparent", good])?.traceparent,
    good,
  );
});

test("npm start with OTEL_EXPORTER_OTLP_ENDPOINT exports its spans, and on SIGTERM flushes them before it exits", {
  timeout: 60_000,
}, async (t) => {
  const receiver = await OtlpReceiver.start(t);
  const child = startChild(
    t,
    process.execPath,
    ["--import", "tsx", "src/main.ts"],
    {
      env: {
        ...process.env,
        PORT: "0",
        ADMIN_PORT: "0",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        // Only the flush at shutdown can send the span before this.
        OTEL_BSP_SCHEDULE_DELAY: "600000",
        OTEL_SERVICE_NAME: "greeter-under-test",
      },
    },
  );
  const url = await listeningOn(child);
  const caller = parent();
  const client = createClient(Greeter, testTransport("grpc", "2", url));
  await client.sayHello(
    { name: "Ada" },
    { headers: { traceparent: caller.traceparent } },
  );
  child.process.kill("SIGTERM");
  const exit = await child.exited;
  assert.equal(exit.code, 0, exit.stderr);
  const span = receiver.spans.find((s) => s.traceId === caller.traceId);
  assert.ok(span, "exported before the process exited");
  assert.equal(span.parentSpanId, caller.spanId);
  assert.equal(span.resource["service.name"], "greeter-under-test");
  assert.match(
    exit.stdout,
    /"msg":"tracing on: spans go to http:\/\/127\.0\.0\.1:\d+\/v1\/traces"/,
  );
});

test("with authentication on, a call's span names who called in user.id (a token's subject), and a refused call's span has its status and no user", async (t) => {
  const issuer = await TestIssuer.create("key-1");
  const { server, receiver } = await tracedServer(
    t,
    {},
    await authSettings(t, {
      methods: { "/Greeter/SayHello": { token: true } },
      jwks: jwksOf(issuer),
    }),
  );
  const client = greeter(server, "grpc", "2");
  const caller = parent();
  const token = await issuer.mint({ sub: "svc-billing" });
  await client.sayHello(
    { name: "Ada" },
    {
      headers: {
        traceparent: caller.traceparent,
        authorization: `Bearer ${token}`,
      },
    },
  );
  const span = await spanOf(receiver, caller);
  assert.equal(span.attributes["user.id"], "svc-billing");
  assert.ok(
    !Object.values(span.attributes).some((v) => String(v).includes(token)),
    "the token is in no attribute of the span",
  );
  const refusedCaller = parent();
  await assert.rejects(
    client.sayHello(
      { name: "Ada" },
      { headers: { traceparent: refusedCaller.traceparent } },
    ),
  );
  const refused = await spanOf(receiver, refusedCaller);
  assert.equal(refused.attributes["rpc.status_code"], "UNAUTHENTICATED");
  assert.equal(refused.attributes["user.id"], undefined);
});

test("a call whose deadline the deadline policy set says so in its span: the deadline, why, and the one the client asked for, on both paths", async (t) => {
  for (const engine of [true, false]) {
    const { server, receiver } = await tracedServer(
      t,
      {},
      { engine, maxDeadlineMs: 5000, defaultDeadlineMs: 3000 },
    );
    const client = greeter(server, "grpc", "2");
    await client.sayHello({ name: "Ada" }, { timeoutMs: 60_000 });
    await client.sayHello({ name: "Bob" });
    const shortened = await receiver.nextSpan();
    const given = await receiver.nextSpan();
    const deadlineOf = (span: ReceivedSpan) =>
      Object.fromEntries(
        Object.entries(span.attributes).filter(([k]) =>
          k.startsWith("connect_greeter."),
        ),
      );
    assert.deepEqual(deadlineOf(shortened), {
      "connect_greeter.deadline_ms": 5000,
      "connect_greeter.deadline_set_by": "max",
      "connect_greeter.requested_deadline_ms": 60_000,
    });
    assert.deepEqual(deadlineOf(given), {
      "connect_greeter.deadline_ms": 3000,
      "connect_greeter.deadline_set_by": "default",
    });
    assert.equal(server.engine.calls, engine ? 2 : 0);
  }
});
