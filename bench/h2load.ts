import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runClient } from "./client-process.js";
import type { HttpVersion } from "./scenarios.js";
import { percentile } from "./stats.js";

/**
 * How many calls the benchmarks keep in flight. Over HTTP/2, `streams` on
 * each of `connections`. Over HTTP/1.1 a connection carries one request at a
 * time (clients do not pipeline: browsers never did), so concurrency takes
 * connections: `h1Connections` keep a one-core server busy without making the
 * run about juggling sockets.
 */
export interface Concurrency {
  connections: number;
  streams: number;
  h1Connections: number;
}

export const defaultConcurrency: Concurrency = {
  connections: 8,
  streams: 32,
  h1Connections: 32,
};

/** The h2load options that load a server over `http` with `concurrency`. */
export function loadShape(
  http: HttpVersion,
  concurrency: Concurrency,
): Pick<H2loadOptions, "http1" | "connections" | "streams"> {
  return http === "h1"
    ? { http1: true, connections: concurrency.h1Connections, streams: 1 }
    : {
        http1: false,
        connections: concurrency.connections,
        streams: concurrency.streams,
      };
}

/** One h2load run. */
export interface H2loadOptions {
  url: string;
  path: string;
  headers: Record<string, string>;
  /** The request body; none: a GET. */
  body?: Uint8Array;
  /** Speak HTTP/1.1 (--h1) instead of HTTP/2. */
  http1?: boolean;
  /** Connections (-c). */
  connections: number;
  /** Streams in flight per connection (-m); over HTTP/1.1, requests pipelined per connection. */
  streams: number;
  /** Measured seconds (-D); or use `requests`. */
  seconds?: number;
  /** Warm-up seconds before measuring (with `seconds`). */
  warmUpSeconds?: number;
  /** Total requests (-n), instead of a duration. */
  requests?: number;
  /** CPUs to pin h2load to (taskset -c list). */
  cpus: string | undefined;
}

/** What h2load measured. */
export interface H2loadResult {
  /** Requests completed with a 2xx status. */
  succeeded: number;
  failed: number;
  errored: number;
  /** h2load's own req/s over its measured time. */
  reqPerSec: number;
  /** Seconds h2load measured over. */
  seconds: number;
  /** Request latency percentiles from the per-request log, in milliseconds. */
  p50Ms: number;
  p99Ms: number;
  /** Mean request latency, in milliseconds. */
  meanMs: number;
  /** CPU seconds h2load itself used, to tell when the load generator is the limit. */
  clientCpuSeconds: number;
  clientWallSeconds: number;
}

/** Run h2load once and parse its summary and per-request log. */
export async function h2load(options: H2loadOptions): Promise<H2loadResult> {
  const dir = mkdtempSync(join(tmpdir(), "bench-h2load-"));
  try {
    const logFile = join(dir, "log");
    const args = [
      "-c",
      String(options.connections),
      "-m",
      String(options.streams),
      "-t",
      "1",
      "--log-file",
      logFile,
    ];
    // h2load POSTs the body file it is given, and GETs without one.
    if (options.body !== undefined) {
      const bodyFile = join(dir, "body");
      writeFileSync(bodyFile, options.body);
      args.push("-d", bodyFile);
    }
    if (options.http1) args.push("--h1");
    if (options.seconds !== undefined) {
      args.push("-D", `${Math.round(options.seconds * 1000)}ms`);
      args.push(
        `--warm-up-time=${Math.round((options.warmUpSeconds ?? 1) * 1000)}ms`,
      );
    } else {
      args.push("-n", String(options.requests ?? 1000));
    }
    for (const [name, value] of Object.entries(options.headers)) {
      args.push("-H", `${name}: ${value}`);
    }
    args.push(`${options.url}${options.path}`);
    const bound =
      ((options.seconds ?? 0) + (options.warmUpSeconds ?? 0)) * 1000 + 60_000;
    const run = await runClient("h2load", args, options.cpus, bound);
    if (run.code !== 0) {
      throw new Error(
        `h2load exited with ${run.code}: ${run.stderr || run.stdout}`,
      );
    }
    const requests =
      /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(
        run.stdout,
      );
    const finished = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(
      run.stdout,
    );
    if (!requests || !finished) {
      throw new Error(`cannot parse h2load output:\n${run.stdout}`);
    }
    const durations = readFileSync(logFile, "utf8")
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => Number(line.split("\t")[2]) / 1000)
      .sort((a, b) => a - b);
    const mean =
      durations.reduce((sum, d) => sum + d, 0) / Math.max(1, durations.length);
    return {
      succeeded: Number(requests[4]),
      failed: Number(requests[5]),
      errored: Number(requests[6]),
      reqPerSec: Number(finished[3]),
      // "finished in" includes the warm-up; req/s is over the measured duration only.
      seconds:
        options.seconds ??
        Number(finished[1]) / (finished[2] === "ms" ? 1000 : 1),
      p50Ms: percentile(durations, 0.5),
      p99Ms: percentile(durations, 0.99),
      meanMs: mean,
      clientCpuSeconds: run.cpuSeconds,
      clientWallSeconds: run.wallSeconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
