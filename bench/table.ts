/**
 * The benchmark's results as tables: each server's samples summarized per
 * scenario (medians over the rounds, ratios to other servers of the same
 * run), and the idle-stream results, in Markdown.
 */
import { labelOf, type Scenario, unitOf } from "./scenarios.js";
import { median } from "./stats.js";

/** One measurement of one scenario on one server. */
export interface Sample {
  server: string;
  scenario: Scenario;
  round: number;
  /** Calls per second (h2load requests, or Chat messages). */
  callsPerSec: number;
  /** Messages per second for streams (5 per StreamHello call), else calls per second. */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU microseconds per call, over the measured window. */
  serverCpuUsPerCall: number;
  /** Server CPU use over the measured window, in cores (1 = one core busy). */
  serverCores: number;
  /** Load generator CPU use, in cores: near 1 means it, not the server, is the limit. */
  clientCores: number;
  /** Server VmHWM (peak RSS) after this scenario, in MB. */
  peakRssMb: number;
  failed: number;
}

/** Many slow StreamHello calls held open at once, and the server's memory meanwhile. */
export interface IdleResult {
  server: string;
  streams: number;
  intervalMs: number;
  connections: number;
  succeeded: number;
  /** Wall-clock seconds until the last stream finished. */
  seconds: number;
  /** Median call duration, in ms (the calls take 4 intervals). */
  p50Ms: number;
  /** Whether every call ran at once (the whole run took about one call's length). */
  held: boolean;
  baselineRssMb: number;
  /** Highest VmRSS sampled while the streams were open, in MB. */
  peakRssMb: number;
}

/** One server and scenario, summarized over rounds: the medians of its samples, and ratios. */
export interface Row extends Omit<Sample, "round" | "callsPerSec"> {
  label: string;
  /** Rate over server cores used: what one fully busy core would do, robust to a shared machine. */
  perCore: number;
  /** Rate against the same server's gRPC unary over HTTP/2 (a stream's messages against unary calls). */
  vsOwnGrpc: number | undefined;
  vsGrpcJs: number | undefined;
  vsCeiling: number | undefined;
  perCoreVsGrpcJs: number | undefined;
  perCoreVsCeiling: number | undefined;
}

/** A server as the table lists it: its name, label and scenarios, in the table's order. */
export interface TableServer {
  name: string;
  label: string;
  scenarios: readonly Scenario[];
}

/** Median over rounds per server and scenario, with ratios to grpc-js, the ceiling and the server's own gRPC unary of the same run. */
export function summarize(
  samples: readonly Sample[],
  servers: readonly TableServer[],
): Row[] {
  const medianOf = (
    server: string,
    scenario: Scenario,
    f: (s: Sample) => number,
  ) => {
    const theirs = samples.filter(
      (s) => s.server === server && s.scenario === scenario,
    );
    return theirs.length === 0 ? undefined : median(theirs.map(f));
  };
  const over = (x: number, y: number | undefined) => (y ? x / y : undefined);
  const perCoreOf = (s: Sample) => s.rate / s.serverCores;
  const rows: Row[] = [];
  for (const { name, label, scenarios } of servers) {
    for (const scenario of scenarios) {
      const mine = samples.filter(
        (s) => s.server === name && s.scenario === scenario,
      );
      if (mine.length === 0) continue;
      const pick = (f: (s: Sample) => number) => median(mine.map(f));
      const rate = pick((s) => s.rate);
      const perCore = pick(perCoreOf);
      rows.push({
        server: name,
        label,
        scenario,
        rate,
        p50Ms: pick((s) => s.p50Ms),
        p99Ms: pick((s) => s.p99Ms),
        serverCpuUsPerCall: pick((s) => s.serverCpuUsPerCall),
        serverCores: pick((s) => s.serverCores),
        clientCores: pick((s) => s.clientCores),
        peakRssMb: Math.max(...mine.map((s) => s.peakRssMb)),
        failed: mine.reduce((n, s) => n + s.failed, 0),
        perCore,
        vsOwnGrpc: over(
          rate,
          medianOf(name, "grpc-unary", (s) => s.rate),
        ),
        vsGrpcJs: over(
          rate,
          medianOf("grpc-js", scenario, (s) => s.rate),
        ),
        vsCeiling: over(
          rate,
          medianOf("ceiling", scenario, (s) => s.rate),
        ),
        perCoreVsGrpcJs: over(
          perCore,
          medianOf("grpc-js", scenario, perCoreOf),
        ),
        perCoreVsCeiling: over(
          perCore,
          medianOf("ceiling", scenario, perCoreOf),
        ),
      });
    }
  }
  return rows;
}

export function formatTable(rows: readonly Row[]): string {
  const head =
    "| server | scenario | rate | p50 ms | p99 ms | server CPU µs/call | server cores | client cores | peak RSS MB | × own gRPC h2 | × grpc-js | × ceiling | per core | per core × grpc-js | per core × ceiling |";
  const lines = [
    head,
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.label} | ${labelOf(r.scenario)} | ${fmt(r.rate)} ${unitOf(r.scenario)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.serverCpuUsPerCall.toFixed(0)} | ${r.serverCores.toFixed(2)} | ${r.clientCores.toFixed(2)} | ${r.peakRssMb.toFixed(0)} | ${ratio(r.vsOwnGrpc)} | ${ratio(r.vsGrpcJs)} | ${ratio(r.vsCeiling)} | ${fmt(r.perCore).trim()} | ${ratio(r.perCoreVsGrpcJs)} | ${ratio(r.perCoreVsCeiling)} |${r.failed > 0 ? ` ${r.failed} failed` : ""}`,
    );
  }
  return lines.join("\n");
}

export function formatIdle(
  idle: readonly IdleResult[],
  labelOfServer: (name: string) => string,
): string {
  if (idle.length === 0) return "";
  const lines = [
    "| idle StreamHello | calls | interval | connections | completed | all open at once | RSS before MB | RSS peak MB |",
    "|---|--:|--:|--:|--:|---|--:|--:|",
  ];
  for (const r of idle) {
    lines.push(
      `| ${labelOfServer(r.server)} | ${r.streams} | ${r.intervalMs} ms | ${r.connections} | ${r.succeeded} | ${r.held ? "yes" : "no"} (${r.seconds.toFixed(1)} s, p50 ${(r.p50Ms / 1000).toFixed(1)} s) | ${r.baselineRssMb.toFixed(0)} | ${r.peakRssMb.toFixed(0)} |`,
    );
  }
  return lines.join("\n");
}

/** A ratio as the tables print it: "1.23×", or nothing when there is none. */
export function ratio(x: number | undefined): string {
  return x === undefined ? "" : `${x.toFixed(2)}×`;
}

/** A rate as the tables print it: whole, with thousands separators, right-aligned. */
export function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US").padStart(7);
}
