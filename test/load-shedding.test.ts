import assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import { type TestContext, test } from "node:test";
import { Worker } from "node:worker_threads";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createClient,
} from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus,
} from "../gen/health/v1/health_pb.js";
import { Greeter } from "../gen/helloworld_pb.js";
import { loadConfig } from "../src/config.js";
import type { RunningServer } from "../src/server.js";
import { createGreeter } from "../src/services/greeter.js";
import { createHealth } from "../src/services/health.js";
import { ServingStatus } from "../src/services/serving-status.js";
import { RawH2Client } from "./support/h2-frames.js";
import {
  envelope,
  type GrpcCallResult,
  grpcCall,
  grpcHeaders,
  helloRequest,
} from "./support/raw.js";
import { startTestServer } from "./support/server.js";
import { testTransport } from "./support/transports.js";
import { until, within } from "./support/wait.js";

/**
 * Load shedding (src/calls/load-shedding.ts): past SHED_CALLS_IN_FLIGHT
 * calls, or with the event loop SHED_EVENT_LOOP_DELAY_MS late, a new call is
 * refused at once with UNAVAILABLE, on both paths; health checks are never
 * refused and say SERVING. The benchmark (bench/overload.ts) measures what
 * it does for the calls admitted under load.
 */

/** The health service's Check request for the whole server (service ""), enveloped. */
const healthCheck = envelope(new Uint8Array(0));

/**
 * The Greeter with a SayHello that, for the name "busy", holds the event
 * loop for `busyMs` before it answers: a call that only computes.
 */
function busyGreeter(busyMs: number) {
  return (router: ConnectRouter) => {
    const greeter = createGreeter({ streamIntervalMs: 0 });
    router.service(Greeter, {
      ...greeter,
      sayHello(req, ctx) {
        if (req.name === "busy") {
          const end = performance.now() + busyMs;
          while (performance.now() < end);
        }
        return greeter.sayHello(req, ctx);
      },
    });
    router.service(
      Health,
      createHealth({ status: new ServingStatus(), services: ["Greeter"] }),
    );
  };
}

function h2Session(
  t: TestContext,
  server: RunningServer,
): http2.ClientHttp2Session {
  const session = http2.connect(server.url);
  session.on("error", () => {});
  t.after(() => session.destroy());
  return session;
}

async function shedCount(
  server: RunningServer,
  reason: string,
): Promise<number> {
  const text = await (await fetch(server.metricsUrl as string)).text();
  const m = new RegExp(
    `^connect_greeter_calls_shed_total\\{reason="${reason}"\\} (\\d+)$`,
    "m",
  ).exec(text);
  return Number(m?.[1] ?? 0);
}

test("SHED_CALLS_IN_FLIGHT and SHED_EVENT_LOOP_DELAY_MS are off by default", () => {
  const config = loadConfig([], {});
  assert.equal(config.shedCallsInFlight, 0);
  assert.equal(config.shedEventLoopDelayMs, 0);
});

for (const engine of [true, false]) {
  const path = engine ? "the engine" : "connect's handlers";

  test(`with SHED_CALLS_IN_FLIGHT calls running, a new call is refused at once with UNAVAILABLE over gRPC and Connect, health still answers SERVING, and a call is served again once one ends (${path})`, async (t: TestContext) => {
    const server = await startTestServer(t, { shedCallsInFlight: 2, engine });
    const holder = await RawH2Client.connect(server.url);
    t.after(() => holder.socket.destroy());
    holder.open(1, "/Greeter/Chat", grpcHeaders);
    holder.open(3, "/Greeter/Chat", grpcHeaders);
    await until("two calls in flight", () => server.inflight.count === 2);

    const grpc = createClient(Greeter, testTransport("grpc", "2", server.url));
    const connect = createClient(
      Greeter,
      testTransport("connect", "1.1", server.url),
    );
    for (const client of [grpc, connect]) {
      const started = performance.now();
      const refused = await client.sayHello({ name: "x" }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      const tookMs = performance.now() - started;
      assert.ok(refused, "refused");
      assert.equal(refused.code, Code.Unavailable);
      assert.equal(
        refused.rawMessage,
        "the server is overloaded: too many calls in flight",
      );
      assert.ok(tookMs < 500, `answered in ${tookMs} ms`);
    }
    assert.equal(await shedCount(server, "calls_in_flight"), 2);
    assert.equal(
      server.inflight.count,
      2,
      "the calls running were not touched",
    );

    const answer = await grpcCall(
      h2Session(t, server),
      "/grpc.health.v1.Health/Check",
      healthCheck,
    );
    assert.equal(answer.status, "0");
    // HealthCheckResponse{status: SERVING}: field 1, varint 1.
    assert.equal(
      answer.data,
      envelope(
        new Uint8Array([0x08, HealthCheckResponse_ServingStatus.SERVING]),
      ).toString("latin1"),
    );

    holder.socket.destroy();
    await until("no call in flight", () => server.inflight.count === 0);
    assert.equal(
      (await grpc.sayHello({ name: "again" })).message,
      "Hello, again!",
    );
    assert.equal(await shedCount(server, "calls_in_flight"), 2);
  });

  test(`with the event loop held past SHED_EVENT_LOOP_DELAY_MS, the calls that queued meanwhile are refused at once with UNAVAILABLE, health still answers SERVING, and calls are served again once the loop keeps its time (${path})`, async (t: TestContext) => {
    const server = await startTestServer(t, {
      shedEventLoopDelayMs: 50,
      engine,
      routes: busyGreeter(busyMs),
    });
    // The client runs on a thread of its own, so that it sends while the
    // server's event loop is held: the busy call first, and 50 ms later,
    // on the same connection, the others in one write, which the server
    // reads once the busy call's handler returns, its loop 150 ms late.
    const results = await runWorker(server.url, busyMs);
    assert.deepEqual(results.busy, {
      status: "0",
      message: "",
      data: envelope(reply("Hello, busy!")).toString("latin1"),
    });
    for (const refused of [results.after, results.later]) {
      assert.deepEqual(
        [refused?.status, refused?.message],
        [
          String(Code.Unavailable),
          "the server is overloaded: its event loop is late",
        ],
      );
    }
    assert.equal(results.health?.status, "0", "health answers");
    assert.equal(await shedCount(server, "event_loop_delay"), 2);
    // Each mark on time gives back 5 % of the calls: all of them within
    // some 100 ms of an idle loop. Calls until one is served, for at most 1 s.
    const session = h2Session(t, server);
    const started = performance.now();
    let next = "";
    while (next !== "0" && performance.now() - started < 1000) {
      next = (
        await grpcCall(
          session,
          "/Greeter/SayHello",
          envelope(helloRequest("next")),
        )
      ).status;
    }
    assert.equal(next, "0", "served again once the loop is on time");
  });
}

const busyMs = 200;

/** The calls the worker of `test/load-shedding/client.ts` made, by name, and what each got. */
type WorkerResults = Record<string, GrpcCallResult | undefined>;

async function runWorker(url: string, holdMs: number): Promise<WorkerResults> {
  const worker = new Worker(
    new URL("./load-shedding/client.ts", import.meta.url),
    { workerData: { url, holdMs }, execArgv: ["--import", "tsx"] },
  );
  const [results] = (await within(
    once(worker, "message"),
    holdMs + 5000,
    "the worker's calls",
  )) as [WorkerResults];
  await worker.terminate();
  return results;
}

/** A HelloReply with `message`, in protobuf. */
function reply(message: string): Uint8Array {
  return new Uint8Array([0x0a, message.length, ...Buffer.from(message)]);
}
