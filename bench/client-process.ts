import { spawn } from "node:child_process";
import { cpuSeconds } from "./proc.js";

/** What a load-generator process did. */
export interface ClientRun {
  stdout: string;
  stderr: string;
  /** Exit code, or null when killed. */
  code: number | null;
  /** Wall-clock seconds from start to exit. */
  wallSeconds: number;
  /** CPU seconds the load generator used (sampled until it exits, so a little low). */
  cpuSeconds: number;
}

/**
 * Run a load generator to completion, pinned to `cpus` when given, killed
 * after `timeoutMs` so that a stuck run cannot hang the benchmark.
 */
export function runClient(
  command: string,
  args: readonly string[],
  cpus: string | undefined,
  timeoutMs: number,
): Promise<ClientRun> {
  const [cmd, argv] = cpus
    ? ["taskset", ["-c", cpus, command, ...args]]
    : [command, [...args]];
  const started = performance.now();
  const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let cpu = 0;
  child.stdout.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
  });
  child.stderr.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
  });
  // taskset execs the command, so the pid is the load generator's own.
  const sample = setInterval(() => {
    if (child.pid) cpu = Math.max(cpu, cpuSeconds(child.pid));
  }, 200);
  const killer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearInterval(sample);
      clearTimeout(killer);
      resolve({
        stdout,
        stderr,
        code,
        wallSeconds: (performance.now() - started) / 1000,
        cpuSeconds: cpu,
      });
    });
  });
}
