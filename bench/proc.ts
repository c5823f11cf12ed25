/**
 * What Linux says about a process tree: CPU time and memory from /proc, so a
 * cluster's primary and workers (or a launcher and its node) count together.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on every Linux this runs on). */
const ticksPerSecond = 100;

/** `pid` and every process below it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (!stat) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(Number(entry));
    children.set(stat.ppid, list);
  }
  const tree: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    tree.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return tree;
}

/** User plus system CPU seconds used so far by `pid` and its descendants. */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const stat = readStat(p);
    if (stat) ticks += stat.utime + stat.stime;
  }
  return ticks / ticksPerSecond;
}

/** A /proc/<pid>/status memory field (VmRSS, VmHWM, ...) in bytes, summed over the tree. */
export function memoryBytes(pid: number, field: "VmRSS" | "VmHWM"): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      const status = readFileSync(`/proc/${p}/status`, "utf8");
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
      if (m) kb += Number(m[1]);
    } catch {
      // the process has gone; it holds no memory any more
    }
  }
  return kb * 1024;
}

function readStat(
  pid: number,
): { ppid: number; utime: number; stime: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may contain spaces; fields follow the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    ppid: Number(fields[1]),
    utime: Number(fields[11]),
    stime: Number(fields[12]),
  };
}
