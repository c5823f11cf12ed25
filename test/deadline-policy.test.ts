import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createClient,
  type HandlerContext,
} from "@connectrpc/connect";
import { Greeter } from "../gen/helloworld_pb.js";
import { DeadlinePolicy } from "../src/calls/deadline-policy.js";
import { createGreeter } from "../src/services/greeter.js";
import { LogCapture } from "./support/log-capture.js";
import { startTestServer } from "./support/server.js";
import { type Protocol, testTransport } from "./support/transports.js";
import { assertTook } from "./support/wait.js";

/**
 * The deadline policy (src/calls/deadline-policy.ts): MAX_DEADLINE_MS
 * shortens longer deadlines (and bounds calls that send none, when there is
 * no default), DEFAULT_DEADLINE_MS gives one to calls that send none. Each
 * case runs on both paths, the engine and connect's handlers, over gRPC and
 * Connect: the handler sees the deadline the policy set, the client gets
 * DEADLINE_EXCEEDED when it passes, and the call's log line says so.
 */

/** How late a timer may fire on a loaded two-core machine. */
const slackMs = 600;
/** Longer than any call here may take. */
const boundMs = 2000;

/** A Greeter whose SayHello waits for its signal and says what deadline it saw. */
function waitingGreeter(seen: (number | undefined)[]) {
  return (router: ConnectRouter) =>
    router.service(Greeter, {
      ...createGreeter({ streamIntervalMs: 0 }),
      async sayHello(req, ctx: HandlerContext) {
        seen.push(ctx.timeoutMs());
        if (req.name === "quick") return { message: "quick" };
        await new Promise((resolve) =>
          ctx.signal.addEventListener("abort", resolve, { once: true }),
        );
        throw ConnectError.from(ctx.signal.reason);
      },
    });
}

interface Outcome {
  /** The deadline the handler saw at its start, rounded to 100 ms. */
  seen: number | undefined;
  code: string;
  tookMs: number;
  /** The call's log line: its deadline fields. */
  logged: Record<string, unknown>;
}

async function call(
  t: TestContext,
  options: { maxDeadlineMs?: number; defaultDeadlineMs?: number },
  engine: boolean,
  protocol: Protocol,
  timeoutMs: number | undefined,
  name = "wait",
): Promise<Outcome> {
  const seen: (number | undefined)[] = [];
  const log = new LogCapture();
  const server = await startTestServer(t, {
    ...options,
    engine,
    routes: waitingGreeter(seen),
    logLevel: "info",
    logDestination: log.destination,
  });
  const client = createClient(
    Greeter,
    testTransport(protocol, "2", server.url),
  );
  const started = performance.now();
  // A bound of the test's own, so that a call the policy failed to end
  // fails the test at once (as CANCELED) instead of hanging.
  const signal = AbortSignal.timeout(boundMs);
  const code = await client
    .sayHello(
      { name },
      timeoutMs === undefined ? { signal } : { timeoutMs, signal },
    )
    .then(
      () => "ok",
      (e: unknown) => Code[ConnectError.from(e).code] as string,
    );
  const tookMs = performance.now() - started;
  const line = await log.waitFor((l) => l.msg === "finished call");
  const { deadlineMs, deadlineSetBy, requestedDeadlineMs } = line;
  assert.equal(server.engine.calls, engine ? 1 : 0, "the path asked for");
  const at = seen[0];
  return {
    seen: at === undefined ? undefined : Math.round(at / 100) * 100,
    code,
    tookMs,
    logged: Object.fromEntries(
      Object.entries({ deadlineMs, deadlineSetBy, requestedDeadlineMs }).filter(
        ([, v]) => v !== undefined,
      ),
    ),
  };
}

for (const engine of [true, false]) {
  for (const protocol of ["grpc", "connect"] as const) {
    const on = `${engine ? "the engine" : "connect's handlers"}, ${protocol}`;

    test(`a call that sends no deadline gets DEFAULT_DEADLINE_MS: its handler sees it, the client gets DEADLINE_EXCEEDED when it passes, and the log line says the default set it (${on})`, async (t) => {
      const got = await call(
        t,
        { defaultDeadlineMs: 300 },
        engine,
        protocol,
        undefined,
      );
      assertTook(got.tookMs, 300, 300 + slackMs, "the call");
      assert.deepEqual(
        { ...got, tookMs: 0 },
        {
          seen: 300,
          code: "DeadlineExceeded",
          tookMs: 0,
          logged: { deadlineMs: 300, deadlineSetBy: "default" },
        },
      );
    });

    test(`a deadline longer than MAX_DEADLINE_MS is shortened to it and logged with the one asked for; a shorter one is the client's own, not logged (${on})`, async (t) => {
      const long = await call(
        t,
        { maxDeadlineMs: 300, defaultDeadlineMs: 200 },
        engine,
        protocol,
        60_000,
      );
      assertTook(long.tookMs, 300, 300 + slackMs, "the shortened call");
      assert.deepEqual(
        { ...long, tookMs: 0 },
        {
          seen: 300,
          code: "DeadlineExceeded",
          tookMs: 0,
          logged: {
            deadlineMs: 300,
            deadlineSetBy: "max",
            requestedDeadlineMs: 60_000,
          },
        },
      );
      const short = await call(
        t,
        { maxDeadlineMs: 300 },
        engine,
        protocol,
        100,
      );
      assertTook(short.tookMs, 100, 100 + slackMs, "the client's own deadline");
      assert.deepEqual(
        { ...short, tookMs: 0 },
        {
          seen: 100,
          code: "DeadlineExceeded",
          tookMs: 0,
          logged: {},
        },
      );
    });

    test(`with MAX_DEADLINE_MS and no default, a call that sends no deadline gets the maximum; a quick one succeeds within it (${on})`, async (t) => {
      const none = await call(
        t,
        { maxDeadlineMs: 300 },
        engine,
        protocol,
        undefined,
      );
      assert.deepEqual(
        { ...none, tookMs: 0 },
        {
          seen: 300,
          code: "DeadlineExceeded",
          tookMs: 0,
          logged: { deadlineMs: 300, deadlineSetBy: "max" },
        },
      );
      const quick = await call(
        t,
        { maxDeadlineMs: 300 },
        engine,
        protocol,
        undefined,
        "quick",
      );
      assert.deepEqual(
        { ...quick, tookMs: 0 },
        {
          seen: 300,
          code: "ok",
          tookMs: 0,
          logged: { deadlineMs: 300, deadlineSetBy: "max" },
        },
      );
    });
  }
}

test("with neither setting (the default) a call keeps the deadline it sent, or none, and nothing is logged about it", async (t) => {
  for (const engine of [true, false]) {
    const none = await call(t, {}, engine, "grpc", undefined, "quick");
    assert.deepEqual(
      { ...none, tookMs: 0 },
      {
        seen: undefined,
        code: "ok",
        tookMs: 0,
        logged: {},
      },
    );
    const own = await call(t, {}, engine, "grpc", 200);
    assert.deepEqual(
      { ...own, tookMs: 0 },
      {
        seen: 200,
        code: "DeadlineExceeded",
        tookMs: 0,
        logged: {},
      },
    );
  }
  assert.equal(DeadlinePolicy.of(0, 0), undefined, "no policy: no cost");
});

test("the policy rewrites the timeout header as each protocol writes it, and leaves one that does not parse for the protocol to refuse", () => {
  const policy = new DeadlinePolicy(5000, 1000);
  const grpc: Record<string, string> = { "grpc-timeout": "2H" };
  assert.deepEqual(policy.apply(grpc, "grpc"), {
    deadlineMs: 5000,
    setBy: "max",
    requestedMs: 7_200_000,
  });
  assert.equal(grpc["grpc-timeout"], "5000m");
  const web: Record<string, string> = {};
  assert.deepEqual(policy.apply(web, "grpc-web"), {
    deadlineMs: 1000,
    setBy: "default",
    requestedMs: undefined,
  });
  assert.equal(web["grpc-timeout"], "1000m");
  const connect: Record<string, string> = { "connect-timeout-ms": "9000" };
  policy.apply(connect, "connect");
  assert.equal(connect["connect-timeout-ms"], "5000");
  const kept: Record<string, string> = { "grpc-timeout": "4S" };
  assert.equal(policy.apply(kept, "grpc"), undefined);
  assert.equal(kept["grpc-timeout"], "4S");
  const bad: Record<string, string> = { "grpc-timeout": "soon" };
  assert.equal(policy.apply(bad, "grpc"), undefined);
  assert.equal(bad["grpc-timeout"], "soon");
});
