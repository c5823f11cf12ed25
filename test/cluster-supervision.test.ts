import assert from "node:assert/strict";
import cluster, { type Worker } from "node:cluster";
import { once } from "node:events";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type ClusterOptions, runCluster } from "../src/lifecycle/cluster.js";
import { assertTook, until } from "./support/wait.js";

// Cluster mode's primary (runCluster) in this process, with stand-in workers
// (test/fixtures/cluster-worker.ts) it forks for real: when it reports ready,
// how it restarts a worker that dies, how fast, and how it stops. (test/cluster.test.ts
// runs the real server in cluster mode, from outside.)

cluster.setupPrimary({
  exec: fileURLToPath(new URL("./fixtures/cluster-worker.ts", import.meta.url)),
  execArgv: ["--import", "tsx"],
  silent: true,
});

/** What the worker fixture reads from its environment, for one test. */
type WorkerEnv = Partial<
  Record<
    "CLUSTER_TEST_FAIL" | "CLUSTER_TEST_TERM_CODE" | "CLUSTER_TEST_INT_CODE",
    string
  >
>;

interface Primary {
  /** runCluster's promise: the exit code. */
  readonly done: Promise<number>;
  /** The ready lines and notes, as printed. */
  readonly out: string[];
  readonly err: string[];
  /** When each note was printed (performance.now()), by index in `err`. */
  readonly errAt: number[];
  /** When each worker was forked. */
  readonly forks: { worker: Worker; at: number }[];
  /** What a signal to the primary does: runCluster's own listener, called as Node would. */
  signal(name: "SIGTERM" | "SIGINT"): void;
}

/** Workers of this process that are still running. */
function workers(): Worker[] {
  return Object.values(cluster.workers ?? {}).filter(
    (w): w is Worker => w !== undefined && !w.isDead(),
  );
}

function startPrimary(
  t: TestContext,
  options: Omit<ClusterOptions, "out" | "err">,
  env: WorkerEnv = {},
): Primary {
  // The workers read `env` from this process's environment, which forks copy.
  const saved = Object.keys(env).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, env);
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  const before = {
    SIGTERM: process.listeners("SIGTERM"),
    SIGINT: process.listeners("SIGINT"),
  };
  const out: string[] = [];
  const err: string[] = [];
  const errAt: number[] = [];
  const forks: Primary["forks"] = [];
  const onFork = (worker: Worker) =>
    forks.push({ worker, at: performance.now() });
  cluster.on("fork", onFork);
  const done = runCluster({
    ...options,
    out: (line) => out.push(line),
    err: (line) => {
      err.push(line);
      errAt.push(performance.now());
    },
  });
  const added = (name: "SIGTERM" | "SIGINT") =>
    process.listeners(name).filter((l) => !before[name].includes(l));
  const [onTerm] = added("SIGTERM");
  const [onInt] = added("SIGINT");
  assert.ok(onTerm, "runCluster listens for SIGTERM");
  assert.equal(onInt, onTerm, "and for SIGINT, the same way");
  done.finally(restore).catch(() => {});
  t.after(async () => {
    restore();
    cluster.off("fork", onFork);
    const left = workers();
    for (const w of left) w.process.kill("SIGKILL");
    await Promise.all(
      left.map((w) => (w.isDead() ? undefined : once(w, "exit"))),
    );
    // A primary that did not finish still listens; not for the next test.
    for (const l of added("SIGTERM")) process.off("SIGTERM", l);
    for (const l of added("SIGINT")) process.off("SIGINT", l);
  });
  return {
    done,
    out,
    err,
    errAt,
    forks,
    signal: (name) => (onTerm as (s: NodeJS.Signals) => void)(name),
  };
}

/** The listeners a finished primary leaves behind: none of its own. */
function assertCleanedUp(before: {
  term: number;
  int: number;
  exit: number;
}): void {
  assert.equal(process.listenerCount("SIGTERM"), before.term);
  assert.equal(process.listenerCount("SIGINT"), before.int);
  assert.equal(cluster.listenerCount("exit"), before.exit);
}

const counts = () => ({
  term: process.listenerCount("SIGTERM"),
  int: process.listenerCount("SIGINT"),
  exit: cluster.listenerCount("exit"),
});

test("the ready line comes once every worker is ready, naming them all; SIGTERM stops them and the primary resolves 0", async (t) => {
  const before = counts();
  const p = startPrimary(t, { workers: 2 });
  const line = await until("the ready line", () => p.out[0]);
  const pids = p.forks.map((f) => f.worker.process.pid);
  assert.equal(pids.length, 2);
  const m = /^ready line of (\d+) with 2 workers \(pids (\d+), (\d+)\)$/.exec(
    line,
  );
  assert.ok(m, line);
  assert.ok(pids.includes(Number(m[1])));
  assert.deepEqual(new Set([Number(m[2]), Number(m[3])]), new Set(pids));
  assert.deepEqual(p.err, [], "no notes");
  p.signal("SIGTERM");
  assert.equal(await p.done, 0);
  assert.deepEqual(workers(), []);
  assert.equal(p.out.length, 1);
  assertCleanedUp(before);
});

test("a worker that dies after the cluster is ready is restarted after the restart delay, and its replacement's readiness is noted", async (t) => {
  const delay = 300;
  const p = startPrimary(t, { workers: 2, restartDelayMs: delay });
  await until("the ready line", () => p.out[0]);
  const victim = p.forks[0]?.worker as Worker;
  victim.send({ exit: 3 });
  const died = await until("the death note", () =>
    p.err.findIndex((l) => l.includes("died")) >= 0
      ? p.err.findIndex((l) => l.includes("died"))
      : undefined,
  );
  assert.equal(
    p.err[died],
    `connect-greeter: worker ${victim.process.pid} died (code 3); restarting it in ${delay} ms`,
  );
  const replacement = await until("the replacement", () => p.forks[2]);
  const waited = replacement.at - (p.errAt[died] as number);
  // A loaded machine may fire the timer late, never more than a few ms early.
  assertTook(waited, delay, delay + 2_000, "the restart");
  const note = await until("the ready note", () => p.err[died + 1]);
  assert.equal(
    note,
    `connect-greeter: worker ${replacement.worker.process.pid} ready`,
  );
  assert.equal(p.out.length, 1, "the ready line is printed once");
  p.signal("SIGTERM");
  assert.equal(await p.done, 0);
});

test("a worker killed by a signal is noted with the signal, and restarted", async (t) => {
  const p = startPrimary(t, { workers: 1, restartDelayMs: 10 });
  await until("the ready line", () => p.out[0]);
  const victim = p.forks[0]?.worker as Worker;
  victim.process.kill("SIGKILL");
  const replacement = await until("the replacement", () => p.forks[1]);
  // A worker signalled before it handles signals dies of it: not clean.
  await until("the replacement's ready note", () =>
    p.err.find(
      (l) =>
        l === `connect-greeter: worker ${replacement.worker.process.pid} ready`,
    ),
  );
  assert.equal(
    p.err[0],
    `connect-greeter: worker ${victim.process.pid} died (signal SIGKILL); restarting it in 10 ms`,
  );
  p.signal("SIGTERM");
  assert.equal(await p.done, 0);
});

test("a worker that keeps dying is restarted after doubling delays, up to the longest; one that ran long enough starts over", async (t) => {
  const delays = async (p: Primary, deaths: number): Promise<number[]> => {
    await until("the ready line", () => p.out[0]);
    const seen: number[] = [];
    for (let i = 0; i < deaths; i++) {
      const current = p.forks.at(-1)?.worker as Worker;
      await until("the worker's ready note or line", () =>
        i === 0 ||
        p.err.some(
          (l) => l === `connect-greeter: worker ${current.process.pid} ready`,
        )
          ? true
          : undefined,
      );
      current.send({ exit: 1 });
      const note = await until("its death note", () =>
        p.err.find((l) =>
          l.startsWith(`connect-greeter: worker ${current.process.pid} died`),
        ),
      );
      seen.push(Number(/restarting it in (\d+) ms/.exec(note)?.[1]));
      await until("its replacement", () => p.forks[i + 1]);
    }
    const last = p.forks.at(-1)?.worker as Worker;
    await until("the last replacement's ready note", () =>
      p.err.find(
        (l) => l === `connect-greeter: worker ${last.process.pid} ready`,
      ),
    );
    p.signal("SIGTERM");
    assert.equal(await p.done, 0);
    return seen;
  };
  const crashLoop = startPrimary(t, {
    workers: 1,
    restartDelayMs: 20,
    maxRestartDelayMs: 70,
    stableAfterMs: 60_000,
  });
  assert.deepEqual(await delays(crashLoop, 4), [20, 40, 70, 70]);
  const stable = startPrimary(t, {
    workers: 1,
    restartDelayMs: 20,
    maxRestartDelayMs: 70,
    stableAfterMs: 1,
  });
  assert.deepEqual(await delays(stable, 3), [20, 20, 20]);
});

test("without options a restart waits 100 ms, doubling while the worker keeps dying, and lines go to the console", async (t) => {
  const log = t.mock.method(console, "log", () => {});
  const error = t.mock.method(console, "error", () => {});
  const before = counts();
  const forks: Worker[] = [];
  const onFork = (w: Worker) => forks.push(w);
  cluster.on("fork", onFork);
  t.after(async () => {
    cluster.off("fork", onFork);
    for (const w of workers()) {
      w.process.kill("SIGKILL");
      await once(w, "exit");
    }
  });
  const terms = process.listeners("SIGTERM");
  const done = runCluster({ workers: 1 });
  const [onSignal] = process
    .listeners("SIGTERM")
    .filter((l) => !terms.includes(l));
  await until("the ready line", () => log.mock.calls[0]);
  for (const expected of [100, 200]) {
    const worker = forks.at(-1) as Worker;
    if (expected !== 100) {
      await until("the replacement's ready note", () =>
        error.mock.calls.some(
          (c) =>
            c.arguments[0] ===
            `connect-greeter: worker ${worker.process.pid} ready`,
        )
          ? true
          : undefined,
      );
    }
    worker.send({ exit: 1 });
    const note = await until("the death note", () =>
      error.mock.calls.find((c) =>
        String(c.arguments[0]).includes(`${worker.process.pid} died`),
      ),
    );
    assert.equal(
      note.arguments[0],
      `connect-greeter: worker ${worker.process.pid} died (code 1); restarting it in ${expected} ms`,
    );
    await until("the replacement", () =>
      forks.length > (expected === 100 ? 1 : 2) ? true : undefined,
    );
  }
  const last = forks.at(-1) as Worker;
  await until("the last replacement's ready note", () =>
    error.mock.calls.find(
      (c) =>
        c.arguments[0] === `connect-greeter: worker ${last.process.pid} ready`,
    ),
  );
  assert.match(
    String(log.mock.calls[0]?.arguments[0]),
    /^ready line of \d+ with 1 workers \(pids \d+\)$/,
  );
  (onSignal as (s: NodeJS.Signals) => void)("SIGTERM");
  assert.equal(await done, 0);
  assertCleanedUp(before);
});

test("workers that cannot start make the primary resolve with their exit code, without restarting them", async (t) => {
  for (const [code, expected] of [
    ["7", 7],
    // A worker that exits 0 before it is ready still failed.
    ["0", 1],
  ] as const) {
    const before = counts();
    const p = startPrimary(
      t,
      { workers: 2, restartDelayMs: 10 },
      { CLUSTER_TEST_FAIL: code },
    );
    assert.equal(await p.done, expected);
    assert.equal(p.forks.length, 2, "no worker was restarted");
    assert.deepEqual(p.out, []);
    assert.match(
      p.err[0] ?? "",
      new RegExp(
        `^connect-greeter: worker \\d+ failed to start \\(code ${code}\\)$`,
      ),
    );
    assert.ok(!p.err.some((l) => l.includes("restarting")), p.err.join("\n"));
    await until("every worker gone", () =>
      workers().length === 0 ? true : undefined,
    );
    assertCleanedUp(before);
  }
});

test("the signal the primary gets is the one each worker gets, and a worker that stops uncleanly makes the primary resolve 1", async (t) => {
  const env = { CLUSTER_TEST_TERM_CODE: "9", CLUSTER_TEST_INT_CODE: "0" };
  const int = startPrimary(t, { workers: 2 }, env);
  await until("the ready line", () => int.out[0]);
  int.signal("SIGINT");
  assert.equal(await int.done, 0, "the workers got SIGINT");
  const term = startPrimary(t, { workers: 2 }, env);
  await until("the ready line", () => term.out[0]);
  term.signal("SIGTERM");
  assert.equal(await term.done, 1, "a worker exited 9 on SIGTERM");
});

test("a signal cancels a pending restart: the primary resolves at once and forks no one", async (t) => {
  const p = startPrimary(t, { workers: 2, restartDelayMs: 60_000 });
  await until("the ready line", () => p.out[0]);
  const victim = p.forks[0]?.worker as Worker;
  victim.send({ exit: 1 });
  await until("the death note", () => p.err.find((l) => l.includes("died")));
  const started = performance.now();
  p.signal("SIGTERM");
  assert.equal(await p.done, 0);
  assert.ok(performance.now() - started < 20_000);
  assert.equal(p.forks.length, 2, "the pending restart did not fork");
});

test("a replacement that dies before it is ready, once the cluster has been, is restarted too: only the first workers' failure to start stops the primary", async (t) => {
  const p = startPrimary(t, { workers: 1, restartDelayMs: 200 });
  await until("the ready line", () => p.out[0]);
  // Read by the fixture worker as it starts: the replacement fails, as a
  // worker whose dependency is down would.
  t.after(() => {
    delete process.env.CLUSTER_TEST_FAIL;
  });
  process.env.CLUSTER_TEST_FAIL = "3";
  const first = p.forks[0];
  assert.ok(first);
  first.worker.send({ exit: 1 });
  const note = await until("the replacement's end", () =>
    p.err.find((l) => /\(code 3\)/.test(l)),
  );
  // The next restart waits 400 ms (the delay doubled): time to let it start.
  delete process.env.CLUSTER_TEST_FAIL;
  assert.match(note, /died \(code 3\); restarting it in 400 ms$/);
  await until("a replacement that is ready", () =>
    p.err.find((l) => / ready$/.test(l)),
  );
  p.signal("SIGTERM");
  assert.equal(await p.done, 0);
});
