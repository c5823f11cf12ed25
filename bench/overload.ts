/**
 * `npm run bench:overload`: what the server does past its capacity, with
 * load shedding off and on, under an open-loop load: calls arrive at a fixed
 * rate (h2load --rps on 16 connections), whether or not the server keeps up,
 * as a service's clients keep calling when it slows down; a closed loop
 * would slow down with the server and hide the overload.
 *
 * For each server (the Greeter, and the Greeter whose SayHello computes for
 * BUSY_US, as a real call costs more than its protocol), it measures the
 * capacity (a closed loop, h2load -c 4 -m 16), the latency unloaded (an open
 * loop at a tenth of it), then runs an open loop at OVERLOAD_FACTORS times
 * the capacity, with shedding off, by the event loop's delay
 * (SHED_EVENT_LOOP_DELAY_MS) and by calls in flight (SHED_CALLS_IN_FLIGHT),
 * each on a fresh server: the latency of the
 * calls admitted (HTTP 200) and of the refusals (HTTP 503: Connect's
 * UNAVAILABLE), the arrival rate h2load managed, and the server's peak
 * memory. Calls are Connect unary over HTTP/2 (application/proto), whose
 * status is the HTTP status, so h2load's log tells admitted from refused.
 *
 * The server runs on CPU 0 and h2load on CPU 1 when there are two or more.
 * Settings (environment): OVERLOAD_SECONDS (5), OVERLOAD_FACTORS ("3,5"),
 * BUSY_US (250), SHED_EVENT_LOOP_DELAY_MS (10), SHED_CALLS_IN_FLIGHT (100),
 * OVERLOAD_SERVERS
 * ("greeter,busy"), BENCH_OUT (bench/results). Writes overload.json and
 * overload.md there, and prints the table.
 */
import { execFileSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { num } from "./env.js";
import { memoryBytes } from "./proc.js";
import { startServerProcess } from "./server-process.js";
import { percentile } from "./stats.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const seconds = num("OVERLOAD_SECONDS", 5);
const factors = (process.env.OVERLOAD_FACTORS ?? "3,5").split(",").map(Number);
const busyUs = num("BUSY_US", 250);
const shedDelayMs = num("SHED_EVENT_LOOP_DELAY_MS", 10);
const shedInFlight = num("SHED_CALLS_IN_FLIGHT", 100);
/** Shedding off, and by each signal. */
const modes = {
  off: {},
  "event loop delay": { SHED_EVENT_LOOP_DELAY_MS: String(shedDelayMs) },
  "calls in flight": { SHED_CALLS_IN_FLIGHT: String(shedInFlight) },
} as const;
const which = (process.env.OVERLOAD_SERVERS ?? "greeter,busy").split(",");
const out = process.env.BENCH_OUT ?? join(root, "bench/results");
const twoCpus = availableParallelism() >= 2;
const serverCpus = twoCpus ? "0" : undefined;
const clientCpus = twoCpus ? "1" : undefined;

/** The servers, as compiled by tsc (as production runs them). */
const servers = {
  greeter: {
    label: "Greeter SayHello",
    args: [join(root, "dist/src/main.js")],
  },
  busy: {
    label: `SayHello computing ${busyUs} µs`,
    args: [join(root, "dist/bench/servers/busy-greeter.js")],
  },
} as const;

/** SayHello("bench") in protobuf: field 1, length 5. */
const body = Buffer.from([0x0a, 0x05, ...Buffer.from("bench")]);

interface Run {
  /** Calls h2load started per second (the arrival rate it managed). */
  arrivalsPerSec: number;
  admitted: number;
  refused: number;
  /** Calls that got neither (reset, or still waiting when the run ended). */
  other: number;
  admittedP50Ms: number;
  admittedP99Ms: number;
  refusedP99Ms: number;
  /** Admitted calls per second. */
  servedPerSec: number;
}

/** Run h2load against `url` and read its per-request log. */
function h2load(
  url: string,
  options: { connections: number; streams: number; rps?: number },
): Run {
  const dir = mkdtempSync(join(tmpdir(), "bench-overload-"));
  try {
    const bodyFile = join(dir, "body");
    const log = join(dir, "log");
    writeFileSync(bodyFile, body);
    const args = [
      "-c",
      String(options.connections),
      "-m",
      String(options.streams),
      "-t",
      "1",
      "-D",
      String(seconds),
      "-d",
      bodyFile,
      "-H",
      "content-type: application/proto",
      "--log-file",
      log,
      ...(options.rps === undefined ? [] : ["--rps", String(options.rps)]),
      `${url}/Greeter/SayHello`,
    ];
    const text = execFileSync(
      clientCpus === undefined ? "h2load" : "taskset",
      clientCpus === undefined ? args : ["-c", clientCpus, "h2load", ...args],
      { encoding: "utf8", maxBuffer: 1 << 24 },
    );
    const started = Number(/(\d+) started/.exec(text)?.[1] ?? 0);
    const ok: number[] = [];
    const no: number[] = [];
    for (const line of readFileSync(log, "utf8").split("\n")) {
      const [, status, us] = line.split("\t");
      if (status === "200") ok.push(Number(us) / 1000);
      else if (status === "503") no.push(Number(us) / 1000);
    }
    ok.sort((a, b) => a - b);
    no.sort((a, b) => a - b);
    return {
      arrivalsPerSec: started / seconds,
      admitted: ok.length,
      refused: no.length,
      other: started - ok.length - no.length,
      admittedP50Ms: percentile(ok, 0.5),
      admittedP99Ms: percentile(ok, 0.99),
      refusedP99Ms: percentile(no, 0.99),
      servedPerSec: ok.length / seconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Start a fresh server, run `measure` against it, and read its peak memory. */
async function withServer<T>(
  server: keyof typeof servers,
  env: Record<string, string>,
  measure: (url: string) => T,
): Promise<T & { peakRssMb: number }> {
  const child = await startServerProcess(
    servers[server].args,
    {
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
      BUSY_US: String(busyUs),
      ...env,
    },
    serverCpus,
  );
  try {
    const result = measure(child.url);
    return {
      ...result,
      peakRssMb: memoryBytes(child.pid, "VmHWM") / 2 ** 20,
    };
  } finally {
    await child.stop();
  }
}

interface Row {
  server: string;
  capacityPerSec: number;
  unloadedP99Ms: number;
  factor: number;
  shedding: keyof typeof modes;
  run: Run & { peakRssMb: number };
}

async function main(): Promise<void> {
  // Compile as production does (tsx would add a name to every function).
  execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", root], {
    stdio: "inherit",
  });
  const rows: Row[] = [];
  for (const server of which as (keyof typeof servers)[]) {
    const capacity = await withServer(server, {}, (url) =>
      h2load(url, { connections: 4, streams: 16 }),
    );
    const capacityPerSec = capacity.servedPerSec;
    const unloaded = await withServer(server, {}, (url) =>
      h2load(url, {
        connections: 16,
        streams: 1000,
        rps: Math.max(1, Math.round(capacityPerSec / 10 / 16)),
      }),
    );
    console.log(
      `${servers[server].label}: capacity ${capacityPerSec.toFixed(0)} calls/s, unloaded p99 ${unloaded.admittedP99Ms.toFixed(2)} ms`,
    );
    for (const factor of factors) {
      for (const shedding of Object.keys(modes) as (keyof typeof modes)[]) {
        const run = await withServer(server, modes[shedding], (url) =>
          h2load(url, {
            connections: 16,
            streams: 1000,
            rps: Math.round((factor * capacityPerSec) / 16),
          }),
        );
        rows.push({
          server: servers[server].label,
          capacityPerSec,
          unloadedP99Ms: unloaded.admittedP99Ms,
          factor,
          shedding,
          run,
        });
        console.log(line(rows[rows.length - 1] as Row));
      }
    }
  }
  const machine = `${availableParallelism()} CPUs, load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(
      " ",
    )} at the end; server on CPU ${serverCpus ?? "any"}, h2load on CPU ${clientCpus ?? "any"}; ${seconds} s per run; shedding by SHED_EVENT_LOOP_DELAY_MS=${shedDelayMs} or SHED_CALLS_IN_FLIGHT=${shedInFlight}`;
  const table = [
    "| server | capacity | unloaded p99 | load | shedding | arrivals/s | served/s | admitted p50 / p99 | refused | refusal p99 | no answer | peak RSS |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows.map(line),
    "",
    machine,
  ].join("\n");
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, "overload.json"),
    JSON.stringify({ machine, rows }, null, 2),
  );
  writeFileSync(join(out, "overload.md"), `${table}\n`);
  console.log(`\n${table}`);
}

function line(r: Row): string {
  const ms = (v: number) => (Number.isNaN(v) ? "–" : `${v.toFixed(1)} ms`);
  return `| ${r.server} | ${r.capacityPerSec.toFixed(0)}/s | ${ms(r.unloadedP99Ms)} | ${r.factor}× | ${r.shedding} | ${r.run.arrivalsPerSec.toFixed(0)} | ${r.run.servedPerSec.toFixed(0)} | ${ms(r.run.admittedP50Ms)} / ${ms(r.run.admittedP99Ms)} | ${r.run.refused} | ${ms(r.run.refusedP99Ms)} | ${r.run.other} | ${r.run.peakRssMb.toFixed(0)} MB |`;
}

await main();
