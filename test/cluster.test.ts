import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as http2 from "node:http2";
import * as net from "node:net";
import { type TestContext, test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  Greeter,
  HelloReplySchema,
  HelloRequestSchema,
} from "../gen/helloworld_pb.js";
import { socketOwner } from "./cluster/socket-owner.js";
import { mainWithTsx, startChild } from "./support/child.js";

/** A cluster-mode server started as `npm start` would, with every line it prints collected. */
interface ClusterProcess {
  child: ChildProcess;
  url: string;
  port: number;
  /** Where the primary serves every worker's metrics (the ready line's metricsUrl). */
  metricsUrl: string;
  workerPids: number[];
  /** Resolves with the first line the primary logs matching `re` after this call. */
  nextNote(re: RegExp): Promise<RegExpExecArray>;
}

async function startCluster(
  t: TestContext,
  workers: number,
  streamIntervalMs = 0,
): Promise<ClusterProcess> {
  // Its own process group: killed after the test with every worker it forked.
  const primary = startChild(
    t,
    process.execPath,
    mainWithTsx(
      "--workers",
      String(workers),
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--stream-interval-ms",
      String(streamIntervalMs),
      "--admin-port",
      "0",
    ),
  );
  // The primary logs JSON lines on stdout: the ready line, and notes about workers.
  const readyLine = /listening on (\S+) .* with \d+ workers \(pids ([\d, ]+)\)/;
  const ready = readyLine.exec(
    await primary.lines.first((line) => readyLine.test(line)),
  ) as RegExpExecArray;
  const workerPids = (ready[2] as string).split(", ").map(Number);
  const url = ready[1] as string;
  const metricsUrl = (JSON.parse(ready.input) as { metricsUrl?: string })
    .metricsUrl;
  assert.ok(metricsUrl, `the ready line names the metrics URL: ${ready.input}`);
  return {
    child: primary.process,
    url,
    metricsUrl,
    port: Number(new URL(url).port),
    workerPids,
    nextNote: async (re) => {
      const from = primary.lines.items.length;
      const note = await primary.lines.first(
        (line, index) => index >= from && re.test(line),
      );
      return re.exec(note) as RegExpExecArray;
    },
  };
}

/**
 * One gRPC SayHello on a new connection, checked; `whileOpen` runs after the
 * call succeeded, before the connection closes, with the client's local port.
 */
async function sayHelloOnNewConnection<T>(
  url: string,
  name: string,
  whileOpen: (localPort: number) => T,
): Promise<T> {
  const session = http2.connect(url);
  try {
    await once(session, "connect");
    const localPort = session.socket.localPort as number;
    const stream = session.request({
      ":method": "POST",
      ":path": "/Greeter/SayHello",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const message = toBinary(
      HelloRequestSchema,
      create(HelloRequestSchema, { name }),
    );
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    stream.end(frame);
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    const [trailers] = (await once(stream, "trailers")) as [
      http2.IncomingHttpHeaders,
    ];
    await once(stream, "close");
    assert.equal(trailers["grpc-status"], "0");
    const body = Buffer.concat(chunks);
    assert.equal(
      fromBinary(HelloReplySchema, body.subarray(5)).message,
      `Hello, ${name}!`,
    );
    return whileOpen(localPort);
  } finally {
    session.destroy();
  }
}

/** Make `n` calls, each on its own connection, and say which worker served each. */
async function callsByWorker(
  server: ClusterProcess,
  pids: readonly number[],
  n: number,
): Promise<(number | undefined)[]> {
  const owners: (number | undefined)[] = [];
  for (let i = 0; i < n; i++) {
    owners.push(
      await sayHelloOnNewConnection(server.url, `caller ${i}`, (localPort) =>
        socketOwner(server.port, localPort, pids),
      ),
    );
  }
  return owners;
}

test("with --workers 2, both workers serve calls on the one port", {
  timeout: 60_000,
}, async (t) => {
  const server = await startCluster(t, 2);
  assert.equal(new Set(server.workerPids).size, 2);
  const owners = await callsByWorker(server, server.workerPids, 6);
  assert.deepEqual(
    new Set(owners),
    new Set(server.workerPids),
    `connections went to ${owners.join(", ")}`,
  );
});

test("with --workers 2, the primary's admin port serves the metrics of every worker, summed", {
  timeout: 60_000,
}, async (t) => {
  const server = await startCluster(t, 2);
  const owners = await callsByWorker(server, server.workerPids, 6);
  assert.equal(new Set(owners).size, 2, "both workers served calls");
  const res = await fetch(server.metricsUrl);
  assert.equal(res.status, 200);
  const text = await res.text();
  const handled = text
    .split("\n")
    .filter((l) =>
      l.startsWith(
        'grpc_server_handled_total{grpc_type="unary",grpc_service="Greeter",grpc_method="SayHello",protocol="grpc",grpc_code="OK"}',
      ),
    );
  assert.deepEqual(
    handled.map((l) => Number(l.split(" ").at(-1))),
    [6],
    "one series, the calls of both workers",
  );
  assert.match(text, /^process_cpu_user_seconds_total \S+$/m);
  const apiPort = await fetch(`${server.url}/metrics`);
  assert.equal(apiPort.status, 404);
  await apiPort.body?.cancel();
});

test("a worker killed with SIGKILL is restarted and calls keep working", {
  timeout: 60_000,
}, async (t) => {
  const server = await startCluster(t, 2);
  const [victim, survivor] = server.workerPids as [number, number];
  const restarted = server.nextNote(/worker (\d+) ready/);
  const died = server.nextNote(/worker (\d+) died \(signal SIGKILL\)/);
  process.kill(victim, "SIGKILL");
  assert.equal(Number((await died)[1]), victim);
  const replacement = Number((await restarted)[1]);
  assert.notEqual(replacement, victim);
  const owners = await callsByWorker(server, [survivor, replacement], 6);
  assert.deepEqual(
    new Set(owners),
    new Set([survivor, replacement]),
    `connections went to ${owners.join(", ")}`,
  );
});

test("SIGTERM to the primary stops every worker, and the primary exits 0", {
  timeout: 60_000,
}, async (t) => {
  const server = await startCluster(t, 2);
  await sayHelloOnNewConnection(server.url, "before shutdown", () => {});
  const exited = once(server.child, "exit");
  server.child.kill("SIGTERM");
  const [code, signal] = await exited;
  assert.equal(signal, null);
  assert.equal(code, 0);
  for (const pid of server.workerPids) {
    assert.throws(
      () => process.kill(pid, 0),
      { code: "ESRCH" },
      `worker ${pid} is still running`,
    );
  }
});

test("SIGTERM to the primary lets the calls in flight on every worker finish, then exits 0", {
  timeout: 60_000,
}, async (t) => {
  const server = await startCluster(t, 2, 300);
  // One connection per call, so the primary spreads them over both workers.
  const calls = Array.from({ length: 6 }, async (_, i) => {
    const client = createClient(
      Greeter,
      createGrpcTransport({ baseUrl: server.url }),
    );
    const messages: string[] = [];
    let first!: () => void;
    const started = new Promise<void>((resolve) => {
      first = resolve;
    });
    const done = (async () => {
      for await (const reply of client.streamHello({ name: `n${i}` })) {
        messages.push(reply.message);
        first();
      }
      return messages;
    })();
    // Awaited below; until then a failure must not count as unhandled.
    done.catch(() => {});
    return { started, done };
  });
  const inFlight = await Promise.all(calls);
  await Promise.all(inFlight.map((c) => c.started));
  const exited = once(server.child, "exit");
  server.child.kill("SIGTERM");
  for (const [i, call] of inFlight.entries()) {
    assert.deepEqual(
      await call.done,
      [0, 1, 2, 3, 4].map((m) => `Hello n${i}, message ${m}`),
    );
  }
  assert.deepEqual(await exited, [0, null]);
});

test("Ctrl-C, which signals the primary and every worker at once, still ends with exit code 0", {
  timeout: 60_000,
}, async (t) => {
  const server = await startCluster(t, 2);
  await sayHelloOnNewConnection(server.url, "before Ctrl-C", () => {});
  const exited = once(server.child, "exit");
  // What a terminal does: SIGINT to every process of the foreground group.
  for (const pid of [server.child.pid as number, ...server.workerPids]) {
    process.kill(pid, "SIGINT");
  }
  const [code, signal] = await exited;
  assert.equal(signal, null);
  assert.equal(code, 0, "a worker died of the repeated SIGINT");
});

test("a cluster whose port is taken exits with code 2 instead of restarting its workers", {
  timeout: 60_000,
}, async (t) => {
  const taken = net.createServer();
  await new Promise<void>((resolve) =>
    taken.listen(0, "127.0.0.1", () => resolve()),
  );
  t.after(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  const { code, stdout, stderr } = await startChild(
    t,
    process.execPath,
    mainWithTsx(
      "--workers",
      "2",
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
      // Its own admin port: only the API port is taken.
      "--admin-port",
      "0",
    ),
  ).exited;
  assert.equal(code, 2);
  assert.match(stderr, /the port is already in use/);
  assert.match(stdout, /worker \d+ failed to start \(code 2\)/);
  assert.doesNotMatch(stdout, /restarting/);
});
