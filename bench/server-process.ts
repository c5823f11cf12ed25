import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";

/** A server under test, running as its own process. */
export interface ServerProcess {
  readonly pid: number;
  /** The URL from its "listening on <url>" line. */
  readonly url: string;
  /** SIGTERM, then SIGKILL if it has not exited in 10 s; resolves once it has exited. */
  stop(): Promise<void>;
}

/**
 * Start `node <args>` pinned to `cpus` (when given) and wait for the line
 * matching /listening on (\S+)/. Later output goes to `onLine`, or is drained
 * unread so that a chatty server cannot block on a full pipe.
 */
export async function startServerProcess(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  cpus: string | undefined,
  onLine?: (line: string) => void,
  node: string = process.execPath,
): Promise<ServerProcess> {
  const [cmd, argv] = cpus
    ? ["taskset", ["-c", cpus, node, ...args]]
    : [node, [...args]];
  const child = spawn(cmd, argv, {
    env: { ...process.env, ADMIN_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  cleanUpOnExit();
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    if (stderr.length < 10_000) stderr += s;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({
      input: child.stdout as NodeJS.ReadableStream,
    });
    const bound = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${args.join(" ")} did not start in 30 s: ${stderr}`));
    }, 30_000);
    lines.on("line", (line) => {
      onLine?.(line);
      const m = /listening on (\S+)/.exec(line);
      if (m) {
        clearTimeout(bound);
        resolve(m[1] as string);
        if (onLine === undefined) {
          // A server's log under load is thousands of lines a second (two
          // per request for fastify's, one for connect-greeter's), and this
          // process shares the machine with the server and the load
          // generator: drain the rest unread rather than split it into lines.
          lines.close();
          child.stdout?.resume();
        }
      }
    });
    child.once("exit", (code) => {
      clearTimeout(bound);
      reject(new Error(`${args.join(" ")} exited with ${code}: ${stderr}`));
    });
  });
  return {
    pid: child.pid as number,
    url: url.replace("//localhost:", "//127.0.0.1:"),
    stop: () => stop(child),
  };
}

/** Servers started and not yet exited, so that a benchmark that is interrupted or fails leaves none behind. */
const running = new Set<ChildProcess>();
let cleanupInstalled = false;

function cleanUpOnExit(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const killAll = () => {
    for (const child of running) child.kill("SIGKILL");
  };
  process.on("exit", killAll);
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(signal, () => {
      killAll();
      process.exit(code);
    });
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(killer);
}
