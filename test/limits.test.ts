import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { test } from "node:test";
import * as tls from "node:tls";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
} from "@connectrpc/connect-node";
import { Greeter } from "../gen/helloworld_pb.js";
import { repoRoot } from "./support/child.js";
import { startTestServer } from "./support/server.js";
import { assertTook, within } from "./support/wait.js";

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR } =
  http2.constants;

/** A gRPC length-prefixed message: flags, 4-byte length, payload. */
function grpcFrame(payload: Buffer, length = payload.length): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(length, 1);
  return Buffer.concat([head, payload]);
}

/** A HelloRequest with `name`, in protobuf binary. */
function helloRequest(name: string): Buffer {
  const bytes = Buffer.from(name);
  assert.ok(bytes.length < 128, "a one-byte length prefix");
  return Buffer.concat([Buffer.from([0x0a, bytes.length]), bytes]);
}

/** A raw TCP client: what it received, and when the server closed it. */
function rawClient(url: string): {
  socket: net.Socket;
  received: () => string;
  closed: Promise<number>;
} {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  const opened = performance.now();
  let data = "";
  socket.setEncoding("latin1").on("data", (d: string) => {
    data += d;
  });
  socket.on("error", () => {});
  const closed = new Promise<number>((resolve) =>
    socket.once("close", () => resolve(performance.now() - opened)),
  );
  return { socket, received: () => data, closed };
}

/**
 * How late a time limit may act on a loaded 2-core machine (timers and the
 * event loop run late, never early); far below the 10 s defaults, so a limit
 * that ignores its setting fails.
 */
const slackMs = 2_000;

/**
 * Milliseconds from opening until the server closed `client`, asserted to be
 * from `fromMs` to `toMs`; fails as soon as `toMs` have passed, not at the
 * end of a longer wait.
 */
async function closedBetween(
  client: { closed: Promise<number> },
  fromMs: number,
  toMs: number,
): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), toMs);
  });
  const elapsed = await Promise.race([client.closed, late]);
  clearTimeout(timer);
  if (elapsed === "late") assert.fail(`still open after ${toMs} ms`);
  assertTook(elapsed, fromMs, toMs, "closing the connection");
  return elapsed;
}

/** `client`, its close timed from now rather than from its opening. */
function rawClientSince(client: { closed: Promise<number> }): {
  closed: Promise<number>;
} {
  const since = performance.now();
  return {
    closed: client.closed.then(() => performance.now() - since),
  };
}

/** Open an HTTP/2 connection and wait for the server's SETTINGS. */
async function h2Session(url: string): Promise<{
  session: http2.ClientHttp2Session;
  settings: http2.Settings;
}> {
  const session = http2.connect(url);
  session.on("error", () => {});
  const [settings] = (await once(session, "remoteSettings")) as [
    http2.Settings,
  ];
  return { session, settings };
}

/** A gRPC call on `session`; resolves with its grpc-status, or the RST_STREAM code if the stream was reset. */
function grpcCall(
  session: http2.ClientHttp2Session,
  path: string,
  body: Buffer | undefined,
  extraHeaders: http2.OutgoingHttpHeaders = {},
): Promise<{ status?: string; rstCode?: number }> {
  const stream = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...extraHeaders,
  });
  stream.on("error", () => {});
  let status: string | undefined;
  stream.on("response", (h) => {
    status ??= h["grpc-status"] as string | undefined;
  });
  stream.on("trailers", (h) => {
    status = h["grpc-status"] as string | undefined;
  });
  stream.resume();
  if (body !== undefined) stream.end(body);
  return new Promise((resolve) =>
    stream.once("close", () =>
      resolve(
        stream.rstCode === NGHTTP2_NO_ERROR
          ? { status }
          : { rstCode: stream.rstCode },
      ),
    ),
  );
}

test("a message larger than maxMessageBytes fails with RESOURCE_EXHAUSTED over gRPC and Connect, and the server keeps serving", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { maxMessageBytes: 1024 });
  for (const transport of [
    createGrpcTransport({ baseUrl: server.url }),
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    createConnectTransport({
      baseUrl: server.url,
      httpVersion: "1.1",
      useBinaryFormat: true,
    }),
  ]) {
    const client = createClient(Greeter, transport);
    await assert.rejects(client.sayHello({ name: "x".repeat(2000) }), (e) => {
      assert.equal(ConnectError.from(e).code, Code.ResourceExhausted);
      return true;
    });
    await assert.rejects(
      client.collectGreetings(
        (async function* () {
          yield { name: "ok" };
          yield { name: "x".repeat(2000) };
        })(),
      ),
      (e) => {
        assert.equal(ConnectError.from(e).code, Code.ResourceExhausted);
        return true;
      },
    );
    assert.equal(
      (await client.sayHello({ name: "small" })).message,
      "Hello, small!",
    );
  }
});

test("a gRPC message that only claims to be huge is refused from its length prefix, before its body arrives", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { maxMessageBytes: 1024 });
  const { session } = await h2Session(server.url);
  t.after(() => session.destroy());
  // Claims 2 GiB, sends 3 bytes, and leaves the stream open.
  const stream = session.request({
    ":method": "POST",
    ":path": "/Greeter/SayHello",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.write(grpcFrame(Buffer.from("abc"), 2 ** 31 - 1));
  stream.resume();
  // The answer needs nothing more from the client: a server that waits for
  // the body fails here, not by the test's timeout.
  const [trailers] = await within(
    once(stream, "trailers") as Promise<[http2.IncomingHttpHeaders]>,
    5_000,
    "the answer",
  );
  assert.equal(trailers["grpc-status"], String(Code.ResourceExhausted));
  stream.close();
});

test("HTTP/2 clients are told maxConcurrentStreams, and a stream beyond it is refused with REFUSED_STREAM while the others run", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { maxConcurrentStreams: 3 });
  const session = http2.connect(server.url);
  t.after(() => session.destroy());
  session.on("error", () => {});
  const settings = once(session, "remoteSettings") as Promise<[http2.Settings]>;
  // Four Chat streams opened at once, before the server's SETTINGS can
  // arrive: a client that ignores the limit. They stay open (no end).
  const streams = [0, 1, 2, 3].map(() => {
    const stream = session.request({
      ":method": "POST",
      ":path": "/Greeter/Chat",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    return stream;
  });
  assert.equal((await settings)[0].maxConcurrentStreams, 3);
  const refused = streams[3] as http2.ClientHttp2Stream;
  await new Promise((resolve) => refused.once("close", resolve));
  assert.equal(refused.rstCode, NGHTTP2_REFUSED_STREAM);
  // The first three are served.
  for (const [i, stream] of streams.slice(0, 3).entries()) {
    stream.write(grpcFrame(helloRequest(`s${i}`)));
    const [chunk] = (await once(stream, "data")) as [Buffer];
    assert.match(chunk.toString("latin1"), new RegExp(`Hello, s${i}!`));
    stream.end();
  }
});

test("an HTTP/2 header block over maxHeaderBytes resets that stream (ENHANCE_YOUR_CALM) and the connection keeps serving", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { maxHeaderBytes: 2048 });
  const { session, settings } = await h2Session(server.url);
  t.after(() => session.destroy());
  assert.equal(settings.maxHeaderListSize, 2048);
  const tooBig = await grpcCall(
    session,
    "/Greeter/SayHello",
    grpcFrame(helloRequest("big")),
    { "x-padding": "p".repeat(4000) },
  );
  assert.equal(tooBig.rstCode, NGHTTP2_ENHANCE_YOUR_CALM);
  const ok = await grpcCall(
    session,
    "/Greeter/SayHello",
    grpcFrame(helloRequest("fine")),
  );
  assert.equal(ok.status, "0");
});

test("an HTTP/1.1 request whose headers exceed maxHeaderBytes gets 431 and the connection closes", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { maxHeaderBytes: 2048 });
  const client = rawClient(server.url);
  client.socket.write(
    `POST /Greeter/SayHello HTTP/1.1\r\nHost: x\r\nX-Padding: ${"p".repeat(4000)}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`,
  );
  await client.closed;
  assert.match(client.received(), /^HTTP\/1\.1 431 /);
});

test("an HTTP/1.1 client that sends half its headers is answered 408 and cut off after headersTimeoutMs", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { headersTimeoutMs: 300 });
  const client = rawClient(server.url);
  client.socket.write("POST /Greeter/SayHello HTTP/1.1\r\nHost: x\r\n");
  // Node checks the timeout every connectionsCheckingInterval (here 300 ms).
  await closedBetween(client, 300, 300 + 300 + slackMs);
  assert.match(client.received(), /^HTTP\/1\.1 408 /);
});

test("with no request timeout (0), an HTTP/1.1 client that sends half its headers is still cut off after headersTimeoutMs", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, {
    headersTimeoutMs: 300,
    requestTimeoutMs: 0,
  });
  const client = rawClient(server.url);
  client.socket.write("POST /Greeter/SayHello HTTP/1.1\r\nHost: x\r\n");
  await closedBetween(client, 300, 300 + 300 + slackMs);
  assert.match(client.received(), /^HTTP\/1\.1 408 /);
});

test("with a request timeout shorter than the headers timeout, the server starts and a client stalling its headers is cut at the request timeout", {
  timeout: 30_000,
}, async (t) => {
  // Node refuses a headers timeout longer than the request timeout; the
  // server takes the shorter for both.
  const server = await startTestServer(t, {
    headersTimeoutMs: 5_000,
    requestTimeoutMs: 300,
  });
  const client = rawClient(server.url);
  client.socket.write("POST /Greeter/SayHello HTTP/1.1\r\nHost: x\r\n");
  await closedBetween(client, 300, 300 + 300 + slackMs);
  assert.match(client.received(), /^HTTP\/1\.1 408 /);
});

test("an HTTP/1.1 request whose body stalls is answered 408 and cut off after requestTimeoutMs, and the server keeps serving", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, {
    headersTimeoutMs: 200,
    requestTimeoutMs: 400,
  });
  const client = rawClient(server.url);
  client.socket.write(
    'POST /Greeter/SayHello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"name"',
  );
  // Checked every 200 ms (the shorter of the two timeouts).
  await closedBetween(client, 400, 400 + 200 + slackMs);
  assert.match(client.received(), /^HTTP\/1\.1 408 /);
  const res = await fetch(`${server.url}/Greeter/SayHello`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"name":"next"}',
  });
  assert.deepEqual(await res.json(), { message: "Hello, next!" });
});

for (const [what, bytes] of [
  ["nothing", ""],
  ["half the HTTP/2 preface", "PRI * HTTP/2.0\r\n"],
] as const) {
  test(`a connection that sends ${what === "nothing" ? "nothing" : what} is closed after headersTimeoutMs`, {
    timeout: 30_000,
  }, async (t) => {
    const server = await startTestServer(t, { headersTimeoutMs: 300 });
    const client = rawClient(server.url);
    if (bytes !== "") client.socket.write(bytes);
    await closedBetween(client, 300, 300 + slackMs);
    assert.equal(client.received(), "");
    // The server's side is destroyed (it leaves the set on its "close" event, a moment later).
    assert.ok(
      [...server.listener.sockets].every((s) => s.destroyed),
      "the server destroyed its side",
    );
  });
}

test("an idle HTTP/1.1 keep-alive connection is closed after idleTimeoutMs", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { idleTimeoutMs: 300 });
  const client = rawClient(server.url);
  client.socket.write(
    'POST /Greeter/SayHello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"name":"a"}',
  );
  await once(client.socket, "data");
  const answered = rawClientSince(client);
  // Node keeps the socket keepAliveTimeoutBuffer (1 s) longer than the
  // Keep-Alive timeout it announces, so that a client never reuses a
  // connection the server is closing. Measured from the reply's arrival, a
  // moment after the server armed its timer.
  const buffer = server.listener.http1Server?.keepAliveTimeoutBuffer ?? 0;
  await closedBetween(answered, 290, 300 + buffer + slackMs);
  assert.match(client.received(), /^HTTP\/1\.1 200 [\s\S]*Hello, a!/);
  assert.doesNotMatch(client.received(), /connection: close/i);
  assert.match(client.received(), /keep-alive: timeout=0/i);
});

test("an HTTP/2 connection with no call open gets GOAWAY after idleTimeoutMs, while one with a quiet Chat open stays", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { idleTimeoutMs: 300 });
  // Before the connection exists, so before the server arms its timer.
  const opening = performance.now();
  const idle = await h2Session(server.url);
  const busy = await h2Session(server.url);
  t.after(() => {
    idle.session.destroy();
    busy.session.destroy();
  });
  const chat = busy.session.request({
    ":method": "POST",
    ":path": "/Greeter/Chat",
    "content-type": "application/grpc",
    te: "trailers",
  });
  const [code] = (await once(idle.session, "goaway")) as [number];
  const idleFor = performance.now() - opening;
  assertTook(idleFor, 300, 300 + slackMs, "the idle GOAWAY");
  assert.equal(code, NGHTTP2_NO_ERROR);
  await once(idle.session, "close");
  // The busy connection's timer would have fired by now had the open Chat not stopped it.
  assert.equal(busy.session.closed, false);
  chat.write(grpcFrame(helloRequest("still here")));
  const [chunk] = (await once(chat, "data")) as [Buffer];
  assert.match(chunk.toString("latin1"), /Hello, still here!/);
  const busyGoaway = once(busy.session, "goaway");
  chat.end();
  chat.resume();
  await busyGoaway;
});

test("over TLS, the HTTP/1.1 fallback enforces maxHeaderBytes (431) and headersTimeoutMs (408) too", {
  timeout: 30_000,
}, async (t) => {
  const cert = readFileSync(`${repoRoot}test/fixtures/localhost-cert.pem`);
  const key = readFileSync(`${repoRoot}test/fixtures/localhost-key.pem`);
  const server = await startTestServer(t, {
    tls: { cert, key },
    headersTimeoutMs: 300,
    maxHeaderBytes: 2048,
  });
  const exchange = async (request: string) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port: server.port,
      ca: cert,
      servername: "localhost",
      ALPNProtocols: ["http/1.1"],
    });
    socket.on("error", () => {});
    await once(socket, "secureConnect");
    const opened = performance.now();
    socket.write(request);
    let data = "";
    socket.setEncoding("latin1").on("data", (d: string) => {
      data += d;
    });
    await once(socket, "close");
    return { data, elapsed: performance.now() - opened };
  };
  const big = await exchange(
    `POST /Greeter/SayHello HTTP/1.1\r\nHost: x\r\nX-Padding: ${"p".repeat(4000)}\r\nContent-Length: 2\r\n\r\n{}`,
  );
  assert.match(big.data, /^HTTP\/1\.1 431 /);
  const slow = await exchange("POST /Greeter/SayHello HTTP/1.1\r\nHost: x\r\n");
  assert.match(slow.data, /^HTTP\/1\.1 408 /);
  assertTook(slow.elapsed, 300, 300 + 300 + slackMs, "closing it");
});
