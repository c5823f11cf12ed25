/**
 * `npm run bench`: the Greeter on this project's server against @grpc/grpc-js,
 * fastify (Connect JSON unary over HTTP/1.1 only) and a bare Node ceiling, on
 * loopback, with h2load and a small Chat client: every protocol the server
 * speaks (gRPC, gRPC-Web, Connect proto and JSON) over every HTTP version it
 * allows (gRPC HTTP/2 only), unary and server streaming (bench/scenarios.ts).
 *
 * Each round starts every server in turn (A B C A B C ...), so slow drift of a
 * shared machine spreads over all of them; the table shows each server's
 * median over the rounds. Servers and load generators are pinned to separate
 * cores with taskset when there are two or more.
 *
 * Settings (environment): BENCH_SECONDS (measured seconds per run, default 2),
 * BENCH_WARMUP_SECONDS (1), BENCH_ROUNDS (3; 0 runs only the idle-stream test), BENCH_SERVERS (comma list of
 * ceiling, grpc-js, connect, connect-generic (ENGINE=off), connect-quiet
 * (LOG_LEVEL=warn), connect-tsx, connect-v8-defaults, connect-w2, connect-trace100
 * and connect-trace1 (OpenTelemetry tracing, every call or 1 % of them
 * sampled, exported over OTLP/HTTP to a sink that discards it), connect-auth
 * (bearer tokens verified, every call with the same token: gRPC unary only),
 * fastify (with its request log) and fastify-quiet (without); default
 * ceiling, grpc-js, connect, connect-generic, connect-quiet, connect-auth,
 * connect-w2, fastify, fastify-quiet),
 * BENCH_CONNECTIONS (8 HTTP/2 connections), BENCH_STREAMS (32 per HTTP/2
 * connection), BENCH_H1_CONNECTIONS (32 HTTP/1.1 connections, one request at
 * a time each), BENCH_IDLE_STREAMS
 * (10000), BENCH_IDLE_INTERVAL_MS (1000), BENCH_REQUESTS (calls per run instead
 * of a duration; default 0, 2000 in quick mode), BENCH_SCENARIOS (comma list of
 * the names in bench/scenarios.ts; default all), BENCH_NODE (the Node
 * every server and client runs on: 22, 24, or a path to a node binary; default
 * the Node running the bench; a ratio between servers means something only on
 * one Node), BENCH_OUT (results directory). BENCH_IDLE_STREAMS=0 skips the
 * idle-stream test; BENCH_BALANCER=0 skips the run through nginx with one to
 * three replicas (bench/balancer.ts) that follows the table.
 * `--quick`: one round of ceiling, grpc-js, connect, connect-quiet and both
 * fastifys with 2000 calls each, a small idle test, no chart: a smoke test
 * that the benchmark works on however loaded a machine, not a measurement.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import {
  availableParallelism,
  loadavg,
  cpus as osCpus,
  totalmem,
} from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type AuthFixture, authFixture } from "./auth-fixture.js";
import type { ChatResult } from "./chat-client.js";
import { runClient } from "./client-process.js";
import { num } from "./env.js";
import { evaluateGoals, formatGoals } from "./goals.js";
import { defaultConcurrency, h2load, loadShape } from "./h2load.js";
import { imageNodeFlags } from "./image-command.js";
import { probe } from "./probe.js";
import { cpuSeconds, memoryBytes } from "./proc.js";
import {
  allScenarios,
  labelOf,
  repliesPerCall,
  requestOf,
  type Scenario,
  scenarioList,
  scenarios,
  unitOf,
} from "./scenarios.js";
import { startServerProcess } from "./server-process.js";
import { chartSvg } from "./svg.js";
import {
  fmt,
  formatIdle,
  formatTable,
  type IdleResult,
  type Sample,
  summarize,
} from "./table.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const quick = process.argv.includes("--quick");

const settings = {
  // 44 server-and-scenario pairs by default, three times: 2 s each keeps a
  // full run near ten minutes on two cores.
  seconds: num("BENCH_SECONDS", quick ? 1 : 2),
  warmUpSeconds: num("BENCH_WARMUP_SECONDS", quick ? 0.5 : 1),
  rounds: num("BENCH_ROUNDS", quick ? 1 : 3, 0),
  /** Calls (or Chat messages) per run instead of a duration; quick mode's way to get a result on any machine. */
  requests: num("BENCH_REQUESTS", quick ? 2000 : 0, 0),
  connections: num("BENCH_CONNECTIONS", defaultConcurrency.connections),
  streams: num("BENCH_STREAMS", defaultConcurrency.streams),
  h1Connections: num("BENCH_H1_CONNECTIONS", defaultConcurrency.h1Connections),
  idleStreams: num("BENCH_IDLE_STREAMS", quick ? 200 : 10_000, 0),
  idleIntervalMs: num("BENCH_IDLE_INTERVAL_MS", quick ? 100 : 1000),
  node: nodeBinary(process.env.BENCH_NODE),
  scenarios: scenarioList(process.env.BENCH_SCENARIOS ?? ""),
  servers: (
    process.env.BENCH_SERVERS ??
    (quick
      ? "ceiling,grpc-js,connect,connect-quiet,fastify,fastify-quiet"
      : "ceiling,grpc-js,connect,connect-generic,connect-quiet,connect-auth,connect-w2,fastify,fastify-quiet")
  )
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== ""),
};

/** The scenarios the chart shows: the main ones, and the one fastify anchors. */
const chartScenarios: Scenario[] = [
  "grpc-unary",
  "connect-unary",
  "stream",
  "chat",
  "connect-json-unary-h1",
];

/** The node binary for BENCH_NODE: a supported line (22, 24) found or fetched by scripts/supported-node.sh, or a path. */
function nodeBinary(setting: string | undefined): string {
  if (setting === undefined || setting === "") return process.execPath;
  if (/^\d+$/.test(setting)) {
    const bin = execFileSync(
      "bash",
      [join(root, "scripts/supported-node.sh"), setting],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    ).trim();
    return join(bin, "node");
  }
  return resolve(setting);
}

interface ServerSpec {
  label: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  scenarios: Scenario[];
  /** Processes that do the work (a cluster's workers), for pinning. */
  processes: number;
  /** Whether the idle-stream memory test runs against it. */
  idle: boolean;
  /** Whether it exports spans, to the benchmark's OTLP sink (bench/otlp-sink.ts). */
  otlp?: boolean;
  /** Whether it verifies bearer tokens: its settings and every call's token from the run's auth fixture (bench/auth-fixture.ts). */
  auth?: boolean;
}

const dist = join(root, "dist");
/** The server as the container image runs it: the Dockerfile's Node flags. */
const imageFlags = imageNodeFlags(root);
const connectEnv = { PORT: "0", HOST: "127.0.0.1", STREAM_INTERVAL_MS: "0" };
const servers: Record<string, ServerSpec> = {
  ceiling: {
    label: "ceiling (bare Node)",
    args: [join(dist, "bench/servers/ceiling.js")],
    env: {},
    scenarios: allScenarios,
    processes: 1,
    idle: false,
  },
  "grpc-js": {
    label: "@grpc/grpc-js",
    args: [join(dist, "bench/servers/grpc-js.js")],
    env: { STREAM_INTERVAL_MS: "0" },
    scenarios: ["grpc-unary", "stream", "chat"],
    processes: 1,
    idle: true,
  },
  connect: {
    label: "connect-greeter",
    args: [...imageFlags, join(dist, "src/main.js")],
    env: connectEnv,
    scenarios: allScenarios,
    processes: 1,
    idle: true,
  },
  "connect-generic": {
    label: "connect-greeter, engine off",
    args: [...imageFlags, join(dist, "src/main.js")],
    env: { ...connectEnv, ENGINE: "off" },
    scenarios: ["grpc-unary", "connect-unary", "connect-get", "stream"],
    processes: 1,
    idle: false,
  },
  "connect-quiet": {
    label: "connect-greeter, LOG_LEVEL=warn",
    args: [...imageFlags, join(dist, "src/main.js")],
    env: { ...connectEnv, LOG_LEVEL: "warn" },
    scenarios: [
      "grpc-unary",
      "connect-unary",
      "stream",
      "connect-json-unary-h1",
    ],
    processes: 1,
    idle: false,
  },
  "connect-tsx": {
    label: "connect-greeter (tsx)",
    args: ["--import", "tsx", join(root, "src/main.ts")],
    env: connectEnv,
    scenarios: ["grpc-unary", "connect-unary"],
    processes: 1,
    idle: false,
  },
  "connect-v8-defaults": {
    label: "connect-greeter, V8's default heap",
    args: [join(dist, "src/main.js")],
    env: connectEnv,
    scenarios: ["grpc-unary", "connect-json-unary-h1", "stream"],
    processes: 1,
    idle: false,
  },
  "connect-trace100": {
    label: "connect-greeter, traced (100 %)",
    args: [...imageFlags, join(dist, "src/main.js")],
    env: { ...connectEnv, OTEL_TRACES_SAMPLER: "always_on" },
    scenarios: ["grpc-unary", "connect-unary", "stream"],
    processes: 1,
    idle: false,
    otlp: true,
  },
  "connect-trace1": {
    label: "connect-greeter, traced (1 %)",
    args: [...imageFlags, join(dist, "src/main.js")],
    env: {
      ...connectEnv,
      OTEL_TRACES_SAMPLER: "traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.01",
    },
    scenarios: ["grpc-unary", "connect-unary", "stream"],
    processes: 1,
    idle: false,
    otlp: true,
  },
  "connect-auth": {
    label: "connect-greeter, token auth",
    args: [...imageFlags, join(dist, "src/main.js")],
    env: connectEnv,
    scenarios: ["grpc-unary"],
    processes: 1,
    idle: false,
    auth: true,
  },
  "connect-w2": {
    label: "connect-greeter, 2 workers",
    args: [...imageFlags, join(dist, "src/main.js")],
    env: { ...connectEnv, WORKERS: "2" },
    scenarios: ["grpc-unary", "connect-unary"],
    processes: 2,
    idle: false,
  },
  // fastify's log goes to stdout like connect-greeter's: both into a pipe
  // that bench/server-process.ts drains.
  fastify: {
    label: "fastify (logs)",
    args: [join(dist, "bench/servers/fastify.js")],
    env: { FASTIFY_LOGGER: "true" },
    scenarios: ["connect-json-unary-h1"],
    processes: 1,
    idle: false,
  },
  "fastify-quiet": {
    label: "fastify (no logs)",
    args: [join(dist, "bench/servers/fastify.js")],
    env: { FASTIFY_LOGGER: "false" },
    scenarios: ["connect-json-unary-h1"],
    processes: 1,
    idle: false,
  },
};

const cpuPlan = planCpus();

async function main(): Promise<void> {
  execFileSync("bash", [join(root, "test/system-deps.sh")], {
    stdio: "inherit",
  });
  const build = performance.now();
  execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", root], {
    stdio: "inherit",
  });
  console.log(
    `built dist/ with tsc in ${((performance.now() - build) / 1000).toFixed(1)} s; connect-greeter runs from dist/src/main.js, connect-greeter (tsx) from src/main.ts through tsx`,
  );
  const unknown = settings.servers.filter((s) => !(s in servers));
  if (unknown.length > 0) throw new Error(`unknown BENCH_SERVERS: ${unknown}`);
  const started = new Date();
  const machine = describeMachine();
  console.log(
    `${machine}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(
        " ",
      )}; ${settings.rounds} round(s) of ${settings.seconds} s (+${settings.warmUpSeconds} s warm-up), h2load -c ${settings.connections} -m ${settings.streams} over HTTP/2, --h1 -c ${settings.h1Connections} -m 1 over HTTP/1.1; ${cpuPlan.note}`,
  );
  if (settings.servers.some((name) => servers[name]?.otlp)) {
    // On the load generators' core: what a collector costs is not the server's.
    otlpSink = await startServerProcess(
      [join(dist, "bench/otlp-sink.js")],
      {},
      cpuPlan.client,
      undefined,
      settings.node,
    );
  }
  if (settings.servers.some((name) => servers[name]?.auth)) {
    auth = await authFixture();
  }
  const samples: Sample[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    for (const name of settings.servers) {
      samples.push(...(await measureServer(name, round)));
    }
  }
  const idle: IdleResult[] = [];
  for (const name of settings.servers) {
    if (servers[name]?.idle && settings.idleStreams > 0)
      idle.push(await idleStreams(name));
  }
  await otlpSink?.stop();
  const table = summarize(
    samples,
    settings.servers.map((name) => ({
      name,
      label: servers[name]?.label ?? name,
      scenarios: servers[name]?.scenarios ?? [],
    })),
  );
  const goals = evaluateGoals(table, idle);
  const out =
    process.env.BENCH_OUT ??
    join(root, "bench/results", started.toISOString().replace(/[:.]/g, "-"));
  mkdirSync(out, { recursive: true });
  const report = {
    started: started.toISOString(),
    machine,
    node: execFileSync(settings.node, ["--version"], {
      encoding: "utf8",
    }).trim(),
    settings,
    cpuPlan,
    table,
    goals,
    idle,
    samples,
  };
  writeFileSync(
    join(out, "results.json"),
    `${JSON.stringify(report, null, 2)}\n`,
  );
  const text = [
    formatTable(table),
    "",
    formatIdle(idle, (name) => servers[name]?.label ?? name),
    "",
    formatGoals(goals),
  ].join("\n");
  writeFileSync(join(out, "table.md"), `${text}\n`);
  const svg = chartSvg(
    table
      .filter((r) => chartScenarios.includes(r.scenario))
      .map((r) => ({ ...r, scenario: labelOf(r.scenario) })),
    `${started.toISOString().slice(0, 10)}, ${machine}`,
  );
  writeFileSync(join(out, "bench.svg"), svg);
  // The chart docs/performance.md shows is a full run's: not a smoke test's,
  // an idle-stream-only run's, nor one of chosen servers or scenarios.
  const fullRun =
    !quick &&
    table.length > 0 &&
    process.env.BENCH_SERVERS === undefined &&
    settings.scenarios.length === 0;
  if (fullRun) {
    mkdirSync(join(root, "docs"), { recursive: true });
    writeFileSync(join(root, "docs/bench.svg"), svg);
  }
  console.log(
    `\n${text}\n\nraw results: ${out}${fullRun ? "; chart: docs/bench.svg" : ""}`,
  );
  // Scale-out: one to three replicas behind nginx (bench/balancer.ts, which
  // needs root for its network namespaces), after the single-server table.
  if (!quick && process.env.BENCH_BALANCER !== "0") {
    console.log(
      "\nthrough nginx (bench/balancer.ts; BENCH_BALANCER=0 skips it):",
    );
    execFileSync(
      settings.node,
      ["--import", "tsx", join(root, "bench/balancer.ts")],
      {
        stdio: "inherit",
        env: { ...process.env, BENCH_OUT: join(out, "balancer") },
      },
    );
  }
}

/** The OTLP collector the tracing servers export to, while the benchmark runs. */
let otlpSink: Awaited<ReturnType<typeof startServerProcess>> | undefined;

/** What the OTLP sink has taken so far. */
async function sinkStats(): Promise<{ requests: number; bytes: number }> {
  const res = await fetch(`${otlpSink?.url}/stats`);
  return (await res.json()) as { requests: number; bytes: number };
}

/** The token, key set and policy of the servers that verify tokens, made once per run. */
let auth: AuthFixture | undefined;

/** A server's settings: its own, and the auth fixture's if it verifies tokens. */
function envOf(spec: ServerSpec): NodeJS.ProcessEnv {
  return spec.auth ? { ...spec.env, ...auth?.env } : spec.env;
}

/** The headers a server's calls carry beyond their scenario's: its token, if it verifies tokens. */
function headersOf(spec: ServerSpec): Record<string, string> {
  return spec.auth ? (auth?.headers ?? {}) : {};
}

async function measureServer(name: string, round: number): Promise<Sample[]> {
  const spec = servers[name] as ServerSpec;
  // The SDK's own warnings (spans dropped from a full queue, failed exports),
  // which the server logs; a dropped span is export work not done.
  const otelWarnings: string[] = [];
  const exported = spec.otlp ? await sinkStats() : undefined;
  const server = await startServerProcess(
    spec.args,
    spec.otlp
      ? { ...envOf(spec), OTEL_EXPORTER_OTLP_ENDPOINT: otlpSink?.url }
      : envOf(spec),
    cpuPlan.server(spec.processes),
    spec.otlp
      ? (line) => {
          if (line.includes('"component":"opentelemetry"'))
            otelWarnings.push(line);
        }
      : undefined,
    settings.node,
  );
  const samples: Sample[] = [];
  try {
    for (const scenario of spec.scenarios) {
      if (
        settings.scenarios.length > 0 &&
        !settings.scenarios.includes(scenario)
      )
        continue;
      await probe(server.url, scenario, headersOf(spec));
      samples.push(
        await measure(name, scenario, round, server.url, server.pid),
      );
      const s = samples[samples.length - 1] as Sample;
      console.log(
        `round ${round} ${spec.label.padEnd(28)} ${labelOf(scenario).padEnd(30)} ${fmt(s.rate)} ${unitOf(scenario)}, p50 ${s.p50Ms.toFixed(2)} ms, p99 ${s.p99Ms.toFixed(2)} ms, ${s.serverCpuUsPerCall.toFixed(0)} µs CPU/call, client ${s.clientCores.toFixed(2)} cores`,
      );
    }
  } finally {
    await server.stop();
  }
  if (exported !== undefined) {
    const after = await sinkStats();
    const dropped = otelWarnings
      .map((l) => Number(/Dropped (\d+) spans/.exec(l)?.[1] ?? 0))
      .reduce((a, b) => a + b, 0);
    console.log(
      `round ${round} ${spec.label}: exported ${after.requests - exported.requests} OTLP requests, ${((after.bytes - exported.bytes) / 2 ** 20).toFixed(1)} MB; ${dropped} spans dropped from a full queue; ${otelWarnings.length} SDK warning line(s)${otelWarnings.length > 0 ? `, first: ${otelWarnings[0]}` : ""}`,
    );
  }
  return samples;
}

async function measure(
  name: string,
  scenario: Scenario,
  round: number,
  url: string,
  pid: number,
): Promise<Sample> {
  // Server CPU is read at the edges of the measured window, not around the
  // warm-up; counted runs have no warm-up and are read around the whole run.
  const counted = settings.requests > 0;
  let cpuStart = counted ? cpuSeconds(pid) : 0;
  let cpuEnd = 0;
  const startTimer = setTimeout(() => {
    if (!counted) cpuStart = cpuSeconds(pid);
  }, settings.warmUpSeconds * 1000);
  const endTimer = setTimeout(
    () => {
      if (!counted) cpuEnd = cpuSeconds(pid);
    },
    (settings.warmUpSeconds + settings.seconds) * 1000,
  );
  let calls: number;
  let seconds = settings.seconds;
  let result: {
    p50Ms: number;
    p99Ms: number;
    clientCpuSeconds: number;
    clientWallSeconds: number;
    failed: number;
  };
  try {
    if (scenario === "chat") {
      const run = await runClient(
        settings.node,
        [
          "--import",
          "tsx",
          join(root, "bench/chat-client.ts"),
          url,
          String(settings.seconds),
          String(settings.connections),
          "8",
          "16",
          String(counted ? 0 : settings.warmUpSeconds),
          String(settings.requests),
        ],
        cpuPlan.client,
        (settings.seconds + settings.warmUpSeconds) * 1000 + 60_000,
      );
      // JSON has no NaN: a percentile of no samples comes back as null.
      const chat = JSON.parse(
        run.stdout.trim().split("\n").pop() ?? "",
        (_, v) => (v === null ? Number.NaN : v),
      ) as ChatResult;
      calls = chat.msgPerSec;
      seconds = chat.seconds;
      result = {
        p50Ms: chat.p50Ms,
        p99Ms: chat.p99Ms,
        clientCpuSeconds: run.cpuSeconds,
        clientWallSeconds: run.wallSeconds,
        failed: chat.errors,
      };
    } else {
      const request = requestOf(scenario);
      const run = await h2load({
        url,
        ...request,
        headers: {
          ...request.headers,
          ...headersOf(servers[name] as ServerSpec),
        },
        ...loadShape(scenarios[scenario].http, settings),
        ...(counted
          ? { requests: settings.requests }
          : {
              seconds: settings.seconds,
              warmUpSeconds: settings.warmUpSeconds,
            }),
        cpus: cpuPlan.client,
      });
      calls = run.reqPerSec;
      seconds = run.seconds;
      result = { ...run, failed: run.failed + run.errored };
    }
  } finally {
    clearTimeout(startTimer);
    clearTimeout(endTimer);
  }
  if (cpuEnd === 0) cpuEnd = cpuSeconds(pid);
  const serverCpu = cpuEnd - cpuStart;
  return {
    server: name,
    scenario,
    round,
    callsPerSec: calls,
    rate: calls * repliesPerCall(scenario),
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    serverCpuUsPerCall: (serverCpu / (calls * seconds)) * 1e6,
    serverCores: serverCpu / seconds,
    clientCores: result.clientCpuSeconds / result.clientWallSeconds,
    peakRssMb: memoryBytes(pid, "VmHWM") / 2 ** 20,
    failed: result.failed,
  };
}

/** Open many slow StreamHello calls at once and watch the server's memory while they are open. */
async function idleStreams(name: string): Promise<IdleResult> {
  const spec = servers[name] as ServerSpec;
  const server = await startServerProcess(
    spec.args,
    { ...spec.env, STREAM_INTERVAL_MS: String(settings.idleIntervalMs) },
    cpuPlan.server(spec.processes),
    undefined,
    settings.node,
  );
  try {
    await probe(server.url, "grpc-unary");
    const baseline = memoryBytes(server.pid, "VmRSS");
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, memoryBytes(server.pid, "VmRSS"));
    }, 100);
    const perConnection = 500;
    const connections = Math.max(
      1,
      Math.ceil(settings.idleStreams / perConnection),
    );
    const started = performance.now();
    const run = await h2load({
      url: server.url,
      ...requestOf("stream"),
      connections,
      streams: perConnection,
      requests: settings.idleStreams,
      cpus: cpuPlan.client,
    }).finally(() => clearInterval(sampler));
    const seconds = (performance.now() - started) / 1000;
    const callMs = 4 * settings.idleIntervalMs;
    const result: IdleResult = {
      server: name,
      streams: settings.idleStreams,
      intervalMs: settings.idleIntervalMs,
      connections,
      succeeded: run.succeeded,
      seconds,
      p50Ms: run.p50Ms,
      held:
        run.succeeded === settings.idleStreams &&
        seconds * 1000 < 2 * callMs + 2000,
      baselineRssMb: baseline / 2 ** 20,
      peakRssMb: peak / 2 ** 20,
    };
    console.log(
      `idle streams ${spec.label}: ${result.succeeded}/${result.streams} calls over ${connections} connections in ${seconds.toFixed(1)} s, RSS ${result.baselineRssMb.toFixed(0)} MB before, ${result.peakRssMb.toFixed(0)} MB peak`,
    );
    return result;
  } finally {
    await server.stop();
  }
}

/** Which cores servers and load generators get: separate ones when there are two or more. */
function planCpus(): {
  allowed: number[];
  client: string | undefined;
  server: (processes: number) => string | undefined;
  note: string;
} {
  const status = readFileSync("/proc/self/status", "utf8");
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1] ?? "0";
  const allowed = list.split(",").flatMap((part) => {
    const [a, b] = part.split("-").map(Number) as [number, number?];
    return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
  });
  if (allowed.length < 2) {
    return {
      allowed,
      client: undefined,
      server: () => undefined,
      note: "one core: no pinning, server and load generator share it",
    };
  }
  const client = String(allowed[allowed.length - 1]);
  return {
    allowed,
    client,
    server: (processes) => {
      // Leave the last core to the load generator when possible; a cluster that
      // needs it too shares it (and the results say so).
      return allowed.slice(0, Math.min(processes, allowed.length)).join(",");
    },
    note: `servers pinned to core(s) ${allowed.slice(0, -1).join(",")} (a 2-worker cluster on ${allowed.slice(0, 2).join(",")}), load generators to core ${client}`,
  };
}

function describeMachine(): string {
  const model = osCpus()[0]?.model.replace(/\s+/g, " ").trim() ?? "unknown CPU";
  return `${availableParallelism()} × ${model}, ${(totalmem() / 2 ** 30).toFixed(1)} GB, Node ${execFileSync(settings.node, ["--version"], { encoding: "utf8" }).trim()}`;
}

await main();
