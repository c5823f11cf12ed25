import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

interface Report {
  table: {
    server: string;
    scenario: string;
    rate: number;
    p50Ms: number;
    serverCpuUsPerCall: number;
    peakRssMb: number;
    failed: number;
    vsCeiling: number | undefined;
  }[];
  idle: {
    server: string;
    streams: number;
    succeeded: number;
    peakRssMb: number;
  }[];
}

test("the benchmark's quick mode measures every scenario and writes its results", async (t) => {
  const out = mkdtempSync(join(tmpdir(), "bench-test-"));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "bench/run.ts", "--quick"],
    {
      env: {
        ...process.env,
        BENCH_OUT: out,
        BENCH_SERVERS: "ceiling,connect",
        BENCH_IDLE_STREAMS: "100",
      },
      timeout: 180_000,
    },
  );
  const report = JSON.parse(
    readFileSync(join(out, "results.json"), "utf8"),
  ) as Report;
  const measured = report.table.map((r) => `${r.server} ${r.scenario}`);
  assert.deepEqual(measured, [
    "ceiling grpc-unary",
    "ceiling connect-unary",
    "ceiling connect-get",
    "ceiling stream",
    "ceiling chat",
    "connect grpc-unary",
    "connect connect-unary",
    "connect connect-get",
    "connect stream",
    "connect chat",
  ]);
  for (const row of report.table) {
    const name = `${row.server} ${row.scenario}`;
    assert.ok(row.rate > 0, `${name} has a rate`);
    assert.equal(row.failed, 0, `${name} had failed calls`);
    assert.ok(row.p50Ms > 0, `${name} has a latency`);
    assert.ok(row.serverCpuUsPerCall > 0, `${name} has a CPU cost`);
    assert.ok(row.peakRssMb > 10, `${name} has a peak RSS`);
    assert.ok(
      row.vsCeiling !== undefined && row.vsCeiling > 0,
      `${name} has a ratio to the ceiling`,
    );
  }
  assert.equal(report.idle.length, 1);
  assert.equal(report.idle[0]?.succeeded, 100);
  assert.ok((report.idle[0]?.peakRssMb ?? 0) > 10);
  assert.match(readFileSync(join(out, "bench.svg"), "utf8"), /^<svg [^>]*>/);
  assert.match(
    readFileSync(join(out, "table.md"), "utf8"),
    /\| connect-greeter \| gRPC unary \|/,
  );
});
