import assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { type TestContext, test } from "node:test";
import { gunzipSync, gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createClient,
  createContextKey,
  createContextValues,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
} from "@connectrpc/connect-node";
import { Greeter, HelloReplySchema } from "../gen/helloworld_pb.js";
import { connectionKey, connectionValues } from "../src/calls/connection.js";
import { throughPipeline } from "../src/calls/interceptor.js";
import { CallPipeline } from "../src/calls/pipeline.js";
import { Engine, type EngineOptions } from "../src/engine/engine.js";
import { grpcAcceptEncoding } from "../src/http/grpc-accept-encoding.js";
import { createGreeter } from "../src/services/greeter.js";
import { claimStreams } from "../src/transport/claim-streams.js";
import { LogCapture } from "./support/log-capture.js";
import {
  envelope,
  envelopes,
  grpcHeaders,
  helloReply,
  helloRequest,
  rawH2,
} from "./support/raw.js";
import { startTestServer, writesBackedUp } from "./support/server.js";
import { selfSignedCert } from "./support/tls.js";
import { assertTook, until, within } from "./support/wait.js";

// What a handler sees and what the application's interceptors do, on the
// fast path and through connect's handlers: the same, seen from inside the
// handler. (test/fast-path.test.ts compares what clients get.)

/** A server with the engine (`enabled`) in front of connect's adapter, both with `options`, as src/server.ts wires them. */
async function serve(
  t: TestContext,
  enabled: boolean,
  routes: (router: ConnectRouter) => void,
  options: Omit<EngineOptions, "enabled" | "pipeline"> = {},
): Promise<{ url: string; engine: Engine }> {
  const pipeline = new CallPipeline();
  const engine = new Engine({ ...options, pipeline, enabled });
  const server = http2.createServer(
    // As src/server.ts: gRPC answers name the encodings read, and connect's
    // handlers get what every call gets through one interceptor; the
    // engine's get both directly.
    grpcAcceptEncoding(engine.opt.acceptCompression)(
      connectNodeAdapter({
        ...options,
        interceptors: [
          throughPipeline(pipeline),
          ...(options.interceptors ?? []),
        ],
        routes: engine.record(routes),
      }),
    ),
  );
  claimStreams(server, engine.claimStream);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  t.after(() => {
    for (const s of sessions) s.destroy();
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    engine,
  };
}

/** What a handler can read of its context, as plain data. */
function contextAsData(ctx: HandlerContext): Record<string, unknown> {
  const timeout = ctx.timeoutMs();
  const connection = ctx.values.get(connectionKey);
  return {
    method: ctx.method.name,
    service: ctx.service.typeName,
    protocol: ctx.protocolName,
    requestMethod: ctx.requestMethod,
    url: ctx.url,
    header: ctx.requestHeader.get("x-tag"),
    // A deadline of 60 s leaves at most 60 s and, on any machine, more than 50.
    timeout:
      timeout === undefined
        ? "none"
        : timeout > 50_000 && timeout <= 60_000
          ? "60 s"
          : timeout,
    connection:
      connection === undefined
        ? "none"
        : {
            peer: /^127\.0\.0\.1:\d+$/.test(connection.peer),
            httpVersion: connection.httpVersion,
          },
    signal: ctx.signal.aborted,
  };
}

/** A Greeter whose handlers record their context in `seen`. */
function recordingGreeter(seen: Record<string, unknown>[]) {
  return (router: ConnectRouter) =>
    router.service(Greeter, {
      sayHello(req, ctx) {
        seen.push(contextAsData(ctx));
        return { message: `Hello, ${req.name}!` };
      },
      async *streamHello(req, ctx) {
        seen.push(contextAsData(ctx));
        yield { message: `Hello ${req.name}` };
      },
      async collectGreetings(reqs, ctx) {
        const names: string[] = [];
        for await (const r of reqs) names.push(r.name);
        seen.push(contextAsData(ctx));
        return { message: names.join(",") };
      },
      async *chat(reqs, ctx) {
        seen.push(contextAsData(ctx));
        for await (const r of reqs) yield { message: r.name };
      },
    });
}

/** Every kind of call, over gRPC, and a unary one over Connect, with a deadline and a header. */
async function everyKind(url: string, deadline: boolean): Promise<string[]> {
  const grpc = createGrpcTransport({ baseUrl: url });
  const connect = createConnectTransport({ baseUrl: url, httpVersion: "2" });
  const opts = {
    headers: { "x-tag": "t1" },
    ...(deadline ? { timeoutMs: 60_000 } : {}),
  };
  const { createClient } = await import("@connectrpc/connect");
  const g = createClient(Greeter, grpc);
  const c = createClient(Greeter, connect);
  const out: string[] = [];
  out.push((await g.sayHello({ name: "a" }, opts)).message);
  out.push((await c.sayHello({ name: "b" }, opts)).message);
  for await (const r of g.streamHello({ name: "c" }, opts)) out.push(r.message);
  async function* names() {
    yield { name: "d" };
    yield { name: "e" };
  }
  out.push((await g.collectGreetings(names(), opts)).message);
  for await (const r of g.chat(names(), opts)) out.push(r.message);
  return out;
}

test("a handler sees the same context on the fast path as through connect: method, service, protocol, URL, header, deadline, connection, signal", async (t) => {
  const results = [];
  for (const enabled of [true, false]) {
    const seen: Record<string, unknown>[] = [];
    const { url, engine } = await serve(t, enabled, recordingGreeter(seen), {
      contextValues: connectionValues,
    });
    const replies = [
      ...(await everyKind(url, true)),
      ...(await everyKind(url, false)),
    ];
    results.push({ replies, seen, calls: engine.calls });
  }
  const [fast, slow] = results;
  assert.equal(fast?.calls, 10, "the fast path served every call");
  assert.equal(slow?.calls, 0);
  assert.deepEqual(fast?.seen[0], {
    method: "SayHello",
    service: "Greeter",
    protocol: "grpc",
    requestMethod: "POST",
    url: `${new URL(fast?.seen[0]?.url as string).origin}/Greeter/SayHello`,
    header: "t1",
    timeout: "60 s",
    connection: { peer: true, httpVersion: "2.0" },
    signal: false,
  });
  assert.equal(fast?.seen[1]?.protocol, "connect");
  assert.equal(fast?.seen[5]?.timeout, "none");
  // The ports differ; everything else is the same.
  const portless = (r: typeof fast) =>
    r?.seen.map((s) => ({
      ...s,
      url: (s.url as string).replace(/:\d+\//, ":PORT/"),
    }));
  assert.deepEqual(portless(fast), portless(slow));
  assert.deepEqual(fast?.replies, slow?.replies);
});

test("without the adapter's contextValues option a handler gets empty context values on both paths", async (t) => {
  const results = [];
  for (const enabled of [true, false]) {
    const seen: Record<string, unknown>[] = [];
    const { url, engine } = await serve(t, enabled, recordingGreeter(seen));
    await everyKind(url, false);
    results.push({ seen, calls: engine.calls });
  }
  assert.equal(results[0]?.calls, 5);
  for (const r of results) {
    assert.deepEqual(
      r.seen.map((s) => s.connection),
      ["none", "none", "none", "none", "none"],
    );
  }
});

test("a path with a query string is routed by its path, and the URL a handler sees keeps the query, on both paths", async (t) => {
  const urls = [];
  for (const enabled of [true, false]) {
    const seen: Record<string, unknown>[] = [];
    const { url, engine } = await serve(t, enabled, recordingGreeter(seen));
    const res = await rawH2(url, {
      headers: { ":path": "/Greeter/SayHello?trace=1", ...grpcHeaders },
      body: [envelope(helloRequest("q"))],
    });
    assert.equal(res.trailers["grpc-status"], "0");
    assert.equal(engine.calls, enabled ? 1 : 0);
    urls.push(
      new URL(seen[0]?.url as string).pathname +
        new URL(seen[0]?.url as string).search,
    );
  }
  assert.deepEqual(urls, [
    "/Greeter/SayHello?trace=1",
    "/Greeter/SayHello?trace=1",
  ]);
});

/** Interceptors that change what the handler sees and what the client gets, and log their order. */
function interceptors(log: string[]): Interceptor[] {
  const tag = createContextKey("untouched", { description: "tag" });
  const outer: Interceptor = (next) => async (req) => {
    log.push(`outer ${req.method.name} ${req.stream ? "stream" : "unary"}`);
    const res = await next(req);
    res.header.set("x-outer", "1");
    log.push("outer done");
    if (!res.stream) return res;
    return {
      ...res,
      message: (async function* () {
        for await (const m of res.message) {
          yield {
            ...m,
            message: `${(m as unknown as { message: string }).message}!`,
          };
        }
        res.trailer.set("x-outer-trailer", "2");
      })(),
    };
  };
  const inner: Interceptor = (next) => async (req) => {
    log.push("inner");
    const header = new Headers(req.header);
    header.set("x-tag", "from-interceptor");
    const values: ContextValues = req.contextValues;
    values.set(tag, "set by inner");
    const res = await next({ ...req, header });
    log.push("inner done");
    return res;
  };
  return [outer, inner];
}

test("the application's interceptors run on the fast path as through connect: in order, changing request headers, response headers, trailers and messages", async (t) => {
  const results = [];
  for (const enabled of [true, false]) {
    const log: string[] = [];
    const seen: Record<string, unknown>[] = [];
    const { url, engine } = await serve(t, enabled, recordingGreeter(seen), {
      interceptors: interceptors(log),
    });
    const answers = [];
    for (const path of [
      "/Greeter/SayHello",
      "/Greeter/StreamHello",
      "/Greeter/Chat",
    ]) {
      const res = await rawH2(url, {
        headers: { ":path": path, ...grpcHeaders, "x-tag": "from-client" },
        body: [envelope(helloRequest("i"))],
      });
      answers.push({
        status: res.trailers["grpc-status"],
        outer: res.headers["x-outer"],
        trailer: res.trailers["x-outer-trailer"] ?? null,
        messages: envelopes(res.body).map((m) => helloReply(m.data).message),
      });
    }
    results.push({
      answers,
      log,
      headers: seen.map((s) => s.header),
      calls: engine.calls,
    });
  }
  const [fast, slow] = results;
  assert.equal(fast?.calls, 3);
  assert.deepEqual(fast?.answers, [
    { status: "0", outer: "1", trailer: null, messages: ["Hello, i!"] },
    { status: "0", outer: "1", trailer: "2", messages: ["Hello i!"] },
    { status: "0", outer: "1", trailer: "2", messages: ["i!"] },
  ]);
  assert.deepEqual(fast?.headers, [
    "from-interceptor",
    "from-interceptor",
    "from-interceptor",
  ]);
  assert.deepEqual(fast?.log.slice(0, 4), [
    "outer SayHello unary",
    "inner",
    "inner done",
    "outer done",
  ]);
  assert.deepEqual({ ...fast, calls: 0 }, slow);
});

test("an interceptor that returns headers and trailers of its own gets them sent, on both paths", async (t) => {
  const results = [];
  for (const enabled of [true, false]) {
    // As an interceptor would: the handler's headers and trailers, with more.
    const own: Interceptor = (next) => async (req) => {
      const res = await next(req);
      const header = new Headers(res.header);
      header.set("x-own", "h");
      const trailer = new Headers(res.trailer);
      trailer.set("x-own-trailer", "t");
      return { ...res, header, trailer };
    };
    const { url } = await serve(
      t,
      enabled,
      (router) =>
        router.service(Greeter, {
          ...createGreeter({ streamIntervalMs: 0 }),
          sayHello(req, ctx) {
            ctx.responseHeader.set("x-handler", "kept");
            return { message: req.name };
          },
        }),
      { interceptors: [own] },
    );
    const answers = [];
    for (const path of ["/Greeter/SayHello", "/Greeter/StreamHello"]) {
      const res = await rawH2(url, {
        headers: { ":path": path, ...grpcHeaders },
        body: [envelope(helloRequest("o"))],
      });
      answers.push({
        own: res.headers["x-own"],
        handler: res.headers["x-handler"] ?? null,
        type: res.headers["content-type"],
        ownTrailer: res.trailers["x-own-trailer"],
        status: res.trailers["grpc-status"],
      });
    }
    results.push(answers);
  }
  assert.deepEqual(results[0], [
    {
      own: "h",
      handler: "kept",
      type: "application/grpc+proto",
      ownTrailer: "t",
      status: "0",
    },
    {
      own: "h",
      handler: null,
      type: "application/grpc+proto",
      ownTrailer: "t",
      status: "0",
    },
  ]);
  assert.deepEqual(results[0], results[1]);
});

test("a procedure registered alone with router.rpc takes the fast path; one registered with options of its own stays with connect", async (t) => {
  for (const withOptions of [false, true]) {
    const { url, engine } = await serve(t, true, (router) => {
      const greeter = createGreeter({ streamIntervalMs: 0 });
      if (withOptions) {
        router.rpc(Greeter.method.sayHello, greeter.sayHello, {
          readMaxBytes: 1024,
        });
      } else {
        router.rpc(Greeter.method.sayHello, greeter.sayHello);
      }
    });
    const res = await rawH2(url, {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest("r"))],
    });
    assert.deepEqual(
      envelopes(res.body).map((m) => helloReply(m.data).message),
      ["Hello, r!"],
    );
    assert.equal(engine.calls, withOptions ? 0 : 1);
  }
});

test("the shutdown signal ends the calls the fast path runs with its reason, and a call arriving after it ends at once", async (t) => {
  const shutdown = new AbortController();
  const { promise: running, resolve: started } = Promise.withResolvers<void>();
  const { url, engine } = await serve(
    t,
    true,
    (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        async *chat(reqs) {
          for await (const r of reqs) {
            yield { message: r.name };
            // Resumed once the reply is written.
            started();
          }
        },
      }),
    { shutdownSignal: shutdown.signal },
  );
  // A Chat waits for its client's next message when the server shuts down.
  const chat = rawH2(url, {
    headers: { ":path": "/Greeter/Chat", ...grpcHeaders },
    body: [envelope(helloRequest("one"))],
    end: false,
  });
  await running;
  shutdown.abort(
    new ConnectError("the server is shutting down", Code.Unavailable),
  );
  const ended = await chat;
  assert.equal(ended.trailers["grpc-status"], String(Code.Unavailable));
  assert.equal(
    decodeURIComponent(String(ended.trailers["grpc-message"])),
    "the server is shutting down",
  );
  assert.deepEqual(
    envelopes(ended.body).map((m) => helloReply(m.data).message),
    ["one"],
  );
  const late = await rawH2(url, {
    headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
    body: [envelope(helloRequest("late"))],
  });
  assert.equal(late.trailers["grpc-status"], String(Code.Unavailable));
  assert.equal(late.body.length, 0, "no reply");
  assert.equal(engine.calls, 2);
  assert.equal(engine.running.size, 0);
});

// RST_STREAM error codes (RFC 9113, 7) as a handler's signal reports them,
// as connect-node's connectErrorFromH2ResetCode maps them.
const resets: [string, number, Code | undefined][] = [
  ["PROTOCOL_ERROR", 0x1, Code.Internal],
  ["INTERNAL_ERROR", 0x2, Code.Internal],
  ["FLOW_CONTROL_ERROR", 0x3, Code.Internal],
  ["SETTINGS_TIMEOUT", 0x4, Code.Internal],
  ["FRAME_SIZE_ERROR", 0x6, Code.Internal],
  ["REFUSED_STREAM", 0x7, Code.Unavailable],
  ["CANCEL", 0x8, Code.Canceled],
  ["COMPRESSION_ERROR", 0x9, Code.Internal],
  ["CONNECT_ERROR", 0xa, Code.Internal],
  ["ENHANCE_YOUR_CALM", 0xb, Code.ResourceExhausted],
  ["INADEQUATE_SECURITY", 0xc, Code.PermissionDenied],
  ["HTTP_1_1_REQUIRED", 0xd, Code.PermissionDenied],
  ["STREAM_CLOSED", 0x5, undefined],
  ["an unknown code", 0x42, undefined],
];

test("a client's RST_STREAM reaches the handler's signal as the same error on both paths, for every code", async (t) => {
  const results = [];
  for (const enabled of [true, false]) {
    const reasons: string[] = [];
    let waiting!: () => void;
    const { url } = await serve(t, enabled, (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        async *chat(_reqs, ctx) {
          waiting();
          if (!ctx.signal.aborted) await once(ctx.signal, "abort");
          const e = ctx.signal.reason;
          reasons.push(
            e instanceof ConnectError
              ? `${Code[e.code]}: ${e.rawMessage}`
              : `${(e as Error).name}`,
          );
          // Nobody reads it: the client reset the stream.
          yield { message: "gone" };
        },
      }),
    );
    const session = http2.connect(url);
    t.after(() => session.destroy());
    for (const [, code] of resets) {
      const started = new Promise<void>((resolve) => {
        waiting = resolve;
      });
      const stream = session.request({
        ":method": "POST",
        ":path": "/Greeter/Chat",
        ...grpcHeaders,
      });
      stream.on("error", () => {});
      stream.write(envelope(helloRequest("x")));
      await started;
      const count = reasons.length;
      stream.close(code);
      while (reasons.length === count) {
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    results.push(reasons);
  }
  const [fast, slow] = results;
  assert.deepEqual(
    fast,
    resets.map(([name, code, c]) =>
      c === undefined
        ? "AbortError"
        : `${Code[c]}: http/2 stream closed with error code ${name} (0x${code.toString(16)})`,
    ),
  );
  assert.deepEqual(fast, slow);
});

test("a request gate that fails with a plain Error answers the same on both paths", async (t) => {
  const answers = [];
  for (const enabled of [true, false]) {
    const { url } = await serve(
      t,
      enabled,
      (router) =>
        router.service(Greeter, createGreeter({ streamIntervalMs: 0 })),
      {
        requestGate() {
          throw new Error("gate broke");
        },
      },
    );
    const grpc = await rawH2(url, {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest("g"))],
    });
    const connect = await rawH2(url, {
      headers: {
        ":path": "/Greeter/SayHello",
        "content-type": "application/proto",
      },
      body: [helloRequest("g")],
    });
    answers.push({
      grpc: [grpc.trailers["grpc-status"], grpc.trailers["grpc-message"]],
      connect: [connect.status, connect.body.toString()],
    });
  }
  assert.deepEqual(answers[0], answers[1]);
});

test("a handler that ignores its deadline is cut off at the client's timeout with DEADLINE_EXCEEDED on both paths, gRPC and Connect", async (t) => {
  const timeoutMs = 200;
  // Timers fire late on a loaded machine, never early.
  const slackMs = 2_000;
  const answers = [];
  for (const enabled of [true, false]) {
    const { url } = await serve(t, enabled, (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        // Never answers, and never looks at its signal.
        sayHello: () => new Promise<never>(() => {}),
      }),
    );
    const timed = async (request: Parameters<typeof rawH2>[1]) => {
      const started = performance.now();
      const res = await rawH2(url, request);
      const took = performance.now() - started;
      assertTook(took, timeoutMs, timeoutMs + slackMs, "the answer");
      return res;
    };
    const grpc = await timed({
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-timeout": `${timeoutMs}m`,
      },
      body: [envelope(helloRequest("late"))],
    });
    const connect = await timed({
      headers: {
        ":path": "/Greeter/SayHello",
        "content-type": "application/json",
        "connect-timeout-ms": String(timeoutMs),
      },
      body: [Buffer.from('{"name":"late"}')],
    });
    answers.push({
      grpc: [grpc.trailers["grpc-status"], grpc.trailers["grpc-message"]],
      connect: [connect.status, JSON.parse(connect.body.toString())],
    });
  }
  assert.deepEqual(answers[0], {
    grpc: [String(Code.DeadlineExceeded), "the operation timed out"],
    connect: [
      504,
      { code: "deadline_exceeded", message: "the operation timed out" },
    ],
  });
  assert.deepEqual(answers[0], answers[1]);
});

test("a handler's signal is one object, aborts when its call is over with an AbortError, and is already aborted when first read after the end", async (t) => {
  const results = [];
  for (const enabled of [true, false]) {
    const seen: Record<string, unknown> = {};
    const contexts: HandlerContext[] = [];
    const { url } = await serve(t, enabled, (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        sayHello(req, ctx) {
          contexts.push(ctx);
          if (req.name === "never") {
            // Never answers; its signal is not looked at while it runs.
            return new Promise<never>(() => {});
          }
          // A getter: read twice, the same signal.
          const first = ctx.signal;
          seen.same = first === ctx.signal;
          seen.during = ctx.signal.aborted;
          return { message: req.name };
        },
      }),
    );
    await rawH2(url, {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest("s"))],
    });
    const signal = contexts[0]?.signal;
    await until("the call's end", () => signal?.aborted === true);
    const reason = signal?.reason as DOMException;
    seen.after = [reason.name, reason.message];
    // The client has its answer: the call is over before anyone asks for
    // its signal.
    const res = await rawH2(url, {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-timeout": "100m",
      },
      body: [envelope(helloRequest("never"))],
    });
    assert.equal(res.trailers["grpc-status"], String(Code.DeadlineExceeded));
    const late = contexts[1]?.signal;
    seen.firstLookAfterEnd = [
      late?.aborted,
      ConnectError.from(late?.reason).code,
    ];
    results.push(seen);
  }
  assert.deepEqual(results[0], {
    same: true,
    during: false,
    after: ["AbortError", "This operation was aborted"],
    firstLookAfterEnd: [true, Code.DeadlineExceeded],
  });
  assert.deepEqual(results[0], results[1]);
});

test("an asynchronous unary handler's partial answer is completed into a full message, on both paths", async (t) => {
  const answers = [];
  for (const enabled of [true, false]) {
    const { url } = await serve(t, enabled, (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        // A partial message (no $typeName), after an await.
        async sayHello(req) {
          await Promise.resolve();
          return { message: `async ${req.name}` };
        },
      }),
    );
    const res = await rawH2(url, {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest("a"))],
    });
    answers.push([
      res.trailers["grpc-status"],
      envelopes(res.body).map((m) => helloReply(m.data).message),
    ]);
  }
  assert.deepEqual(answers[0], ["0", ["async a"]]);
  assert.deepEqual(answers[0], answers[1]);
});

test("a call whose deadline passed before its asynchronous handler answered fails with DEADLINE_EXCEEDED, whether the handler succeeds or fails", async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on("unhandledRejection", onUnhandled);
  t.after(() => process.off("unhandledRejection", onUnhandled));
  const answers = [];
  for (const enabled of [true, false]) {
    const { url } = await serve(t, enabled, (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        async sayHello(req) {
          if (req.name === "fail") throw new Error("failed after the deadline");
          return { message: req.name };
        },
      }),
    );
    for (const name of ["ok", "fail"]) {
      const res = await rawH2(url, {
        headers: {
          ":path": "/Greeter/SayHello",
          ...grpcHeaders,
          "grpc-timeout": "0m",
        },
        body: [envelope(helloRequest(name))],
      });
      answers.push([
        enabled,
        name,
        res.trailers["grpc-status"],
        res.body.length,
      ]);
    }
  }
  assert.deepEqual(answers, [
    [true, "ok", String(Code.DeadlineExceeded), 0],
    [true, "fail", String(Code.DeadlineExceeded), 0],
    [false, "ok", String(Code.DeadlineExceeded), 0],
    [false, "fail", String(Code.DeadlineExceeded), 0],
  ]);
  // The failure nobody waited for any more was not left unhandled.
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(unhandled, []);
});

test("a handler reading its requests when its call's deadline passes sees the read fail with DEADLINE_EXCEEDED, on both paths", async (t) => {
  const seen = [];
  for (const enabled of [true, false]) {
    let failed!: (e: unknown) => void;
    const failure = new Promise<unknown>((resolve) => {
      failed = resolve;
    });
    const { url } = await serve(t, enabled, (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        async *chat(reqs) {
          try {
            for await (const r of reqs) yield { message: r.name };
          } catch (e) {
            failed(e);
            throw e;
          }
        },
      }),
    );
    const res = await rawH2(url, {
      headers: {
        ":path": "/Greeter/Chat",
        ...grpcHeaders,
        "grpc-timeout": "200m",
      },
      body: [envelope(helloRequest("one"))],
      end: false,
    });
    const e = ConnectError.from(await failure);
    seen.push([res.trailers["grpc-status"], e.code, e.rawMessage]);
  }
  assert.deepEqual(seen[0], [
    String(Code.DeadlineExceeded),
    Code.DeadlineExceeded,
    "the operation timed out",
  ]);
  assert.deepEqual(seen[0], seen[1]);
});

test("over TLS a handler's URL is https, on both paths", async (t) => {
  const tlsCert = selfSignedCert();
  const urls = [];
  for (const engine of [true, false]) {
    const seen: Record<string, unknown>[] = [];
    const server = await startTestServer(t, {
      tls: tlsCert,
      engine,
      routes: recordingGreeter(seen),
    });
    const client = createClient(
      Greeter,
      createGrpcTransport({
        baseUrl: server.url,
        nodeOptions: { ca: tlsCert.cert },
      }),
    );
    await client.sayHello({ name: "tls" });
    urls.push(new URL(seen[0]?.url as string).protocol);
    assert.equal(server.engine.calls, engine ? 1 : 0);
  }
  assert.deepEqual(urls, ["https:", "https:"]);
});

test("an error a handler got from another service goes to its client without that service's metadata, on both paths", async (t) => {
  // The other service fails with metadata of its own.
  const { url: upstream } = await serve(t, false, (router) =>
    router.service(Greeter, {
      ...createGreeter({ streamIntervalMs: 0 }),
      sayHello() {
        throw new ConnectError("upstream failed", Code.FailedPrecondition, {
          "x-upstream": "secret",
        });
      },
    }),
  );
  const other = createClient(
    Greeter,
    createConnectTransport({ baseUrl: upstream, httpVersion: "2" }),
  );
  const answers = [];
  for (const enabled of [true, false]) {
    const { url } = await serve(t, enabled, (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        // Passes the other service's error on as it came.
        sayHello: (req) => other.sayHello(req),
      }),
    );
    const res = await rawH2(url, {
      headers: {
        ":path": "/Greeter/SayHello",
        "content-type": "application/json",
      },
      body: [Buffer.from('{"name":"x"}')],
    });
    answers.push({
      status: res.status,
      upstream: res.headers["x-upstream"] ?? null,
      body: JSON.parse(res.body.toString()),
    });
  }
  assert.deepEqual(answers[0], {
    status: 400,
    upstream: null,
    body: { code: "failed_precondition", message: "upstream failed" },
  });
  assert.deepEqual(answers[0], answers[1]);
});

test("a Connect reply of exactly compressMinBytes is compressed and one byte less is not, with its content-encoding, on both paths", async (t) => {
  // "Hello, Alice!" is 15 bytes as a HelloReply.
  const reply = toBinary(
    HelloReplySchema,
    create(HelloReplySchema, { message: "Hello, Alice!" }),
  );
  assert.equal(reply.length, 15);
  const answers = [];
  for (const enabled of [true, false]) {
    for (const compressMinBytes of [15, 16]) {
      const { url } = await serve(
        t,
        enabled,
        (router) =>
          router.service(Greeter, createGreeter({ streamIntervalMs: 0 })),
        { compressMinBytes },
      );
      const res = await rawH2(url, {
        headers: {
          ":path": "/Greeter/SayHello",
          "content-type": "application/proto",
          "accept-encoding": "gzip",
        },
        body: [helloRequest("Alice")],
      });
      const encoding = res.headers["content-encoding"] ?? null;
      const body = encoding === "gzip" ? gunzipSync(res.body) : res.body;
      answers.push([
        compressMinBytes,
        res.status,
        encoding,
        helloReply(body).message,
      ]);
    }
  }
  assert.deepEqual(answers.slice(0, 2), [
    [15, 200, "gzip", "Hello, Alice!"],
    [16, 200, null, "Hello, Alice!"],
  ]);
  assert.deepEqual(answers.slice(0, 2), answers.slice(2));
});

test("a Connect handler that sets only a response trailer sends it as a trailer- header, on both paths", async (t) => {
  const answers = [];
  for (const enabled of [true, false]) {
    const { url } = await serve(t, enabled, (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        sayHello(req, ctx) {
          ctx.responseTrailer.set("x-only-trailer", "t");
          return { message: req.name };
        },
      }),
    );
    const res = await rawH2(url, {
      headers: {
        ":path": "/Greeter/SayHello",
        "content-type": "application/proto",
      },
      body: [helloRequest("tr")],
    });
    answers.push([
      res.status,
      res.headers["trailer-x-only-trailer"],
      res.headers["content-type"],
    ]);
  }
  assert.deepEqual(answers[0], [200, "t", "application/proto"]);
  assert.deepEqual(answers[0], answers[1]);
});

test("a rejected call whose client sends far more than a window still ends, over gRPC and Connect, on both paths", async (t) => {
  const big = Buffer.alloc(256 * 1024, 0x61);
  const answers = [];
  for (const enabled of [true, false]) {
    const { url } = await serve(
      t,
      enabled,
      (router) =>
        router.service(Greeter, createGreeter({ streamIntervalMs: 0 })),
      {
        requestGate() {
          throw new ConnectError("not now", Code.Unavailable);
        },
      },
    );
    const grpc = await rawH2(url, {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(big)],
    });
    const connect = await rawH2(url, {
      headers: {
        ":path": "/Greeter/SayHello",
        "content-type": "application/proto",
      },
      body: [big],
    });
    answers.push([
      grpc.trailers["grpc-status"],
      grpc.rstCode,
      connect.status,
      connect.rstCode,
    ]);
  }
  assert.deepEqual(answers[0], [String(Code.Unavailable), 0, 503, 0]);
  assert.deepEqual(answers[0], answers[1]);
});

test("an interceptor that replaces the request's signal, context values or service alone is seen by the handler, deadline and all, on both paths", async (t) => {
  const key = createContextKey("none", { description: "replaced" });
  // The signal the "signal" interceptor put in the request, which the
  // handler must be given, not the call's own.
  let replaced: AbortSignal | undefined;
  const replace =
    (what: string): Interceptor =>
    (next) =>
    async (req) => {
      if (what === "signal") {
        const own = new AbortController();
        replaced = AbortSignal.any([req.signal, own.signal]);
        return next({ ...req, signal: replaced });
      }
      replaced = undefined;
      if (what === "values") {
        return next({
          ...req,
          contextValues: createContextValues().set(key, "new values"),
        });
      }
      return next({ ...req, service: { ...req.service, typeName: "Renamed" } });
    };
  const results = [];
  for (const enabled of [true, false]) {
    const seen: unknown[] = [];
    for (const what of ["signal", "values", "service"]) {
      const { url } = await serve(
        t,
        enabled,
        (router) =>
          router.service(Greeter, {
            ...createGreeter({ streamIntervalMs: 0 }),
            sayHello(req, ctx) {
              const timeout = ctx.timeoutMs();
              seen.push([
                what,
                ctx.signal === replaced,
                ctx.signal instanceof AbortSignal && !ctx.signal.aborted,
                ctx.values.get(key),
                ctx.service.typeName,
                timeout !== undefined && timeout > 50_000 && timeout <= 60_000,
                ctx.method.name,
                ctx.url.endsWith("/Greeter/SayHello"),
              ]);
              return { message: req.name };
            },
            async *streamHello(req, ctx) {
              seen.push([
                what,
                "stream",
                ctx.signal === replaced,
                ctx.values.get(key),
                ctx.service.typeName,
              ]);
              yield { message: req.name };
            },
          }),
        { interceptors: [replace(what)] },
      );
      for (const path of ["/Greeter/SayHello", "/Greeter/StreamHello"]) {
        const res = await rawH2(url, {
          headers: { ":path": path, ...grpcHeaders, "grpc-timeout": "60S" },
          body: [envelope(helloRequest("r"))],
        });
        assert.equal(res.trailers["grpc-status"], "0", `${what} ${path}`);
      }
    }
    results.push(seen);
  }
  assert.deepEqual(results[0], [
    ["signal", true, true, "none", "Greeter", true, "SayHello", true],
    ["signal", "stream", true, "none", "Greeter"],
    ["values", false, true, "new values", "Greeter", true, "SayHello", true],
    ["values", "stream", false, "new values", "Greeter"],
    ["service", false, true, "none", "Renamed", true, "SayHello", true],
    ["service", "stream", false, "none", "Renamed"],
  ]);
  assert.deepEqual(results[0], results[1]);
});

test("behind an interceptor, a client that cancels a server stream stops the fast path's handler at its next step", async (t) => {
  // (Through connect's handlers such a handler is left suspended.)
  for (const enabled of [true]) {
    const { promise: finished, resolve: stopped } =
      Promise.withResolvers<void>();
    const passThrough: Interceptor = (next) => (req) => next(req);
    const { url } = await serve(
      t,
      enabled,
      (router) =>
        router.service(Greeter, {
          ...createGreeter({ streamIntervalMs: 0 }),
          async *streamHello(req) {
            try {
              for (;;) yield { message: req.name };
            } finally {
              stopped();
            }
          },
        }),
      { interceptors: [passThrough] },
    );
    await rawH2(url, {
      headers: { ":path": "/Greeter/StreamHello", ...grpcHeaders },
      body: [envelope(helloRequest("endless"))],
      onResponse: (stream) => stream.close(http2.constants.NGHTTP2_CANCEL),
    }).catch(() => {});
    await within(
      finished,
      5_000,
      `${enabled ? "fast path" : "connect"}: the handler's stop`,
    );
  }
});

test("an interceptor's response headers replace the handler's, on both paths", async (t) => {
  const answers = [];
  for (const enabled of [true, false]) {
    const only: Interceptor = (next) => async (req) => {
      const res = await next(req);
      return { ...res, header: new Headers({ "x-only": "1" }) };
    };
    const { url } = await serve(
      t,
      enabled,
      (router) =>
        router.service(Greeter, createGreeter({ streamIntervalMs: 0 })),
      { interceptors: [only] },
    );
    const res = await rawH2(url, {
      headers: { ":path": "/Greeter/StreamHello", ...grpcHeaders },
      body: [envelope(helloRequest("h"))],
    });
    answers.push([
      res.headers["x-only"],
      res.headers["content-type"] ?? null,
      res.trailers["grpc-status"],
    ]);
  }
  assert.deepEqual(answers[0], ["1", null, "0"]);
  assert.deepEqual(answers[0], answers[1]);
});

test("an engine made with no options takes calls, and reads gzip and br as connect's adapter does by default", async (t) => {
  const engine = new Engine();
  const server = http2.createServer(
    connectNodeAdapter({
      routes: engine.record((router) =>
        router.service(Greeter, createGreeter({ streamIntervalMs: 0 })),
      ),
    }),
  );
  claimStreams(server, engine.claimStream);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const res = await rawH2(url, {
    headers: {
      ":path": "/Greeter/SayHello",
      ...grpcHeaders,
      "grpc-encoding": "gzip",
    },
    body: [envelope(gzipSync(helloRequest("zip")), 1)],
  });
  assert.equal(res.trailers["grpc-status"], "0");
  assert.equal(res.headers["grpc-accept-encoding"], "gzip,br");
  assert.equal(engine.calls, 1);
});

test("a service registered with options of its own stays with connect", async (t) => {
  const { url, engine } = await serve(t, true, (router) =>
    router.service(Greeter, createGreeter({ streamIntervalMs: 0 }), {
      readMaxBytes: 1024,
    }),
  );
  const res = await rawH2(url, {
    headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
    body: [envelope(helloRequest("o"))],
  });
  assert.equal(res.trailers["grpc-status"], "0");
  assert.equal(engine.calls, 0);
});

// Requests the engine serves, and requests it leaves to connect untouched:
// each gets connect's answer either way.
const engineOrConnect: [
  string,
  "engine" | "connect",
  http2.OutgoingHttpHeaders,
  Uint8Array[],
][] = [
  [
    "a GET",
    "connect",
    {
      ":method": "GET",
      ":path": "/Greeter/SayHello",
      "content-type": "application/proto",
    },
    [],
  ],
  [
    "a browser's call (with an Origin)",
    "engine",
    {
      ":path": "/Greeter/SayHello",
      ...grpcHeaders,
      origin: "https://a.example",
    },
    [envelope(helloRequest("o"))],
  ],
  [
    "a content type nobody serves",
    "connect",
    { ":path": "/Greeter/SayHello", "content-type": "text/plain" },
    [helloRequest("t")],
  ],
  [
    "gRPC in JSON",
    "engine",
    {
      ":path": "/Greeter/SayHello",
      ...grpcHeaders,
      "content-type": "application/grpc+json",
    },
    [envelope(Buffer.from('{"name":"j"}'))],
  ],
  [
    "gRPC-Web",
    "engine",
    {
      ":path": "/Greeter/SayHello",
      "content-type": "application/grpc-web+proto",
    },
    [envelope(helloRequest("w"))],
  ],
  [
    "a Connect stream",
    "engine",
    {
      ":path": "/Greeter/CollectGreetings",
      "content-type": "application/connect+proto",
    },
    [envelope(helloRequest("s"))],
  ],
  [
    "a Connect unary request to a streaming method",
    "connect",
    { ":path": "/Greeter/StreamHello", "content-type": "application/proto" },
    [helloRequest("u")],
  ],
  [
    "a Connect streaming request to a unary method",
    "connect",
    {
      ":path": "/Greeter/SayHello",
      "content-type": "application/connect+proto",
    },
    [envelope(helloRequest("u"))],
  ],
];

for (const [what, servedBy, headers, body] of engineOrConnect) {
  test(`${what} is served by ${servedBy === "engine" ? "the engine" : "connect"}, and answered as with the engine off`, async (t) => {
    const answers = [];
    for (const enabled of [true, false]) {
      const { url, engine } = await serve(t, enabled, (router) =>
        router.service(Greeter, createGreeter({ streamIntervalMs: 0 })),
      );
      const res = await rawH2(url, { headers, body });
      assert.equal(engine.calls, enabled && servedBy === "engine" ? 1 : 0);
      answers.push({
        status: res.status,
        headers: { ...res.headers, date: undefined },
        body: res.body.toString("hex"),
        trailers: res.trailers,
      });
    }
    assert.deepEqual(answers[0], answers[1]);
  });
}

test("a server stream whose client goes away while the handler waits to write stops the handler and is reported canceled with the reason the stream gave, on both paths", async (t) => {
  const reported = [];
  for (const engine of [true, false]) {
    const { promise: finished, resolve: stopped } =
      Promise.withResolvers<void>();
    const log = new LogCapture();
    const server = await startTestServer(t, {
      engine,
      logDestination: log.destination,
      logLevel: "info",
      routes: (router) =>
        router.service(Greeter, {
          ...createGreeter({ streamIntervalMs: 0 }),
          async *streamHello() {
            try {
              for (;;) yield { message: "x".repeat(16 * 1024) };
            } finally {
              stopped();
            }
          },
        }),
    });
    const session = http2.connect(server.url);
    t.after(() => session.destroy());
    const stream = session.request({
      ":method": "POST",
      ":path": "/Greeter/StreamHello",
      ...grpcHeaders,
    });
    stream.on("error", () => {});
    // Reads nothing: the handler ends up waiting for the stream to drain.
    stream.pause();
    stream.end(envelope(helloRequest("slow")));
    await until("the handler to wait for the stream", () =>
      writesBackedUp(server),
    );
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await within(finished, 5_000, "the handler's stop");
    const line = await log.waitFor(
      (l) => l.procedure === "/Greeter/StreamHello",
    );
    assert.equal(server.engine.calls, engine ? 1 : 0);
    reported.push({ code: line.code, error: line.error });
  }
  // The reason the client's RST_STREAM gave, not a generic "closed early".
  assert.deepEqual(reported, [
    {
      code: "canceled",
      error: "http/2 stream closed with error code CANCEL (0x8)",
    },
    {
      code: "canceled",
      error: "http/2 stream closed with error code CANCEL (0x8)",
    },
  ]);
});

test("a handler may replace its context values (a plain JavaScript handler can), and reads back what it set, on both paths", async (t) => {
  const key = createContextKey("default", { description: "mine" });
  const read = [];
  for (const enabled of [true, false]) {
    const { url } = await serve(t, enabled, (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        sayHello(_req, ctx) {
          // Read-only to TypeScript; connect's context object allows it.
          (ctx as { values: ContextValues }).values = createContextValues().set(
            key,
            "mine",
          );
          return { message: ctx.values.get(key) };
        },
      }),
    );
    const res = await rawH2(url, {
      headers: { ":path": "/Greeter/SayHello", ...grpcHeaders },
      body: [envelope(helloRequest("v"))],
    });
    read.push(envelopes(res.body).map((m) => helloReply(m.data).message));
  }
  assert.deepEqual(read, [["mine"], ["mine"]]);
});

test("a Connect call whose client leaves before the answer is written ends quietly: nothing is logged as a failure", async (t) => {
  const log = new LogCapture();
  const { promise: done, resolve: answered } = Promise.withResolvers<void>();
  const server = await startTestServer(t, {
    logDestination: log.destination,
    logLevel: "info",
    routes: (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        async sayHello(req, ctx) {
          // Answers only once the client has gone.
          if (!ctx.signal.aborted) await once(ctx.signal, "abort");
          setImmediate(answered);
          return { message: req.name };
        },
      }),
  });
  const session = http2.connect(server.url);
  t.after(() => session.destroy());
  const stream = session.request({
    ":method": "POST",
    ":path": "/Greeter/SayHello",
    "content-type": "application/proto",
  });
  stream.on("error", () => {});
  stream.end(helloRequest("gone"));
  await until("the handler to run", () => server.inflight.count === 1);
  stream.close(http2.constants.NGHTTP2_CANCEL);
  assert.equal(server.engine.calls, 1);
  const line = await log.waitFor((l) => l.procedure === "/Greeter/SayHello");
  assert.equal(line.code, "canceled");
  await done;
  // A moment for anything the answer would have set off.
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(
    log.lines.filter((l) => l.level >= 50).map((l) => l.msg),
    [],
    "error lines",
  );
});

// connect's handlers stop reading such a request and reset its stream on
// their side (CANCEL); the fast path reads the rest, so that the client can
// end its request and the stream closes cleanly on both sides.
test("through the fast path, a message over the limit is refused while its client is still sending it, and the rest of the body is read and dropped so that the stream closes (gRPC and Connect unary)", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { maxMessageBytes: 1024 });
  const session = http2.connect(server.url);
  t.after(() => session.destroy());
  // Far more than one flow-control window: the client can send it all
  // only if the server reads it.
  const big = Buffer.alloc(256 * 1024, 0x61);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(big.length, 1);
  const cases = [
    {
      headers: { "content-type": "application/grpc", te: "trailers" },
      body: Buffer.concat([prefix, big]),
      answer: (h: http2.IncomingHttpHeaders) => h["grpc-status"],
      expected: String(Code.ResourceExhausted),
    },
    {
      headers: { "content-type": "application/proto" },
      body: big,
      answer: (h: http2.IncomingHttpHeaders) => h[":status"],
      expected: 429,
    },
  ];
  for (const c of cases) {
    const stream = session.request({
      ":method": "POST",
      ":path": "/Greeter/SayHello",
      ...c.headers,
    });
    stream.on("error", () => {});
    let last: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => {
      last = h;
    });
    stream.on("trailers", (h) => {
      last = { ...last, ...h };
    });
    stream.resume();
    stream.end(c.body);
    await within(once(stream, "close"), 5_000, "the stream's close");
    assert.equal(c.answer(last), c.expected);
    assert.equal(stream.rstCode, http2.constants.NGHTTP2_NO_ERROR);
  }
  assert.equal(server.engine.calls, 2);
});
