import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Network namespaces as separate hosts, for tests that cut one off like a
 * lost machine. Each host is a namespace joined to this one by a veth pair
 * with a /30 of its own from 10.213.0.0/16; traffic to it never leaves the
 * machine. Everything is named `cglb<pid>...` after the test process, so a
 * later run can tell leftovers of a crashed one (its pid gone) from those of
 * a run going on beside it.
 */

/** The prefix of every namespace, link and temporary directory made here. */
export const prefix = "cglb";

/** One host: a namespace and its link to this one. */
export interface Host {
  /** The namespace's name. */
  readonly ns: string;
  /** The veth end inside the namespace. */
  readonly nsLink: string;
  /** The veth end in this (the test's) namespace. */
  readonly hostLink: string;
  /** The host's address, inside the namespace. */
  readonly address: string;
  /** This namespace's address on the link (the host's gateway, unused). */
  readonly peerAddress: string;
}

/** Run `ip` with `args`; throws with its stderr when it fails. */
export function ip(...args: string[]): string {
  return execFileSync("ip", args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/**
 * Make `count` hosts (at most 4) for the current process. Call
 * `removeHosts` when done, even on failure.
 */
export function createHosts(count: number): Host[] {
  if (count > 4) throw new Error("at most 4 hosts per test process");
  const base = freeBlock();
  const hosts: Host[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const tag = `${prefix}${process.pid}`;
      const host: Host = {
        ns: `${tag}-${i}`,
        nsLink: `${tag}n${i}`,
        hostLink: `${tag}h${i}`,
        address: address(base + 4 * i + 2),
        peerAddress: address(base + 4 * i + 1),
      };
      hosts.push(host);
      ip("netns", "add", host.ns);
      ip(
        "link",
        "add",
        host.hostLink,
        "type",
        "veth",
        "peer",
        "name",
        host.nsLink,
      );
      ip("link", "set", host.nsLink, "netns", host.ns);
      ip("addr", "add", `${host.peerAddress}/30`, "dev", host.hostLink);
      ip("link", "set", host.hostLink, "up");
      inside(
        host,
        "ip",
        "addr",
        "add",
        `${host.address}/30`,
        "dev",
        host.nsLink,
      );
      inside(host, "ip", "link", "set", host.nsLink, "up");
      inside(host, "ip", "link", "set", "lo", "up");
    }
  } catch (e) {
    removeHosts(hosts);
    throw e;
  }
  return hosts;
}

/** Run a command inside a host's namespace. */
export function inside(host: Host, command: string, ...args: string[]): string {
  return ip("netns", "exec", host.ns, command, ...args);
}

/**
 * Cut a host off the network as if its cable were pulled: its own end of the
 * link goes down, so packets to it are dropped without an answer. Never the
 * end in this namespace: with that one down, the kernel would route the
 * host's address to the default gateway, off the machine.
 */
export function cutOff(host: Host): void {
  inside(host, "ip", "link", "set", host.nsLink, "down");
}

/** Kill every process left in the hosts' namespaces, and delete the namespaces and links. */
export function removeHosts(hosts: readonly Host[]): void {
  for (const host of hosts) removeNamespace(host.ns);
  for (const host of hosts) removeLink(host.hostLink);
}

/**
 * Remove what a test process that no longer runs left behind: namespaces
 * (and the processes in them), links and temporary directories named after
 * its pid, and processes (nginx, haproxy) started with such a directory.
 */
export function removeLeftovers(): void {
  const dead = (name: string) => {
    const pid = Number(new RegExp(`^${prefix}(\\d+)`).exec(name)?.[1]);
    return pid > 0 && pid !== process.pid && !alive(pid);
  };
  for (const ns of ip("netns", "list")
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")) {
    if (ns.startsWith(prefix) && dead(ns)) removeNamespace(ns);
  }
  for (const line of ip("-o", "link", "show").split("\n")) {
    const name = /^\d+: ([^:@]+)/.exec(line)?.[1];
    if (name?.startsWith(prefix) && dead(name)) removeLink(name);
  }
  const stale = readdirSync(tmpdir()).filter(
    (d) => d.startsWith(prefix) && dead(d),
  );
  if (stale.length === 0) return;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (stale.some((d) => cmdline.includes(join(tmpdir(), d)))) {
      kill(Number(pid));
    }
  }
  for (const d of stale)
    rmSync(join(tmpdir(), d), { recursive: true, force: true });
}

function removeNamespace(ns: string): void {
  let pids: string[] = [];
  try {
    pids = ip("netns", "pids", ns).split("\n").filter(Boolean);
  } catch {
    return; // no such namespace
  }
  for (const pid of pids) kill(Number(pid));
  try {
    ip("netns", "delete", ns);
  } catch {
    // already gone
  }
}

function removeLink(name: string): void {
  try {
    ip("link", "delete", name);
  } catch {
    // gone with its namespace's end
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The first /28 of 10.213.0.0/16, from a start that depends on the pid, that no address or route here uses. */
function freeBlock(): number {
  const used = `${ip("-o", "-4", "addr", "show")}\n${ip("-4", "route", "show")}`;
  for (let i = 0; i < 4096; i++) {
    const block = ((process.pid + i) % 4096) * 16;
    const third = address(block).split(".").slice(0, 3).join(".");
    const inUse = [...used.matchAll(/\b10\.213\.(\d+)\.(\d+)/g)].some(
      ([, c, d]) =>
        `10.213.${c}` === third &&
        Math.floor(Number(d) / 16) === Math.floor((block % 256) / 16),
    );
    if (!inUse) return block;
  }
  throw new Error("no free /28 in 10.213.0.0/16");
}

/** The address `offset` places into 10.213.0.0/16. */
function address(offset: number): string {
  return `10.213.${Math.floor(offset / 256)}.${offset % 256}`;
}
