/**
 * One flood against a running server, as test/floods.test.ts and
 * bench/floods.ts both run it: a canary client on a fresh connection of its
 * own calls SayHello throughout; the attack runs for `rounds` rounds of
 * `roundMs`, the server's resident memory read before and after each; then
 * a new client calls once more.
 */
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Greeter } from "../../gen/helloworld_pb.js";
import { memoryBytes } from "../proc.js";
import { percentile } from "../stats.js";
import { type Attack, Seen } from "./attacks.js";

/**
 * The settings the floods run this server with, in the tests and the bench:
 * docs/operations.md's against floods, with times short enough for a round
 * of a second and a half.
 */
export const floodSettings = {
  MAX_CONCURRENT_STREAMS: "100",
  MAX_CONNECTIONS_PER_ADDRESS: "100",
  FIRST_CALL_TIMEOUT_MS: "1000",
  HEADERS_TIMEOUT_MS: "500",
  KEEPALIVE_TIME_MS: "1000",
  KEEPALIVE_TIMEOUT_MS: "300",
  LOG_LEVEL: "warn",
};

/** What the canary saw. */
export interface CanaryResult {
  calls: number;
  succeeded: number;
  /** Succeeded over calls. */
  successRate: number;
  p50Ms: number;
  p99Ms: number;
  /** Each failure's code, counted. */
  failures: Record<string, number>;
}

/** What a flood did. */
export interface FloodResult {
  attack: string;
  /** What the attacker saw in each round. */
  rounds: { seen: string[]; connections: number; closedByServer: number }[];
  /** The server's resident memory before the attack and after each round, in MiB. */
  rssMb: number[];
  canary: CanaryResult;
  /** Whether a new client's SayHello was answered after the attack. */
  answersAfter: boolean;
  /** The last round's Seen, for a test to check. */
  lastSeen: Seen;
  allSeen: Seen[];
}

/** SayHello every `everyMs` on a connection of its own until stopped, each with a 2 s deadline. */
function canary(url: string, everyMs = 20) {
  const client = createClient(Greeter, createGrpcTransport({ baseUrl: url }));
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let calls = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      calls++;
      const started = performance.now();
      try {
        await client.sayHello({ name: "canary" }, { timeoutMs: 2000 });
        latencies.push(performance.now() - started);
      } catch (e) {
        const code = Code[ConnectError.from(e).code] ?? "unknown";
        failures[code] = (failures[code] ?? 0) + 1;
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    async stop(): Promise<CanaryResult> {
      running = false;
      await done;
      latencies.sort((a, b) => a - b);
      return {
        calls,
        succeeded: latencies.length,
        successRate: calls === 0 ? 0 : latencies.length / calls,
        p50Ms: percentile(latencies, 0.5),
        p99Ms: percentile(latencies, 0.99),
        failures,
      };
    },
  };
}

/** Run `attack` for `durationMs` on a worker thread (bench/floods/attack-worker.ts). */
async function inWorker(
  attack: Attack,
  url: string,
  durationMs: number,
): Promise<Seen> {
  const worker = new Worker(new URL("./attack-worker.ts", import.meta.url), {
    workerData: { name: attack.name, url, durationMs },
    // Source files: the worker loads them as the main thread does.
    execArgv: ["--import", "tsx"],
  });
  try {
    const [data] = (await once(worker, "message")) as [
      {
        counts: [string, number][];
        connections: number;
        closedByServer: number;
      },
    ];
    const seen = new Seen();
    for (const [what, n] of data.counts) seen.add(what, n);
    seen.connections = data.connections;
    seen.closedByServer = data.closedByServer;
    return seen;
  } finally {
    await worker.terminate();
  }
}

/** Run `attack` against the server at `url` whose process is `pid`. */
export async function flood(
  server: { url: string; pid: number },
  attack: Attack,
  options: { roundMs: number; rounds: number },
): Promise<FloodResult> {
  const rss = () => memoryBytes(server.pid, "VmRSS") / 2 ** 20;
  const watcher = canary(server.url);
  // The canary's connection is up and has served before the attack starts.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const rssMb = [rss()];
  const allSeen: Seen[] = [];
  for (let i = 0; i < options.rounds; i++) {
    allSeen.push(await inWorker(attack, server.url, options.roundMs));
    rssMb.push(rss());
  }
  const canaryResult = await watcher.stop();
  const after = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  const answersAfter = await after
    .sayHello({ name: "after" }, { timeoutMs: 5000 })
    .then(
      (r) => r.message === "Hello, after!",
      () => false,
    );
  return {
    attack: attack.name,
    rounds: allSeen.map((s) => ({
      seen: s.summary(),
      connections: s.connections,
      closedByServer: s.closedByServer,
    })),
    rssMb,
    canary: canaryResult,
    answersAfter,
    lastSeen: allSeen[allSeen.length - 1] as Seen,
    allSeen,
  };
}
