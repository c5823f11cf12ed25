/**
 * `npm run bench:profile`: where this server spends its time on unary calls.
 *
 * For gRPC unary and Connect unary (binary proto) on connect-greeter, and gRPC
 * unary on @grpc/grpc-js for comparison (and connect-greeter with FAST_PATH=off,
 * that is connect's own handlers), starts the server under
 * `node --cpu-prof --trace-gc --trace-gc-nvp` with bench/profile-hooks preloaded,
 * warms it up, loads it with h2load (-c 8 -m 32, a fixed number of calls), stops
 * it, and reports: top self-time functions, time per package, GC pauses and
 * bytes allocated per call (from V8's per-GC "allocated=" counts after the
 * warm-up), and AbortController.abort() calls and DOMExceptions per call.
 *
 * Settings (environment): PROFILE_CASES (indexes of the cases above, e.g. "0"),
 * PROFILE_NODE_FLAGS (extra node flags for the servers), PROFILE_STREAMS (h2load
 * -m, default 32), PROFILE_CALLS (calls measured, default 50000),
 * PROFILE_WARMUP_CALLS (10000), BENCH_OUT (output directory).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { h2load } from "./h2load.js";
import { probe } from "./probe.js";
import { startServerProcess } from "./server-process.js";
import { grpcFrame, requestBytes } from "./wire.js";

/** Server on core 0, h2load on core 1, when there are two. */
const pinned = availableParallelism() >= 2;
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const calls = Number(process.env.PROFILE_CALLS ?? 50_000);
const warmUpCalls = Number(process.env.PROFILE_WARMUP_CALLS ?? 10_000);
/** Extra node flags for the servers, to measure a runtime setting (e.g. --max-semi-space-size=32). */
const nodeFlags = (process.env.PROFILE_NODE_FLAGS ?? "")
  .split(" ")
  .filter((f) => f !== "");
/** h2load -m: calls in flight per connection (8 connections). */
const streamsPerConnection = Number(process.env.PROFILE_STREAMS ?? 32);
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
  name: string;
  server: string;
  grpc: boolean;
  /** StreamHello (gRPC, five replies per call) instead of SayHello. */
  stream?: boolean;
  /** Extra environment for the server. */
  env?: Record<string, string>;
}
const cases: Case[] = [
  { name: "connect-greeter, gRPC unary", server: "src/main.js", grpc: true },
  {
    name: "connect-greeter, Connect unary",
    server: "src/main.js",
    grpc: false,
  },
  {
    name: "@grpc/grpc-js, gRPC unary",
    server: "bench/servers/grpc-js.js",
    grpc: true,
  },
  {
    name: "connect-greeter, gRPC unary, LOG_LEVEL=warn",
    server: "src/main.js",
    grpc: true,
    env: { LOG_LEVEL: "warn" },
  },
  {
    name: "connect-greeter, gRPC StreamHello",
    server: "src/main.js",
    grpc: true,
    stream: true,
  },
  {
    name: "@grpc/grpc-js, gRPC StreamHello",
    server: "bench/servers/grpc-js.js",
    grpc: true,
    stream: true,
  },
  {
    name: "connect-greeter, gRPC unary, fast path off",
    server: "src/main.js",
    grpc: true,
    env: { FAST_PATH: "off" },
  },
  {
    name: "connect-greeter, Connect unary, fast path off",
    server: "src/main.js",
    grpc: false,
    env: { FAST_PATH: "off" },
  },
];

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
      ...nodeFlags,
      "--import",
      join(root, "dist/bench/profile-hooks.js"),
      join(root, "dist", c.server),
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
      path: c.stream ? "/Greeter/StreamHello" : "/Greeter/SayHello",
      headers: c.grpc
        ? { "content-type": "application/grpc", te: "trailers" }
        : { "content-type": "application/proto" },
      body: c.grpc ? grpcFrame(requestBytes()) : requestBytes(),
      connections: 8,
      streams: streamsPerConnection,
      requests,
      cpus: pinned ? "1" : undefined,
    });
  await probe(
    server.url,
    c.stream ? "stream" : c.grpc ? "grpc-unary" : "connect-unary",
  );
  const measured = heap ? heapCalls : calls;
  await load(heap ? 1000 : warmUpCalls);
  measuring = true;
  const run = await load(measured);
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
  const profileFile = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  const profile = analyzeProfile(
    JSON.parse(readFileSync(join(dir, profileFile as string), "utf8")),
  );
  const young = gc.filter((e) => e.kind === "s" || e.kind === "scavenge");
  const sum = (xs: GcEvent[], f: (e: GcEvent) => number) =>
    xs.reduce((n, e) => n + f(e), 0);
  return {
    name: c.name,
    reqPerSec: run.reqPerSec,
    measuredCalls: run.succeeded,
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

/** Self time per function and per package, as shares of all samples that were not idle. */
function analyzeProfile(p: {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  const functions = new Map<string, number>();
  const packages = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const frame = (byId.get(id) as ProfileNode).callFrame;
    if (frame.functionName === "(idle)") continue;
    busy += us;
    const where = packageOf(frame.url, frame.functionName);
    const file = frame.url
      .replace(/^.*node_modules\//, "")
      .replace(/^file:\/\/.*?\/(dist\/)?/, "");
    const key = `${frame.functionName || "(anonymous)"} ${file}${frame.url ? `:${frame.lineNumber + 1}` : ""}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
    packages.set(where, (packages.get(where) ?? 0) + us);
  }
  const share = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, percent: (100 * us) / busy }));
  return { topFunctions: share(functions, 25), packages: share(packages, 12) };
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
    const f = node.callFrame;
    const file = f.url
      .replace(/^.*node_modules\//, "")
      .replace(/^file:\/\/.*?\/(dist\/)?/, "");
    const key = `${f.functionName || "(anonymous)"} ${file}${f.url ? `:${f.lineNumber + 1}` : ""}`;
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
    console.log(`profiling ${c.name}: ${warmUpCalls} warm-up + ${calls} calls`);
    results.push(await profileCase(c, join(out, String(i))));
  }
  writeFileSync(
    join(out, "profile.json"),
    `${JSON.stringify(results, null, 2)}\n`,
  );
  for (const r of results) {
    console.log(
      `\n## ${r.name}: ${Math.round(r.reqPerSec)} req/s under the profiler`,
    );
    console.log(
      `GC pauses per call: ${r.gcPerCall.youngPauseUs.toFixed(1)} µs young generation, ${r.gcPerCall.allPauseUs.toFixed(1)} µs all (${r.gcPerCall.youngCollections} scavenges, ${r.gcPerCall.allCollections} collections in ${calls} calls); allocated ${(r.allocatedBytesPerCall / 1024).toFixed(1)} KiB per call, ${r.youngSurvivalPercent.toFixed(0)}% of it surviving a scavenge`,
    );
    console.log(
      `per call: ${r.perCall.abortControllers.toFixed(2)} AbortControllers, ${r.perCall.aborts.toFixed(2)} abort() calls, ${r.perCall.domExceptions.toFixed(2)} DOMExceptions (abort() without a reason)`,
    );
    console.log("self time by package:");
    for (const p of r.profile.packages)
      console.log(`  ${p.percent.toFixed(1).padStart(5)}%  ${p.name}`);
    console.log(
      `allocation sites (sampled, ${(r.allocationSites.bytesPerCall / 1024).toFixed(1)} KiB per call in all):`,
    );
    for (const a of r.allocationSites.top.slice(0, 12)) {
      console.log(
        `  ${(a.bytesPerCall / 1024).toFixed(2).padStart(6)} KiB  ${a.name}`,
      );
    }
    console.log("top self-time functions:");
    for (const f of r.profile.topFunctions.slice(0, 15))
      console.log(`  ${f.percent.toFixed(1).padStart(5)}%  ${f.name}`);
  }
  console.log(`\nraw profiles and results: ${out}`);
}

await main();
