import assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { type TestContext, test } from "node:test";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createContextKey,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
} from "@connectrpc/connect-node";
import { Greeter } from "../gen/helloworld_pb.js";
import { connectionKey, connectionValues } from "../src/calls/connection.js";
import { endOnAbort } from "../src/calls/end-on-abort.js";
import { FastPath, type FastPathOptions } from "../src/fast-path/router.js";
import { createGreeter } from "../src/services/greeter.js";
import { claimStreams } from "../src/transport/listener.js";
import {
  envelope,
  envelopes,
  helloReply,
  helloRequest,
  rawH2,
} from "./support/raw.js";

// What a handler sees and what the application's interceptors do, on the
// fast path and through connect's handlers: the same, seen from inside the
// handler. (test/fast-path.test.ts compares what clients get.)

const grpcHeaders = { "content-type": "application/grpc", te: "trailers" };

/** A server with the fast path (`enabled`) in front of connect's adapter, both with `options`, as src/server.ts wires them. */
async function serve(
  t: TestContext,
  enabled: boolean,
  routes: (router: ConnectRouter) => void,
  options: Omit<FastPathOptions, "enabled"> = {},
): Promise<{ url: string; fastPath: FastPath }> {
  const fastPath = new FastPath({ ...options, enabled });
  const server = http2.createServer(
    connectNodeAdapter({
      ...options,
      // As src/server.ts: connect's handlers end a call whose signal aborts
      // with the endOnAbort interceptor; the fast path does it itself.
      interceptors: [...(options.interceptors ?? []), endOnAbort],
      routes: fastPath.record(routes),
    }),
  );
  claimStreams(server, fastPath.claim);
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
    fastPath,
  };
}

/** What a handler can read of its context, as plain data. */
function describe(ctx: HandlerContext): Record<string, unknown> {
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
        seen.push(describe(ctx));
        return { message: `Hello, ${req.name}!` };
      },
      async *streamHello(req, ctx) {
        seen.push(describe(ctx));
        yield { message: `Hello ${req.name}` };
      },
      async collectGreetings(reqs, ctx) {
        const names: string[] = [];
        for await (const r of reqs) names.push(r.name);
        seen.push(describe(ctx));
        return { message: names.join(",") };
      },
      async *chat(reqs, ctx) {
        seen.push(describe(ctx));
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
    const { url, fastPath } = await serve(t, enabled, recordingGreeter(seen), {
      contextValues: connectionValues,
    });
    const replies = [
      ...(await everyKind(url, true)),
      ...(await everyKind(url, false)),
    ];
    results.push({ replies, seen, calls: fastPath.calls });
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
    const { url, fastPath } = await serve(t, enabled, recordingGreeter(seen));
    await everyKind(url, false);
    results.push({ seen, calls: fastPath.calls });
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
    const { url, fastPath } = await serve(t, enabled, recordingGreeter(seen));
    const res = await rawH2(url, {
      headers: { ":path": "/Greeter/SayHello?trace=1", ...grpcHeaders },
      body: [envelope(helloRequest("q"))],
    });
    assert.equal(res.trailers["grpc-status"], "0");
    assert.equal(fastPath.calls, enabled ? 1 : 0);
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
    const { url, fastPath } = await serve(t, enabled, recordingGreeter(seen), {
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
      calls: fastPath.calls,
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
    const { url, fastPath } = await serve(t, true, (router) => {
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
    assert.equal(fastPath.calls, withOptions ? 0 : 1);
  }
});

test("the shutdown signal ends the calls the fast path runs with its reason, and a call arriving after it ends at once", async (t) => {
  const shutdown = new AbortController();
  let started!: () => void;
  const running = new Promise<void>((resolve) => {
    started = resolve;
  });
  const { url, fastPath } = await serve(
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
  assert.equal(fastPath.calls, 2);
  assert.equal(fastPath.running.size, 0);
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
      assert.ok(
        took >= timeoutMs && took <= timeoutMs + slackMs,
        `answered after ${took} ms`,
      );
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
    grpc: [String(Code.DeadlineExceeded), "the%20operation%20timed%20out"],
    connect: [
      504,
      { code: "deadline_exceeded", message: "the operation timed out" },
    ],
  });
  assert.deepEqual(answers[0], answers[1]);
});
