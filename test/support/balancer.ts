import type { ChildProcess } from "node:child_process";
import {
  chmodSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Child,
  killGroup,
  listeningOn,
  repoRoot,
  spawnChild,
} from "./child.js";
import { type Host, prefix } from "./netns.js";

/** The port every replica serves on, each on its own address. */
export const replicaPort = 50051;
/** The admin (metrics) port of every replica. */
export const replicaAdminPort = 9464;

/** A connect-greeter process running in a host's namespace. */
export interface Replica {
  readonly host: Host;
  /** The API URL, http://<address>:50051. */
  readonly url: string;
  readonly child: ChildProcess;
  /** Resolves once the process has exited and its output is closed. */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Everything it printed: stdout, then stderr. */
  output(): string;
}

/**
 * Start the server (`node --import tsx src/main.ts`, as `npm start` does) in
 * `host`'s namespace on the replica ports, and resolve once it printed its
 * ready line. The caller stops it (`stopReplica`) or it is killed with its
 * namespace.
 */
export async function startReplica(
  host: Host,
  env: Record<string, string>,
): Promise<Replica> {
  const child = spawnChild(
    "ip",
    [
      "netns",
      "exec",
      host.ns,
      process.execPath,
      "--import",
      "tsx",
      "src/main.ts",
    ],
    {
      env: {
        ...process.env,
        HOST: host.address,
        PORT: String(replicaPort),
        ADMIN_PORT: String(replicaAdminPort),
        LOG_LEVEL: "warn",
        ...env,
      },
    },
  );
  await listeningOn(child).catch((e: Error) => {
    throw new Error(`replica in ${host.ns} did not listen: ${e.message}`);
  });
  return {
    host,
    url: `http://${host.address}:${replicaPort}`,
    child: child.process,
    exited: child.exited.then(({ code, signal }) => ({ code, signal })),
    output: () => child.stdout() + child.stderr(),
  };
}

/** SIGTERM a replica and resolve with its exit once it has drained. */
export async function stopReplica(
  replica: Replica,
): Promise<{ code: number | null; signal: string | null }> {
  replica.child.kill("SIGTERM");
  return replica.exited;
}

/** `grpc_server_handled_total` of a replica, summed over its labels (calls it finished). */
export async function handledCalls(host: Host): Promise<number> {
  const res = await fetch(`http://${host.address}:${replicaAdminPort}/metrics`);
  const text = await res.text();
  let sum = 0;
  for (const m of text.matchAll(
    /^grpc_server_handled_total\{[^}]*\} (\S+)$/gm,
  )) {
    sum += Number(m[1]);
  }
  return sum;
}

/** The nginx configuration shipped for users. */
export const shippedNginxConfig = join(repoRoot, "deploy/nginx/greeter.conf");

/** One request as nginx logged it. */
export interface AccessLogEntry {
  /** When it ended (Date.now() scale, milliseconds). */
  at: number;
  /** The status sent to the client. */
  status: number;
  /** Each upstream tried, in order ("address:port"). */
  upstreams: string[];
  /** The status each upstream attempt ended with ("502", "504" for a connect timeout...). */
  upstreamStatuses: string[];
  /** Seconds each attempt took to connect ("-" when it did not). */
  connectTimes: string[];
}

/** An nginx started for a test. */
export interface Nginx {
  /** http://127.0.0.1:<port> of the HTTP/2 (h2c) listener. */
  readonly h2Url: string;
  /** http://127.0.0.1:<port> of the HTTP/1.1 listener. */
  readonly h1Url: string;
  /** The configuration file nginx runs (the shipped one, addresses and ports replaced). */
  readonly config: string;
  readonly dir: string;
  /** The master process's pid (its workers are its children). */
  readonly pid: number;
  /** What nginx logged so far: its stderr and error log (HAProxy: its output). */
  errorLog(): string;
  /** nginx's access log so far, one entry per request. */
  accessLog(): AccessLogEntry[];
  /** Stop nginx (fast shutdown) and remove its directory. */
  stop(): Promise<void>;
}

/**
 * Render the shipped configuration for `hosts`: the upstreams' server lines
 * point at the replicas, the listeners at free ports on 127.0.0.1.
 */
export function renderNginxConfig(
  shipped: string,
  hosts: readonly Host[],
  ports: { h2: number; h1: number },
): string {
  const servers = (indent: string, options: string) =>
    hosts
      .map((h) => `${indent}server ${h.address}:${replicaPort}${options}`)
      .join("\n");
  // Each run of server lines with the same parameters becomes one line per host.
  return shipped
    .replace(
      /^([ \t]*)server \d+\.\d+\.\d+\.\d+:\d+([^\n]*)\n(?:\1server \d+\.\d+\.\d+\.\d+:\d+\2\n)*/gm,
      (_all, indent: string, options: string) =>
        `${servers(indent, options)}\n`,
    )
    .replace(
      /^(\s*)listen 8080 http2;/m,
      `$1listen 127.0.0.1:${ports.h2} http2;`,
    )
    .replace(/^(\s*)listen 8081;/m, `$1listen 127.0.0.1:${ports.h1};`);
}

/**
 * Start nginx in this namespace with the shipped configuration rendered for
 * `hosts`, in a temporary directory of its own (pid file, logs, temp files),
 * and resolve once both listeners accept connections.
 */
export async function startNginx(
  hosts: readonly Host[],
  options: { shipped?: string; errorLogLevel?: string } = {},
): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}${process.pid}-nginx-`));
  // nginx's workers run as an unprivileged user and need to reach their temp directories.
  chmodSync(dir, 0o755);
  const ports = { h2: await freePort(), h1: await freePort() };
  const config = renderNginxConfig(
    options.shipped ?? readFileSync(shippedNginxConfig, "utf8"),
    hosts,
    ports,
  );
  writeFileSync(join(dir, "greeter.conf"), config);
  writeFileSync(
    join(dir, "nginx.conf"),
    `# The machine-wide part a Debian nginx has in /etc/nginx/nginx.conf, with every path in ${dir}.
pid ${dir}/nginx.pid;
error_log ${dir}/error.log ${options.errorLogLevel ?? "warn"};
worker_processes 2;
events {
    worker_connections 4096;
}
http {
    client_body_temp_path ${dir}/body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    log_format timed '$msec|$status|$upstream_addr|$upstream_status|$upstream_connect_time|$request_time|$request_uri';
    access_log ${dir}/access.log timed;
    include ${dir}/greeter.conf;
}
`,
  );
  const read = (name: string) => {
    try {
      return readFileSync(join(dir, name), "utf8");
    } catch {
      return "";
    }
  };
  const started = await startBalancer(
    "nginx",
    ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"],
    dir,
    ports,
    (child) => child.stderr() + read("error.log"),
  );
  return {
    ...started,
    config,
    accessLog: () =>
      read("access.log")
        .split("\n")
        .filter(Boolean)
        .map((line) => {
          const [msec, status, upstreams, statuses, connectTimes] =
            line.split("|");
          const split = (s = "") => s.split(/, | : /);
          return {
            at: Number(msec) * 1000,
            status: Number(status),
            upstreams: split(upstreams),
            upstreamStatuses: split(statuses),
            connectTimes: split(connectTimes),
          };
        }),
  };
}

/** A TCP port free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once 127.0.0.1:`port` accepts a connection (polled, at most 20 s). */
async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} never opened`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The HAProxy configuration shipped for users. */
export const shippedHaproxyConfig = join(
  repoRoot,
  "deploy/haproxy/greeter.cfg",
);

/**
 * Render the shipped HAProxy configuration for `hosts`: each backend's
 * server lines point at the replicas, the binds at free ports on 127.0.0.1.
 */
export function renderHaproxyConfig(
  shipped: string,
  hosts: readonly Host[],
  ports: { h2: number; h1: number },
): string {
  return shipped
    .replace(
      /^([ \t]*)server r1 \d+\.\d+\.\d+\.\d+:\d+([^\n]*)\n(?:\1server r\d+ \d+\.\d+\.\d+\.\d+:\d+\2\n)*/gm,
      (_all, indent: string, options: string) =>
        `${hosts
          .map(
            (h, i) =>
              `${indent}server r${i + 1} ${h.address}:${replicaPort}${options}`,
          )
          .join("\n")}\n`,
    )
    .replace(/^(\s*)bind :8080 /m, `$1bind 127.0.0.1:${ports.h2} `)
    .replace(/^(\s*)bind :8081$/m, `$1bind 127.0.0.1:${ports.h1}`);
}

/**
 * Start HAProxy in this namespace with the shipped configuration rendered for
 * `hosts`, in the foreground, and resolve once both listeners accept
 * connections. Same interface as `startNginx`; its log goes to `errorLog()`.
 */
export async function startHaproxy(
  hosts: readonly Host[],
  options: { shipped?: string } = {},
): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}${process.pid}-haproxy-`));
  const ports = { h2: await freePort(), h1: await freePort() };
  const config = renderHaproxyConfig(
    options.shipped ?? readFileSync(shippedHaproxyConfig, "utf8"),
    hosts,
    ports,
  );
  const file = join(dir, "haproxy.cfg");
  writeFileSync(file, config);
  const started = await startBalancer(
    "haproxy",
    ["-db", "-f", file],
    dir,
    ports,
    (child) => child.stdout() + child.stderr(),
  );
  return { ...started, config, accessLog: () => [] };
}

/**
 * Start a balancer (`command args`, its files in `dir`) in a process group of
 * its own and resolve once it accepts connections on both ports; if it exits
 * first, stop it and fail with what it logged (`log`).
 */
async function startBalancer(
  command: string,
  args: readonly string[],
  dir: string,
  ports: { h2: number; h1: number },
  log: (child: Child) => string,
): Promise<Omit<Nginx, "config" | "accessLog">> {
  const child = spawnChild(command, args, { input: "" });
  const stop = () => stopBalancer(child, dir);
  try {
    await Promise.race([
      Promise.all([waitForPort(ports.h2), waitForPort(ports.h1)]),
      child.exited.then(() => {
        throw new Error(`${command} exited: ${log(child)}`);
      }),
    ]);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    h2Url: `http://127.0.0.1:${ports.h2}`,
    h1Url: `http://127.0.0.1:${ports.h1}`,
    dir,
    pid: child.process.pid as number,
    errorLog: () => log(child),
    stop,
  };
}

/**
 * Stop a balancer started by this file: SIGTERM, SIGKILL to its process group
 * if it is not gone within 5 s, then its group (workers share the master's)
 * and its directory, whatever happened.
 */
async function stopBalancer(child: Child, dir: string): Promise<void> {
  const { exitCode, signalCode } = child.process;
  if (exitCode === null && signalCode === null) {
    child.process.kill("SIGTERM");
    const bound = setTimeout(() => killGroup(child), 5000);
    await child.exited;
    clearTimeout(bound);
  }
  killGroup(child);
  rmSync(dir, { recursive: true, force: true });
}
