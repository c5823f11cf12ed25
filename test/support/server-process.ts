import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";

/** The project's root directory. */
export const projectRoot = fileURLToPath(new URL("../../", import.meta.url));

/** A server running as a child process. */
export interface ServerProcess {
  /** The process spawned (the server itself, or npm when started through npm). */
  readonly child: ChildProcess;
  /** The URL printed on the "listening on" line. */
  readonly url: string;
  /** Everything printed on stderr so far. */
  stderr(): string;
  /** Resolves when the process exits, with its code and signal. */
  readonly exited: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
  }>;
  /** Resolves when stdout and stderr are closed: every process holding them (npm's children too) is gone. */
  readonly outputClosed: Promise<void>;
}

/**
 * Spawn `command args` in the project root, wait for its "listening on" line,
 * and kill its whole process group after the test if it is still running.
 * It runs in a process group of its own (detached), as a shell job does, so
 * a test can signal the group the way Ctrl-C does.
 */
export async function spawnServer(
  t: TestContext,
  command: string,
  args: readonly string[],
): Promise<ServerProcess> {
  const child = spawn(command, args, {
    cwd: projectRoot,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    // Many servers run at once in the tests: each its own free admin port.
    env: { ADMIN_PORT: "0", ...process.env, NO_COLOR: "1" },
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const exited = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
  }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const outputClosed = Promise.all([
    once(child.stdout as NonNullable<typeof child.stdout>, "close"),
    once(child.stderr as NonNullable<typeof child.stderr>, "close"),
  ]).then(() => undefined);
  t.after(() => {
    try {
      process.kill(-(child.pid as number), "SIGKILL");
    } catch {
      // already gone
    }
  });
  let stdout = "";
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (d: string) => {
      stdout += d;
      const m = /listening on (\S+)/.exec(stdout);
      if (m?.[1]) {
        child.stdout?.off("data", onData);
        child.stdout?.resume();
        resolve(m[1]);
      }
    };
    child.stdout?.setEncoding("utf8").on("data", onData);
    void exited.then(({ code, signal }) =>
      reject(
        new Error(
          `server exited (${code ?? signal}) before listening:\n${stdout}\n${stderr}`,
        ),
      ),
    );
  });
  return { child, url, stderr: () => stderr, exited, outputClosed };
}

/** The arguments that run src/main.ts with Node itself (no tsx wrapper process), so the child is the server. */
export function mainWithTsx(...args: string[]): string[] {
  return ["--import", "tsx", "src/main.ts", ...args];
}
