/**
 * Runs one attack (bench/floods/attacks.ts) on a worker thread of its own,
 * so that the attacker's work does not slow the canary beside it in the
 * main thread: what the canary measures is the server. Posts what the
 * attacker saw.
 */
import { parentPort, workerData } from "node:worker_threads";
import { attacks } from "./attacks.js";

const { name, url, durationMs } = workerData as {
  name: string;
  url: string;
  durationMs: number;
};
const attack = attacks.find((a) => a.name === name);
if (attack === undefined) throw new Error(`no attack ${name}`);
const seen = await attack.run({ url, durationMs });
parentPort?.postMessage({
  counts: [...seen.counts],
  connections: seen.connections,
  closedByServer: seen.closedByServer,
});
