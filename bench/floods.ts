/**
 * `npm run bench:floods`: every flood of bench/floods/attacks.ts against
 * connect-greeter (with the settings docs/operations.md recommends against
 * floods, as test/floods.test.ts runs it, and with its defaults) and against
 * grpc-js (its defaults), each compiled by tsc and run as its own process,
 * measured the same way: what the attacker saw, how the canary fared, and the
 * server's resident memory before and after two rounds. Settings
 * (environment): FLOOD_ROUND_MS (1500), FLOOD_ATTACKS (all), BENCH_OUT
 * (bench/results). Writes floods.json and floods.md there, and prints the
 * table.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { num } from "./env.js";
import { attacks } from "./floods/attacks.js";
import { type FloodResult, flood, floodSettings } from "./floods/flood.js";
import { startServerProcess } from "./server-process.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const roundMs = num("FLOOD_ROUND_MS", 1500);
const only = process.env.FLOOD_ATTACKS?.split(",");
const out = process.env.BENCH_OUT ?? join(root, "bench/results");

const servers = [
  {
    name: "connect-greeter",
    args: [join(root, "dist/src/main.js")],
    env: { ...floodSettings, HOST: "127.0.0.1", PORT: "0" },
  },
  {
    name: "connect-greeter (defaults)",
    args: [join(root, "dist/src/main.js")],
    env: { HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "warn" },
  },
  {
    name: "grpc-js",
    args: [join(root, "dist/bench/servers/grpc-js.js")],
    env: {},
  },
];

interface Row {
  attack: string;
  server: string;
  result: Omit<FloodResult, "lastSeen" | "allSeen">;
}

execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", root], {
  stdio: "inherit",
});
const rows: Row[] = [];
for (const attack of attacks) {
  if (only !== undefined && !only.includes(attack.name)) continue;
  for (const server of servers) {
    const child = await startServerProcess(server.args, server.env, undefined);
    try {
      const { lastSeen, allSeen, ...result } = await flood(
        { url: child.url, pid: child.pid },
        attack,
        { roundMs, rounds: 2 },
      );
      rows.push({ attack: attack.title, server: server.name, result });
      console.log(cell(rows[rows.length - 1] as Row));
    } finally {
      await child.stop();
    }
  }
}

function cell(row: Row): string {
  const r = row.result;
  const seen = [
    ...new Set(
      r.rounds.flatMap((round) =>
        round.seen.map((s) => s.replace(/ ×\d+$/, "")),
      ),
    ),
  ].join("; ");
  const canary = `${(100 * r.canary.successRate).toFixed(0)} %, p99 ${r.canary.p99Ms.toFixed(0)} ms`;
  const rss = r.rssMb.map((m) => m.toFixed(0)).join(" → ");
  return `| ${row.attack} | ${row.server} | ${seen || "nothing"} | ${canary} | ${rss} MiB | ${r.answersAfter ? "yes" : "no"} |`;
}

const machine = `${availableParallelism()} CPUs, load average ${loadavg()
  .map((l) => l.toFixed(1))
  .join(
    " ",
  )} at the end; two rounds of ${roundMs} ms per flood, the attack on a worker thread, the canary calling SayHello every 20 ms`;
const table = [
  "| flood | server | the attacker saw | canary | RSS before → round 1 → round 2 | answers after |",
  "| --- | --- | --- | --- | --- | --- |",
  ...rows.map(cell),
  "",
  machine,
].join("\n");
mkdirSync(out, { recursive: true });
writeFileSync(
  join(out, "floods.json"),
  JSON.stringify({ machine, rows }, null, 2),
);
writeFileSync(join(out, "floods.md"), `${table}\n`);
console.log(`\n${table}`);
