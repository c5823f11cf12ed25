import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, gzipSync } from "node:zlib";
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
import { LogCapture } from "./support/log-capture.js";
import {
  envelope,
  helloRequest,
  type RawH2Options,
  type RawResponse,
  rawH2,
} from "./support/raw.js";
import { startTestServer } from "./support/server.js";
import {
  httpVersions,
  protocols,
  testTransport,
} from "./support/transports.js";
import { until } from "./support/wait.js";

const grpcHeaders = { "content-type": "application/grpc", te: "trailers" };

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

// Raw requests whose answers must be the same, field for field, from the fast
// path and from connect's gRPC handler.
const big = "x".repeat(100);
const rawCases: [string, RawH2Options][] = [
  [
    "a good call",
    {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest("Alice"))],
    },
  ],
  [
    "an empty name",
    {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest(""))],
    },
  ],
  [
    "bytes that are not protobuf",
    {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(Buffer.from([0xff, 0xff, 0xff, 0xff]))],
    },
  ],
  [
    "a frame shorter than its header says",
    {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest("Alice")).subarray(0, 8)],
    },
  ],
  [
    "a frame cut inside its header",
    {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [Buffer.from([0, 0, 0])],
    },
  ],
  [
    "a compressed frame without grpc-encoding",
    {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest("Alice"), 1)],
    },
  ],
  [
    "an unsupported grpc-encoding",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-encoding": "snappy",
      },
      body: [envelope(helloRequest("Alice"), 1)],
    },
  ],
  [
    "grpc-encoding identity",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-encoding": "identity",
      },
      body: [envelope(helloRequest("Alice"))],
    },
  ],
  [
    "two request messages",
    {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest("A")), envelope(helloRequest("B"))],
    },
  ],
  [
    "no request message",
    { headers: { ":path": "/Greeter/SayHello", ...grpcHeaders } },
  ],
  [
    "a message over maxMessageBytes",
    {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest(big))],
    },
  ],
  [
    "an invalid grpc-timeout",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-timeout": "soon",
      },
      body: [envelope(helloRequest("Alice"))],
    },
  ],
  [
    "a grpc-timeout of 0",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-timeout": "0m",
      },
      body: [envelope(helloRequest("Alice"))],
    },
  ],
  [
    "application/grpc+proto",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "content-type": "application/grpc+proto",
      },
      body: [envelope(helloRequest("Alice"))],
    },
  ],
  [
    "StreamHello",
    {
      headers: { ":path": "/Greeter/StreamHello", ...grpcHeaders },
      body: [envelope(helloRequest("Alice"))],
    },
  ],
  [
    "StreamHello with two request messages",
    {
      headers: { ":path": "/Greeter/StreamHello", ...grpcHeaders },
      body: [envelope(helloRequest("A")), envelope(helloRequest("B"))],
    },
  ],
  [
    "StreamHello with no request message",
    { headers: { ":path": "/Greeter/StreamHello", ...grpcHeaders } },
  ],
  [
    "StreamHello with an empty name",
    {
      headers: { ":path": "/Greeter/StreamHello", ...grpcHeaders },
      body: [envelope(helloRequest(""))],
    },
  ],
  [
    "StreamHello with bytes that are not protobuf",
    {
      headers: { ":path": "/Greeter/StreamHello", ...grpcHeaders },
      body: [envelope(Buffer.from([0xff, 0xff]))],
    },
  ],
  [
    "CollectGreetings",
    {
      headers: { ":path": "/Greeter/CollectGreetings", ...grpcHeaders },
      body: [envelope(helloRequest("A")), envelope(helloRequest("B"))],
    },
  ],
  [
    "CollectGreetings with no names",
    { headers: { ":path": "/Greeter/CollectGreetings", ...grpcHeaders } },
  ],
  [
    "CollectGreetings with an empty name after a good one",
    {
      headers: { ":path": "/Greeter/CollectGreetings", ...grpcHeaders },
      body: [envelope(helloRequest("A")), envelope(helloRequest(""))],
    },
  ],
  [
    "CollectGreetings with more names than allowed",
    {
      headers: { ":path": "/Greeter/CollectGreetings", ...grpcHeaders },
      body: [
        Buffer.concat(
          Array.from({ length: 1001 }, () => envelope(helloRequest("A"))),
        ),
      ],
    },
  ],
  [
    "CollectGreetings ending inside a frame",
    {
      headers: { ":path": "/Greeter/CollectGreetings", ...grpcHeaders },
      body: [envelope(helloRequest("A")), Buffer.from([0, 0, 0, 0, 9, 1])],
    },
  ],
  [
    "Chat",
    {
      headers: { ":path": "/Greeter/Chat", ...grpcHeaders },
      body: [
        envelope(helloRequest("A")),
        envelope(helloRequest("B")),
        envelope(helloRequest("C")),
      ],
    },
  ],
  [
    "Chat with no names",
    { headers: { ":path": "/Greeter/Chat", ...grpcHeaders } },
  ],
  [
    "Chat with an empty name after a good one",
    {
      headers: { ":path": "/Greeter/Chat", ...grpcHeaders },
      body: [envelope(helloRequest("A")), envelope(helloRequest(""))],
    },
  ],
  [
    // Only one message: after a good one, connect may or may not send its
    // reply before the error, as its pipeline happens to interleave.
    "Chat with a message over maxMessageBytes",
    {
      headers: { ":path": "/Greeter/Chat", ...grpcHeaders },
      body: [envelope(helloRequest(big))],
    },
  ],
  [
    "Chat with gzip-compressed messages",
    {
      headers: {
        ":path": "/Greeter/Chat",
        ...grpcHeaders,
        "grpc-encoding": "gzip",
        "grpc-accept-encoding": "gzip",
      },
      body: [
        envelope(gzipSync(helloRequest("A")), 1),
        envelope(gzipSync(helloRequest("B")), 1),
      ],
    },
  ],
];

/**
 * Send `request` to a server with the fast path on and to one with it off,
 * both started with `options`, and require the same answer: status, every
 * header but the date, whether the headers ended the stream, body and
 * trailers. Returns the fast path's answer.
 */
async function assertSameAnswer(
  t: TestContext,
  request: RawH2Options,
  options: ServerOptions,
): Promise<RawResponse> {
  const fast = await startTestServer(t, { ...options, engine: true });
  const slow = await startTestServer(t, { ...options, engine: false });
  const a = await rawH2(fast.url, request);
  const b = await rawH2(slow.url, request);
  assert.equal(fast.engine.calls, 1, "the fast path served it");
  assert.equal(slow.engine.calls, 0);
  const pick = (r: RawResponse) => ({
    status: r.status,
    headers: { ...r.headers, date: undefined },
    headersEndStream: r.headersEndStream,
    body: r.body.toString("hex"),
    trailers: r.trailers,
  });
  assert.deepEqual(pick(a), pick(b));
  await fast.inflight.whenIdle();
  return a;
}

/** gRPC's status 0, which connect's Code enum leaves out. */
const ok = 0 as Code;

/** The gRPC status and message of a raw answer (grpc-message is percent-encoded). */
function grpcStatusOf(res: RawResponse): [string, string] {
  const trailers = res.headersEndStream ? res.headers : res.trailers;
  return [
    String(trailers["grpc-status"]),
    decodeURIComponent(String(trailers["grpc-message"] ?? "")),
  ];
}

/**
 * What each case must answer, whichever path serves it: so that a deviation
 * both paths share cannot hide behind their agreement. Where gRPC's
 * doc/statuscodes.md names the case, the code is the one it gives (the
 * cases it names are marked); the rest are the service's own errors, or
 * connect-es's choice where gRPC names none. A truncated frame and a body
 * that does not decompress are connect-es's INVALID_ARGUMENT where gRPC's
 * libraries say INTERNAL: docs/fast-path.md says why both paths keep it.
 */
const rawExpected: Record<string, [Code, string]> = {
  "a good call": [ok, ""],
  "an empty name": [Code.InvalidArgument, "name is required"],
  // statuscodes.md: "Error parsing request proto".
  "bytes that are not protobuf": [Code.Internal, "parse binary: premature EOF"],
  "a frame shorter than its header says": [
    Code.InvalidArgument,
    "protocol error: incomplete envelope",
  ],
  "a frame cut inside its header": [
    Code.InvalidArgument,
    "protocol error: incomplete envelope",
  ],
  "a compressed frame without grpc-encoding": [
    Code.Internal,
    "received compressed envelope, but do not know how to decompress",
  ],
  // statuscodes.md: "Compression mechanism used by client not supported at server".
  "an unsupported grpc-encoding": [
    Code.Unimplemented,
    'unknown compression "snappy": supported encodings are gzip,br',
  ],
  "grpc-encoding identity": [ok, ""],
  // statuscodes.md: "Request cardinality violation".
  "two request messages": [
    Code.Unimplemented,
    "protocol error: received extra input message for unary method",
  ],
  "no request message": [
    Code.Unimplemented,
    "protocol error: missing input message for unary method",
  ],
  // statuscodes.md: "Sent or received message was larger than configured limit".
  "a message over maxMessageBytes": [
    Code.ResourceExhausted,
    "message size 102 is larger than configured readMaxBytes 64",
  ],
  "an invalid grpc-timeout": [
    Code.InvalidArgument,
    "protocol error: invalid grpc timeout value: soon",
  ],
  // statuscodes.md: "Deadline expires before server returns status".
  "a grpc-timeout of 0": [Code.DeadlineExceeded, "the operation timed out"],
  "application/grpc+proto": [ok, ""],
  StreamHello: [ok, ""],
  "StreamHello with two request messages": [
    Code.Unimplemented,
    "protocol error: received extra input message for server-streaming method",
  ],
  "StreamHello with no request message": [
    Code.Unimplemented,
    "protocol error: missing input message for server-streaming method",
  ],
  "StreamHello with an empty name": [Code.InvalidArgument, "name is required"],
  "StreamHello with bytes that are not protobuf": [
    Code.Internal,
    "parse binary: premature EOF",
  ],
  CollectGreetings: [ok, ""],
  "CollectGreetings with no names": [
    Code.InvalidArgument,
    "at least one name is required",
  ],
  "CollectGreetings with an empty name after a good one": [
    Code.InvalidArgument,
    "name is required",
  ],
  "CollectGreetings with more names than allowed": [
    Code.ResourceExhausted,
    "at most 1000 names can be greeted at once",
  ],
  "CollectGreetings ending inside a frame": [
    Code.InvalidArgument,
    "protocol error: incomplete envelope",
  ],
  Chat: [ok, ""],
  "Chat with no names": [ok, ""],
  "Chat with an empty name after a good one": [
    Code.InvalidArgument,
    "name is required",
  ],
  "Chat with a message over maxMessageBytes": [
    Code.ResourceExhausted,
    "message size 102 is larger than configured readMaxBytes 64",
  ],
  "Chat with gzip-compressed messages": [ok, ""],
};

test("every raw gRPC case states the status it must answer", () => {
  assert.deepEqual(
    Object.keys(rawExpected).sort(),
    rawCases.map(([name]) => name).sort(),
  );
});

for (const [name, request] of rawCases) {
  test(`${name}: the fast path answers exactly as connect's gRPC handler`, async (t) => {
    const a = await assertSameAnswer(t, request, { maxMessageBytes: 64 });
    const [code, message] = rawExpected[name] ?? [];
    assert.deepEqual(grpcStatusOf(a), [String(code), message]);
  });
}

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

// Compression through the fast path, compared with connect's answer byte for byte.
const compressionCases: [string, RawH2Options][] = [
  [
    "a gzip request",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-encoding": "gzip",
      },
      body: [envelope(gzipSync(helloRequest("Alice")), 1)],
    },
  ],
  [
    "a br request",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-encoding": "br",
      },
      body: [envelope(brotliCompressSync(helloRequest("Alice")), 1)],
    },
  ],
  [
    "a gzip request that is not gzip",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-encoding": "gzip",
      },
      body: [envelope(helloRequest("Alice"), 1)],
    },
  ],
  [
    "a big reply to a client accepting gzip",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-accept-encoding": "gzip",
      },
      body: [envelope(helloRequest("big"))],
    },
  ],
  [
    "a big reply to a client accepting br first",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-accept-encoding": "snappy, br, gzip",
      },
      body: [envelope(helloRequest("big"))],
    },
  ],
  [
    // No compression either way: the handler's own headers go out alone.
    "a reply with the handler's metadata to a client that compresses nothing",
    {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest("plain"))],
    },
  ],
  [
    "a small reply to a client accepting gzip",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-accept-encoding": "gzip",
      },
      body: [envelope(helloRequest("small"))],
    },
  ],
];

for (const [name, request] of compressionCases) {
  test(`${name}: the fast path answers exactly as connect's gRPC handler`, async (t) => {
    const a = await assertSameAnswer(t, request, { routes: detailedGreeter });
    // statuscodes.md says INTERNAL for "Could not decompress, but compression
    // algorithm supported"; connect-es says INVALID_ARGUMENT (docs/fast-path.md).
    assert.deepEqual(
      grpcStatusOf(a),
      name === "a gzip request that is not gzip"
        ? [String(Code.InvalidArgument), "decompression failed"]
        : [String(ok), ""],
    );
  });
}

// Raw Connect unary requests whose answers must be the same, header for
// header, from the fast path and from connect's Connect handler.
const connectProto = { "content-type": "application/proto" };
const connectJson = { "content-type": "application/json" };
const jsonBody = (text: string) => [Buffer.from(text)];
const connectCases: [string, RawH2Options][] = [
  [
    "a good Connect call",
    {
      headers: { ":path": "/Greeter/SayHello", ...connectProto },
      body: [helloRequest("Alice")],
    },
  ],
  [
    "a good Connect call in JSON",
    {
      headers: { ":path": "/Greeter/SayHello", ...connectJson },
      body: jsonBody('{"name":"Alice"}'),
    },
  ],
  [
    "a Connect call in JSON with a charset and a protocol version",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        "content-type": "application/json; charset=utf-8",
        "connect-protocol-version": "1",
      },
      body: jsonBody('{"name":"Alice"}'),
    },
  ],
  [
    "a Connect call with request metadata, answered with headers and trailers",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...connectProto,
        "x-request-id": "r1",
      },
      body: [helloRequest("A")],
    },
  ],
  [
    "a Connect call failing with details and metadata",
    {
      headers: { ":path": "/Greeter/SayHello", ...connectJson },
      body: jsonBody('{"name":"fail"}'),
    },
  ],
  [
    "a Connect call with an empty name",
    {
      headers: { ":path": "/Greeter/SayHello", ...connectProto },
      body: [helloRequest("")],
    },
  ],
  [
    "a Connect call with bytes that are not protobuf",
    {
      headers: { ":path": "/Greeter/SayHello", ...connectProto },
      body: [Buffer.from([0xff, 0xff, 0xff, 0xff])],
    },
  ],
  [
    "a Connect call with bytes that are not JSON",
    {
      headers: { ":path": "/Greeter/SayHello", ...connectJson },
      body: jsonBody("{name:"),
    },
  ],
  [
    "a Connect call with no body",
    { headers: { ":path": "/Greeter/SayHello", ...connectProto } },
  ],
  [
    "a Connect body over maxMessageBytes, with its content-length",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...connectProto,
        "content-length": String(helloRequest(big).length),
      },
      body: [helloRequest(big)],
    },
  ],
  [
    "a Connect body over maxMessageBytes, without a content-length",
    {
      headers: { ":path": "/Greeter/SayHello", ...connectProto },
      body: [helloRequest(big)],
    },
  ],
  [
    "a gzip-compressed Connect request",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...connectProto,
        "content-encoding": "gzip",
      },
      body: [gzipSync(helloRequest("Alice"))],
    },
  ],
  [
    "a Connect request in an unsupported content-encoding",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...connectProto,
        "content-encoding": "snappy",
      },
      body: [helloRequest("Alice")],
    },
  ],
  [
    "a big Connect reply to a client accepting br",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...connectProto,
        "accept-encoding": "br, gzip",
      },
      body: [helloRequest("big")],
    },
  ],
  [
    "an invalid connect-timeout-ms",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...connectProto,
        "connect-timeout-ms": "soon",
      },
      body: [helloRequest("Alice")],
    },
  ],
  [
    "a connect-timeout-ms of 0",
    {
      headers: {
        ":path": "/Greeter/SayHello",
        ...connectProto,
        "connect-timeout-ms": "0",
      },
      body: [helloRequest("Alice")],
    },
  ],
];

/**
 * The HTTP status each Connect case must answer, and for an error its code and
 * message: the Connect protocol maps each code to one HTTP status
 * (connectrpc.com/docs/protocol, "Error codes").
 */
const connectExpected: Record<
  string,
  [number] | [number, string, string | RegExp]
> = {
  "a good Connect call": [200],
  "a good Connect call in JSON": [200],
  "a Connect call in JSON with a charset and a protocol version": [200],
  "a Connect call with request metadata, answered with headers and trailers": [
    200,
  ],
  "a Connect call failing with details and metadata": [
    400,
    "failed_precondition",
    "no greeting for you",
  ],
  // detailedGreeter answers an empty name; the Greeter's own check is tested elsewhere.
  "a Connect call with an empty name": [200],
  "a Connect call with bytes that are not protobuf": [
    500,
    "internal",
    "parse binary: premature EOF",
  ],
  "a Connect call with bytes that are not JSON": [
    400,
    "invalid_argument",
    /^cannot decode message HelloRequest from JSON: /,
  ],
  // An empty body is an empty message.
  "a Connect call with no body": [200],
  "a Connect body over maxMessageBytes, with its content-length": [
    429,
    "resource_exhausted",
    "message size 102 is larger than configured readMaxBytes 64",
  ],
  "a Connect body over maxMessageBytes, without a content-length": [
    429,
    "resource_exhausted",
    "message size is larger than configured readMaxBytes 64",
  ],
  "a gzip-compressed Connect request": [200],
  "a Connect request in an unsupported content-encoding": [
    501,
    "unimplemented",
    'unknown compression "snappy": supported encodings are gzip,br',
  ],
  "a big Connect reply to a client accepting br": [200],
  "an invalid connect-timeout-ms": [
    400,
    "invalid_argument",
    "protocol error: invalid connect timeout value: soon",
  ],
  "a connect-timeout-ms of 0": [
    504,
    "deadline_exceeded",
    "the operation timed out",
  ],
};

test("every Connect case states the HTTP status it must answer", () => {
  assert.deepEqual(
    Object.keys(connectExpected).sort(),
    connectCases.map(([name]) => name).sort(),
  );
});

for (const [name, request] of connectCases) {
  test(`${name}: the fast path answers exactly as connect's Connect handler`, async (t) => {
    const a = await assertSameAnswer(t, request, {
      routes: detailedGreeter,
      maxMessageBytes: 64,
    });
    const [status, code, message] = connectExpected[name] ?? [];
    assert.equal(a.status, status);
    if (code === undefined) return;
    assert.equal(a.headers["content-type"], "application/json");
    const error = JSON.parse(a.body.toString()) as {
      code: string;
      message: string;
    };
    assert.equal(error.code, code);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message as RegExp);
  });
}

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

test("fast-path calls produce the same log lines and metrics as connect's", async (t) => {
  const run = async (engine: boolean) => {
    const log = new LogCapture();
    const server = await startTestServer(t, {
      engine,
      logDestination: log.destination,
      logLevel: "info",
    });
    for (const [, request] of rawCases) await rawH2(server.url, request);
    // Connect unary calls too, reported as protocol "connect".
    for (const [, request] of connectCases) await rawH2(server.url, request);
    // A last call, to know every line before it has been written.
    await rawH2(server.url, {
      headers: { ":path": "/Greeter/StreamHello", ...grpcHeaders },
      body: [envelope(helloRequest("last"))],
    });
    await log.waitFor(
      (l) => l.procedure === "/Greeter/StreamHello" && l.sent === 5,
    );
    const lines = log
      .calls()
      .map(({ time, pid, hostname, durationMs, peer, ...rest }) => rest);
    const text = await (await fetch(server.metricsUrl ?? "")).text();
    const handled = text
      .split("\n")
      .filter((l) => /^grpc_server_(handled|started|msg_\w+)_total\{/.test(l));
    return { lines, handled, calls: server.engine.calls };
  };
  const fast = await run(true);
  const slow = await run(false);
  assert.equal(fast.calls, rawCases.length + connectCases.length + 1);
  assert.ok(
    fast.lines.some((l) => l.protocol === "connect"),
    "Connect calls were logged as such",
  );
  assert.equal(slow.calls, 0);
  assert.ok(fast.lines.length > 5, "calls were logged");
  assert.ok(fast.handled.length > 0, "calls were counted");
  assert.deepEqual(fast.lines, slow.lines);
  assert.deepEqual(fast.handled, slow.handled);
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
    "not%20allowed",
    0,
  ]);
  assert.deepEqual({ ...fast, served: 0 }, slow);
});

test("under the deadline policy, a server stream whose deadline it shortened (gRPC) or set (Connect) ends DEADLINE_EXCEEDED after its first reply, byte for byte the same from the fast path as from connect's handlers", async (t) => {
  // The first reply at once, the second a second later: past the deadline.
  const options = {
    maxDeadlineMs: 200,
    defaultDeadlineMs: 200,
    streamIntervalMs: 1000,
  };
  const grpc = await assertSameAnswer(
    t,
    {
      headers: {
        ":path": "/Greeter/StreamHello",
        ...grpcHeaders,
        "grpc-timeout": "10S",
      },
      body: [envelope(helloRequest("Ada"))],
    },
    options,
  );
  assert.deepEqual(grpcStatusOf(grpc), [
    String(Code.DeadlineExceeded),
    "the operation timed out",
  ]);
  assert.match(grpc.body.toString("latin1"), /Hello Ada, message 0$/);
  const connect = await assertSameAnswer(
    t,
    {
      headers: {
        ":path": "/Greeter/StreamHello",
        "content-type": "application/connect+proto",
      },
      body: [envelope(helloRequest("Ada"))],
    },
    options,
  );
  assert.equal(connect.status, 200);
  assert.match(
    connect.body.toString("latin1"),
    /Hello Ada, message 0.*"code":"deadline_exceeded","message":"the operation timed out"/s,
  );
});

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
