import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";

/** The repository root, where npm scripts run. */
export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

/** How a child process ended, with everything it printed. */
export interface Exit {
  /** Exit code, or null when a signal ended it. */
  readonly code: number | null;
  /** The signal that ended it, or null. */
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A child process started for a test, in its own process group. */
export interface Child {
  readonly process: ChildProcess;
  /** Resolves with the next line of stdout; rejects if stdout ends first. */
  nextLine(): Promise<string>;
  /** Resolves once the process has exited and its output is read. */
  readonly exited: Promise<Exit>;
}

/**
 * Start a process in its own process group (cwd: the repository root unless
 * given), so that
 * the npm → node chain can be signalled and torn down as one; the
 * whole group is killed after the test, whatever happened.
 */
export function startChild(
  t: TestContext,
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {},
): Child {
  const child = spawn(command, args, {
    cwd: options.cwd ?? repoRoot,
    env: options.env ?? process.env,
    detached: true,
    stdio: "pipe",
  });
  t.after(() => {
    // The whole group, even after the leader exited: a grandchild may linger.
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  });
  let stdout = "";
  let stderr = "";
  let pending = "";
  const lines: string[] = [];
  const waiters: { resolve(l: string): void; reject(e: Error): void }[] = [];
  let ended = false;
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    stdout += chunk;
    pending += chunk;
    let i = pending.indexOf("\n");
    while (i >= 0) {
      const line = pending.slice(0, i);
      pending = pending.slice(i + 1);
      const waiter = waiters.shift();
      if (waiter) waiter.resolve(line);
      else lines.push(line);
      i = pending.indexOf("\n");
    }
  });
  child.stdout.once("end", () => {
    ended = true;
    for (const w of waiters.splice(0)) {
      w.reject(new Error(`stdout ended; stderr: ${stderr}`));
    }
  });
  child.stderr.on("data", (chunk: string) => {
    stderr += chunk;
  });
  if (options.input !== undefined) {
    // A child that exits without reading its stdin (echo, curl) makes this
    // write fail with EPIPE; that is its business, not a test failure.
    child.stdin.on("error", () => {});
    child.stdin.end(options.input);
  }
  const exited = once(child, "close").then(([code, signal]) => {
    return {
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
      stdout,
      stderr,
    };
  });
  return {
    process: child,
    exited,
    nextLine() {
      const line = lines.shift();
      if (line !== undefined) return Promise.resolve(line);
      if (ended) {
        return Promise.reject(new Error(`stdout ended; stderr: ${stderr}`));
      }
      return new Promise((resolve, reject) =>
        waiters.push({ resolve, reject }),
      );
    },
  };
}

/** Start the client CLI as a user would (`npm run --silent client -- ...`), to talk to it on stdin. */
export function startClient(
  t: TestContext,
  args: readonly string[],
  options: { input?: string } = {},
): Child {
  return startChild(
    t,
    "npm",
    ["run", "--silent", "client", "--", ...args],
    options,
  );
}

/** Run the client CLI as a user would (`npm run --silent client -- ...`) and wait for it to exit. */
export function runClient(
  t: TestContext,
  args: readonly string[],
  options: { input?: string } = {},
): Promise<Exit> {
  // Without input the client must not wait on the test runner's stdin.
  return startClient(t, args, { input: options.input ?? "" }).exited;
}
