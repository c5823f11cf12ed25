import assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import * as net from "node:net";
import { test } from "node:test";
import { Greeter } from "../gen/helloworld_pb.js";
import { InflightCalls } from "../src/calls/inflight.js";
import { createGreeter } from "../src/services/greeter.js";
import { envelope, helloRequest, rawH2 } from "./support/raw.js";
import { startTestServer } from "./support/server.js";
import { assertTook, until } from "./support/wait.js";

// shutdown() (src/lifecycle/shutdown.ts) in process, where a test can see
// what the drain waits for. test/shutdown.test.ts drains real processes.

test("the drain waits for a handler still stopping after its client left, though its response is gone", async (t) => {
  const cleanupMs = 500;
  let cleanedUp = false;
  let yielded = 0;
  const server = await startTestServer(t, {
    routes: (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        async *streamHello() {
          try {
            for (;;) {
              yielded++;
              yield { message: "x".repeat(16 * 1024) };
            }
          } finally {
            // Slow cleanup, such as closing a cursor or flushing a buffer.
            await new Promise((resolve) => setTimeout(resolve, cleanupMs));
            cleanedUp = true;
          }
        },
      }),
  });
  const session = http2.connect(server.url);
  t.after(() => session.destroy());
  const stream = session.request({
    ":method": "POST",
    ":path": "/Greeter/StreamHello",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => {});
  // The client reads nothing: the server's writes wait for flow control.
  stream.pause();
  stream.end(envelope(helloRequest("slow reader")));
  const [response] = await new Promise<http2.ServerHttp2Stream[]>((resolve) => {
    const find = () => {
      const waiting = [...server.listener.responses].filter(
        (r) => "writableNeedDrain" in r && r.writableNeedDrain,
      ) as http2.ServerHttp2Stream[];
      if (waiting.length > 0) resolve(waiting);
      else setTimeout(find, 5);
    };
    find();
  });
  assert.ok(response && yielded > 1, "the handler waits for its client");
  // The client goes away while the handler waits to write: the response is
  // gone at once, the handler stops only after its cleanup.
  stream.close(http2.constants.NGHTTP2_CANCEL);
  await until("the response to go", () => server.listener.responses.size === 0);
  assert.equal(server.inflight.count, 1, "the handler is still stopping");
  const result = await server.shutdown(10_000);
  assert.equal(cleanedUp, true, "shutdown resolved before the handler stopped");
  assert.equal(result.callsAtStart, 1);
  assert.equal(result.callsEnded, 0);
  assert.ok(
    result.durationMs < 10_000,
    `drained in ${result.durationMs} ms, within the grace period`,
  );
});

/** How late a time limit may act on a loaded 2-core machine. */
const slackMs = 2_000;

test("a connection that never closes on its own is destroyed after the drain's last wait, and counted", async (t) => {
  const server = await startTestServer(t);
  // A TCP connection that has sent nothing: no session to GOAWAY, no
  // response to wait for, and it would wait 10 s for its first bytes.
  const socket = net.connect(server.port, "127.0.0.1");
  socket.on("error", () => {});
  await once(socket, "connect");
  await until("the server to see it", () => server.listener.sockets.size === 1);
  const closed = once(socket, "close");
  const started = performance.now();
  const result = await server.shutdown(5_000);
  const took = performance.now() - started;
  await closed;
  assert.equal(result.connectionsDestroyed, 1);
  assert.equal(result.callsAtStart, 0);
  assert.equal(result.callsEnded, 0);
  // It waited for connections to close on their own: lingerMs, the notice's
  // second plus one.
  assertTook(took, 2_000, 2_000 + slackMs, "shutdown");
  assertTook(result.durationMs, 2_000, took + 1, "its durationMs");
});

test("a call that outlives the grace period is ended with UNAVAILABLE, counted, and the drain takes the grace period and no more than its bounded steps", async (t) => {
  let started!: () => void;
  const running = new Promise<void>((resolve) => {
    started = resolve;
  });
  const server = await startTestServer(t, {
    routes: (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        async sayHello() {
          started();
          // Never answers on its own.
          return new Promise<never>(() => {});
        },
      }),
  });
  const call = rawH2(server.url, {
    headers: {
      ":path": "/Greeter/SayHello",
      "content-type": "application/grpc",
      te: "trailers",
    },
    body: [envelope(helloRequest("stuck"))],
  });
  await running;
  const begun = performance.now();
  const result = await server.shutdown(300);
  const took = performance.now() - begun;
  const res = await call;
  assert.equal(res.trailers["grpc-status"], "14", "UNAVAILABLE");
  assert.equal(
    decodeURIComponent(String(res.trailers["grpc-message"])),
    "the server is shutting down",
  );
  assert.equal(result.callsAtStart, 1);
  assert.equal(result.callsEnded, 1);
  assert.equal(result.connectionsDestroyed, 0);
  assertTook(took, 300, 300 + slackMs, "shutdown");
  assert.equal(server.inflight.count, 0);
});

test("an HTTP/2 response the drain finds not yet started is sent as it is, without the Connection: close that HTTP/1.1 gets (RFC 9113, 8.2.2 forbids it; Node would drop it with a warning)", async (t) => {
  const { promise: running, resolve: started } = Promise.withResolvers<void>();
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  const server = await startTestServer(t, {
    routes: (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        // Connect streaming goes through connect's handler and Node's
        // compatibility response, where the drain could set the header.
        async collectGreetings(requests) {
          for await (const _ of requests);
          started();
          await released;
          return { message: "Hello, late!" };
        },
      }),
  });
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on("warning", onWarning);
  t.after(() => process.off("warning", onWarning));
  const call = rawH2(server.url, {
    headers: {
      ":path": "/Greeter/CollectGreetings",
      "content-type": "application/connect+json",
    },
    body: [envelope(Buffer.from(JSON.stringify({ name: "late" })))],
  });
  await running;
  const result = server.shutdown(5000);
  release();
  const res = await call;
  assert.equal(res.status, 200);
  assert.match(res.body.toString(), /Hello, late!/);
  assert.equal(res.headers.connection, undefined);
  assert.equal((await result).callsEnded, 0);
  // process.emitWarning emits on the next tick.
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(warnings, []);
});

test("the calls in flight are idle when the last of them finishes, not the first", async () => {
  const inflight = new InflightCalls();
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  inflight.callStarted();
  inflight.callStarted();
  let idle = false;
  void inflight.whenIdle().then(() => {
    idle = true;
  });
  inflight.callFinished();
  await turn();
  assert.equal(idle, false, "one call still runs");
  assert.equal(inflight.count, 1);
  inflight.callFinished();
  await turn();
  assert.equal(idle, true);
  assert.equal(inflight.count, 0);
});
