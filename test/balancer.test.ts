import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, type TestContext, test } from "node:test";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Greeter } from "../gen/helloworld_pb.js";
import {
  handledCalls,
  type Nginx,
  type Replica,
  shippedNginxConfig,
  startNginx,
  startReplica,
  stopReplica,
} from "./support/balancer.js";
import { type CallRecord, startLoad, summary } from "./support/load.js";
import {
  createHosts,
  type Host,
  removeHosts,
  removeLeftovers,
} from "./support/netns.js";
import { pushable } from "./support/pushable.js";
import { testTransport } from "./support/transports.js";

/**
 * nginx (Debian's 1.22) in front of three replicas, each a real server
 * process in a network namespace of its own, as separate hosts would be:
 * the shipped configuration (deploy/nginx/greeter.conf), with only the
 * replicas' addresses and the listen ports changed.
 */

before(() => removeLeftovers());

/** Settings of the replicas: short streams, so that a drain is quick. */
const replicaEnv = {
  STREAM_INTERVAL_MS: "20",
  SHUTDOWN_GRACE_MS: "5000",
};

interface World {
  hosts: Host[];
  replicas: Replica[];
  nginx: Nginx;
}

/** Three hosts with a replica each, and nginx in front; all removed after the test. */
async function startWorld(
  t: TestContext,
  options: { env?: Record<string, string>; errorLogLevel?: string } = {},
): Promise<World> {
  const hosts = createHosts(3);
  t.after(() => removeHosts(hosts));
  const replicas = await Promise.all(
    hosts.map((h) => startReplica(h, { ...replicaEnv, ...options.env })),
  );
  const nginx = await startNginx(hosts, {
    errorLogLevel: options.errorLogLevel,
  });
  t.after(() => nginx.stop());
  return { hosts, replicas, nginx };
}

type GreeterClient = Client<typeof Greeter>;

async function allFour(
  client: GreeterClient,
  bidi: boolean,
): Promise<string[]> {
  const out: string[] = [];
  out.push((await client.sayHello({ name: "Alice" })).message);
  for await (const r of client.streamHello({ name: "Bob" }))
    out.push(r.message);
  async function* names() {
    yield { name: "Carol" };
    yield { name: "Dave" };
  }
  out.push((await client.collectGreetings(names())).message);
  if (bidi) {
    // In lockstep: each request goes out only after the previous reply came
    // back through nginx, which only a full-duplex call can do.
    const reqs = pushable<{ name: string }>();
    const replies = client.chat(reqs)[Symbol.asyncIterator]();
    for (const name of ["Erin", "Frank"]) {
      reqs.push({ name });
      const r = await replies.next();
      if (!r.done) out.push(r.value.message);
    }
    reqs.close();
    assert.equal((await replies.next()).done, true);
  }
  return out;
}

const fourReplies = [
  "Hello, Alice!",
  ...[0, 1, 2, 3, 4].map((i) => `Hello Bob, message ${i}`),
  "Hello, Carol, Dave!",
  "Hello, Erin!",
  "Hello, Frank!",
];

test("the shipped nginx configuration passes nginx -t, and the tests run it with only the replicas' addresses and the listen ports changed", {
  timeout: 60_000,
}, async (t) => {
  const world = await startWorld(t);
  const shipped = readFileSync(shippedNginxConfig, "utf8").split("\n");
  const rendered = world.nginx.config.split("\n");
  assert.equal(rendered.length, shipped.length);
  const changed = shipped
    .map((line, i) => [line, rendered[i] as string] as const)
    .filter(([a, b]) => a !== b);
  for (const [a, b] of changed) {
    const normalise = (s: string) =>
      s
        .replace(/listen (127\.0\.0\.1:)?\d+/, "listen PORT")
        .replace(/\d+\.\d+\.\d+\.\d+:\d+/, "ADDRESS");
    assert.equal(normalise(b), normalise(a), `${a} → ${b}`);
  }
  assert.equal(changed.length, 14, "twelve server lines and two listen lines");
  const check = execFileSync(
    "nginx",
    ["-t", "-p", world.nginx.dir, "-c", join(world.nginx.dir, "nginx.conf")],
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  assert.equal(check, "");
});

test("through nginx, all four RPCs work over gRPC, gRPC-Web and Connect on the HTTP/2 listener, and over gRPC-Web and Connect on the HTTP/1.1 listener", {
  timeout: 60_000,
}, async (t) => {
  const { nginx } = await startWorld(t);
  for (const protocol of ["grpc", "grpc-web", "connect"] as const) {
    const client = createClient(
      Greeter,
      testTransport(protocol, "2", nginx.h2Url),
    );
    assert.deepEqual(
      await allFour(client, true),
      fourReplies,
      `${protocol} on HTTP/2`,
    );
  }
  for (const protocol of ["grpc-web", "connect"] as const) {
    const client = createClient(
      Greeter,
      testTransport(protocol, "1.1", nginx.h1Url),
    );
    // Chat needs HTTP/2 (full duplex), through nginx or not (test/protocols.test.ts).
    assert.deepEqual(
      await allFour(client, false),
      fourReplies.slice(0, -2),
      `${protocol} on HTTP/1.1`,
    );
  }
});

test("nginx balances each call, not each connection: one client's calls on one HTTP/2 connection reach all three replicas, each a share", {
  timeout: 60_000,
}, async (t) => {
  const { hosts, nginx } = await startWorld(t);
  const before = await Promise.all(hosts.map(handledCalls));
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: nginx.h2Url }),
  );
  const calls = 300;
  for (let i = 0; i < calls; i += 10) {
    await Promise.all(
      Array.from({ length: 10 }, (_, k) =>
        client.sayHello({ name: `n${i + k}` }),
      ),
    );
  }
  const after = await Promise.all(hosts.map(handledCalls));
  const shares = after.map((n, i) => n - (before[i] as number));
  t.diagnostic(`calls handled per replica: ${shares.join(", ")}`);
  assert.equal(
    shares.reduce((a, b) => a + b, 0),
    calls,
  );
  // Round robin gives each a third; bounded loosely, not exactly.
  for (const share of shares) {
    assert.ok(
      share >= calls / 6 && share <= calls / 2,
      `shares ${shares.join(", ")}`,
    );
  }
});

test("a rolling restart of every replica (SIGTERM, exit 0, start again) under steady load fails no call", {
  timeout: 120_000,
}, async (t) => {
  const { replicas, nginx } = await startWorld(t);
  const load = startLoad({
    unaryClients: 12,
    streamClients: 12,
    transport: () => createGrpcTransport({ baseUrl: nginx.h2Url }),
    deadlineMs: 15_000,
  });
  t.after(() => load.stop());
  await waitFor(() => load.records.length >= 200);
  const started = performance.now();
  for (const [i, replica] of replicas.entries()) {
    const exit = await stopReplica(replica);
    assert.deepEqual(exit, { code: 0, signal: null }, replica.output());
    assert.match(replica.output(), /"msg":"stopped"/);
    replicas[i] = await startReplica(replica.host, replicaEnv);
  }
  const restartMs = performance.now() - started;
  const mark = load.records.length;
  await waitFor(() => load.records.length >= mark + 200);
  const records = await load.stop();
  t.diagnostic(
    `rolling restart of 3 replicas in ${Math.round(restartMs)} ms: ${summary(records)}`,
  );
  reportFailures(t, records, nginx);
  assert.equal(records.filter((r) => r.error).length, 0, summary(records));
});

function reportFailures(
  t: TestContext,
  records: CallRecord[],
  nginx: Nginx,
): void {
  const failed = records.filter((r) => r.error);
  if (failed.length === 0) return;
  t.diagnostic(
    `nginx error log:\n${nginx
      .errorLog()
      .split("\n")
      .filter((l) => /\[(error|warn)\]/.test(l))
      .slice(0, 20)
      .join("\n")}`,
  );
}

/** Resolves once `condition()` holds, polled every 10 ms (at most 60 s). */
async function waitFor(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition never held");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
