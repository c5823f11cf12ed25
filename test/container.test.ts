import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { before, type TestContext, test } from "node:test";
import { promisify } from "node:util";
import { type Client, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { imageNodeFlags } from "../bench/image-command.js";
import { Greeter } from "../gen/helloworld_pb.js";
import {
  type Child,
  listeningOn,
  repoRoot,
  startChild,
} from "./support/child.js";
import { pushable } from "./support/pushable.js";

// The image as users get it: built by the script behind `npm run image`, run
// by real podman with the flags docs/deploying.md shows, called from outside
// the container over the ports it publishes.

const execFileAsync = promisify(execFile);

/** podman as deploy/image/build.sh runs it: its containers.conf, runc. */
const podmanEnv = {
  ...process.env,
  CONTAINERS_CONF: join(repoRoot, "deploy", "image", "containers.conf"),
};
const podmanGlobal = ["--runtime", "runc"];

async function podman(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync("podman", [...podmanGlobal, ...args], {
    env: podmanEnv,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/**
 * The restrictions a cluster would impose (Kubernetes readOnlyRootFilesystem,
 * runAsNonRoot, capabilities dropped): podman's --read-only alone still mounts
 * writable tmpfs on /tmp, /var/tmp and /run, which Kubernetes does not.
 */
const hardening = [
  "--read-only",
  "--read-only-tmpfs=false",
  "--cap-drop=all",
  "--security-opt=no-new-privileges",
];

/** The image built once for this file (its ID: a tag may move under a concurrent build). */
let imageId = "";

before(
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "connect-greeter-image-"));
    try {
      const iidfile = join(dir, "iid");
      await execFileAsync("bash", ["deploy/image/build.sh"], {
        cwd: repoRoot,
        env: { ...process.env, IIDFILE: iidfile },
        maxBuffer: 64 * 1024 * 1024,
      }).catch((e: { stderr?: string; message: string }) => {
        throw new Error(
          `deploy/image/build.sh failed: ${e.message}\n${(e.stderr ?? "").slice(-4000)}`,
        );
      });
      imageId = (await readFile(iidfile, "utf8")).trim();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
  // A fresh machine first makes the base image (debootstrap and Node from the
  // npm registry, about a minute) and installs every npm dependency.
  { timeout: 20 * 60_000 },
);

/** A container of the image, started for one test and removed after it. */
interface Container {
  readonly name: string;
  readonly child: Child;
  /** http://127.0.0.1:<host port> of the API port 50051. */
  readonly apiUrl: string;
  /** http://127.0.0.1:<host port> of the admin port 9464. */
  readonly adminUrl: string;
  /** From `podman run` to the ready line, in milliseconds. */
  readonly readyMs: number;
}

let containers = 0;

/**
 * `podman run` the image with the hardening flags, both ports published on
 * host ports podman picks, and wait for the ready line on its stdout.
 */
async function runContainer(
  t: TestContext,
  env: Record<string, string> = {},
): Promise<Container> {
  const name = `connect-greeter-test-${process.pid}-${++containers}`;
  t.after(async () => {
    await podman("rm", "--force", "--time", "0", name).catch(() => {});
  });
  const envFlags = Object.entries(env).map(([k, v]) => `--env=${k}=${v}`);
  const started = performance.now();
  const child = startChild(
    t,
    "podman",
    [
      ...podmanGlobal,
      "run",
      `--name=${name}`,
      ...hardening,
      "--publish=127.0.0.1::50051",
      "--publish=127.0.0.1::9464",
      ...envFlags,
      imageId,
    ],
    { env: podmanEnv },
  );
  // Fails if the container exits before it is ready.
  await listeningOn(child);
  const readyMs = performance.now() - started;
  const hostPort = async (port: number) => {
    const out = (await podman("port", name, `${port}/tcp`)).trim();
    const m = /^127\.0\.0\.1:(\d+)$/.exec(out);
    assert.ok(m, `podman port ${name} ${port}: ${out}`);
    return `http://127.0.0.1:${m[1]}`;
  };
  return {
    name,
    child,
    apiUrl: await hostPort(50051),
    adminUrl: await hostPort(9464),
    readyMs,
  };
}

type GreeterClient = Client<typeof Greeter>;

/** A Greeter client over gRPC or Connect on HTTP/2 whose connection is closed after the test. */
function greeterClient(
  t: TestContext,
  protocol: "grpc" | "connect",
  baseUrl: string,
): GreeterClient {
  const sessionManager = new Http2SessionManager(baseUrl);
  t.after(() => sessionManager.abort());
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl, sessionManager })
      : createConnectTransport({ baseUrl, httpVersion: "2", sessionManager });
  return createClient(Greeter, transport);
}

/** Every reply of all four RPCs, in order. */
async function callAllFour(client: GreeterClient): Promise<string[]> {
  const replies = [(await client.sayHello({ name: "Alice" })).message];
  for await (const r of client.streamHello({ name: "Bob" })) {
    replies.push(r.message);
  }
  async function* names() {
    yield { name: "Alice" };
    yield { name: "Bob" };
  }
  replies.push((await client.collectGreetings(names())).message);
  // In lockstep, so only a full-duplex call gets both replies.
  const reqs = pushable<{ name: string }>();
  const chat = client.chat(reqs)[Symbol.asyncIterator]();
  try {
    for (const name of ["Carol", "Dave"]) {
      reqs.push({ name });
      const r = await chat.next();
      if (r.done) break;
      replies.push(r.value.message);
    }
    reqs.close();
    assert.equal((await chat.next()).done, true);
  } finally {
    reqs.close();
  }
  return replies;
}

const allFourReplies = [
  "Hello, Alice!",
  ...[0, 1, 2, 3, 4].map((i) => `Hello Bob, message ${i}`),
  "Hello, Alice, Bob!",
  "Hello, Carol!",
  "Hello, Dave!",
];

/** The samples of one metric in Prometheus text exposition, as label sets with values. */
function samples(
  exposition: string,
  metric: string,
): { labels: Record<string, string>; value: number }[] {
  const found = [];
  for (const line of exposition.split("\n")) {
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (m?.[1] !== metric) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)) {
      labels[l[1] ?? ""] = l[2] ?? "";
    }
    found.push({ labels, value: Number(m[3]) });
  }
  return found;
}

/** The JSON log lines of a container, from `podman logs`. */
async function logLines(name: string): Promise<{ msg?: string }[]> {
  return (await podman("logs", name))
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { msg?: string });
}

test("the image declares a numeric non-root user (so Kubernetes' runAsNonRoot can verify it) and exposes ports 50051 and 9464", async () => {
  const [config] = JSON.parse(
    await podman("image", "inspect", "--format", "json", imageId),
  ) as { Config: { User?: string; ExposedPorts?: Record<string, object> } }[];
  const user = config?.Config.User ?? "";
  const m = /^(\d+)(?::(\d+))?$/.exec(user);
  assert.ok(m, `USER is ${JSON.stringify(user)}, not a numeric UID`);
  assert.notEqual(Number(m[1]), 0, "USER is root");
  assert.deepEqual(Object.keys(config?.Config.ExposedPorts ?? {}).sort(), [
    "50051/tcp",
    "9464/tcp",
  ]);
});

test("in the container the server is PID 1, node itself (no npm, no shell), under a non-root UID", async (t) => {
  const c = await runContainer(t);
  const hostPid = (
    await podman("inspect", "--format", "{{.State.Pid}}", c.name)
  ).trim();
  const proc = `/proc/${hostPid}`;
  const status = await readFile(`${proc}/status`, "utf8");
  // NSpid: the PID in each namespace, the container's last.
  const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.split(/\s+/);
  assert.equal(nspid?.at(-1), "1", `NSpid: ${nspid?.join(" ")}`);
  const argv = (await readFile(`${proc}/cmdline`, "utf8"))
    .split("\0")
    .filter((a) => a !== "");
  assert.deepEqual(argv, [
    "node",
    ...imageNodeFlags(repoRoot),
    "dist/src/main.js",
  ]);
  assert.deepEqual(imageNodeFlags(repoRoot), ["--max-semi-space-size=16"]);
  assert.equal(basename(await readlink(`${proc}/exe`)), "node");
  // Real, effective, saved and filesystem UIDs.
  const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1]?.split(/\s+/).map(Number);
  assert.equal(uids?.length, 4);
  for (const uid of uids ?? []) assert.notEqual(uid, 0, `Uid: ${uids}`);
  t.diagnostic(
    `ready line ${Math.round(c.readyMs)} ms after podman run; UID ${uids?.[0]}`,
  );
});

test("the root filesystem is read-only in the container, and the server starts and serves on it", async (t) => {
  const c = await runContainer(t);
  // The flag took effect: even world-writable /tmp refuses a file.
  const touched = await podman("exec", c.name, "touch", "/tmp/probe").then(
    () => "written",
    (e: { stderr?: string }) => e.stderr ?? "",
  );
  assert.match(touched, /Read-only file system/);
  const res = await fetch(`${c.apiUrl}/Greeter/SayHello`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "Alice" }),
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { message: "Hello, Alice!" });
});

test("from outside the container all four RPCs answer over gRPC and over Connect, and the admin port 9464 counts them in /metrics", async (t) => {
  const c = await runContainer(t, { STREAM_INTERVAL_MS: "0" });
  for (const protocol of ["grpc", "connect"] as const) {
    assert.deepEqual(
      await callAllFour(greeterClient(t, protocol, c.apiUrl)),
      allFourReplies,
      protocol,
    );
  }
  const res = await fetch(`${c.adminUrl}/metrics`);
  assert.equal(res.status, 200);
  const handled = samples(await res.text(), "grpc_server_handled_total");
  for (const protocol of ["grpc", "connect"]) {
    for (const method of [
      "SayHello",
      "StreamHello",
      "CollectGreetings",
      "Chat",
    ]) {
      const ok = handled.filter(
        (s) =>
          s.labels.grpc_service === "Greeter" &&
          s.labels.grpc_method === method &&
          s.labels.protocol === protocol &&
          s.labels.grpc_code === "OK",
      );
      assert.deepEqual(
        ok.map((s) => s.value),
        [1],
        `${protocol} ${method} in ${JSON.stringify(handled)}`,
      );
    }
  }
  // Metrics stay off the API port.
  const onApi = await fetch(`${c.apiUrl}/metrics`);
  await onApi.body?.cancel();
  assert.equal(onApi.status, 404);
});

test("podman stop sends SIGTERM to the server, which finishes the stream in flight, logs the drain and exits 0", {
  timeout: 120_000,
}, async (t) => {
  const intervalMs = 400;
  const graceMs = 6_000;
  const c = await runContainer(t, {
    STREAM_INTERVAL_MS: String(intervalMs),
    SHUTDOWN_GRACE_MS: String(graceMs),
  });
  const client = greeterClient(t, "grpc", c.apiUrl);
  const stream = client.streamHello({ name: "Bob" })[Symbol.asyncIterator]();
  const first = await stream.next();
  assert.equal(first.value?.message, "Hello Bob, message 0");
  const stopStarted = performance.now();
  // Above the grace period, so that podman's SIGKILL cannot cut the drain
  // short; a process that ignores SIGTERM is killed after it.
  const stopped = podman("stop", `--time=${(2 * graceMs) / 1000}`, c.name);
  const rest: string[] = [];
  for (let r = await stream.next(); !r.done; r = await stream.next()) {
    rest.push(r.value.message);
  }
  await stopped;
  const stopMs = performance.now() - stopStarted;
  assert.deepEqual(
    rest,
    [1, 2, 3, 4].map((i) => `Hello Bob, message ${i}`),
  );
  // It waited for the stream's four remaining intervals, and ended before
  // the grace period would have cut the call.
  assert.ok(
    stopMs >= 3 * intervalMs && stopMs < graceMs - 500,
    `podman stop took ${Math.round(stopMs)} ms`,
  );
  const exited = await c.child.exited;
  assert.equal(exited.code, 0, exited.stderr);
  assert.equal(
    (await podman("inspect", "--format", "{{.State.ExitCode}}", c.name)).trim(),
    "0",
  );
  const lines = await logLines(c.name);
  const msgs = lines.map((l) => l.msg);
  const down = msgs.indexOf("shutting down");
  const done = msgs.indexOf("stopped");
  assert.ok(down >= 0 && done > down, msgs.join("\n"));
  assert.deepEqual(lines[down], {
    ...lines[down],
    signal: "SIGTERM",
  });
  assert.deepEqual(lines[done], {
    ...lines[done],
    callsAtStart: 1,
    callsEnded: 0,
  });
});
