import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { test } from "node:test";
import { promisify } from "node:util";
import {
  Code,
  ConnectError,
  createClient,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { Greeter } from "../gen/helloworld_pb.js";
import { goAwayNoticeMs } from "../src/transport/goaway.js";
import {
  type Exit,
  mainWithTsx,
  repoRoot,
  type ServerProcess,
  startChild,
  startServerProcess,
} from "./support/child.js";
import { outcomeOf, wireRequest } from "./support/parity.js";
import { rawH1 } from "./support/raw.js";
import { startTestServer } from "./support/server.js";
import { protocols } from "./support/transports.js";
import { assertTook, within } from "./support/wait.js";

/** One transport per protocol and HTTP version the server drains differently. */
function transports(url: string): [string, () => Transport][] {
  return [
    ["gRPC over HTTP/2", () => createGrpcTransport({ baseUrl: url })],
    [
      "Connect over HTTP/1.1",
      () => createConnectTransport({ baseUrl: url, httpVersion: "1.1" }),
    ],
    [
      "gRPC-Web over HTTP/1.1",
      () => createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" }),
    ],
  ];
}

/** Start `count` StreamHello calls; resolves once every one has its first reply, with the calls' outcomes. */
async function startStreams(
  url: string,
  count: number,
): Promise<Promise<{ messages: string[]; error?: ConnectError }>[]> {
  const kinds = transports(url);
  const firsts: Promise<void>[] = [];
  const outcomes: Promise<{ messages: string[]; error?: ConnectError }>[] = [];
  for (let i = 0; i < count; i++) {
    const [, transport] = kinds[i % kinds.length] as [string, () => Transport];
    const client = createClient(Greeter, transport());
    let first!: () => void;
    firsts.push(new Promise((resolve) => (first = resolve)));
    outcomes.push(
      (async () => {
        const messages: string[] = [];
        try {
          for await (const res of client.streamHello({ name: `n${i}` })) {
            messages.push(res.message);
            if (messages.length === 1) first();
          }
          return { messages };
        } catch (e) {
          first();
          return { messages, error: ConnectError.from(e) };
        }
      })(),
    );
  }
  await Promise.all(firsts);
  return outcomes;
}

/** A raw HTTP/2 connection that resolves `goaway` when the server sends GOAWAY. */
async function watchGoaway(url: string): Promise<{
  session: http2.ClientHttp2Session;
  goaway: Promise<number>;
}> {
  const session = http2.connect(url);
  session.on("error", () => {});
  const goaway = new Promise<number>((resolve) =>
    session.once("goaway", (code) => resolve(code)),
  );
  await once(session, "remoteSettings");
  return { session, goaway };
}

function connectError(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (e: NodeJS.ErrnoException) =>
      resolve(e.code ?? e.message),
    );
  });
}

/** How a process ended, without what it printed. */
function ending({ code, signal }: Exit): Pick<Exit, "code" | "signal"> {
  return { code, signal };
}

const all5 = (i: number) =>
  [0, 1, 2, 3, 4].map((k) => `Hello n${i}, message ${k}`);

/**
 * 20 StreamHello calls are mid-stream when `signal()` runs: every one still
 * gets its 5 replies and OK, and the port refuses new connections meanwhile.
 */
async function drainsTwentyStreams(
  server: ServerProcess,
  signal: () => void,
): Promise<void> {
  const outcomes = await startStreams(server.url, 20);
  const watcher = await watchGoaway(server.url);
  signal();
  assert.equal(await watcher.goaway, http2.constants.NGHTTP2_NO_ERROR);
  assert.equal(await connectError(server.url), "ECONNREFUSED");
  const results = await Promise.all(outcomes);
  results.forEach((r, i) => {
    assert.equal(r.error, undefined, `call ${i}: ${r.error?.message}`);
    assert.deepEqual(r.messages, all5(i));
  });
  watcher.session.destroy();
}

test("SIGTERM to the server process lets 20 streams in flight finish, refuses new connections, and exits 0 within the grace period", {
  timeout: 60_000,
}, async (t) => {
  const server = await startServerProcess(
    t,
    process.execPath,
    mainWithTsx(
      "--port=0",
      "--host=127.0.0.1",
      "--stream-interval-ms=300",
      "--shutdown-grace-ms=10000",
    ),
  );
  let signalledAt = 0;
  await drainsTwentyStreams(server, () => {
    signalledAt = performance.now();
    server.process.kill("SIGTERM");
  });
  const exit = await server.exited;
  assert.deepEqual(ending(exit), { code: 0, signal: null }, exit.stderr);
  t.diagnostic(
    `the server exited ${Math.round(performance.now() - signalledAt)} ms after SIGTERM`,
  );
  assert.ok(
    performance.now() - signalledAt < 10_000,
    "exited within the grace period",
  );
});

test("SIGTERM to the process group of `npm start` (what Ctrl-C does) drains the same way and every process exits", {
  timeout: 60_000,
}, async (t) => {
  const server = await startServerProcess(t, "npm", [
    "start",
    "--",
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--stream-interval-ms",
    "300",
  ]);
  let signalledAt = 0;
  await drainsTwentyStreams(server, () => {
    signalledAt = performance.now();
    process.kill(-(server.process.pid as number), "SIGTERM");
  });
  // The server (npm's child) drains and exits; only then is nothing left
  // holding the output pipes.
  await server.exited;
  t.diagnostic(
    `every process was gone ${Math.round(performance.now() - signalledAt)} ms after SIGTERM`,
  );
  assert.ok(
    performance.now() - signalledAt < 10_000,
    "every process was gone within the grace period",
  );
  assert.doesNotMatch(server.stderr(), /Error|shutdown failed/);
});

test("a call that outlives the grace period ends with UNAVAILABLE, not a torn connection, and the process exits 0", {
  timeout: 60_000,
}, async (t) => {
  const server = await startServerProcess(
    t,
    process.execPath,
    mainWithTsx(
      "--port=0",
      "--host=127.0.0.1",
      "--stream-interval-ms=60000",
      "--shutdown-grace-ms=300",
    ),
  );
  const outcomes = await startStreams(server.url, 3);
  const signalledAt = performance.now();
  server.process.kill("SIGTERM");
  for (const [i, outcome] of outcomes.entries()) {
    const r = await outcome;
    assert.deepEqual(r.messages, [`Hello n${i}, message 0`]);
    assert.equal(r.error?.code, Code.Unavailable, r.error?.message);
  }
  const exit = await server.exited;
  assert.deepEqual(ending(exit), { code: 0, signal: null }, exit.stderr);
  // Not before the grace period (300 ms) is over; then the calls get their
  // status and the connections close, each step bounded by a second, plus
  // room for a loaded machine.
  const took = performance.now() - signalledAt;
  assertTook(took, 300, 300 + 2_000 + 2_000, "exiting after SIGTERM");
});

test("a second signal during the drain exits at once with 128 + its number", {
  timeout: 60_000,
}, async (t) => {
  const server = await startServerProcess(
    t,
    process.execPath,
    mainWithTsx(
      "--port=0",
      "--host=127.0.0.1",
      "--stream-interval-ms=60000",
      "--shutdown-grace-ms=60000",
    ),
  );
  const outcomes = await startStreams(server.url, 1);
  const watcher = await watchGoaway(server.url);
  server.process.kill("SIGTERM");
  await watcher.goaway;
  server.process.kill("SIGINT");
  // At once: not after the 60 s grace period, nor after a drain step; a
  // loaded machine may take a moment to deliver the signal.
  const exit = await within(server.exited, 2_000, "the exit");
  assert.deepEqual(ending(exit), { code: 130, signal: null }, exit.stderr);
  const [outcome] = await Promise.all(outcomes);
  assert.ok(outcome?.error, "the call in flight did not complete");
  watcher.session.destroy();
});

test("the compiled entry point (node dist/src/main.js) starts, answers, serves the page, and drains on SIGTERM", {
  timeout: 60_000,
}, async (t) => {
  await promisify(execFile)("npm", ["run", "build"], { cwd: repoRoot });
  const server = await startServerProcess(t, process.execPath, [
    "dist/src/main.js",
    "--port=0",
    "--host=127.0.0.1",
    "--stream-interval-ms=300",
  ]);
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  assert.equal(
    (await client.sayHello({ name: "dist" })).message,
    "Hello, dist!",
  );
  // npm run build bundles the browser page too, and the compiled server finds it.
  const page = await fetch(`${server.url}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
  await drainsTwentyStreams(server, () => server.process.kill("SIGTERM"));
  const exit = await server.exited;
  assert.deepEqual(ending(exit), { code: 0, signal: null }, exit.stderr);
});

test("shutdown() reports NOT_SERVING before it sends GOAWAY, and a stream in flight on that connection completes", {
  timeout: 60_000,
}, async (t) => {
  const server = await startTestServer(t, { streamIntervalMs: 100 });
  const session = http2.connect(server.url);
  t.after(() => session.destroy());
  const statusAtGoaway = new Promise<boolean>((resolve) =>
    session.once("goaway", () => resolve(server.status.serving)),
  );
  const stream = session.request({
    ":method": "POST",
    ":path": "/Greeter/StreamHello",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.end(grpcFrame(Buffer.from([0x0a, 0x01, 0x61]))); // name: "a"
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) =>
    stream.once("trailers", resolve),
  );
  const ended = once(stream, "end");
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  await once(stream, "response");
  await once(stream, "data");
  const result = server.shutdown();
  assert.equal(await statusAtGoaway, false);
  assert.equal((await trailers)["grpc-status"], "0");
  await ended;
  assert.equal(
    Buffer.concat(chunks).toString("latin1").split("message").length - 1,
    5,
  );
  const r = await result;
  assert.equal(r.callsAtStart, 1);
  assert.equal(r.callsEnded, 0);
});

test("shutdown() closes idle HTTP/1.1 keep-alive connections and answers a busy one with Connection: close", {
  timeout: 60_000,
}, async (t) => {
  const server = await startTestServer(t, { streamIntervalMs: 100 });
  const { port } = new URL(server.url);
  const agent = new http.Agent({ keepAlive: true });
  const busyAgent = new http.Agent({ keepAlive: true });
  t.after(() => {
    agent.destroy();
    busyAgent.destroy();
  });
  const post = (path: string, body: string) =>
    new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({
        agent,
        host: "127.0.0.1",
        port,
        method: "POST",
        path,
        headers: { "content-type": "application/json" },
      });
      req.on("response", resolve).on("error", reject).end(body);
    });
  // One connection left idle after a unary call.
  const idle = await post("/Greeter/SayHello", '{"name":"a"}');
  const idleSocket = idle.socket;
  const idleClosed = once(idleSocket, "close");
  idle.resume();
  await once(idle, "end");
  // A second one busy with a unary call whose response has not started: the
  // request body has not all arrived yet.
  const busy = http.request({
    agent: busyAgent,
    host: "127.0.0.1",
    port,
    method: "POST",
    path: "/Greeter/SayHello",
    headers: { "content-type": "application/json", "content-length": "12" },
  });
  busy.write('{"name"');
  await once(busy, "socket");
  const busyResponse = once(busy, "response") as Promise<
    [http.IncomingMessage]
  >;
  await waitForCalls(server.listener.responses, 1);
  const result = server.shutdown();
  await idleClosed;
  busy.end(':"b"}');
  const [res] = await busyResponse;
  assert.equal(res.headers.connection, "close");
  let body = "";
  for await (const chunk of res) body += chunk;
  assert.deepEqual(JSON.parse(body), { message: "Hello, b!" });
  const r = await result;
  assert.equal(r.connectionsDestroyed, 0);
});

test("a Chat waiting for its client's next message when the grace period ends gets UNAVAILABLE (gRPC)", {
  timeout: 60_000,
}, async (t) => {
  const server = await startTestServer(t);
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  const replies: string[] = [];
  const outcome = (async () => {
    for await (const res of client.chat(stalledAfter("first")))
      replies.push(res.message);
  })().then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  await waitForCalls(server.inflight, 1);
  const result = await server.shutdown(50);
  assert.equal((await outcome)?.code, Code.Unavailable);
  assert.deepEqual(replies, ["Hello, first!"]);
  assert.equal(result.callsEnded, 1);
});

test("a CollectGreetings waiting for its client's next message when the grace period ends gets UNAVAILABLE (Connect over HTTP/1.1)", {
  timeout: 60_000,
}, async (t) => {
  const server = await startTestServer(t);
  const client = createClient(
    Greeter,
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  );
  const outcome = client.collectGreetings(stalledAfter("first")).then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  await waitForCalls(server.inflight, 1);
  const result = await server.shutdown(50);
  assert.equal((await outcome)?.code, Code.Unavailable);
  assert.equal(result.callsEnded, 1);
});

for (const protocol of protocols) {
  test(`a ${protocol} CollectGreetings over HTTP/1.1 served by the engine, waiting for its client's next message when the grace period ends, gets UNAVAILABLE in its protocol`, {
    timeout: 60_000,
  }, async (t) => {
    const server = await startTestServer(t);
    const c = { protocol, json: false, http: "1.1" } as const;
    const request = wireRequest(
      { method: "CollectGreetings", messages: ["first"], end: false },
      c,
    );
    assert.ok(request);
    const answer = rawH1(server.url, request);
    await waitForCalls(server.inflight, 1);
    const result = await server.shutdown(50);
    assert.deepEqual(outcomeOf(c, "CollectGreetings", await answer), [
      Code.Unavailable,
      "the server is shutting down",
    ]);
    assert.equal(result.callsEnded, 1);
    assert.equal(server.engine.calls, 1);
  });
}

/** Requests that send `name` and then nothing more, never ending. */
async function* stalledAfter(name: string) {
  yield { name };
  await new Promise(() => {});
}

test("shutdown() waits for a unary request whose body is still arriving, though no handler runs for it yet", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t);
  const session = http2.connect(server.url);
  t.after(() => session.destroy());
  const goaway = once(session, "goaway");
  const stream = session.request({
    ":method": "POST",
    ":path": "/Greeter/SayHello",
    "content-type": "application/grpc",
    te: "trailers",
  });
  const message = Buffer.from([0x0a, 0x04, ...Buffer.from("slow")]);
  const frame = grpcFrame(message);
  stream.write(frame.subarray(0, 5)); // the length prefix, not the message
  // A stream the server resets or drops fails the test at once.
  const trailers = new Promise<[http2.IncomingHttpHeaders]>(
    (resolve, reject) => {
      stream.once("trailers", (headers) => resolve([headers]));
      stream.once("close", () =>
        reject(new Error(`stream closed, RST ${stream.rstCode}`)),
      );
    },
  );
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  await waitForCalls(server.listener.responses, 1);
  assert.equal(server.inflight.count, 0);
  const result = server.shutdown(10_000);
  await goaway;
  // A slow client: the rest comes well after the two seconds the server
  // gives connections to close once no call runs.
  await new Promise((resolve) => setTimeout(resolve, goAwayNoticeMs + 1500));
  stream.end(frame.subarray(5));
  const [headers] = await trailers;
  assert.equal(headers["grpc-status"], "0");
  assert.match(Buffer.concat(chunks).toString(), /Hello, slow!/);
  assert.equal((await result).connectionsDestroyed, 0);
});

/** Resolves once `counted` has at least `n` entries (count or size), checked on each turn of the event loop. */
async function waitForCalls(
  counted: { count: number } | { size: number },
  n: number,
): Promise<void> {
  const value = () => ("count" in counted ? counted.count : counted.size);
  const deadline = Date.now() + 10_000;
  while (value() < n) {
    if (Date.now() > deadline) throw new Error("the call never started");
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function grpcFrame(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

test("a program that shuts the server down and returns exits on its own at once: the drain leaves no timer behind", {
  timeout: 60_000,
}, async (t) => {
  const child = startChild(t, process.execPath, [
    "--import",
    "tsx",
    "test/fixtures/shutdown-then-return.ts",
  ]);
  const line = await child.nextLine();
  const printedAt = performance.now();
  assert.equal(JSON.parse(line).callsAtStart, 0);
  // A timer of the drain's left running would hold the process for
  // goAwayNoticeMs (the close of idle HTTP/1.1 connections) or the grace
  // period (30 s here); the exit itself takes milliseconds.
  const exit = await within(
    child.exited,
    goAwayNoticeMs * 0.75,
    "the exit after the drain",
  );
  assert.equal(exit.code, 0, exit.stderr);
  t.diagnostic(
    `exited ${Math.round(performance.now() - printedAt)} ms after the drain`,
  );
});
