import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { probe } from "../bench/probe.js";
import {
  connectEndStreamFlag,
  grpcFrame,
  grpcWebTrailers,
  replyBytes,
  streamReplyTexts,
  unaryReplyText,
} from "../bench/wire.js";

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
    vsOwnGrpc: number | undefined;
  }[];
  goals: {
    goal: string;
    target: string;
    measured: string;
    met: boolean | undefined;
  }[];
  idle: {
    server: string;
    streams: number;
    succeeded: number;
    peakRssMb: number;
  }[];
}

/** Every scenario, in the order each server runs them. */
const everyScenario = [
  "grpc-unary",
  "connect-unary",
  "connect-json-unary",
  "grpc-web-unary",
  "connect-unary-h1",
  "connect-json-unary-h1",
  "grpc-web-unary-h1",
  "connect-get",
  "connect-get-h1",
  "stream",
  "connect-stream",
  "connect-json-stream",
  "grpc-web-stream",
  "connect-stream-h1",
  "connect-json-stream-h1",
  "grpc-web-stream-h1",
  "chat",
];

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
        BENCH_SERVERS: "ceiling,connect,connect-auth,fastify",
        BENCH_IDLE_STREAMS: "100",
      },
      timeout: 300_000,
    },
  );
  const report = JSON.parse(
    readFileSync(join(out, "results.json"), "utf8"),
  ) as Report;
  const measured = report.table.map((r) => `${r.server} ${r.scenario}`);
  assert.deepEqual(measured, [
    ...everyScenario.map((s) => `ceiling ${s}`),
    ...everyScenario.map((s) => `connect ${s}`),
    "connect-auth grpc-unary",
    "fastify connect-json-unary-h1",
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
  const rate = (server: string, scenario: string) =>
    report.table.find((r) => r.server === server && r.scenario === scenario)
      ?.rate as number;
  // The server with tokens on passed its probe, so its calls carried the
  // token and were served; its goal compares it with the same server without.
  const tokenGoal = report.goals.find(
    (g) => g.goal === "gRPC unary (h2) with a token",
  );
  const withToken =
    rate("connect-auth", "grpc-unary") / rate("connect", "grpc-unary");
  assert.equal(tokenGoal?.target, "≥ 0.90× without authentication");
  assert.match(
    tokenGoal?.measured ?? "",
    new RegExp(`^${withToken.toFixed(2)}× `),
  );
  assert.equal(tokenGoal?.met, withToken >= 0.9);
  for (const row of report.table.filter((r) => r.server === "connect")) {
    assert.equal(
      row.vsOwnGrpc,
      row.rate / rate("connect", "grpc-unary"),
      `connect ${row.scenario} against its own gRPC unary`,
    );
  }
  assert.equal(
    report.table.at(-1)?.vsOwnGrpc,
    undefined,
    "fastify has no gRPC",
  );
  const fastifyGoal = report.goals.find(
    (g) => g.goal === "Connect JSON unary (h1) at info",
  );
  const x =
    rate("connect", "connect-json-unary-h1") /
    rate("fastify", "connect-json-unary-h1");
  assert.equal(fastifyGoal?.target, "≥ 1.00× fastify (logs)");
  assert.match(fastifyGoal?.measured ?? "", new RegExp(`^${x.toFixed(2)}× `));
  assert.equal(fastifyGoal?.met, x >= 1);
  // Servers this run left out leave their goals unmeasured, not failed.
  assert.equal(
    report.goals.find((g) => g.goal === "Connect JSON unary (h1) at warn")?.met,
    undefined,
  );
  assert.equal(report.idle.length, 1);
  assert.equal(report.idle[0]?.succeeded, 100);
  assert.ok((report.idle[0]?.peakRssMb ?? 0) > 10);
  assert.match(readFileSync(join(out, "bench.svg"), "utf8"), /^<svg [^>]*>/);
  const table = readFileSync(join(out, "table.md"), "utf8");
  assert.match(table, /\| connect-greeter \| gRPC unary \(h2\) \|/);
  assert.match(
    table,
    /\| gRPC-Web StreamHello \(h1\) at one speed \| ≥ 0\.80× own gRPC unary \(h2\) \| \d+\.\d\d× /,
  );
});

/** A server on 127.0.0.1 answering every request with HTTP 200, `contentType` and `body`, over `version`. */
async function answering(
  version: "h1" | "h2",
  contentType: string,
  body: Buffer,
): Promise<{ url: string; close: () => void }> {
  const headers = { "content-type": contentType };
  const server =
    version === "h2"
      ? http2.createServer((req, res) =>
          req.resume().on("end", () => res.writeHead(200, headers).end(body)),
        )
      : http.createServer((req, res) =>
          req.resume().on("end", () => res.writeHead(200, headers).end(body)),
        );
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      if (server instanceof http.Server) server.closeAllConnections();
      server.close();
    },
  };
}

const goodGrpcWeb = Buffer.concat([
  grpcFrame(replyBytes(unaryReplyText)),
  grpcWebTrailers(0),
]);
const connectStream = (end: string) =>
  Buffer.concat([
    ...streamReplyTexts.map((m) => grpcFrame(replyBytes(m))),
    grpcFrame(Buffer.from(end), connectEndStreamFlag),
  ]);

test("the probe takes a right answer and rejects a failure that h2load would count as a success (HTTP 200)", async (t) => {
  const cases = [
    {
      name: "gRPC-Web over HTTP/2, grpc-status 0",
      server: await answering("h2", "application/grpc-web+proto", goodGrpcWeb),
      scenario: "grpc-web-unary",
      rejects: undefined,
    },
    {
      name: "gRPC-Web over HTTP/2, grpc-status 13 in the trailer frame",
      server: await answering(
        "h2",
        "application/grpc-web+proto",
        Buffer.concat([
          grpcFrame(replyBytes(unaryReplyText)),
          grpcWebTrailers(13),
        ]),
      ),
      scenario: "grpc-web-unary",
      rejects: /grpc-status 13/,
    },
    {
      name: "gRPC-Web over HTTP/1.1, the reply but no trailer frame",
      server: await answering(
        "h1",
        "application/grpc-web+proto",
        grpcFrame(replyBytes(unaryReplyText)),
      ),
      scenario: "grpc-web-unary-h1",
      rejects: /grpc-status undefined/,
    },
    {
      name: "Connect stream over HTTP/1.1, end of stream without error",
      server: await answering(
        "h1",
        "application/connect+proto",
        connectStream("{}"),
      ),
      scenario: "connect-stream-h1",
      rejects: undefined,
    },
    {
      name: "Connect stream over HTTP/1.1, end of stream with an error",
      server: await answering(
        "h1",
        "application/connect+proto",
        connectStream('{"error":{"code":"internal"}}'),
      ),
      scenario: "connect-stream-h1",
      rejects: /error \{"code":"internal"\}/,
    },
    {
      name: "Connect unary over HTTP/1.1, another reply",
      server: await answering(
        "h1",
        "application/proto",
        Buffer.from(replyBytes("Hello, someone else!")),
      ),
      scenario: "connect-unary-h1",
      rejects: /messages \["Hello, someone else!"\]/,
    },
  ] as const;
  for (const c of cases) t.after(c.server.close);
  for (const c of cases) {
    const probed = probe(c.server.url, c.scenario);
    if (c.rejects === undefined) await probed;
    else await assert.rejects(probed, c.rejects, c.name);
  }
});
