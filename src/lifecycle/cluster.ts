import cluster, { type Worker } from "node:cluster";

/** Options of cluster mode's primary process. */
export interface ClusterOptions {
  /** Worker processes to keep running; each runs the normal single-process server. */
  workers: number;
  /** Pause before restarting a worker that died after running a while, in milliseconds. @default 100 */
  restartDelayMs?: number;
  /** Longest pause between restarts of a worker that keeps dying, in milliseconds. @default 10000 */
  maxRestartDelayMs?: number;
  /** How long a worker must run for its death not to count as a crash loop, in milliseconds. @default 10000 */
  stableAfterMs?: number;
  /** Where the ready line goes. @default console.log */
  out?: (line: string) => void;
  /** Where notes about workers go (started, died, restarted). @default console.error */
  err?: (line: string) => void;
  /** Set to serving once every worker serves, and to not serving on a signal: the admin port's /readyz. @default none */
  readiness?: { set(serving: boolean): void };
}

/** The message a worker sends its primary once it serves. */
interface ReadyMessage {
  type: "connect-greeter:ready";
  /** The worker's ready line, as a single process would print it. */
  line: string;
}

// These run only in workers, and Stryker measures coverage in the test
// process only: it cannot run their mutants, which every cluster test would
// kill (each waits for the workers' ready message).
// Stryker disable all: not measured, runs only in the workers
/** Whether this process is a worker of cluster mode, whose primary prints the ready line. */
export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/**
 * In a worker: tell the primary this worker serves, with the ready line it
 * would have printed. (Ctrl-C reaches a worker twice, from the terminal and
 * from the primary; the shutdown path takes the echo as one signal.)
 */
export function reportReady(line: string): void {
  const message: ReadyMessage = { type: "connect-greeter:ready", line };
  process.send?.(message);
}
// Stryker restore all

/**
 * Run cluster mode's primary: fork `workers` processes that share the port
 * (node:cluster hands each new connection to the next worker), print the ready
 * line once all serve, restart a worker that dies unexpectedly, and on
 * SIGTERM or SIGINT forward the signal to every worker, each of which shuts
 * down as a single process would. Resolves with the exit code once every worker
 * has exited after a signal: 0 if all exited cleanly, else 1; or with a
 * worker's code if the first workers cannot start at all (a bad port, say),
 * since restarting them would only fail again.
 */
export function runCluster(options: ClusterOptions): Promise<number> {
  const out = options.out ?? console.log;
  const err = options.err ?? console.error;
  const baseDelay = options.restartDelayMs ?? 100;
  const maxDelay = options.maxRestartDelayMs ?? 10_000;
  const stableAfter = options.stableAfterMs ?? 10_000;
  const startedAt = new Map<Worker, number>();
  const ready = new Set<Worker>();
  const pendingRestarts = new Set<NodeJS.Timeout>();
  let everReady = false;
  let stopping = false;
  let failures = 0;
  let cleanExits = true;
  let exitCode: number | undefined;

  return new Promise<number>((resolve) => {
    const finishIfDone = () => {
      if (stopping && startedAt.size === 0) {
        for (const signal of signals) process.off(signal, onSignal);
        cluster.off("exit", onExit);
        resolve(exitCode ?? (cleanExits ? 0 : 1));
      }
    };
    const fork = () => {
      const worker = cluster.fork();
      startedAt.set(worker, Date.now());
      worker.on("message", (message: ReadyMessage) => {
        // Stryker disable next-line OptionalChaining: equivalent, only the server's own workers send messages, never null
        if (message?.type !== "connect-greeter:ready") return;
        ready.add(worker);
        if (everReady) {
          err(`connect-greeter: worker ${worker.process.pid} ready`);
        } else if (ready.size === options.workers) {
          everReady = true;
          options.readiness?.set(true);
          const pids = [...ready].map((w) => w.process.pid).join(", ");
          out(`${message.line} with ${options.workers} workers (pids ${pids})`);
        }
      });
    };
    const onExit = (worker: Worker, code: number, signal: string) => {
      const lived = Date.now() - (startedAt.get(worker) ?? Date.now());
      const wasReady = ready.delete(worker);
      startedAt.delete(worker);
      if (stopping) {
        if (code !== 0) cleanExits = false;
        finishIfDone();
        return;
      }
      const how = signal ? `signal ${signal}` : `code ${code}`;
      if (!everReady && !wasReady) {
        // The first workers cannot start (the port is taken, say): restarting would fail the same way.
        err(
          `connect-greeter: worker ${worker.process.pid} failed to start (${how})`,
        );
        stopping = true;
        exitCode = code || 1;
        // The others fail the same way (the port, say) and exit on their own;
        // the last to exit resolves the primary through the stopping path.
        // Stryker disable next-line CallExpression: speed-only, they exit on their own
        for (const w of startedAt.keys()) w.process.kill();
        // Stryker disable next-line CallExpression: speed-only, the last worker's exit finishes
        finishIfDone();
        return;
      }
      // Stryker disable next-line EqualityOperator: timing-only, a worker that lived exactly stableAfterMs
      failures = lived >= stableAfter ? 0 : failures + 1;
      const delay = Math.min(
        maxDelay,
        baseDelay * 2 ** Math.max(0, failures - 1),
      );
      err(
        `connect-greeter: worker ${worker.process.pid} died (${how}); restarting it in ${delay} ms`,
      );
      const timer = setTimeout(() => {
        // Stryker disable next-line CallExpression: memory-only, a fired timer left in the set until the signal
        pendingRestarts.delete(timer);
        // A signal cancels every pending restart (onSignal): a second guard.
        // Stryker disable next-line ConditionalExpression: unreachable, no restart fires while stopping
        if (!stopping) fork();
      }, delay);
      // Without it a signal cancels no restart, but the restart forks no one
      // (!stopping) and the primary still resolves once its workers are gone.
      // Stryker disable next-line CallExpression: equivalent, a restart firing while stopping forks no one
      pendingRestarts.add(timer);
    };
    const onSignal = (signal: NodeJS.Signals) => {
      stopping = true;
      options.readiness?.set(false);
      // A restart left to fire forks no one while stopping (!stopping).
      // Stryker disable next-line CallExpression: memory-only, spares a timer
      for (const timer of pendingRestarts) clearTimeout(timer);
      // Stryker disable next-line CallExpression: memory-only, the set is not read after a signal
      pendingRestarts.clear();
      // Each worker runs the single-process shutdown path; a second signal is forwarded too.
      for (const worker of startedAt.keys()) worker.process.kill(signal);
      // With workers running, the last to exit finishes; with none (all
      // waiting to restart), the signal has cancelled their restarts and the
      // exit of the worker that died has finished already.
      // Stryker disable next-line CallExpression: equivalent, an exit finishes
      finishIfDone();
    };
    options.readiness?.set(false);
    cluster.on("exit", onExit);
    for (const signal of signals) process.on(signal, onSignal);
    for (let i = 0; i < options.workers; i++) fork();
  });
}

const signals = ["SIGTERM", "SIGINT"] as const;
