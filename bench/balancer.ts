/**
 * `npm run bench:balancer`: gRPC unary throughput through nginx (the shipped
 * deploy/nginx/greeter.conf) with one, two and three replicas, against one
 * replica served directly, measured with h2load.
 *
 * Every replica is a server process in a network namespace of its own (as
 * the balancer tests run them); h2load and nginx run in this namespace.
 * Everything shares this machine's cores: with two, nginx, the replicas and
 * h2load compete for them, so more replicas cannot add throughput here; the
 * table says what each process used, so the numbers can be read for what
 * they are. Each round measures every target in turn (direct, 1, 2, 3), and
 * the table shows each one's median over the rounds.
 *
 * Settings (environment): BENCH_SECONDS (measured seconds per run, default
 * 4), BENCH_WARMUP_SECONDS (1), BENCH_ROUNDS (3), BENCH_CONNECTIONS (8),
 * BENCH_STREAMS (32 per connection), BENCH_REQUESTS (calls per run instead of
 * a duration; 0, or 2000 in quick mode), BENCH_OUT (results directory).
 * `--quick`: one round of 2000 calls per target, a smoke test that the
 * benchmark works, not a measurement.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus as osCpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type Nginx,
  type Replica,
  replicaPort,
  startNginx,
  startReplica,
} from "../test/support/balancer.js";
import {
  createHosts,
  type Host,
  removeHosts,
  removeLeftovers,
} from "../test/support/netns.js";
import { num } from "./env.js";
import { h2load } from "./h2load.js";
import { cpuSeconds } from "./proc.js";
import { requestOf } from "./scenarios.js";
import { median } from "./stats.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const quick = process.argv.includes("--quick");

const settings = {
  seconds: num("BENCH_SECONDS", quick ? 1 : 4),
  warmUpSeconds: num("BENCH_WARMUP_SECONDS", quick ? 0.5 : 1),
  rounds: num("BENCH_ROUNDS", quick ? 1 : 3),
  requests: num("BENCH_REQUESTS", quick ? 2000 : 0, 0),
  connections: num("BENCH_CONNECTIONS", 8),
  streams: num("BENCH_STREAMS", 32),
};

/** One h2load run against one target. */
interface Sample {
  target: string;
  round: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /**
   * Calls h2load did not see finish: with a duration, the ones still in
   * flight when it stops (nginx logs them 499) count too.
   */
  failed: number;
  /** CPU use over the run, in cores (1 = one core busy). */
  replicaCores: number;
  nginxCores: number;
  h2loadCores: number;
}

/** A target's medians over the rounds. */
interface Row {
  target: string;
  reqPerSec: number;
  /** reqPerSec against the direct target's. */
  vsDirect: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
  replicaCores: number;
  nginxCores: number;
  h2loadCores: number;
}

interface Target {
  name: string;
  url: string;
  replicas: Replica[];
  nginx?: Nginx;
}

async function main(): Promise<void> {
  execFileSync("bash", [join(root, "test/system-deps.sh")], {
    stdio: "inherit",
  });
  removeLeftovers();
  const hosts = createHosts(3);
  const running: { replicas: Replica[]; nginx: Nginx[] } = {
    replicas: [],
    nginx: [],
  };
  const cleanUp = () => {
    for (const r of running.replicas) r.child.kill("SIGKILL");
    removeHosts(hosts);
  };
  process.once("SIGINT", () => {
    cleanUp();
    process.exit(130);
  });
  try {
    const env = { STREAM_INTERVAL_MS: "0" };
    running.replicas = await Promise.all(
      hosts.map((h) => startReplica(h, env)),
    );
    const targets: Target[] = [
      {
        name: "direct, 1 replica",
        url: `http://${(hosts[0] as Host).address}:${replicaPort}`,
        replicas: running.replicas.slice(0, 1),
      },
    ];
    for (const n of [1, 2, 3]) {
      const nginx = await startNginx(hosts.slice(0, n));
      running.nginx.push(nginx);
      targets.push({
        name: `nginx, ${n} replica${n > 1 ? "s" : ""}`,
        url: nginx.h2Url,
        replicas: running.replicas.slice(0, n),
        nginx,
      });
    }
    const samples: Sample[] = [];
    for (let round = 1; round <= settings.rounds; round++) {
      for (const target of targets) {
        samples.push(await measure(target, round));
        const s = samples.at(-1) as Sample;
        console.error(
          `round ${round}, ${target.name}: ${Math.round(s.reqPerSec)} req/s`,
        );
      }
    }
    const table = summarize(samples);
    const out =
      process.env.BENCH_OUT ??
      join(
        root,
        "bench/results",
        `balancer-${new Date().toISOString().replace(/[:.]/g, "-")}`,
      );
    mkdirSync(out, { recursive: true });
    const machine = `${availableParallelism()} cores (${osCpus()[0]?.model ?? "?"})`;
    writeFileSync(
      join(out, "balancer.json"),
      `${JSON.stringify({ machine, node: process.version, settings, table, samples }, null, 2)}\n`,
    );
    const text = formatTable(table);
    writeFileSync(join(out, "balancer.md"), `${text}\n`);
    console.log(`\n${machine}\n\n${text}\n\nraw results: ${out}`);
  } finally {
    for (const nginx of running.nginx) await nginx.stop();
    cleanUp();
  }
}

async function measure(target: Target, round: number): Promise<Sample> {
  const pids = {
    replicas: target.replicas.map((r) => r.child.pid as number),
    nginx: target.nginx ? [target.nginx.pid] : [],
  };
  const cpu = (list: number[]) =>
    list.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const before = { replicas: cpu(pids.replicas), nginx: cpu(pids.nginx) };
  const started = performance.now();
  const r = await h2load({
    url: target.url,
    ...requestOf("grpc-unary"),
    connections: settings.connections,
    streams: settings.streams,
    ...(settings.requests > 0
      ? { requests: settings.requests }
      : { seconds: settings.seconds, warmUpSeconds: settings.warmUpSeconds }),
    cpus: undefined,
  });
  // CPU over the whole run, warm-up included, so over its whole wall time.
  const wall = (performance.now() - started) / 1000;
  return {
    target: target.name,
    round,
    reqPerSec: r.reqPerSec,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    failed: r.failed + r.errored,
    replicaCores: (cpu(pids.replicas) - before.replicas) / wall,
    nginxCores: (cpu(pids.nginx) - before.nginx) / wall,
    h2loadCores: r.clientCpuSeconds / r.clientWallSeconds,
  };
}

function summarize(samples: readonly Sample[]): Row[] {
  const targets = [...new Set(samples.map((s) => s.target))];
  const rows = targets.map((target) => {
    const of = samples.filter((s) => s.target === target);
    const med = (f: (s: Sample) => number) => median(of.map(f));
    return {
      target,
      reqPerSec: med((s) => s.reqPerSec),
      vsDirect: 0,
      p50Ms: med((s) => s.p50Ms),
      p99Ms: med((s) => s.p99Ms),
      failed: of.reduce((sum, s) => sum + s.failed, 0),
      replicaCores: med((s) => s.replicaCores),
      nginxCores: med((s) => s.nginxCores),
      h2loadCores: med((s) => s.h2loadCores),
    };
  });
  const direct = rows[0]?.reqPerSec ?? 0;
  for (const row of rows)
    row.vsDirect = direct > 0 ? row.reqPerSec / direct : 0;
  return rows;
}

function formatTable(rows: readonly Row[]): string {
  const lines = [
    "| gRPC unary (SayHello) | req/s | vs direct | p50 ms | p99 ms | unfinished | replicas' cores | nginx cores | h2load cores |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.target} | ${Math.round(r.reqPerSec)} | ${r.vsDirect.toFixed(2)} | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${r.failed} | ${r.replicaCores.toFixed(2)} | ${r.nginxCores.toFixed(2)} | ${r.h2loadCores.toFixed(2)} |`,
    );
  }
  return lines.join("\n");
}

await main();
