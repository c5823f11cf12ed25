import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  brotliCompressSync,
  deflateSync,
  gzipSync,
  zstdCompressSync,
} from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createClient,
  type HandlerContext,
} from "@connectrpc/connect";
import {
  compressionGzip,
  connectNodeAdapter,
  createGrpcTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Greeter, HelloReplySchema } from "../gen/helloworld_pb.js";
import { loadConfig } from "../src/config.js";
import { Engine } from "../src/engine/engine.js";
import type { RunningServer, ServerOptions } from "../src/server.js";
import { createGreeter } from "../src/services/greeter.js";
import { claimStreams } from "../src/transport/claim-streams.js";
import { oddMessage, oddOnTheWire } from "./support/error-message.js";
import { LogCapture } from "./support/log-capture.js";
import {
  type Combination,
  combinations,
  grpcStatusFields,
  isConnectUnary,
  labelOf,
  ok,
  outcomeOf,
  type ParityCase,
  wireRequest,
} from "./support/parity.js";
import {
  envelope,
  grpcHeaders,
  helloRequest,
  type RawRequest,
  type RawResponse,
  rawH1,
  rawH2,
} from "./support/raw.js";
import { startTestServer } from "./support/server.js";
import {
  type HttpVersion,
  httpVersions,
  protocols,
  testTransport,
} from "./support/transports.js";
import { until } from "./support/wait.js";

test("ENGINE and --engine switch the fast path, on by default", () => {
  assert.equal(loadConfig([], {}).engine, true);
  assert.equal(loadConfig([], { ENGINE: "off" }).engine, false);
  assert.equal(loadConfig(["--engine", "on"], { ENGINE: "off" }).engine, true);
  assert.throws(() => loadConfig([], { ENGINE: "maybe" }), /on or off/);
});

test("the engine serves every protocol on both HTTP versions, every kind of call, and leaves bidi over HTTP/1.1 to connect", async (t) => {
  const server = await startTestServer(t);
  const count = async (call: () => Promise<unknown>) => {
    const before = server.engine.calls;
    await call();
    return server.engine.calls - before;
  };
  const names = async function* () {
    yield { name: "A" };
  };
  for (const protocol of protocols) {
    for (const version of httpVersions) {
      const client = createClient(
        Greeter,
        testTransport(protocol, version, server.url),
      );
      const at = `${protocol} over HTTP/${version}`;
      assert.equal(await count(() => client.sayHello({ name: "A" })), 1, at);
      assert.equal(
        await count(async () => {
          for await (const _ of client.streamHello({ name: "A" }));
        }),
        1,
        `server streams, ${at}`,
      );
      assert.equal(
        await count(() => client.collectGreetings(names())),
        1,
        `client streams, ${at}`,
      );
      const before = server.engine.calls;
      const chat = await (async () => {
        for await (const _ of client.chat(names()));
      })().then(
        () => "ok",
        (e: unknown) => Code[ConnectError.from(e).code],
      );
      // Full duplex needs HTTP/2: over HTTP/1.1 connect answers 505.
      assert.deepEqual(
        [chat, server.engine.calls - before],
        version === "2" ? ["ok", 1] : ["Unknown", 0],
        `bidi streams, ${at}`,
      );
    }
  }
  const json = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url, useBinaryFormat: false }),
  );
  assert.equal(await count(() => json.sayHello({ name: "A" })), 1, "+json");
});

test("with ENGINE off every call goes to connect and still works", async (t) => {
  const server = await startTestServer(t, { engine: false });
  const client = createClient(Greeter, testTransport("grpc", "2", server.url));
  assert.equal((await client.sayHello({ name: "A" })).message, "Hello, A!");
  assert.equal(server.engine.calls, 0);
});

/** A Greeter that sets response metadata and fails with details, through the routes seam. */
function detailedGreeter(router: ConnectRouter): void {
  const greeter = createGreeter({ streamIntervalMs: 0 });
  router.service(Greeter, {
    ...greeter,
    sayHello(req, ctx) {
      ctx.responseHeader.set(
        "x-echo",
        ctx.requestHeader.get("x-request-id") ?? "none",
      );
      ctx.responseTrailer.set("x-trailer", "t1");
      if (req.name === "fail") {
        throw new ConnectError(
          "no greeting for you",
          Code.FailedPrecondition,
          { "x-error-meta": "m1" },
          [{ desc: HelloReplySchema, value: { message: "detail" } }],
        );
      }
      if (req.name === "odd") throw new ConnectError(oddMessage, Code.Aborted);
      // A reply above compressMinBytes (1 KiB), so response compression applies.
      if (req.name === "big") return { message: "big ".repeat(500) };
      return { message: `Hello, ${req.name}!` };
    },
    async *streamHello(req, ctx) {
      ctx.responseHeader.set(
        "x-echo",
        ctx.requestHeader.get("x-request-id") ?? "none",
      );
      yield { message: `first ${req.name}` };
      if (req.name === "odd") throw new ConnectError(oddMessage, Code.Aborted);
      ctx.responseTrailer.set("x-trailer", "t2");
      if (req.name === "fail") {
        throw new ConnectError("stream broke", Code.DataLoss, undefined, [
          { desc: HelloReplySchema, value: { message: "detail" } },
        ]);
      }
    },
  });
}

async function startDetailed(
  t: TestContext,
  engine: boolean,
): Promise<RunningServer> {
  return startTestServer(t, { routes: detailedGreeter, engine });
}

// The parity tests: the same raw request, sent to a server with the engine
// on and to one with it off, must get the same answer, field for field:
// status, every header but the date, whether the headers ended the stream,
// the body's bytes and the trailers; and the same log line and metrics.
// Each case is described once (test/support/parity.ts) and goes on every
// combination where its protocol can say it: gRPC, gRPC-Web and Connect,
// protobuf and JSON, HTTP/2 and HTTP/1.1. Each also states the status and
// message it must get, so that a deviation both paths share shows.

/** The servers the cases run on, each with the engine on and off, made once for the file. */
const serverOptions = {
  /** The Greeter, with a read limit small enough to pass. */
  greeter: { maxMessageBytes: 64 },
  /** A Greeter whose handlers set headers and trailers and fail with details. */
  detailed: { routes: detailedGreeter, maxMessageBytes: 64 },
  /** The same, answering browsers from one other origin. */
  cors: {
    routes: detailedGreeter,
    maxMessageBytes: 64,
    corsOrigins: ["https://app.example"],
  },
  /** The same, compressing every reply a client accepts compressed, however small. */
  compressAll: {
    routes: detailedGreeter,
    maxMessageBytes: 64,
    compressMinBytes: 0,
  },
  /**
   * The Greeter under a deadline policy shorter than StreamHello's pause:
   * a stream's first reply at once, its second past the deadline.
   */
  deadlines: {
    maxDeadlineMs: 200,
    defaultDeadlineMs: 200,
    streamIntervalMs: 1000,
  },
} satisfies Record<string, ServerOptions>;
type ServerKind = keyof typeof serverOptions;

interface Observed {
  server: RunningServer;
  log: LogCapture;
}

const pairs = new Map<
  ServerKind,
  Promise<{ fast: Observed; slow: Observed }>
>();
/** Closes, after the file's last test, every server the cases started. */
const closing: (() => Promise<void>)[] = [];
after(() => Promise.all(closing.map((close) => close())));

/** The kind's two servers, engine on (`fast`) and off (`slow`), logging every call. */
function serversOf(kind: ServerKind) {
  let pair = pairs.get(kind);
  if (pair === undefined) {
    const start = async (engine: boolean): Promise<Observed> => {
      const log = new LogCapture();
      const server = await startTestServer(
        { after: (close) => closing.push(close) },
        {
          ...serverOptions[kind],
          engine,
          logDestination: log.destination,
          logLevel: "info",
        },
      );
      return { server, log };
    };
    pair = Promise.all([start(true), start(false)]).then(([fast, slow]) => ({
      fast,
      slow,
    }));
    pairs.set(kind, pair);
  }
  return pair;
}

/** A server's call counters (started, handled, messages) by series. */
async function callCounters(
  server: RunningServer,
): Promise<Map<string, number>> {
  const counters = new Map<string, number>();
  for (const metric of await server.metrics.registry.getMetricsAsJSON()) {
    if (!/^grpc_server_(handled|started|msg_\w+)_total$/.test(metric.name))
      continue;
    for (const v of metric.values) {
      counters.set(`${metric.name}${JSON.stringify(v.labels)}`, v.value);
    }
  }
  return counters;
}

/** What a request changed of the counters. */
function counted(before: Map<string, number>, after: Map<string, number>) {
  const change: Record<string, number> = {};
  for (const [series, value] of after) {
    const d = value - (before.get(series) ?? 0);
    if (d !== 0) change[series] = d;
  }
  return change;
}

/** A call's log line without what differs between any two calls (time, duration, peer, process). */
function comparable(line: Record<string, unknown>) {
  const { time, pid, hostname, durationMs, peer, ...rest } = line;
  return rest;
}

/**
 * Send `request` to the kind's server with the engine on and to the one with
 * it off, and require the same answer (status, every header but the date,
 * whether the headers ended the stream, body, trailers, and the header and
 * trailer lines in order), the same log lines and the same change of the
 * call counters; `served` calls taken by the engine. Returns the engine's
 * answer, its log lines and what it counted.
 */
async function assertSameAnswer(
  kind: ServerKind,
  http: HttpVersion,
  request: RawRequest,
  served: number,
) {
  const { fast, slow } = await serversOf(kind);
  const send = http === "2" ? rawH2 : rawH1;
  const calls = fast.server.engine.calls;
  const lines = [fast.log.lines.length, slow.log.lines.length];
  const [fastCounters, slowCounters] = await Promise.all([
    callCounters(fast.server),
    callCounters(slow.server),
  ]);
  const a = await send(fast.server.url, request);
  const b = await send(slow.server.url, request);
  // Every call the requests made is over (a bound, not a wait).
  for (const { server } of [fast, slow]) {
    await until("no call in flight", () => server.inflight.count === 0);
  }
  assert.equal(
    fast.server.engine.calls - calls,
    served,
    "calls the engine served",
  );
  assert.equal(slow.server.engine.calls, 0);
  const pick = (r: RawResponse) => ({
    status: r.status,
    headers: { ...r.headers, date: undefined },
    // The header lines in order: over HTTP/1.1 as sent (names in their
    // case), over HTTP/2 as Node's client lists them; the trailers alike.
    lines:
      r.rawHeaders?.filter(
        (_, i, raw) => !/^date$/i.test(raw[i - (i % 2)] ?? ""),
      ) ?? Object.keys(r.headers).filter((name) => name !== "date"),
    headersEndStream: r.headersEndStream,
    body: r.body.toString("hex"),
    trailers: r.trailers,
    trailerLines: r.rawTrailers ?? Object.keys(r.trailers),
  });
  assert.deepEqual(pick(a), pick(b));
  const logged = fast.log.lines.slice(lines[0]).map(comparable);
  assert.deepEqual(logged, slow.log.lines.slice(lines[1]).map(comparable));
  const changed = counted(fastCounters, await callCounters(fast.server));
  assert.deepEqual(
    changed,
    counted(slowCounters, await callCounters(slow.server)),
  );
  return { answer: a, logged, changed };
}

const big = "x".repeat(100);
const garbage = {};
/** The grpc_type label of each method (go-grpc-prometheus's names). */
const callTypes = {
  SayHello: "unary",
  StreamHello: "server_stream",
  CollectGreetings: "client_stream",
  Chat: "bidi_stream",
};

/** A case, where it runs, and what it must get. */
interface Case extends ParityCase {
  server?: ServerKind;
  /** Its status and message (a pattern where the message quotes a parser). */
  expect: Expectation | ((c: Combination) => Expectation);
}
type Expectation = [Code, string | RegExp];

/** A call to the server that allows https://app.example, from `origin` (undefined: no Origin). */
const fromOrigin = (
  origin: string | undefined,
): Pick<Case, "server" | "headers"> => ({
  server: "cors",
  headers: origin === undefined ? {} : { origin },
});

/** How big a HelloRequest with this name is, in the combination's encoding. */
const sizeOf = (name: string, c: Combination) =>
  c.json ? JSON.stringify({ name }).length : helloRequest(name).length;

/**
 * What a message that is not a HelloRequest gets: protobuf that does not
 * parse is INTERNAL (statuscodes.md: "Error parsing request proto"), JSON
 * that does not parse INVALID_ARGUMENT, as connect decides.
 */
const notAMessage = (c: Combination): Expectation =>
  c.json
    ? [Code.InvalidArgument, /^cannot decode message HelloRequest from JSON: /]
    : [Code.Internal, "parse binary: premature EOF"];

/**
 * Where gRPC's doc/statuscodes.md names the case, the code is the one it
 * gives; the rest are the service's own errors, or connect-es's choice where
 * gRPC names none. A truncated frame and a body that does not decompress
 * are connect-es's INVALID_ARGUMENT where gRPC's libraries say INTERNAL:
 * docs/engine.md says why both paths keep it.
 */
const cases: Record<string, Case> = {
  "a good call": { method: "SayHello", messages: ["Alice"], expect: [ok, ""] },
  "an empty name": {
    method: "SayHello",
    messages: [""],
    expect: [Code.InvalidArgument, "name is required"],
  },
  "a message that does not parse": {
    method: "SayHello",
    messages: [garbage],
    expect: notAMessage,
  },
  "a frame shorter than its header says": {
    method: "SayHello",
    tail: envelope(helloRequest("Alice")).subarray(0, 8),
    expect: [Code.InvalidArgument, "protocol error: incomplete envelope"],
  },
  "a frame cut inside its header": {
    method: "SayHello",
    tail: Buffer.from([0, 0, 0]),
    expect: [Code.InvalidArgument, "protocol error: incomplete envelope"],
  },
  "a frame flagged compressed without an encoding": {
    method: "SayHello",
    messages: [{ name: "Alice", compress: "flag" }],
    expect: [
      Code.Internal,
      "received compressed envelope, but do not know how to decompress",
    ],
  },
  // statuscodes.md: "Compression mechanism used by client not supported at server".
  "an unsupported encoding": {
    method: "SayHello",
    encoding: "snappy",
    messages: [{ name: "Alice", compress: "flag" }],
    expect: [
      Code.Unimplemented,
      'unknown compression "snappy": supported encodings are gzip,br,zstd,deflate',
    ],
  },
  "the identity encoding": {
    method: "SayHello",
    encoding: "identity",
    messages: ["Alice"],
    expect: [ok, ""],
  },
  // statuscodes.md: "Request cardinality violation".
  "two request messages": {
    method: "SayHello",
    messages: ["A", "B"],
    expect: [
      Code.Unimplemented,
      "protocol error: received extra input message for unary method",
    ],
  },
  // A Connect unary body that is empty is an empty message.
  "no request message": {
    method: "SayHello",
    expect: (c) =>
      isConnectUnary(c, "SayHello")
        ? c.json
          ? notAMessage(c)
          : [Code.InvalidArgument, "name is required"]
        : [
            Code.Unimplemented,
            "protocol error: missing input message for unary method",
          ],
  },
  // statuscodes.md: "Sent or received message was larger than configured limit".
  // A Connect unary body's size is unknown until read, without a content-length.
  "a message over maxMessageBytes": {
    method: "SayHello",
    messages: [big],
    expect: (c) => [
      Code.ResourceExhausted,
      isConnectUnary(c, "SayHello")
        ? "message size is larger than configured readMaxBytes 64"
        : `message size ${sizeOf(big, c)} is larger than configured readMaxBytes 64`,
    ],
  },
  "a message over maxMessageBytes, with a content-length": {
    method: "SayHello",
    messages: [big],
    contentLength: true,
    expect: (c) => [
      Code.ResourceExhausted,
      `message size ${sizeOf(big, c)} is larger than configured readMaxBytes 64`,
    ],
  },
  "an invalid timeout": {
    method: "SayHello",
    timeout: "soon",
    messages: ["Alice"],
    expect: (c) => [
      Code.InvalidArgument,
      `protocol error: invalid ${c.protocol === "connect" ? "connect" : "grpc"} timeout value: soon`,
    ],
  },
  // statuscodes.md: "Deadline expires before server returns status".
  "a timeout of 0": {
    method: "SayHello",
    timeout: 0,
    messages: ["Alice"],
    expect: [Code.DeadlineExceeded, "the operation timed out"],
  },
  "the content type's other spelling": {
    method: "SayHello",
    otherSpelling: true,
    messages: ["Alice"],
    expect: [ok, ""],
  },
  "a JSON content type with a charset, and a protocol version": {
    method: "SayHello",
    charset: true,
    headers: { "connect-protocol-version": "1" },
    messages: ["Alice"],
    expect: [ok, ""],
  },
  StreamHello: { method: "StreamHello", messages: ["Alice"], expect: [ok, ""] },
  "StreamHello with two request messages": {
    method: "StreamHello",
    messages: ["A", "B"],
    expect: [
      Code.Unimplemented,
      "protocol error: received extra input message for server-streaming method",
    ],
  },
  "StreamHello with no request message": {
    method: "StreamHello",
    expect: [
      Code.Unimplemented,
      "protocol error: missing input message for server-streaming method",
    ],
  },
  "StreamHello with an empty name": {
    method: "StreamHello",
    messages: [""],
    expect: [Code.InvalidArgument, "name is required"],
  },
  "StreamHello with a message that does not parse": {
    method: "StreamHello",
    messages: [garbage],
    expect: notAMessage,
  },
  CollectGreetings: {
    method: "CollectGreetings",
    messages: ["A", "B"],
    expect: [ok, ""],
  },
  "CollectGreetings with no names": {
    method: "CollectGreetings",
    expect: [Code.InvalidArgument, "at least one name is required"],
  },
  "CollectGreetings with an empty name after a good one": {
    method: "CollectGreetings",
    messages: ["A", ""],
    expect: [Code.InvalidArgument, "name is required"],
  },
  "CollectGreetings with more names than allowed": {
    method: "CollectGreetings",
    messages: Array.from({ length: 1001 }, () => "A"),
    expect: [
      Code.ResourceExhausted,
      "at most 1000 names can be greeted at once",
    ],
  },
  // connect splits what it reads of the body into messages before it hands
  // any of them on: a message over the limit fails the good ones that came
  // with it. One write, so that they come together.
  "CollectGreetings with a message over maxMessageBytes after a good one": {
    method: "CollectGreetings",
    messages: ["A", big],
    oneWrite: true,
    expect: (c) => [
      Code.ResourceExhausted,
      `message size ${sizeOf(big, c)} is larger than configured readMaxBytes 64`,
    ],
  },
  "CollectGreetings ending inside a frame": {
    method: "CollectGreetings",
    messages: ["A"],
    tail: Buffer.from([0, 0, 0, 0, 9, 1]),
    expect: [Code.InvalidArgument, "protocol error: incomplete envelope"],
  },
  "CollectGreetings whose client never finishes, cut by its deadline": {
    method: "CollectGreetings",
    messages: ["A"],
    timeout: 100,
    end: false,
    expect: [Code.DeadlineExceeded, "the operation timed out"],
  },
  Chat: { method: "Chat", messages: ["A", "B", "C"], expect: [ok, ""] },
  "Chat with no names": { method: "Chat", expect: [ok, ""] },
  "Chat with an empty name after a good one": {
    method: "Chat",
    messages: ["A", ""],
    expect: [Code.InvalidArgument, "name is required"],
  },
  "Chat with a message over maxMessageBytes": {
    method: "Chat",
    messages: [big],
    expect: (c) => [
      Code.ResourceExhausted,
      `message size ${sizeOf(big, c)} is larger than configured readMaxBytes 64`,
    ],
  },
  "Chat with a message over maxMessageBytes after a good one": {
    method: "Chat",
    messages: ["A", big],
    oneWrite: true,
    expect: (c) => [
      Code.ResourceExhausted,
      `message size ${sizeOf(big, c)} is larger than configured readMaxBytes 64`,
    ],
  },
  "Chat with gzip-compressed messages": {
    method: "Chat",
    encoding: "gzip",
    acceptEncoding: "gzip",
    messages: [
      { name: "A", compress: "gzip" },
      { name: "B", compress: "gzip" },
    ],
    expect: [ok, ""],
  },
  // Every encoding the server reads, and a message that inflates past the limit in each.
  ...Object.fromEntries(
    (["zstd", "deflate"] as const).flatMap((encoding) => [
      ...(["SayHello", "StreamHello"] as const).map((method) => [
        `${method} in ${encoding}, answered in ${encoding}`,
        {
          server: "compressAll",
          method,
          encoding,
          acceptEncoding: encoding,
          messages: [{ name: "Alice", compress: encoding }],
          expect: [ok, ""],
        } satisfies Case,
      ]),
      [
        `a ${encoding} message that inflates past maxMessageBytes`,
        {
          method: "SayHello",
          encoding,
          messages: [{ name: "z".repeat(200), compress: encoding }],
          expect: [
            Code.ResourceExhausted,
            "message is larger than configured readMaxBytes 64 after decompression",
          ],
        } satisfies Case,
      ],
      [
        `a ${encoding} request that is not ${encoding}`,
        {
          method: "SayHello",
          encoding,
          messages: [{ name: "Alice", compress: "flag" }],
          expect: [Code.InvalidArgument, "decompression failed"],
        } satisfies Case,
      ],
    ]),
  ),
  // grpc-message as gRPC's spec encodes it (checked on the wire below).
  "a call failing with a message the spec encodes in part": {
    server: "detailed",
    method: "SayHello",
    messages: ["odd"],
    expect: [Code.Aborted, oddMessage],
  },
  "a server stream failing with a message the spec encodes in part": {
    server: "compressAll",
    method: "StreamHello",
    acceptEncoding: "gzip",
    messages: ["odd"],
    expect: [Code.Aborted, oddMessage],
  },
  // Compression both ways.
  "a gzip request": {
    server: "detailed",
    method: "SayHello",
    encoding: "gzip",
    messages: [{ name: "Alice", compress: "gzip" }],
    expect: [ok, ""],
  },
  "a br request": {
    server: "detailed",
    method: "SayHello",
    encoding: "br",
    messages: [{ name: "Alice", compress: "br" }],
    expect: [ok, ""],
  },
  // statuscodes.md says INTERNAL for "Could not decompress, but compression
  // algorithm supported"; connect-es says INVALID_ARGUMENT (docs/engine.md).
  "a gzip request that is not gzip": {
    server: "detailed",
    method: "SayHello",
    encoding: "gzip",
    messages: [{ name: "Alice", compress: "flag" }],
    expect: [Code.InvalidArgument, "decompression failed"],
  },
  "a big reply to a client accepting gzip": {
    server: "detailed",
    method: "SayHello",
    acceptEncoding: "gzip",
    messages: ["big"],
    expect: [ok, ""],
  },
  "a big reply to a client accepting br first": {
    server: "detailed",
    method: "SayHello",
    acceptEncoding: "snappy, br, gzip",
    messages: ["big"],
    expect: [ok, ""],
  },
  "a big reply to a client accepting only encodings the server lacks": {
    server: "detailed",
    method: "SayHello",
    acceptEncoding: "snappy",
    messages: ["big"],
    expect: [ok, ""],
  },
  // Below compressMinBytes (1 KiB): not compressed.
  "a small reply to a client accepting gzip": {
    server: "detailed",
    method: "SayHello",
    acceptEncoding: "gzip",
    messages: ["small"],
    expect: [ok, ""],
  },
  "a server stream to a client accepting gzip": {
    server: "detailed",
    method: "StreamHello",
    acceptEncoding: "gzip",
    messages: ["big"],
    expect: [ok, ""],
  },
  "a small reply compressed from compressMinBytes 0": {
    server: "compressAll",
    method: "SayHello",
    acceptEncoding: "gzip",
    messages: ["small"],
    expect: [ok, ""],
  },
  "a server stream compressed from compressMinBytes 0": {
    server: "compressAll",
    method: "StreamHello",
    acceptEncoding: "br",
    messages: ["small"],
    expect: [ok, ""],
  },
  "an error compressed from compressMinBytes 0": {
    server: "compressAll",
    method: "SayHello",
    acceptEncoding: "gzip",
    messages: ["fail"],
    expect: [Code.FailedPrecondition, "no greeting for you"],
  },
  "a stream's error compressed from compressMinBytes 0": {
    server: "compressAll",
    method: "StreamHello",
    acceptEncoding: "gzip",
    messages: ["fail"],
    expect: [Code.DataLoss, "stream broke"],
  },
  // What handlers set, and their errors' details and metadata.
  "a call with request metadata, answered with the handler's headers and trailers":
    {
      server: "detailed",
      method: "SayHello",
      headers: { "x-request-id": "r1" },
      messages: ["A"],
      expect: [ok, ""],
    },
  "a server stream with request metadata, answered with the handler's headers and trailers":
    {
      server: "detailed",
      method: "StreamHello",
      headers: { "x-request-id": "r2" },
      messages: ["B"],
      expect: [ok, ""],
    },
  "a call failing with details and metadata": {
    server: "detailed",
    method: "SayHello",
    messages: ["fail"],
    expect: [Code.FailedPrecondition, "no greeting for you"],
  },
  "a server stream failing with details after a reply": {
    server: "detailed",
    method: "StreamHello",
    messages: ["fail"],
    expect: [Code.DataLoss, "stream broke"],
  },
  // Browsers: the engine adds the same CORS headers as the HTTP chain.
  "a call from an allowed origin": {
    ...fromOrigin("https://app.example"),
    method: "SayHello",
    messages: ["Alice"],
    expect: [ok, ""],
  },
  "a failing call from an allowed origin": {
    ...fromOrigin("https://app.example"),
    method: "SayHello",
    messages: ["fail"],
    expect: [Code.FailedPrecondition, "no greeting for you"],
  },
  "a server stream from an allowed origin": {
    ...fromOrigin("https://app.example"),
    method: "StreamHello",
    messages: ["Alice"],
    expect: [ok, ""],
  },
  "a call from an origin not allowed": {
    ...fromOrigin("https://other.example"),
    method: "SayHello",
    messages: ["Alice"],
    expect: [ok, ""],
  },
  "a call without an origin to a server that allows one": {
    ...fromOrigin(undefined),
    method: "SayHello",
    messages: ["Alice"],
    expect: [ok, ""],
  },
};

for (const [name, k] of Object.entries(cases)) {
  for (const c of combinations) {
    const request = wireRequest(k, c);
    if (request === undefined) continue;
    // Full duplex needs HTTP/2: over HTTP/1.1 connect answers 505, and the
    // engine leaves it to connect.
    const bidiOverHttp1 = k.method === "Chat" && c.http === "1.1";
    test(`${labelOf(c)}, ${name}: the engine answers exactly as connect`, async () => {
      const { answer, logged, changed } = await assertSameAnswer(
        k.server ?? "greeter",
        c.http,
        request,
        bidiOverHttp1 ? 0 : 1,
      );
      if (bidiOverHttp1) {
        assert.equal(answer.status, 505);
        assert.deepEqual(logged, []);
        return;
      }
      const [code, message] =
        typeof k.expect === "function" ? k.expect(c) : k.expect;
      const [gotCode, gotMessage] = outcomeOf(c, k.method, answer);
      assert.equal(Code[gotCode] ?? gotCode, Code[code] ?? code);
      if (typeof message === "string") assert.equal(gotMessage, message);
      else assert.match(gotMessage, message);
      // gRPC and gRPC-Web put it in grpc-message as the spec encodes it.
      if (message === oddMessage && c.protocol !== "connect") {
        assert.equal(grpcStatusFields(c, answer)["grpc-message"], oddOnTheWire);
      }
      // At most one line for the call (one that fails before its handler
      // runs has none, on either path), of its protocol and HTTP version.
      assert.ok(logged.length <= 1, `${logged.length} lines`);
      for (const line of logged) {
        assert.deepEqual(
          [line.procedure, line.protocol, line.httpVersion],
          [`/Greeter/${k.method}`, c.protocol, c.http === "2" ? "2.0" : "1.1"],
        );
      }
      // A call that succeeded was logged and counted.
      if (code === ok) {
        assert.equal(logged[0]?.code, "ok");
        const handled = Object.entries(changed).filter(([series]) =>
          series.startsWith("grpc_server_handled_total"),
        );
        assert.deepEqual(
          handled.map(([series, n]) => [
            JSON.parse(series.slice(series.indexOf("{"))),
            n,
          ]),
          [
            [
              {
                grpc_service: "Greeter",
                grpc_method: k.method,
                grpc_type: callTypes[k.method],
                protocol: c.protocol,
                grpc_code: "OK",
              },
              1,
            ],
          ],
        );
      }
    });
  }
}

// Connect GET: SayHello is side-effect free (NO_SIDE_EFFECTS), so connect's
// handler serves it by GET too; the engine must answer it the same.

/** The query of a GET of SayHello carrying `message` (a HelloRequest as bytes, or JSON text). */
function getQuery(
  params: Record<string, string | undefined>,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(params).filter(
      (e): e is [string, string] => e[1] !== undefined,
    ),
  );
}

/** A GET case: its query, headers, server, and what it must get (a status alone where connect answers without a body). */
interface GetCase {
  method?: "SayHello" | "StreamHello";
  query: Record<string, string | undefined>;
  headers?: Record<string, string>;
  server?: ServerKind;
  /** Whether the engine takes it (else connect answers, 405 or 415). */
  served?: boolean;
  expect: Expectation | number;
}

const proto64 = (name: string, compress?: (b: Uint8Array) => Buffer) =>
  Buffer.from(
    compress ? compress(helloRequest(name)) : helloRequest(name),
  ).toString("base64url");

const getCases: Record<string, GetCase> = {
  "JSON in the query": {
    query: { encoding: "json", message: '{"name":"Alice"}' },
    expect: [ok, ""],
  },
  "protobuf in URL-safe base64, with connect=v1": {
    query: {
      connect: "v1",
      encoding: "proto",
      base64: "1",
      message: proto64("Alice"),
    },
    expect: [ok, ""],
  },
  "protobuf in standard base64, padded": {
    query: {
      encoding: "proto",
      base64: "1",
      message: Buffer.from(helloRequest("Alice?>")).toString("base64"),
    },
    expect: [ok, ""],
  },
  ...Object.fromEntries(
    (
      [
        ["gzip", gzipSync],
        ["br", brotliCompressSync],
        ["zstd", zstdCompressSync],
        ["deflate", deflateSync],
      ] as const
    ).flatMap(([encoding, compress]) => [
      [
        `protobuf compressed with ${encoding}`,
        {
          query: {
            encoding: "proto",
            base64: "1",
            compression: encoding,
            message: proto64("Alice", compress),
          },
          expect: [ok, ""],
        } satisfies GetCase,
      ],
      [
        `a ${encoding} message that inflates past maxMessageBytes`,
        {
          query: {
            encoding: "proto",
            base64: "1",
            compression: encoding,
            message: proto64("z".repeat(200), compress),
          },
          expect: [
            Code.ResourceExhausted,
            "message is larger than configured readMaxBytes 64 after decompression",
          ],
        } satisfies GetCase,
      ],
    ]),
  ),
  "a big reply to a client accepting zstd": {
    server: "compressAll",
    query: { encoding: "json", message: '{"name":"big"}' },
    headers: { "accept-encoding": "zstd" },
    expect: [ok, ""],
  },
  "an empty name": {
    query: { encoding: "json", message: '{"name":""}' },
    expect: [Code.InvalidArgument, "name is required"],
  },
  "a message over maxMessageBytes": {
    query: { encoding: "json", message: JSON.stringify({ name: big }) },
    expect: [
      Code.ResourceExhausted,
      `message size ${JSON.stringify({ name: big }).length} is larger than configured readMaxBytes 64`,
    ],
  },
  "a compression the server lacks": {
    query: {
      encoding: "proto",
      base64: "1",
      compression: "snappy",
      message: proto64("Alice"),
    },
    expect: [
      Code.Unimplemented,
      'unknown compression "snappy": supported encodings are gzip,br,zstd,deflate',
    ],
  },
  "base64 that is not": {
    query: { encoding: "proto", base64: "1", message: "*!*" },
    expect: [Code.Internal, "internal error"],
  },
  "a timeout of 0": {
    query: { encoding: "json", message: '{"name":"Alice"}' },
    headers: { "connect-timeout-ms": "0" },
    expect: [Code.DeadlineExceeded, "the operation timed out"],
  },
  "a call from an allowed origin": {
    ...fromOrigin("https://app.example"),
    query: { encoding: "json", message: '{"name":"Alice"}' },
    expect: [ok, ""],
  },
  "no encoding": {
    query: { message: '{"name":"Alice"}' },
    served: false,
    expect: 415,
  },
  "a streaming method": {
    method: "StreamHello",
    query: { encoding: "json", message: '{"name":"Alice"}' },
    served: false,
    expect: 405,
  },
};

for (const [name, k] of Object.entries(getCases)) {
  for (const http of httpVersions) {
    test(`Connect GET over HTTP/${http}, ${name}: the engine answers exactly as connect`, async () => {
      const query = new URLSearchParams(getQuery(k.query)).toString();
      const { answer } = await assertSameAnswer(
        k.server ?? "greeter",
        http,
        {
          headers: {
            ":method": "GET",
            ":path": `/Greeter/${k.method ?? "SayHello"}?${query}`,
            ...k.headers,
          },
        },
        k.served === false ? 0 : 1,
      );
      if (typeof k.expect === "number") {
        assert.equal(answer.status, k.expect);
        return;
      }
      const c: Combination = {
        protocol: "connect",
        json: k.query.encoding === "json",
        http,
      };
      const [code, message] = k.expect;
      const [gotCode, gotMessage] = outcomeOf(c, "SayHello", answer);
      assert.equal(Code[gotCode] ?? gotCode, Code[code] ?? code);
      assert.equal(gotMessage, message);
      // The Greeter's greeting may be cached, by the handler's word; an
      // error may not. (The other servers' SayHello is a test's own.)
      if ((k.server ?? "greeter") === "greeter") {
        assert.equal(
          answer.headers["cache-control"],
          code === ok ? "max-age=86400" : undefined,
        );
      }
    });
  }
}

test("response headers and trailers a handler sets, and request metadata, reach a Connect gRPC client through the fast path", async (t) => {
  const server = await startDetailed(t, true);
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  let header: Headers | undefined;
  let trailer: Headers | undefined;
  const res = await client.sayHello(
    { name: "A" },
    {
      headers: { "x-request-id": "r1" },
      onHeader: (h) => {
        header = h;
      },
      onTrailer: (h) => {
        trailer = h;
      },
    },
  );
  assert.equal(res.message, "Hello, A!");
  assert.equal(header?.get("x-echo"), "r1");
  assert.equal(trailer?.get("x-trailer"), "t1");
  header = undefined as Headers | undefined;
  trailer = undefined as Headers | undefined;
  const replies: string[] = [];
  for await (const r of client.streamHello(
    { name: "B" },
    {
      headers: { "x-request-id": "r2" },
      onHeader: (h) => {
        header = h;
      },
      onTrailer: (h) => {
        trailer = h;
      },
    },
  ))
    replies.push(r.message);
  assert.deepEqual(replies, ["first B"]);
  assert.equal(header?.get("x-echo"), "r2");
  assert.equal(trailer?.get("x-trailer"), "t2");
  assert.equal(server.engine.calls, 2);
});

test("an error with details from the fast path reaches a Connect gRPC client with its details and metadata", async (t) => {
  const server = await startDetailed(t, true);
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  const unary = await client.sayHello({ name: "fail" }).then(
    () => assert.fail("no error"),
    (e: unknown) => ConnectError.from(e),
  );
  assert.equal(unary.code, Code.FailedPrecondition);
  assert.equal(unary.rawMessage, "no greeting for you");
  assert.deepEqual(
    unary.findDetails(HelloReplySchema).map((d) => d.message),
    ["detail"],
  );
  assert.equal(unary.metadata.get("x-error-meta"), "m1");
  assert.equal(unary.metadata.get("x-trailer"), "t1");
  const replies: string[] = [];
  const stream = await (async () => {
    for await (const r of client.streamHello({ name: "fail" }))
      replies.push(r.message);
  })().then(
    () => assert.fail("no error"),
    (e: unknown) => ConnectError.from(e),
  );
  assert.deepEqual(replies, ["first fail"]);
  assert.equal(stream.code, Code.DataLoss);
  assert.deepEqual(
    stream.findDetails(HelloReplySchema).map((d) => d.message),
    ["detail"],
  );
  assert.equal(server.engine.calls, 2);
});

const GrpcJsGreeter = grpc.loadPackageDefinition(
  protoLoader.loadSync(
    fileURLToPath(new URL("../proto/helloworld.proto", import.meta.url)),
    {
      keepCase: true,
      defaults: true,
    },
  ),
).Greeter as grpc.ServiceClientConstructor;

/** What grpc-js sees of a failing SayHello: code, message, and the metadata it got. */
async function grpcJsFailure(t: TestContext, server: RunningServer) {
  const client = new GrpcJsGreeter(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  );
  t.after(() => client.close());
  const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
    client.sayHello({ name: "fail" }, (e: grpc.ServiceError | null) =>
      e ? resolve(e) : reject(new Error("no error")),
    ),
  );
  return {
    code: err.code,
    details: err.details,
    detailsBin: (
      err.metadata.get("grpc-status-details-bin")[0] as Buffer | undefined
    )?.toString("hex"),
    meta: err.metadata.get("x-error-meta"),
  };
}

test("an error with details from the fast path reaches grpc-js exactly as connect's handler sends it", async (t) => {
  const fast = await startDetailed(t, true);
  const slow = await startDetailed(t, false);
  const a = await grpcJsFailure(t, fast);
  const b = await grpcJsFailure(t, slow);
  assert.equal(a.code, grpc.status.FAILED_PRECONDITION);
  assert.equal(a.details, "no greeting for you");
  assert.deepEqual(a.meta, ["m1"]);
  // google.rpc.Status carries the detail message's bytes.
  const detail = Buffer.from(
    toBinary(HelloReplySchema, create(HelloReplySchema, { message: "detail" })),
  ).toString("hex");
  assert.match(a.detailsBin ?? "", new RegExp(detail));
  assert.deepEqual(a, b);
  assert.equal(fast.engine.calls, 1);
});

test("a Connect gRPC client compressing both ways gets its greeting from the fast path", async (t) => {
  const server = await startDetailed(t, true);
  const client = createClient(
    Greeter,
    createGrpcTransport({
      baseUrl: server.url,
      sendCompression: compressionGzip,
      acceptCompression: [compressionGzip],
      compressMinBytes: 0,
    }),
  );
  let encoding: string | null = null;
  const res = await client.sayHello(
    { name: "big" },
    {
      onHeader: (h) => {
        encoding = h.get("grpc-encoding");
      },
    },
  );
  assert.equal(res.message, "big ".repeat(500));
  assert.equal(encoding, "gzip");
  assert.equal(server.engine.calls, 1);
});

test("a client that cancels a long server stream stops the fast-path handler", async (t) => {
  const size = 16 * 1024;
  const total = 2000;
  let yielded = 0;
  const server = await startTestServer(t, {
    routes: (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        async *streamHello() {
          for (; yielded < total; ) {
            yielded++;
            yield { message: "x".repeat(size) };
          }
        },
      }),
  });
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  let received = 0;
  const cancel = new AbortController();
  await assert.rejects(
    async () => {
      for await (const _ of client.streamHello(
        { name: "slow" },
        { signal: cancel.signal },
      )) {
        received++;
        // The client goes away: the handler must stop too.
        if (received === 200) cancel.abort();
      }
    },
    (e: unknown) => ConnectError.from(e).code === Code.Canceled,
  );
  await server.inflight.whenIdle();
  assert.equal(server.engine.calls, 1);
  assert.ok(yielded < total, `the handler produced all ${yielded} replies`);
});

test("a request gate in the shared adapter options rejects fast-path calls as connect does", async (t) => {
  const answers = [];
  for (const enabled of [true, false]) {
    const options = {
      requestGate(ctx: HandlerContext) {
        if (ctx.requestHeader.get("x-allowed") !== "yes") {
          throw new ConnectError("not allowed", Code.PermissionDenied);
        }
      },
    };
    const engine = new Engine({ ...options, enabled });
    const server = http2.createServer(
      connectNodeAdapter({
        ...options,
        routes: engine.record((router) =>
          router.service(Greeter, createGreeter({ streamIntervalMs: 0 })),
        ),
      }),
    );
    claimStreams(server, engine.claimStream);
    await new Promise<void>((resolve) =>
      server.listen(0, "127.0.0.1", resolve),
    );
    t.after(() => server.close());
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const call = (allowed: string) =>
      rawH2(url, {
        headers: {
          ":path": "/Greeter/SayHello",
          ...grpcHeaders,
          "x-allowed": allowed,
        },
        body: [envelope(helloRequest("Alice"))],
      });
    const denied = await call("no");
    const allowed = await call("yes");
    answers.push({
      served: engine.calls,
      denied: [
        denied.status,
        denied.trailers["grpc-status"],
        denied.trailers["grpc-message"],
        denied.body.length,
      ],
      allowed: [
        allowed.status,
        allowed.trailers["grpc-status"],
        allowed.body.toString("hex"),
      ],
    });
  }
  const [fast, slow] = answers;
  assert.equal(fast?.served, 2);
  assert.deepEqual(fast?.denied, [
    200,
    String(Code.PermissionDenied),
    "not allowed",
    0,
  ]);
  assert.deepEqual({ ...fast, served: 0 }, slow);
});

test("under the deadline policy, a server stream whose deadline it shortened (gRPC) or set (Connect) ends DEADLINE_EXCEEDED after its first reply, byte for byte the same from the engine as from connect's handlers", async () => {
  const { answer: grpc } = await assertSameAnswer(
    "deadlines",
    "2",
    {
      headers: {
        ":path": "/Greeter/StreamHello",
        ...grpcHeaders,
        "grpc-timeout": "10S",
      },
      body: [envelope(helloRequest("Ada"))],
    },
    1,
  );
  assert.deepEqual(grpcStatusOf(grpc), [
    String(Code.DeadlineExceeded),
    "the operation timed out",
  ]);
  assert.match(grpc.body.toString("latin1"), /Hello Ada, message 0$/);
  const { answer: connect } = await assertSameAnswer(
    "deadlines",
    "2",
    {
      headers: {
        ":path": "/Greeter/StreamHello",
        "content-type": "application/connect+proto",
      },
      body: [envelope(helloRequest("Ada"))],
    },
    1,
  );
  assert.equal(connect.status, 200);
  assert.match(
    connect.body.toString("latin1"),
    /Hello Ada, message 0.*"code":"deadline_exceeded","message":"the operation timed out"/s,
  );
});

/** A gRPC answer's status and message (grpc-message as sent, percent-decoded). */
function grpcStatusOf(res: RawResponse): [string, string] {
  const fields = grpcStatusFields(
    { protocol: "grpc", json: false, http: "2" },
    res,
  );
  return [
    String(fields["grpc-status"]),
    decodeURIComponent(String(fields["grpc-message"] ?? "")),
  ];
}

test("a call refused by load shedding gets the same answer from the fast path as from connect's handlers, over gRPC and Connect", async (t) => {
  const answers = [];
  for (const engine of [true, false]) {
    const server = await startTestServer(t, { shedCallsInFlight: 1, engine });
    const holder = http2.connect(server.url);
    holder.on("error", () => {});
    t.after(() => holder.destroy());
    holder.request({
      ":method": "POST",
      ":path": "/Greeter/Chat",
      ...grpcHeaders,
    });
    await until("the Chat runs", () => server.inflight.count === 1);
    const grpc = await rawH2(server.url, {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest("Alice"))],
    });
    const connect = await rawH2(server.url, {
      headers: {
        ":path": "/Greeter/SayHello",
        "content-type": "application/proto",
      },
      body: [helloRequest("Alice")],
    });
    const pick = (r: RawResponse) => ({
      status: r.status,
      headers: { ...r.headers, date: undefined },
      headersEndStream: r.headersEndStream,
      body: r.body.toString(),
      trailers: r.trailers,
    });
    answers.push({
      grpc: pick(grpc),
      grpcStatus: grpcStatusOf(grpc),
      connect: pick(connect),
    });
    assert.equal(server.engine.calls, engine ? 3 : 0);
  }
  const [fast, slow] = answers;
  assert.deepEqual(fast, slow);
  assert.deepEqual(fast?.grpcStatus, [
    String(Code.Unavailable),
    "the server is overloaded: too many calls in flight",
  ]);
  assert.equal(fast?.connect.status, 503);
  assert.deepEqual(JSON.parse(fast?.connect.body ?? ""), {
    code: "unavailable",
    message: "the server is overloaded: too many calls in flight",
  });
});
