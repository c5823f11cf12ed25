/**
 * `npm run bench:profile`: where a server spends its time per call.
 *
 * For each case below (a server and a scenario of bench/scenarios.ts:
 * connect-greeter's gRPC, Connect and gRPC-Web calls over HTTP/2 and
 * HTTP/1.1, @grpc/grpc-js and fastify for comparison), starts the server under
 * `node --cpu-prof --trace-gc --trace-gc-nvp` with bench/profile-hooks preloaded,
 * warms it up, loads it with h2load (the benchmark's load shape: -c 8 -m 32
 * over HTTP/2, --h1 -c 32 -m 1 over HTTP/1.1, a fixed number of calls), stops
 * it, and reports for the measured calls (after start-up and warm-up): the
 * server's CPU per call (/proc, every thread), the profile's busy main-thread
 * time per call, top self-time functions, time per package and per file, GC
 * pauses and bytes allocated per call (from V8's per-GC "allocated=" counts),
 * and AbortController.abort() calls and DOMExceptions per call (counted over
 * the process's life).
 *
 * Settings (environment): PROFILE_CASES (indexes of the cases below, e.g.
 * "0,8"; default all), PROFILE_NODE_FLAGS (extra node flags for the servers),
 * PROFILE_STREAMS (h2load -m over HTTP/2, default 32), PROFILE_H1_CONNECTIONS
 * (h2load -c over HTTP/1.1, default 32), PROFILE_CALLS (calls measured,
 * default 50000), PROFILE_WARMUP_CALLS (10000), PROFILE_HEAP=0 (skips the
 * allocation-sampling run of each case), BENCH_OUT (output directory).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { defaultConcurrency, h2load, loadShape } from "./h2load.js";
import { imageNodeFlags } from "./image-command.js";
import { probe } from "./probe.js";
import { cpuSeconds } from "./proc.js";
import { labelOf, requestOf, type Scenario, scenarios } from "./scenarios.js";
import { startServerProcess } from "./server-process.js";

/** Server on core 0, h2load on core 1, when there are two. */
const pinned = availableParallelism() >= 2;
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const calls = Number(process.env.PROFILE_CALLS ?? 50_000);
const warmUpCalls = Number(process.env.PROFILE_WARMUP_CALLS ?? 10_000);
/** Extra node flags for the servers, to measure a runtime setting (e.g. --max-semi-space-size=32). */
const nodeFlags = (process.env.PROFILE_NODE_FLAGS ?? "")
  .split(" ")
  .filter((f) => f !== "");
/** Calls in flight: the benchmark's, or PROFILE_STREAMS per HTTP/2 connection and PROFILE_H1_CONNECTIONS over HTTP/1.1. */
const concurrency = {
  ...defaultConcurrency,
  streams: Number(process.env.PROFILE_STREAMS ?? defaultConcurrency.streams),
  h1Connections: Number(
    process.env.PROFILE_H1_CONNECTIONS ?? defaultConcurrency.h1Connections,
  ),
};
/** Whether each case gets a second run that samples its allocations. */
const heapRuns = process.env.PROFILE_HEAP !== "0";
/** Which cases to run, by index (default all). */
const only = process.env.PROFILE_CASES?.split(",").map(Number);
/** Calls made while sampling allocations (a slower, separate run). */
const heapCalls = Math.min(calls, 20_000);
const out =
  process.env.BENCH_OUT ??
  join(
    root,
    "bench/results",
    `profile-${new Date().toISOString().replace(/[:.]/g, "-")}`,
  );

interface Case {
  /** The server, as the table names it. */
  server: string;
  /** Its script under dist/. */
  script: string;
  scenario: Scenario;
  /** Extra environment for the server. */
  env?: Record<string, string>;
}
const greeter = "src/main.js";
const grpcJs = "bench/servers/grpc-js.js";
const fastify = "bench/servers/fastify.js";
/** A variant of a server: what its table name adds, and the environment that makes it. */
type Variant = [label: string, env: Record<string, string>];
const logWarn: Variant = ["LOG_LEVEL=warn", { LOG_LEVEL: "warn" }];
const engineOff: Variant = ["engine off", { ENGINE: "off" }];
/** connect-greeter on `scenario`, as it is or as `variant` sets it. */
const ours = (scenario: Scenario, variant?: Variant): Case =>
  variant === undefined
    ? { server: "connect-greeter", script: greeter, scenario }
    : {
        server: `connect-greeter, ${variant[0]}`,
        script: greeter,
        scenario,
        env: variant[1],
      };
/** fastify serving Connect JSON unary over HTTP/1.1, with or without its logger. */
const onFastify = (logs: boolean): Case => ({
  server: `fastify (${logs ? "logs" : "no logs"})`,
  script: fastify,
  scenario: "connect-json-unary-h1",
  env: { FASTIFY_LOGGER: String(logs) },
});
/** The cases, by index (PROFILE_CASES). New cases go at the end, so that the indexes quoted in bench/PROFILE.md keep their meaning. */
const cases: Case[] = [
  ours("grpc-unary"),
  ours("connect-unary"),
  { server: "@grpc/grpc-js", script: grpcJs, scenario: "grpc-unary" },
  ours("grpc-unary", logWarn),
  ours("stream"),
  { server: "@grpc/grpc-js", script: grpcJs, scenario: "stream" },
  ours("grpc-unary", engineOff),
  ours("connect-unary", engineOff),
  ours("connect-json-unary-h1"),
  ours("connect-json-unary-h1", logWarn),
  onFastify(true),
  onFastify(false),
  ours("grpc-web-unary"),
  ours("connect-stream"),
];

const nameOf = (c: Case) => `${c.server}, ${labelOf(c.scenario)}`;

interface GcEvent {
  /** V8's GC name: s (scavenge, young generation), ms (mark-sweep-compact), mc, ... */
  kind: string;
  pauseMs: number;
  allocatedBytes: number;
  /** Bytes of the young generation that survived this collection (copied or promoted). */
  survivedBytes: number;
}

async function profileCase(c: Case, dir: string) {
  mkdirSync(dir, { recursive: true });
  const cpu = (await loadCase(c, dir, false)) as Exclude<
    Awaited<ReturnType<typeof loadCase>>,
    { allocationSites: unknown }
  >;
  if (!heapRuns) return { ...cpu, allocationSites: undefined };
  const heap = (await loadCase(c, join(dir, "heap"), true)) as {
    allocationSites: ReturnType<typeof analyzeHeap>;
  };
  return { ...cpu, allocationSites: heap.allocationSites };
}

/**
 * One server under load. With `heap`, the server samples allocations (garbage
 * included) instead of CPU, since the heap sampler would distort the CPU profile.
 */
async function loadCase(c: Case, dir: string, heap: boolean) {
  mkdirSync(dir, { recursive: true });
  const gc: GcEvent[] = [];
  let measuring = false;
  const server = await startServerProcess(
    [
      ...(heap
        ? []
        : [
            "--cpu-prof",
            `--cpu-prof-dir=${dir}`,
            "--cpu-prof-interval=250",
            "--trace-gc",
            "--trace-gc-nvp",
          ]),
      // connect-greeter as the image runs it; the others as they are.
      ...(c.script === greeter ? imageNodeFlags(root) : []),
      ...nodeFlags,
      "--import",
      join(root, "dist/bench/profile-hooks.js"),
      join(root, "dist", c.script),
    ],
    {
      PORT: "0",
      HOST: "127.0.0.1",
      STREAM_INTERVAL_MS: "0",
      ...c.env,
      PROFILE_HOOKS_OUT: join(dir, "hooks.json"),
      ...(heap ? { PROFILE_HEAP_OUT: join(dir, "heap.json") } : {}),
    },
    pinned ? "0" : undefined,
    (line) => {
      // --trace-gc-nvp: "pause=0.5 ... gc=s ... allocated=123456 ..."
      if (!measuring || !line.includes(" gc=")) return;
      const field = (name: string) =>
        new RegExp(`\\b${name}=([^ ]+)`).exec(line)?.[1] ?? "";
      gc.push({
        kind: field("gc"),
        pauseMs: Number(field("pause")),
        allocatedBytes: Number(field("allocated")),
        survivedBytes:
          Number(field("new_space_survived") || 0) +
          Number(field("promoted") || 0),
      });
    },
  );
  const load = (requests: number) =>
    h2load({
      url: server.url,
      ...requestOf(c.scenario),
      ...loadShape(scenarios[c.scenario].http, concurrency),
      requests,
      cpus: pinned ? "1" : undefined,
    });
  await probe(server.url, c.scenario);
  const measured = heap ? heapCalls : calls;
  await load(heap ? 1000 : warmUpCalls);
  measuring = true;
  const cpuBefore = cpuSeconds(server.pid);
  const window = { from: monotonicUs(), to: 0 };
  const run = await load(measured);
  window.to = monotonicUs();
  const cpuUsPerCall =
    ((cpuSeconds(server.pid) - cpuBefore) / run.succeeded) * 1e6;
  measuring = false;
  await server.stop();
  if (heap) {
    return {
      allocationSites: analyzeHeap(
        JSON.parse(readFileSync(join(dir, "heap.json"), "utf8")),
        1 + 1000 + measured,
      ),
    };
  }
  const served = 1 + warmUpCalls + calls;
  const hooks = JSON.parse(readFileSync(join(dir, "hooks.json"), "utf8")) as {
    aborts: number;
    abortsWithoutReason: number;
    abortControllers: number;
  };
  // Node names profiles CPU.<date>.<time>.<pid>...: the last is this run's
  // when BENCH_OUT is used again.
  const profileFile = readdirSync(dir)
    .filter((f) => f.endsWith(".cpuprofile"))
    .sort()
    .at(-1);
  const profile = analyzeProfile(
    JSON.parse(readFileSync(join(dir, profileFile as string), "utf8")),
    window,
    run.succeeded,
  );
  const young = gc.filter((e) => e.kind === "s" || e.kind === "scavenge");
  const sum = (xs: GcEvent[], f: (e: GcEvent) => number) =>
    xs.reduce((n, e) => n + f(e), 0);
  return {
    name: nameOf(c),
    reqPerSec: run.reqPerSec,
    measuredCalls: run.succeeded,
    cpuUsPerCall,
    gcPerCall: {
      youngPauseUs: (sum(young, (e) => e.pauseMs) / calls) * 1000,
      allPauseUs: (sum(gc, (e) => e.pauseMs) / calls) * 1000,
      youngCollections: young.length,
      allCollections: gc.length,
    },
    allocatedBytesPerCall: sum(gc, (e) => e.allocatedBytes) / calls,
    /** Share of young-generation allocation that survived a scavenge: what makes scavenges expensive. */
    youngSurvivalPercent:
      (100 * sum(young, (e) => e.survivedBytes)) /
      Math.max(
        1,
        sum(young, (e) => e.allocatedBytes),
      ),
    perCall: {
      abortControllers: hooks.abortControllers / served,
      aborts: hooks.aborts / served,
      domExceptions: hooks.abortsWithoutReason / served,
    },
    profile,
  };
}

interface ProfileNode {
  id: number;
  callFrame: {
    functionName: string;
    url: string;
    lineNumber: number;
  };
  children?: number[];
}

/**
 * The monotonic clock in µs: CLOCK_MONOTONIC, which V8 stamps its CPU
 * profiles with too, and which every process on the machine shares.
 */
function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Self time per function, per file and per package, over the samples taken
 * within `window` (the measured calls: not start-up, not warm-up) that were
 * not idle, as shares and in µs per call (the main thread's busy time: what
 * the garbage collector's helper threads and libuv's pool do is not in it).
 */
function analyzeProfile(
  p: {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
    startTime: number;
  },
  window: { from: number; to: number },
  calls: number,
) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let t = p.startTime;
  p.samples.forEach((id, i) => {
    const delta = p.timeDeltas[i] ?? 0;
    t += delta;
    if (t < window.from || t > window.to) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  const packages = new Map<string, number>();
  let busy = 0;
  const add = (m: Map<string, number>, key: string, us: number) =>
    m.set(key, (m.get(key) ?? 0) + us);
  for (const [id, us] of selfUs) {
    const frame = (byId.get(id) as ProfileNode).callFrame;
    if (frame.functionName === "(idle)") continue;
    busy += us;
    add(functions, siteOf(frame), us);
    add(files, fileOf(frame.url) || frame.functionName || "(native)", us);
    add(packages, packageOf(frame.url, frame.functionName), us);
  }
  const share = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({
        name,
        percent: (100 * us) / busy,
        usPerCall: us / calls,
      }));
  return {
    busyUsPerCall: busy / calls,
    topFunctions: share(functions, 25),
    files: share(files, 80),
    packages: share(packages, 14),
  };
}

interface HeapNode {
  callFrame: ProfileNode["callFrame"];
  selfSize: number;
  children: HeapNode[];
}

/** Bytes allocated per call by allocating function (sampled, garbage included), largest first. */
function analyzeHeap(p: { head: HeapNode }, served: number) {
  const sites = new Map<string, number>();
  let total = 0;
  const visit = (node: HeapNode) => {
    const key = siteOf(node.callFrame);
    sites.set(key, (sites.get(key) ?? 0) + node.selfSize);
    total += node.selfSize;
    for (const child of node.children) visit(child);
  };
  visit(p.head);
  return {
    bytesPerCall: total / served,
    top: [...sites]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 20)
      .map(([name, bytes]) => ({ name, bytesPerCall: bytes / served })),
  };
}

/** A script's path as the reports name it: inside its package, inside this project, or Node's own ("node:..."). */
function fileOf(url: string): string {
  return url
    .replace(/^.*node_modules\//, "")
    .replace(`${pathToFileURL(root).href}/`, "")
    .replace(/^dist\//, "");
}

/** A function and where it is: "name file:line". */
function siteOf(frame: ProfileNode["callFrame"]): string {
  return `${frame.functionName || "(anonymous)"} ${fileOf(frame.url)}${frame.url ? `:${frame.lineNumber + 1}` : ""}`;
}

function packageOf(url: string, fn: string): string {
  if (fn.startsWith("(")) return fn; // (garbage collector), (program)
  const m = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1] as string;
  if (url.startsWith("node:")) return "node: internals";
  if (url === "") return "native / builtins";
  return "this project";
}

async function main(): Promise<void> {
  execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", root], {
    stdio: "inherit",
  });
  mkdirSync(out, { recursive: true });
  const results = [];
  for (const [i, c] of cases.entries()) {
    if (only && !only.includes(i)) continue;
    console.log(
      `profiling ${i}, ${nameOf(c)}: ${warmUpCalls} warm-up + ${calls} calls`,
    );
    results.push(await profileCase(c, join(out, String(i))));
  }
  writeFileSync(
    join(out, "profile.json"),
    `${JSON.stringify(results, null, 2)}\n`,
  );
  for (const r of results) {
    console.log(
      `\n## ${r.name}: ${Math.round(r.reqPerSec)} calls/s under the profiler; server CPU ${r.cpuUsPerCall.toFixed(0)} µs per measured call (all threads), main thread busy ${r.profile.busyUsPerCall.toFixed(0)} µs per call (profile)`,
    );
    console.log(
      `GC pauses per call: ${r.gcPerCall.youngPauseUs.toFixed(1)} µs young generation, ${r.gcPerCall.allPauseUs.toFixed(1)} µs all (${r.gcPerCall.youngCollections} scavenges, ${r.gcPerCall.allCollections} collections in ${calls} calls); allocated ${(r.allocatedBytesPerCall / 1024).toFixed(1)} KiB per call, ${r.youngSurvivalPercent.toFixed(0)}% of it surviving a scavenge`,
    );
    console.log(
      `per call: ${r.perCall.abortControllers.toFixed(2)} AbortControllers, ${r.perCall.aborts.toFixed(2)} abort() calls, ${r.perCall.domExceptions.toFixed(2)} DOMExceptions (abort() without a reason)`,
    );
    const shares = (
      title: string,
      list: { name: string; percent: number; usPerCall: number }[],
    ) => {
      console.log(title);
      for (const x of list)
        console.log(
          `  ${x.percent.toFixed(1).padStart(5)}%  ${x.usPerCall.toFixed(1).padStart(6)} µs  ${x.name}`,
        );
    };
    shares("self time by package:", r.profile.packages);
    shares("self time by file:", r.profile.files.slice(0, 20));
    if (r.allocationSites !== undefined) {
      console.log(
        `allocation sites (sampled, ${(r.allocationSites.bytesPerCall / 1024).toFixed(1)} KiB per call in all):`,
      );
      for (const a of r.allocationSites.top.slice(0, 12)) {
        console.log(
          `  ${(a.bytesPerCall / 1024).toFixed(2).padStart(6)} KiB  ${a.name}`,
        );
      }
    }
    shares("top self-time functions:", r.profile.topFunctions.slice(0, 15));
  }
  console.log(`\nraw profiles and results: ${out}`);
}

await main();
