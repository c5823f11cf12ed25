import assert from "node:assert/strict";
import { before, type TestContext, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import {
  handledCalls,
  startHaproxy,
  startReplica,
} from "./support/balancer.js";
import {
  mainWithTsx,
  startChild,
  startServerProcess,
} from "./support/child.js";
import { grpcJsGreeter, sayHello } from "./support/grpc-js.js";
import {
  createHosts,
  cutOff,
  type Host,
  removeHosts,
  removeLeftovers,
} from "./support/netns.js";
import { assertTook, until } from "./support/wait.js";

/**
 * Connection age and keepalive with real peers: replicas, and a client, each
 * in a network namespace of its own, as separate hosts would be
 * (test/support/netns.ts).
 */

before(() => removeLeftovers());

/**
 * HAProxy as an L4 balancer, as a Kubernetes Service is: each TCP connection
 * goes to a replica, round robin, and stays there; a replica that refuses
 * connections (the third, until it starts) is skipped.
 */
const tcpBalancer = `global
    maxconn 4096
defaults
    mode tcp
    timeout connect 1s
    timeout client 1h
    timeout server 1h
    retries 3
    option redispatch 1
frontend grpc
    bind :8080 name grpc
    default_backend replicas
frontend unused
    bind :8081
    default_backend replicas
backend replicas
    balance roundrobin
    server r1 10.0.0.11:50051
    server r2 10.0.0.12:50051
    server r3 10.0.0.13:50051
`;

/** Calls each replica has served, by its metrics. */
async function shares(hosts: readonly Host[]): Promise<number[]> {
  return Promise.all(hosts.map(handledCalls));
}

/** Resolves once `check` resolves true, polled every `everyMs`; fails after `ms`. */
async function eventually(
  what: string,
  check: () => Promise<boolean>,
  ms: number,
  everyMs = 50,
): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    assert.ok(
      performance.now() < deadline,
      `timed out after ${ms} ms waiting for ${what}`,
    );
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/**
 * Two replicas behind the balancer, 16 grpc-js clients (a connection each)
 * calling SayHello in a loop; a third replica starts; what share of the calls
 * it serves from 20 to 30 s after it is ready.
 */
async function scaleOut(
  t: TestContext,
  env: Record<string, string>,
): Promise<{ share: number; calls: number; failed: string[] }> {
  const hosts = createHosts(3);
  t.after(() => removeHosts(hosts));
  const [a, b, c] = hosts as [Host, Host, Host];
  await Promise.all([startReplica(a, env), startReplica(b, env)]);
  const balancer = await startHaproxy(hosts, { shipped: tcpBalancer });
  t.after(() => balancer.stop());
  const target = new URL(balancer.h2Url).host;
  const failed: string[] = [];
  let stopping = false;
  const clients = Array.from({ length: 16 }, () => grpcJsGreeter(target));
  t.after(() => {
    for (const client of clients) client.close();
  });
  const loops = clients.map(async (client, i) => {
    for (let n = 0; !stopping; n++) {
      try {
        const reply = await sayHello(
          client,
          { name: `c${i}-${n}` },
          new grpc.Metadata(),
          { deadline: Date.now() + 5000 },
        );
        assert.equal(reply.message, `Hello, c${i}-${n}!`);
      } catch (e) {
        failed.push(String(e));
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  });
  // The clients connected, to the first two, and called.
  await eventually(
    "the clients served",
    async () =>
      (await shares(hosts.slice(0, 2))).reduce((x, y) => x + y, 0) > 100,
    10_000,
  );
  await startReplica(c, env);
  const readyAt = performance.now();
  await until(
    "20 s after the third replica is ready",
    () => performance.now() - readyAt >= 20_000,
    25_000,
    100,
  );
  const from = await shares(hosts);
  await until(
    "30 s after the third replica is ready",
    () => performance.now() - readyAt >= 30_000,
    15_000,
    100,
  );
  const to = await shares(hosts);
  stopping = true;
  await Promise.all(loops);
  const served = to.map((n, i) => n - (from[i] as number));
  const calls = served.reduce((x, y) => x + y, 0);
  t.diagnostic(
    `calls served from 20 to 30 s after the third replica started: ${served.join(", ")}`,
  );
  return { share: (served[2] as number) / calls, calls, failed };
}

test("behind an L4 balancer, with a maximum connection age of 10 s and 5 s of grace, a replica added to two serves a quarter of the calls or more within 30 s of its start, and no call fails", {
  timeout: 120_000,
}, async (t) => {
  const aged = await scaleOut(t, {
    MAX_CONNECTION_AGE_MS: "10000",
    MAX_CONNECTION_AGE_GRACE_MS: "5000",
  });
  assert.deepEqual(aged.failed, [], "no call failed");
  assert.ok(aged.calls > 500, `${aged.calls} calls`);
  assert.ok(aged.share >= 0.25, `the new replica served ${aged.share}`);
});

test("behind an L4 balancer, without a maximum connection age, a replica added to two serves none of the calls of clients already connected", {
  timeout: 120_000,
}, async (t) => {
  const kept = await scaleOut(t, {});
  assert.deepEqual(kept.failed, [], "no call failed");
  assert.ok(kept.calls > 500, `${kept.calls} calls`);
  assert.equal(kept.share, 0, "none");
});

test("a Chat client whose traffic is dropped inside its host mid-call is freed by keepalive within KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS: nothing left in flight, the call logged as cancelled, the connection as closed by keepalive", {
  timeout: 60_000,
}, async (t) => {
  // The server runs here, on this end of the peer's link: the peer reaches
  // it on its own link, and what is cut inside the peer's namespace is
  // between them.
  const [peer] = createHosts(1) as [Host];
  t.after(() => removeHosts([peer]));
  const timeMs = 1000;
  const timeoutMs = 1000;
  const server = await startServerProcess(t, process.execPath, mainWithTsx(), {
    env: {
      ...process.env,
      HOST: peer.peerAddress,
      PORT: "0",
      KEEPALIVE_TIME_MS: String(timeMs),
      KEEPALIVE_TIMEOUT_MS: String(timeoutMs),
      LOG_LEVEL: "info",
    },
  });
  const target = new URL(server.url).host;
  const client = startChild(t, "ip", [
    "netns",
    "exec",
    peer.ns,
    process.execPath,
    "--import",
    "tsx",
    "test/peers/chat-client.ts",
    target,
  ]);
  assert.equal(await client.nextLine(), "replied: Hello, Dora!");
  const repliedAt = performance.now();
  const metricsUrl = (
    JSON.parse(server.stdout().split("\n")[0] as string) as {
      metricsUrl: string;
    }
  ).metricsUrl;
  const inFlight = async () => {
    const text = await (await fetch(metricsUrl)).text();
    return Number(
      /^grpc_server_streams_in_flight\{[^}]*grpc_method="Chat"[^}]*\} (\d+)$/m.exec(
        text,
      )?.[1],
    );
  };
  assert.equal(await inFlight(), 1, "the Chat is in flight");
  // A few keepalive PINGs answered first: the connection is alive.
  await until(
    "three keepalive periods",
    () => performance.now() - repliedAt > 3 * timeMs,
    5 * timeMs,
    50,
  );
  assert.equal(await inFlight(), 1, "still in flight while the peer answers");
  cutOff(peer);
  const cutAt = performance.now();
  await eventually(
    "nothing in flight",
    async () => (await inFlight()) === 0,
    timeMs + timeoutMs + 3000,
    20,
  );
  t.diagnostic(
    `the call was freed ${Math.round(performance.now() - cutAt)} ms after the cut`,
  );
  assertTook(
    performance.now() - cutAt,
    timeoutMs,
    timeMs + timeoutMs + 500,
    "from the cut to the freed call",
  );
  // The log is written asynchronously: wait for its lines.
  const chat = JSON.parse(
    await server.lines.first(
      (l) => l.includes('"procedure":"/Greeter/Chat"'),
      2000,
    ),
  ) as Record<string, unknown>;
  assert.equal(chat.code, "canceled");
  assert.equal(chat.error, "http/2 stream closed with error code CANCEL (0x8)");
  const closed = JSON.parse(
    await server.lines.first(
      (l) => l.includes('"msg":"closed connection"'),
      2000,
    ),
  ) as Record<string, unknown>;
  assert.equal(closed.reason, "keepalive_timeout");
  assert.equal(
    closed.peer,
    `${peer.address}:${(closed.peer as string).split(":")[1]}`,
  );
});
