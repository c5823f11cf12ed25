import assert from "node:assert/strict";
import { constants } from "node:os";
import { type TestContext, test } from "node:test";
import type { ShutdownResult } from "../src/lifecycle/shutdown.js";
import { exitOnSignals, type SignalHooks } from "../src/lifecycle/signals.js";

// exitOnSignals (src/lifecycle/signals.ts) in process: its signal listener is
// called as Node calls it, and process.exit is replaced by a recorder.
// test/shutdown.test.ts signals real server processes.

const result: ShutdownResult = {
  callsAtStart: 1,
  callsEnded: 0,
  connectionsDestroyed: 0,
  durationMs: 5,
};

interface Installed {
  /** The listener exitOnSignals added, as Node would call it. */
  signal(name: NodeJS.Signals): void;
  /** Codes process.exit was called with. */
  exits: number[];
  /** What the hooks and shutdown saw, in order. */
  events: string[];
  /** Settles the drain started by the first signal. */
  drained(outcome: ShutdownResult | Error): void;
  /** Resolves once process.exit has been called `n` times. */
  exited(n: number): Promise<void>;
}

function install(
  t: TestContext,
  hooks?: (events: string[]) => SignalHooks,
): Installed {
  const exits: number[] = [];
  const events: string[] = [];
  let waiters: (() => void)[] = [];
  t.mock.method(process, "exit", ((code?: number) => {
    exits.push(code ?? 0);
    for (const w of waiters) w();
    waiters = [];
  }) as typeof process.exit);
  let settle!: (outcome: ShutdownResult | Error) => void;
  const before = {
    SIGTERM: process.listeners("SIGTERM"),
    SIGINT: process.listeners("SIGINT"),
  };
  exitOnSignals(() => {
    events.push("shutdown");
    return new Promise<ShutdownResult>((resolve, reject) => {
      settle = (o) => (o instanceof Error ? reject(o) : resolve(o));
    });
  }, hooks?.(events) ?? {});
  const added = (name: "SIGTERM" | "SIGINT") =>
    process.listeners(name).filter((l) => !before[name].includes(l));
  const [onTerm] = added("SIGTERM");
  const [onInt] = added("SIGINT");
  assert.ok(onTerm, "exitOnSignals listens for SIGTERM");
  assert.equal(onInt, onTerm, "and for SIGINT, the same way");
  t.after(() => {
    for (const l of added("SIGTERM")) process.off("SIGTERM", l);
    for (const l of added("SIGINT")) process.off("SIGINT", l);
  });
  return {
    signal: (name) => (onTerm as (s: NodeJS.Signals) => void)(name),
    exits,
    events,
    drained: (o) => settle(o),
    exited: (n) =>
      exits.length >= n
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const check = () =>
              exits.length >= n ? resolve() : waiters.push(check);
            waiters.push(check);
          }),
  };
}

const recordingHooks =
  (log?: string[]) =>
  (events: string[]): SignalHooks => ({
    onSignal: (s) => events.push(`signal ${s}`),
    onDrained: async (r) => {
      events.push(`drained ${r.callsAtStart}`);
      // The process waits for what onDrained returns (a log flushed).
      await Promise.resolve();
      events.push("flushed");
      log?.push("flushed");
    },
    onForced: (s) => events.push(`forced ${s}`),
  });

test("the first SIGTERM drains, and the process exits 0 once the drain and its hook are done", async (t) => {
  const s = install(t, recordingHooks());
  s.signal("SIGTERM");
  assert.deepEqual(s.events, ["signal SIGTERM", "shutdown"]);
  assert.deepEqual(s.exits, []);
  s.drained(result);
  await s.exited(1);
  assert.deepEqual(s.events, [
    "signal SIGTERM",
    "shutdown",
    "drained 1",
    "flushed",
  ]);
  assert.deepEqual(s.exits, [0]);
});

test("SIGINT drains the same way, without hooks too", async (t) => {
  const s = install(t);
  s.signal("SIGINT");
  assert.deepEqual(s.events, ["shutdown"]);
  s.drained(result);
  await s.exited(1);
  assert.deepEqual(s.exits, [0]);
});

test("a second, different signal during the drain exits at once with 128 + its number", async (t) => {
  for (const [first, second] of [
    ["SIGTERM", "SIGINT"],
    ["SIGINT", "SIGTERM"],
  ] as const) {
    const s = install(t, recordingHooks());
    s.signal(first);
    s.signal(second);
    // The real process.exit does not return; what the recorder lets run after
    // it does not count.
    assert.equal(s.exits[0], 128 + constants.signals[second]);
    assert.deepEqual(s.events.slice(0, 3), [
      `signal ${first}`,
      "shutdown",
      `forced ${second}`,
    ]);
  }
});

test("the same signal again within half a second is its echo, not a second request; from half a second on it forces the exit", async (t) => {
  // The clock is the test's: the window's edges are exact.
  let now = 60_000;
  t.mock.method(performance, "now", () => now);
  const s = install(t, recordingHooks());
  s.signal("SIGINT");
  now += 499;
  s.signal("SIGINT");
  assert.deepEqual(s.exits, [], "an echo does not force the exit");
  assert.deepEqual(s.events, ["signal SIGINT", "shutdown"]);
  now += 1;
  s.signal("SIGINT");
  assert.equal(s.exits[0], 128 + constants.signals.SIGINT);
  assert.equal(s.events[2], "forced SIGINT");
});

test("a second signal forces the exit without hooks too", async (t) => {
  const s = install(t);
  s.signal("SIGTERM");
  s.signal("SIGINT");
  assert.equal(s.exits[0], 128 + constants.signals.SIGINT);
});

test("a drain that fails exits 1 and says why on stderr", async (t) => {
  const error = t.mock.method(console, "error", () => {});
  const s = install(t, recordingHooks());
  s.signal("SIGTERM");
  s.drained(new Error("the port would not close"));
  await s.exited(1);
  assert.deepEqual(s.exits, [1]);
  assert.equal(
    error.mock.calls[0]?.arguments[0],
    "connect-greeter: shutdown failed:",
  );
  assert.match(
    String(error.mock.calls[0]?.arguments[1]),
    /the port would not close/,
  );
  assert.ok(!s.events.includes("flushed"), "onDrained is for a finished drain");
});
