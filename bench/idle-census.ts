/**
 * `npm run bench:idle-census [calls]`: what an open StreamHello call keeps alive.
 * Starts this server in-process (stream interval 10 s), takes a V8 heap snapshot
 * after a full GC, opens `calls` StreamHello calls with h2load (default 2000),
 * takes another once all are in flight, and prints the retained JS heap per
 * call, by object type and name. (No RSS here: the snapshots themselves grow it.) Needs node --expose-gc (the npm script passes it).
 * It runs the tsc build, as production does: tsx's esbuild keeps function
 * names by defining a `name` property on them, which gives every class-field
 * arrow function a 256-byte property table the real server does not have.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getHeapSnapshot } from "node:v8";
import { startServer } from "../src/server.js";
import { grpcFrame, requestBytes } from "./wire.js";

const calls = Number(process.argv[2] ?? 2000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

/** Self size and count per "type:name" of every object on the heap, after a full GC. */
async function census(): Promise<
  Map<string, { count: number; bytes: number }>
> {
  gc?.();
  const chunks: Buffer[] = [];
  for await (const chunk of getHeapSnapshot()) chunks.push(Buffer.from(chunk));
  const snap = JSON.parse(Buffer.concat(chunks).toString()) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [t, n, s] = ["type", "name", "self_size"].map((f) =>
    fields.indexOf(f),
  ) as [number, number, number];
  const byKind = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const key = `${types[snap.nodes[i + t] as number]}:${String(snap.strings[snap.nodes[i + n] as number]).slice(0, 60)}`;
    const entry = byKind.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += snap.nodes[i + s] as number;
    byKind.set(key, entry);
  }
  return byKind;
}

const server = await startServer({
  port: 0,
  host: "127.0.0.1",
  streamIntervalMs: 10_000,
});
const dir = mkdtempSync(join(tmpdir(), "idle-census-"));
const body = join(dir, "body");
writeFileSync(body, grpcFrame(requestBytes()));
const before = await census();
const load = spawn(
  "h2load",
  [
    "-c",
    "4",
    "-m",
    String(Math.ceil(calls / 4)),
    "-n",
    String(calls),
    "-d",
    body,
    "-H",
    "content-type: application/grpc",
    "-H",
    "te: trailers",
    `http://127.0.0.1:${server.port}/Greeter/StreamHello`,
  ],
  { stdio: "ignore" },
);
const deadline = Date.now() + 60_000;
while (server.inflight.count < calls && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 100));
}
const open = server.inflight.count;
const after = await census();
load.kill("SIGKILL");
await server.close();
rmSync(dir, { recursive: true, force: true });

const rows = [...after].map(([key, a]) => {
  const b = before.get(key) ?? { count: 0, bytes: 0 };
  return {
    key,
    count: (a.count - b.count) / open,
    bytes: (a.bytes - b.bytes) / open,
  };
});
const total = rows.reduce((sum, r) => sum + r.bytes, 0);
console.log(
  `${open} StreamHello calls open: ${(total / 1024).toFixed(1)} KiB of live JS heap per call (RSS: see npm run bench)`,
);
for (const r of rows.sort((a, b) => b.bytes - a.bytes).slice(0, 25)) {
  console.log(
    `${r.bytes.toFixed(0).padStart(7)} B ${r.count.toFixed(1).padStart(6)} objects  ${r.key}`,
  );
}
process.exit(0);
