import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import { type TestContext, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { RunningServer } from "../src/server.js";
import { ageJitter } from "../src/transport/age.js";
import { grpcJsGreeter, sayHello } from "./support/grpc-js.js";
import {
  endsStream,
  frameType,
  goawayLastStreamId,
  goawayNotice,
  isFinalGoaway,
  isGoaway,
  isGoawayNotice,
  isPing,
  isPingAck,
  RawH2Client,
  requestHello,
  sayHelloRaw,
  showFrame,
} from "./support/h2-frames.js";
import { LogCapture } from "./support/log-capture.js";
import { envelope, grpcHeaders, helloRequest } from "./support/raw.js";
import { startTestServer } from "./support/server.js";
import { selfSignedCert } from "./support/tls.js";
import { assertTook, until, within } from "./support/wait.js";

/**
 * The connection policies (src/transport/): a maximum age with grace and
 * jitter (gRFC A9), keepalive PINGs, the clients' PING policy (gRFC A8), the
 * connection caps and the first-call bound, each against a real server, with
 * raw HTTP/2 clients where the frames matter and grpc-js where a real peer's
 * reading of them does.
 */

/** How late a timer may fire on a loaded two-core machine, and a round trip on it. */
const slackMs = 400;

async function rawClient(t: TestContext, url: string): Promise<RawH2Client> {
  const client = await RawH2Client.connect(url);
  t.after(() => client.socket.destroy());
  return client;
}

/** A Chat left open on `streamId`: its handler waits for the client's next message. */
function openChat(client: RawH2Client, streamId: number): void {
  client.open(streamId, "/Greeter/Chat", grpcHeaders);
}

function closedLines(log: LogCapture, reason: string) {
  return log.lines.filter(
    (l) => l.msg === "closed connection" && l.reason === reason,
  );
}

async function metricsText(server: RunningServer): Promise<string> {
  return (await fetch(server.metricsUrl as string)).text();
}

test("a connection past its maximum age gets the two-step GOAWAY at the age ±10 %, each connection at its own moment, and a call sent after the first GOAWAY is still served", {
  timeout: 30_000,
}, async (t) => {
  const ageMs = 600;
  const server = await startTestServer(t, {
    maxConnectionAgeMs: ageMs,
    maxConnectionAgeGraceMs: 5000,
  });
  const clients = await Promise.all(
    Array.from({ length: 16 }, async () => {
      const client = await rawClient(t, server.url);
      return { client, openedAt: performance.now() };
    }),
  );
  const ages = await Promise.all(
    clients.map(async ({ client, openedAt }) => {
      const first = await client.next(isGoaway, ageMs * 1.1 + 2 * slackMs);
      assert.equal(goawayLastStreamId(first), goawayNotice, showFrame(first));
      return first.at - openedAt;
    }),
  );
  for (const age of ages) {
    assertTook(
      age,
      ageMs * (1 - ageJitter),
      ageMs * (1 + ageJitter) + slackMs,
      "the first GOAWAY",
    );
  }
  // Sixteen ages spread over ±60 ms all within 30 ms of each other would
  // mean no jitter (odds of under 1 in 10^7 with it).
  const spread = Math.max(...ages) - Math.min(...ages);
  t.diagnostic(
    `ages ${ages.map(Math.round).join(", ")} ms (spread ${Math.round(spread)} ms)`,
  );
  assert.ok(spread > 30, `ages spread over ${spread} ms only`);

  const { client } = clients[0] as { client: RawH2Client };
  // What a client does that picked this connection before reading the GOAWAY.
  requestHello(client, 1, "late");
  const ping = await client.next(isPing);
  client.ackPing(ping);
  const final = await client.next(isFinalGoaway);
  assert.equal(goawayLastStreamId(final), 1, showFrame(final));
  const end = await client.next(endsStream(1));
  assert.equal(end.type, frameType.headers, showFrame(end));
  assert.match(client.data(1).toString("latin1"), /Hello, late!/);
  await within(client.closed, 2 * slackMs, "the connection's close");
});

test("calls on a connection past its age run on for the grace (one started after the first GOAWAY completes), and the connection is dropped when it runs out, its last call cancelled and logged", {
  timeout: 30_000,
}, async (t) => {
  const log = new LogCapture();
  const ageMs = 300;
  const graceMs = 1000;
  const server = await startTestServer(t, {
    maxConnectionAgeMs: ageMs,
    maxConnectionAgeGraceMs: graceMs,
    // StreamHello's five replies take 400 ms: well inside the grace.
    streamIntervalMs: 100,
    logLevel: "info",
    logDestination: log.destination,
  });
  const openedAt = performance.now();
  const client = await rawClient(t, server.url);
  openChat(client, 1);
  const first = await client.next(isGoawayNotice, ageMs * 1.1 + 2 * slackMs);
  client.request(
    3,
    "/Greeter/StreamHello",
    grpcHeaders,
    envelope(helloRequest("Bob")),
  );
  client.ackPing(await client.next(isPing));
  const final = await client.next(isFinalGoaway);
  assert.equal(goawayLastStreamId(final), 3, showFrame(final));
  const streamed = await client.next(endsStream(3), graceMs + slackMs);
  assert.equal(streamed.type, frameType.headers, showFrame(streamed));
  assert.match(client.data(3).toString("latin1"), /Hello Bob, message 4/);
  await within(client.closed, graceMs + slackMs, "the dropped connection");
  const droppedAt = performance.now();
  // The grace starts when the server sends its first GOAWAY, which this
  // client reads some time later on a loaded machine: the grace is surely
  // over the shortest jittered age plus the grace after the connection
  // opened, and at most the grace (and the slack) after the GOAWAY came.
  assertTook(
    droppedAt - openedAt,
    ageMs * (1 - ageJitter) + graceMs,
    ageMs * (1 + ageJitter) + graceMs + 3 * slackMs,
    "from the connection's start to its drop",
  );
  assert.ok(
    droppedAt - first.at <= graceMs + slackMs,
    `from the first GOAWAY to the dropped connection took ${droppedAt - first.at} ms, more than ${graceMs + slackMs} ms`,
  );
  assert.ok(
    !client.frames.some(endsStream(1)),
    "the Chat was not ended by a frame: its connection went",
  );
  const chat = await log.waitFor((l) => l.procedure === "/Greeter/Chat");
  assert.equal(chat.code, "canceled");
  assert.equal(chat.error, "http/2 stream closed with error code CANCEL (0x8)");
  assert.equal(closedLines(log, "max_age_grace").length, 1);
  await until("no call in flight", () => server.inflight.count === 0);
  assert.match(
    await metricsText(server),
    /^connect_greeter_connections_closed_total\{reason="max_age"\} 1$/m,
  );
});

/** One HTTP/1.1 SayHello on `agent`: the local port it went out on and its Connection header. */
function h1SayHello(
  server: RunningServer,
  agent: http.Agent,
): Promise<{ port: number; connection: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port: server.port,
        path: "/Greeter/SayHello",
        method: "POST",
        agent,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        const port = res.socket.localPort as number;
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => {
          body += c;
        });
        res.on("end", () =>
          resolve({
            port,
            connection: res.headers.connection,
            body,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end('{"name":"h1"}');
  });
}

test("over HTTP/1.1, the first response once a connection is past its age says Connection: close, and the next request goes out on a new connection", {
  timeout: 30_000,
}, async (t) => {
  const ageMs = 300;
  const server = await startTestServer(t, {
    maxConnectionAgeMs: ageMs,
    maxConnectionAgeGraceMs: 5000,
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const young = await h1SayHello(server, agent);
  // The connection's age counts from its first request's arrival, which is
  // before its answer arrives here: from now on, the age is surely past
  // once the wait below is over.
  const startedAt = performance.now();
  assert.equal(young.connection, "keep-alive");
  assert.equal(young.body, '{"message":"Hello, h1!"}');
  const again = await h1SayHello(server, agent);
  assert.equal(again.port, young.port, "the same connection, kept alive");
  assert.equal(again.connection, "keep-alive");
  await until(
    "the connection is past its age",
    () => performance.now() - startedAt > ageMs * (1 + ageJitter),
    ageMs * 2,
  );
  const old = await h1SayHello(server, agent);
  assert.equal(old.port, young.port);
  assert.equal(old.connection, "close");
  assert.equal(old.body, '{"message":"Hello, h1!"}');
  const fresh = await h1SayHello(server, agent);
  assert.notEqual(fresh.port, young.port, "a new connection");
  assert.equal(fresh.connection, "keep-alive");
});

test("keepalive: the server PINGs every connection each KEEPALIVE_TIME_MS, drops one whose ACK does not come within KEEPALIVE_TIMEOUT_MS, ends its Chat as cancelled and leaves nothing in flight; one that answers stays", {
  timeout: 30_000,
}, async (t) => {
  const log = new LogCapture();
  const timeMs = 400;
  const timeoutMs = 300;
  const server = await startTestServer(t, {
    keepaliveTimeMs: timeMs,
    keepaliveTimeoutMs: timeoutMs,
    logLevel: "info",
    logDestination: log.destination,
  });
  const silent = await rawClient(t, server.url);
  const openedAt = performance.now();
  openChat(silent, 1);
  const answering = await rawClient(t, server.url);
  openChat(answering, 1);
  // The other answers every PING at once; each comes KEEPALIVE_TIME_MS
  // after the last ACK.
  const gaps: number[] = [];
  const answerPings = (async () => {
    let ackedAt = performance.now();
    for (let i = 0; i < 4; i++) {
      const seen = answering.frames.length;
      const ping = await answering.next(
        (f, index) => isPing(f) && index >= seen,
        timeMs + slackMs,
      );
      gaps.push(ping.at - ackedAt);
      answering.ackPing(ping);
      ackedAt = performance.now();
    }
  })();
  await until("two calls in flight", () => server.inflight.count === 2);

  const ping = await silent.next(isPing, timeMs + slackMs);
  assertTook(ping.at - openedAt, timeMs, timeMs + slackMs, "the first PING");
  await within(silent.closed, timeoutMs + slackMs, "the dropped connection");
  const droppedAt = performance.now();
  // The server's timeout starts when it sends the PING, which this client
  // reads some time later on a loaded machine: the timeout is surely over
  // KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS after the connection opened,
  // and at most KEEPALIVE_TIMEOUT_MS (and the slack) after the PING came.
  assertTook(
    droppedAt - openedAt,
    timeMs + timeoutMs,
    timeMs + timeoutMs + 2 * slackMs,
    "from the connection's start to its drop",
  );
  assert.ok(
    droppedAt - ping.at <= timeoutMs + slackMs,
    `from the unanswered PING to the dropped connection took ${droppedAt - ping.at} ms, more than ${timeoutMs + slackMs} ms`,
  );
  const chat = await log.waitFor((l) => l.msg === "finished call");
  assert.equal(chat.procedure, "/Greeter/Chat");
  assert.equal(chat.code, "canceled");
  assert.equal(chat.error, "http/2 stream closed with error code CANCEL (0x8)");
  assert.equal(closedLines(log, "keepalive_timeout").length, 1);
  await until("one call in flight", () => server.inflight.count === 1);

  await answerPings;
  for (const [i, gap] of gaps.entries()) {
    assertTook(
      gap,
      timeMs,
      timeMs + slackMs,
      `PING ${i + 1} after the last ACK`,
    );
  }
  assert.equal(server.inflight.count, 1, "its Chat still runs");
  assert.equal(closedLines(log, "keepalive_timeout").length, 1);
  assert.ok(!answering.socket.destroyed);
});

test('a client PINGing more often than PING_MIN_INTERVAL_MS gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings" at its third strike; every PING is answered, and a call open may still finish', {
  timeout: 30_000,
}, async (t) => {
  const log = new LogCapture();
  const server = await startTestServer(t, {
    pingMinIntervalMs: 1000,
    logLevel: "info",
    logDestination: log.destination,
  });
  const client = await rawClient(t, server.url);
  openChat(client, 1);
  await until("the Chat runs", () => server.inflight.count === 1);
  // The first PING is no strike; the next three, 50 ms apart, are.
  for (let i = 1; i <= 4; i++) {
    client.ping(Buffer.from(`ping ${i}  `));
    await client.next(
      (f) => isPingAck(f) && f.payload.toString() === `ping ${i}  `,
    );
    if (i < 4) {
      assert.ok(!client.frames.some(isGoaway), `no GOAWAY after ${i} PINGs`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  const goaway = await client.next(isGoaway, slackMs);
  assert.equal(goaway.payload.readUInt32BE(4), 0xb, "ENHANCE_YOUR_CALM");
  assert.equal(goaway.payload.subarray(8).toString(), "too_many_pings");
  assert.equal(goawayLastStreamId(goaway), 1, "the Chat was taken");
  // The call open runs on to its end.
  client.socket.write(
    Buffer.concat([
      // DATA with END_STREAM: the Chat's one name, then its end.
      frameHead(frameType.data, 1, 1, envelope(helloRequest("Calm")).length),
      envelope(helloRequest("Calm")),
    ]),
  );
  const end = await client.next(endsStream(1));
  assert.equal(end.type, frameType.headers, showFrame(end));
  assert.match(client.data(1).toString("latin1"), /Hello, Calm!/);
  await within(client.closed, slackMs, "the connection's close");
  assert.equal(closedLines(log, "too_many_pings").length, 1);
  assert.equal(closedLines(log, "too_many_pings")[0]?.level, 40);
});

function frameHead(
  type: number,
  flags: number,
  streamId: number,
  length: number,
): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return head;
}

test("the PING policy: without calls a PING is a strike unless PING_WITHOUT_CALLS allows it, and responses sent between PINGs forgive strikes", {
  timeout: 30_000,
}, async (t) => {
  const strict = await startTestServer(t, { pingMinIntervalMs: 100 });
  const idle = await rawClient(t, strict.url);
  for (let i = 0; i < 4; i++) {
    idle.ping();
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  const goaway = await idle.next(isGoaway, slackMs);
  assert.equal(goaway.payload.subarray(8).toString(), "too_many_pings");
  assert.equal(goawayLastStreamId(goaway), 0);

  const permissive = await startTestServer(t, {
    pingMinIntervalMs: 100,
    pingWithoutCalls: true,
  });
  const allowed = await rawClient(t, permissive.url);
  for (let i = 0; i < 6; i++) {
    allowed.ping();
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  await allowed.next(
    (f) => isPingAck(f) && allowed.frames.filter(isPingAck).length === 6,
  );
  assert.ok(!allowed.frames.some(isGoaway), "PINGs 150 ms apart are allowed");

  // Ten PINGs 10 ms apart, with a call answered between each two.
  const busy = await rawClient(t, strict.url);
  for (let i = 0; i < 10; i++) {
    busy.ping();
    await sayHelloRaw(busy, 2 * i + 1, `n${i}`);
  }
  await busy.next(
    (f) => isPingAck(f) && busy.frames.filter(isPingAck).length === 10,
  );
  assert.ok(!busy.frames.some(isGoaway), "responses between PINGs forgive");
});

test('grpc-js clients: one whose keepalive is inside the PING policy keeps its connection; one outside it reads "too_many_pings", doubles its keepalive time as gRFC A8 says, and ends its call RESOURCE_EXHAUSTED', {
  timeout: 30_000,
}, async (t) => {
  const log = new LogCapture();
  const server = await startTestServer(t, {
    pingMinIntervalMs: 300,
    logLevel: "info",
    logDestination: log.destination,
  });
  const grpcLog: string[] = [];
  grpc.setLogger({
    error: (...args: unknown[]) => grpcLog.push(args.join(" ")),
  } as Partial<Console> as Console);
  grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
  t.after(() => grpc.setLogger(console));
  const target = `127.0.0.1:${server.port}`;
  const chatOn = (keepaliveTimeMs: number) => {
    const client = grpcJsGreeter(target, undefined, {
      "grpc.keepalive_time_ms": keepaliveTimeMs,
      "grpc.keepalive_timeout_ms": 1000,
    });
    t.after(() => client.close());
    const chat = client.chat();
    const replies: string[] = [];
    chat.on("data", (r: { message: string }) => replies.push(r.message));
    let error: grpc.ServiceError | undefined;
    chat.on("error", (e: grpc.ServiceError) => {
      error = e;
    });
    return { client, chat, replies, error: () => error };
  };
  const inside = chatOn(400);
  const outside = chatOn(100);
  inside.chat.write({ name: "In" });
  outside.chat.write({ name: "Out" });
  await until("both replied", () =>
    inside.replies.length === 1 && outside.replies.length === 1
      ? true
      : undefined,
  );

  const calm = await log.waitFor(
    (l) => l.msg === "closed connection" && l.reason === "too_many_pings",
    3000,
  );
  assert.equal(calm.level, 40);
  await until("grpc-js read the GOAWAY", () =>
    grpcLog.find((l) =>
      l.includes("rejected by server because of excess pings"),
    ),
  );
  assert.match(
    grpcLog.join("\n"),
    /rejected by server because of excess pings\. Increasing ping interval to 200 ms/,
  );
  // Node's HTTP/2 client, which grpc-js speaks through, ends a session
  // whose GOAWAY has an error code, and its calls with it; grpc-js reads
  // ENHANCE_YOUR_CALM as RESOURCE_EXHAUSTED.
  const ended = await until("the outside Chat ended", outside.error);
  assert.equal(ended.code, grpc.status.RESOURCE_EXHAUSTED);

  // Five more of the inside client's PINGs, 400 ms apart: no strike.
  let pings = 0;
  for (const session of server.listener.sessions) {
    session.on("ping", () => pings++);
  }
  await until("five more PINGs", () => pings >= 5, 5 * 400 + 2 * slackMs);
  inside.chat.write({ name: "Again" });
  await until(
    "the inside Chat answered again",
    () => inside.replies.length === 2,
  );
  inside.chat.end();
  assert.equal(
    closedLines(log, "too_many_pings").length,
    1,
    "only the outside one",
  );
  assert.equal(
    (await sayHello(inside.client, { name: "Same" })).message,
    "Hello, Same!",
  );
});

/** A connection from `localAddress` that says nothing: resolves once the server closed it (true) or after `ms` while still open (false). */
async function closedAtOnce(
  server: RunningServer,
  localAddress: string,
  ms = 1000,
): Promise<{ socket: net.Socket; closed: boolean }> {
  const socket = net.connect({
    host: "127.0.0.1",
    port: server.port,
    localAddress,
  });
  socket.on("error", () => {});
  const closed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  return { socket, closed };
}

test("MAX_CONNECTIONS_PER_ADDRESS: a client address past its cap has its connection closed as it is accepted, and a gRPC client there gets UNAVAILABLE; other addresses, and the same one once a connection closed, are served", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { maxConnectionsPerAddress: 2 });
  const held = await Promise.all([
    rawClient(t, server.url),
    rawClient(t, server.url),
  ]);
  const third = await closedAtOnce(server, "127.0.0.1");
  assert.equal(third.closed, true, "the third from 127.0.0.1 is closed");
  const grpcClient = grpcJsGreeter(`127.0.0.1:${server.port}`);
  t.after(() => grpcClient.close());
  await assert.rejects(sayHello(grpcClient, { name: "refused" }), {
    code: grpc.status.UNAVAILABLE,
  });
  const other = await closedAtOnce(server, "127.0.0.2", 300);
  assert.equal(other.closed, false, "127.0.0.2 is under its own cap");
  other.socket.destroy();
  (held[0] as RawH2Client).socket.destroy();
  await until(
    "one connection from 127.0.0.1 left",
    () => server.listener.sockets.size === 1,
  );
  const again = grpcJsGreeter(`127.0.0.1:${server.port}`);
  t.after(() => again.close());
  assert.deepEqual(await sayHello(again, { name: "again" }), {
    message: "Hello, again!",
  });
  assert.match(
    await metricsText(server),
    /^connect_greeter_connections_refused_total\{reason="max_connections_per_address"\} [2-9]/m,
  );
});

test("MAX_CONNECTIONS: a connection past the process's cap is closed as it is accepted, on a cleartext port and under TLS, where the TLS client sees its handshake cut", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { maxConnections: 2 });
  await Promise.all([rawClient(t, server.url), rawClient(t, server.url)]);
  assert.equal((await closedAtOnce(server, "127.0.0.2")).closed, true);
  assert.match(
    await metricsText(server),
    /^connect_greeter_connections_refused_total\{reason="max_connections"\} 1$/m,
  );
  assert.match(
    await metricsText(server),
    /^connect_greeter_connections_open 2$/m,
  );

  const cert = selfSignedCert();
  const secure = await startTestServer(t, {
    tls: cert,
    maxConnectionsPerAddress: 1,
  });
  const first = grpcJsGreeter(
    `localhost:${secure.port}`,
    grpc.credentials.createSsl(cert.cert),
  );
  t.after(() => first.close());
  assert.equal((await sayHello(first, { name: "tls" })).message, "Hello, tls!");
  const second = grpcJsGreeter(
    `localhost:${secure.port}`,
    grpc.credentials.createSsl(cert.cert),
  );
  t.after(() => second.close());
  await assert.rejects(sayHello(second, { name: "tls" }), {
    code: grpc.status.UNAVAILABLE,
  });
  assert.equal(
    (await sayHello(first, { name: "still" })).message,
    "Hello, still!",
  );
});

test("FIRST_CALL_TIMEOUT_MS: an HTTP/2 connection that starts no call gets the two-step GOAWAY after it; one that has called waits for the idle timeout", {
  timeout: 30_000,
}, async (t) => {
  const log = new LogCapture();
  const firstCallMs = 300;
  const server = await startTestServer(t, {
    firstCallTimeoutMs: firstCallMs,
    idleTimeoutMs: 5000,
    logLevel: "debug",
    logDestination: log.destination,
  });
  const unused = await rawClient(t, server.url);
  const openedAt = performance.now();
  const used = await rawClient(t, server.url);
  await sayHelloRaw(used, 1, "used");
  const first = await unused.next(isGoawayNotice, firstCallMs + slackMs);
  assertTook(
    first.at - openedAt,
    firstCallMs,
    firstCallMs + slackMs,
    "the GOAWAY",
  );
  unused.ackPing(await unused.next(isPing));
  assert.equal(goawayLastStreamId(await unused.next(isFinalGoaway)), 0);
  await within(unused.closed, slackMs, "the connection's close");
  assert.equal(closedLines(log, "first_call").length, 1);
  await assert.rejects(
    used.next(isGoaway, firstCallMs * 2),
    /nothing matching within/,
    "the connection with a call is not closed",
  );
});
