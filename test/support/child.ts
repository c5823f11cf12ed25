import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { Arrivals } from "./arrivals.js";

/** The repository root, where npm scripts run (with a trailing slash). */
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

export interface ChildOptions {
  /** Its whole environment; the test runner's by default. */
  env?: NodeJS.ProcessEnv;
  /** Written to its stdin, which is then closed; without it stdin stays open for the test to write. */
  input?: string;
  /** The repository root by default. */
  cwd?: string;
}

/** A child process started for a test, in a process group of its own. */
export interface Child {
  readonly process: ChildProcess;
  /**
   * Its stdout, line by line, printed and to come: `lines.first(match)`.
   * Ends when it has exited and its output is closed.
   */
  readonly lines: Arrivals<string>;
  /** The next line of stdout that `nextLine` has not given yet; fails if the output ends first. */
  nextLine(): Promise<string>;
  /** What it printed on stdout so far. */
  stdout(): string;
  /** What it printed on stderr so far. */
  stderr(): string;
  /**
   * Resolves once it has exited and its stdout and stderr are closed (every
   * process holding them, npm's children too, is gone), with all it printed.
   */
  readonly exited: Promise<Exit>;
}

/**
 * Start `command args` in a process group of its own (detached), as a shell
 * runs a job, so that a test can signal the npm → node chain as Ctrl-C does,
 * and it can be torn down as one. The caller ends it: `startChild` does that
 * after a test.
 */
export function spawnChild(
  command: string,
  args: readonly string[],
  options: ChildOptions = {},
): Child {
  const child = spawn(command, args, {
    cwd: options.cwd ?? repoRoot,
    env: options.env ?? process.env,
    detached: true,
    stdio: "pipe",
  });
  const lines = new Arrivals<string>((line) => line);
  let stdout = "";
  let stderr = "";
  let partial = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    const split = (partial + chunk).split("\n");
    partial = split.pop() as string;
    for (const line of split) lines.add(line);
  });
  child.stdout.once("end", () => {
    if (partial !== "") lines.add(partial);
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  if (options.input !== undefined) {
    // A child that exits without reading its stdin (echo, curl) makes this
    // write fail with EPIPE; that is its business, not a test failure.
    child.stdin.on("error", () => {});
    child.stdin.end(options.input);
  }
  // "close", not "exit": it comes once the output is read to its end too.
  const exited = once(child, "close").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
    stdout,
    stderr,
  }));
  void exited.then(
    (exit) =>
      lines.end(
        `it exited (${exit.signal ?? `code ${exit.code}`}); stderr:\n${exit.stderr}`,
      ),
    (error: Error) => lines.end(`it did not start: ${error.message}`),
  );
  let given = 0;
  return {
    process: child,
    lines,
    nextLine() {
      const at = given++;
      return lines.first((_, index) => index === at);
    },
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
  };
}

/**
 * `spawnChild`, and after the test SIGKILL to its whole process group,
 * whatever happened.
 */
export function startChild(
  t: TestContext,
  command: string,
  args: readonly string[],
  options: ChildOptions = {},
): Child {
  const child = spawnChild(command, args, options);
  t.after(() => killGroup(child));
  return child;
}

/** SIGKILL to the child's whole process group, even after its leader exited: a grandchild may linger. */
export function killGroup(child: Child): void {
  if (child.process.pid === undefined) return;
  try {
    process.kill(-child.process.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

const listening = /listening on (\S+)/;

/** The URL of its first "listening on <url>" line on stdout; fails if it exits first. */
export async function listeningOn(child: Child): Promise<string> {
  const line = await child.lines.first((l) => listening.test(l));
  return (listening.exec(line) as RegExpExecArray)[1] as string;
}

/** A server running as a child process, listening. */
export interface ServerProcess extends Child {
  /** The URL of its "listening on" line. */
  readonly url: string;
}

/**
 * `startChild` for a server: resolves once it printed its "listening on"
 * line. Many servers run at once in the tests: each gets a free admin port
 * unless `env` names one.
 */
export async function startServerProcess(
  t: TestContext,
  command: string,
  args: readonly string[],
  options: ChildOptions = {},
): Promise<ServerProcess> {
  const child = startChild(t, command, args, {
    ...options,
    env: { ADMIN_PORT: "0", ...(options.env ?? process.env), NO_COLOR: "1" },
  });
  return Object.assign(child, { url: await listeningOn(child) });
}

/** The arguments that run src/main.ts with Node itself (no tsx wrapper process), so the child is the server. */
export function mainWithTsx(...args: string[]): string[] {
  return ["--import", "tsx", "src/main.ts", ...args];
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
