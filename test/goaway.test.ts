import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  writeSync,
} from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import * as tls from "node:tls";
import {
  goAwayNoticeMs,
  shutdownNotice,
  writeNotice,
  writeSome,
} from "../src/transport/goaway.js";
import {
  answered,
  goawayLastStreamId,
  goawayNotice,
  isFinalGoaway,
  isGoaway,
  isPing,
  RawH2Client,
  requestHello,
  sayHelloRaw,
  showFrame,
} from "./support/h2-frames.js";
import { envelope } from "./support/raw.js";
import { startTestServer } from "./support/server.js";
import { selfSignedCert } from "./support/tls.js";
import { until } from "./support/wait.js";

/**
 * These tests speak HTTP/2 frame by frame, as a balancer does that keeps a
 * connection to the server and has not yet read its GOAWAY: it sends a
 * request after the server's first GOAWAY was written. RFC 9113, 6.8: a
 * server shutting down gracefully first sends a GOAWAY with the last stream
 * id 2^31-1, and only after a round trip the GOAWAY naming the last stream it
 * took, so that no request in flight is refused.
 */

/** A server, and a raw HTTP/2 client whose first SayHello it answered; `session` is the server's side of the connection. */
async function answeredClient(t: TestContext) {
  const server = await startTestServer(t);
  const client = await RawH2Client.connect(server.url);
  t.after(() => client.socket.destroy());
  await sayHelloRaw(client, 1, "first");
  const [session] = server.listener.sessions;
  assert.ok(session, "the server's session");
  return { server, client, session };
}

test("shutdown() first sends a GOAWAY that refuses no stream; a request sent right after it is served, and the final GOAWAY follows the PING ack and names it", {
  timeout: 30_000,
}, async (t) => {
  const { server, client, session } = await answeredClient(t);
  await until(
    "the server's SETTINGS acknowledged",
    () => !session.pendingSettingsAck,
  );
  const shutdownAt = performance.now();
  const result = server.shutdown(5000);
  const first = await client.next(isGoaway);
  assert.equal(goawayLastStreamId(first), goawayNotice, showFrame(first));
  // The session's SETTINGS were acknowledged: nothing to wait for.
  assert.ok(
    first.at - shutdownAt < goAwayNoticeMs / 2,
    `notice ${first.at - shutdownAt} ms after shutdown()`,
  );
  // What a balancer does that picked this connection before reading the GOAWAY.
  requestHello(client, 3, "late");
  const ping = await client.next(isPing);
  assert.equal(
    client.frames.filter(isGoaway).length,
    1,
    "no final GOAWAY before the PING is answered",
  );
  const ackedAt = performance.now();
  client.ackPing(ping);
  const final = await client.next(isFinalGoaway);
  assert.equal(goawayLastStreamId(final), 3, showFrame(final));
  // The ack, not the goAwayNoticeMs bound, let the final GOAWAY go.
  assert.ok(
    final.at - ackedAt < goAwayNoticeMs / 2,
    `final GOAWAY ${final.at - ackedAt} ms after the PING ack`,
  );
  await answered(client, 3, "Hello, late!");
  await client.closed;
  await result;
  t.diagnostic(
    `frames from the server after shutdown(): ${client.frames
      .filter((f) => f.at >= first.at)
      .map(showFrame)
      .join(", ")}`,
  );
});

test("closing a session twice (an idle close, then the drain) sends one notice and one PING", {
  timeout: 30_000,
}, async (t) => {
  const { server, client, session } = await answeredClient(t);
  server.listener.goAway(session);
  server.listener.goAway(session);
  client.ackPing(await client.next(isPing));
  await client.next(isFinalGoaway);
  await client.closed;
  const sequence = client.frames.map(showFrame).join(", ");
  assert.equal(
    client.frames.filter((f) => isGoaway(f) && !isFinalGoaway(f)).length,
    1,
    sequence,
  );
  assert.equal(client.frames.filter(isPing).length, 1, sequence);
});

test("a peer that does not answer the PING gets the final GOAWAY goAwayNoticeMs after the first one", {
  timeout: 30_000,
}, async (t) => {
  const { server, client } = await answeredClient(t);
  void server.shutdown(5000);
  const first = await client.next(isGoaway);
  const final = await client.next(isFinalGoaway);
  assert.equal(goawayLastStreamId(final), 1);
  const waited = final.at - first.at;
  t.diagnostic(`final GOAWAY ${Math.round(waited)} ms after the first`);
  assert.ok(
    waited >= goAwayNoticeMs * 0.9 && waited < goAwayNoticeMs + 3000,
    `${waited} ms`,
  );
});

test("a connection accepted before shutdown() whose HTTP/2 preface comes after it gets its SETTINGS first, then the two GOAWAYs, and its request served", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t);
  const client = await RawH2Client.connect(server.url, { preface: false });
  t.after(() => client.socket.destroy());
  await until(
    "one connection",
    () => server.listener.sockets.size === 1,
    10_000,
    0,
  );
  const result = server.shutdown(5000);
  assert.equal(await connectError(server.url), "ECONNREFUSED");
  // The session is made only now, after the drain began.
  client.sendPreface();
  requestHello(client, 1, "just in time");
  const ping = await client.next(isPing);
  client.ackPing(ping);
  await answered(client, 1, "Hello, just in time!");
  const final = await client.next(isFinalGoaway);
  assert.equal(goawayLastStreamId(final), 1);
  const sequence = client.frames.map(showFrame);
  assert.equal(sequence[0], "SETTINGS", sequence.join(", "));
  assert.equal(
    goawayLastStreamId(await client.next(isGoaway)),
    goawayNotice,
    sequence.join(", "),
  );
  await client.closed;
  assert.equal((await result).connectionsDestroyed, 0);
});

test("an HTTP/2 connection closed for being idle is closed in the same two steps: a request sent right after the first GOAWAY is served", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { idleTimeoutMs: 300 });
  const client = await RawH2Client.connect(server.url);
  t.after(() => client.socket.destroy());
  await sayHelloRaw(client, 1, "first");
  const answeredAt = performance.now();
  const first = await client.next(isGoaway);
  assert.equal(goawayLastStreamId(first), goawayNotice, showFrame(first));
  assert.ok(first.at - answeredAt >= 250, `${first.at - answeredAt} ms`);
  requestHello(client, 3, "reused");
  client.ackPing(await client.next(isPing));
  await answered(client, 3, "Hello, reused!");
  const final = await client.next(isFinalGoaway);
  assert.equal(goawayLastStreamId(final), 3);
  await client.closed;
});

test("over TLS, where the server cannot write a notice beside nghttp2, the final GOAWAY still waits for a PING round trip", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { tls: selfSignedCert() });
  const { port } = new URL(server.url);
  const socket = tls.connect({
    host: "127.0.0.1",
    port: Number(port),
    ALPNProtocols: ["h2"],
    rejectUnauthorized: false,
  });
  await once(socket, "secureConnect");
  assert.equal(socket.alpnProtocol, "h2");
  const client = RawH2Client.over(socket);
  t.after(() => socket.destroy());
  await sayHelloRaw(client, 1, "first");
  const result = server.shutdown(5000);
  const ping = await client.next(isPing);
  // Frames written together arrive together: a GOAWAY sent with the PING
  // would have been parsed by now.
  assert.equal(client.frames.filter(isGoaway).length, 0);
  client.ackPing(ping);
  const final = await client.next(isGoaway);
  assert.equal(goawayLastStreamId(final), 1, showFrame(final));
  await client.closed;
  await result;
});

function connectError(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (e: NodeJS.ErrnoException) =>
      resolve(e.code ?? e.message),
    );
  });
}

test("HTTP/1.1 has no GOAWAY: during a drain a request on an idle keep-alive connection is answered with Connection: close, and idle connections close goAwayNoticeMs after the drain began", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t);
  const { port } = new URL(server.url);
  const sayHello = (socket: net.Socket, name: string) => {
    const body = JSON.stringify({ name });
    socket.write(
      `POST /Greeter/SayHello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
  };
  const connect = async () => {
    const socket = net.connect(Number(port), "127.0.0.1");
    t.after(() => socket.destroy());
    await once(socket, "connect");
    let received = "";
    socket.setEncoding("latin1").on("data", (d: string) => {
      received += d;
    });
    const closed = once(socket, "close").then(() => performance.now());
    return { socket, received: () => received, closed };
  };
  const reused = await connect();
  const idle = await connect();
  for (const [c, name] of [
    [reused, "first"],
    [idle, "idle"],
  ] as const) {
    sayHello(c.socket, name);
    await until(
      "the reply",
      () => c.received().includes(`Hello, ${name}!`),
      10_000,
      0,
    );
  }
  const drainAt = performance.now();
  const result = server.shutdown(5000);
  // What a balancer does that picked this connection as the drain began.
  sayHello(reused.socket, "reused");
  await reused.closed;
  const second = reused.received().split("HTTP/1.1 200 OK")[2] ?? "";
  assert.match(second, /connection: close/i, reused.received());
  assert.match(second, /Hello, reused!/);
  const idleClosedAfter = (await idle.closed) - drainAt;
  t.diagnostic(
    `the idle connection closed ${Math.round(idleClosedAfter)} ms after the drain began`,
  );
  assert.ok(
    idleClosedAfter >= goAwayNoticeMs * 0.9 &&
      idleClosedAfter < goAwayNoticeMs + 3000,
    `${idleClosedAfter} ms`,
  );
  assert.equal((await result).connectionsDestroyed, 0);
});

test("under TLS, where HTTP/1.1 is the HTTP/2 server's fallback, an idle HTTP/1.1 keep-alive connection closes goAwayNoticeMs after the drain began", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { tls: selfSignedCert() });
  const { port } = new URL(server.url);
  const socket = tls.connect({
    host: "127.0.0.1",
    port: Number(port),
    ALPNProtocols: ["http/1.1"],
    rejectUnauthorized: false,
  });
  t.after(() => socket.destroy());
  await once(socket, "secureConnect");
  assert.equal(socket.alpnProtocol, "http/1.1");
  let received = "";
  socket.setEncoding("latin1").on("data", (d: string) => {
    received += d;
  });
  const closed = once(socket, "close").then(() => performance.now());
  const body = JSON.stringify({ name: "idle" });
  socket.write(
    `POST /Greeter/SayHello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
  );
  await until("the reply", () => received.includes("Hello, idle!"), 10_000, 0);
  const drainAt = performance.now();
  const result = server.shutdown(5000);
  const closedAfter = (await closed) - drainAt;
  assert.ok(
    closedAfter >= goAwayNoticeMs * 0.9 && closedAfter < goAwayNoticeMs * 1.9,
    `${closedAfter} ms`,
  );
  assert.equal((await result).connectionsDestroyed, 0);
});

/**
 * Start a Connect StreamHello on a raw HTTP/1.1 keep-alive connection, and
 * resolve once its first message arrived. `ended()` resolves once its last
 * chunk did; `closed` with the time the connection closed.
 */
async function http1Stream(t: TestContext, url: string) {
  const { port } = new URL(url);
  const socket = net.connect(Number(port), "127.0.0.1");
  t.after(() => socket.destroy());
  await once(socket, "connect");
  let received = "";
  socket.setEncoding("latin1").on("data", (d: string) => {
    received += d;
  });
  const closed = once(socket, "close").then(() => performance.now());
  const stream = envelope(Buffer.from(JSON.stringify({ name: "s" })));
  socket.write(
    `POST /Greeter/StreamHello HTTP/1.1\r\nHost: x\r\nContent-Type: application/connect+json\r\nContent-Length: ${stream.length}\r\n\r\n`,
  );
  socket.write(stream);
  await until(
    "the first message",
    () => received.includes("Hello s, message 0"),
    10_000,
    0,
  );
  return {
    socket,
    received: () => received,
    closed,
    ended: () =>
      until("the last chunk", () => received.includes("0\r\n\r\n"), 10_000, 0),
  };
}

test("HTTP/1.1: a connection whose response was under way when the drain began stays open after it a moment, and a request sent right after that response is answered with Connection: close", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { streamIntervalMs: 100 });
  const stream = await http1Stream(t, server.url);
  const result = server.shutdown(5000);
  // The stream's response ends (its headers said keep-alive); a balancer
  // puts the next request on the connection at once.
  await stream.ended();
  const body = '{"name":"next"}';
  stream.socket.write(
    `POST /Greeter/SayHello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
  );
  await stream.closed;
  const received = stream.received();
  const second = received.split("HTTP/1.1 200 OK")[2] ?? "";
  assert.match(second, /connection: close/i, received);
  assert.match(second, /Hello, next!/);
  assert.equal((await result).connectionsDestroyed, 0);
});

test("HTTP/1.1: a keep-alive connection whose response ends after the drain's first goAwayNoticeMs is closed goAwayNoticeMs after that response, not left to the drain's end", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { streamIntervalMs: 400 });
  const stream = await http1Stream(t, server.url);
  const drainAt = performance.now();
  const result = server.shutdown(10_000);
  await stream.ended();
  const endedAt = performance.now();
  // Four more messages 400 ms apart: the drain's own close of idle
  // connections found this one busy.
  assert.ok(endedAt - drainAt > goAwayNoticeMs, `${endedAt - drainAt} ms`);
  const idle = (await stream.closed) - endedAt;
  assert.ok(
    idle >= goAwayNoticeMs * 0.8 && idle < goAwayNoticeMs * 1.9,
    `closed ${idle} ms after its response ended`,
  );
  assert.equal((await result).connectionsDestroyed, 0);
});

test("the notice goes out only between whole writes: while a socket has writes queued it waits, then follows them byte for byte; on a socket that never drains it gives up after goAwayNoticeMs and writes nothing", {
  timeout: 30_000,
}, async (t) => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const { port } = server.address() as net.AddressInfo;
  /** A connection whose reader has stopped, with writes queued behind its full buffers. */
  const stalled = async () => {
    const reader = net.connect(port, "127.0.0.1");
    t.after(() => reader.destroy());
    reader.pause();
    const [writer] = (await once(server, "connection")) as [net.Socket];
    t.after(() => writer.destroy());
    const handle = (
      writer as unknown as { _handle: { writeQueueSize: number } }
    )._handle;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let sent = 0;
    while (handle.writeQueueSize === 0) {
      writer.write(chunk);
      sent += chunk.length;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const received: Buffer[] = [];
    reader.on("data", (d: Buffer) => received.push(d));
    reader.pause();
    const all = async () => {
      writer.end();
      reader.resume();
      await once(reader, "end");
      return Buffer.concat(received);
    };
    return { reader, writer, sent, all };
  };

  const drained = await stalled();
  const written = new Promise<boolean>((resolve) =>
    writeNotice(drained.writer, resolve),
  );
  drained.reader.resume();
  assert.equal(await written, true);
  const bytes = await drained.all();
  assert.equal(bytes.length, drained.sent + shutdownNotice.length);
  assert.equal(
    bytes.subarray(0, drained.sent).every((b) => b === 0x61),
    true,
  );
  assert.deepEqual(bytes.subarray(drained.sent), shutdownNotice);

  const never = await stalled();
  const started = performance.now();
  const gaveUp = await new Promise<boolean>((resolve) =>
    writeNotice(never.writer, resolve),
  );
  const waited = performance.now() - started;
  assert.equal(gaveUp, false);
  assert.ok(
    waited >= goAwayNoticeMs * 0.9 && waited < goAwayNoticeMs + 3000,
    `${waited} ms`,
  );
  const rest = await never.all();
  assert.equal(rest.length, never.sent);
  assert.equal(
    rest.every((b) => b === 0x61),
    true,
  );
});

/** A connected TCP pair on 127.0.0.1: the notice is written on `writer`; `bytes()` ends it and resolves with all `reader` got. */
async function socketPair(t: TestContext) {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const { port } = server.address() as net.AddressInfo;
  const reader = net.connect(port, "127.0.0.1");
  t.after(() => reader.destroy());
  const [writer] = (await once(server, "connection")) as [net.Socket];
  t.after(() => writer.destroy());
  const received: Buffer[] = [];
  reader.on("data", (d: Buffer) => received.push(d));
  reader.on("error", () => {});
  const readerClosed = once(reader, "close");
  return {
    writer,
    bytes: async () => {
      writer.end();
      await readerClosed;
      return Buffer.concat(received);
    },
  };
}

/** A stand-in for the write system call that takes what `script` says, in turn (a number, or a function of the time since the first write), and writes that much of the notice for real. */
function scriptedWrite(
  script: (number | ((sinceFirstMs: number) => number))[],
) {
  const offsets: number[] = [];
  let first: number | undefined;
  const write = (fd: number, offset: number): number => {
    offsets.push(offset);
    first ??= performance.now();
    const step = script.length > 1 ? script.shift() : script[0];
    if (step === undefined) assert.fail(`a write at offset ${offset}`);
    const n = typeof step === "number" ? step : step(performance.now() - first);
    if (n > 0) writeSync(fd, shutdownNotice, offset, n);
    return n;
  };
  return { write, offsets };
}

test("a notice the kernel takes in pieces is finished at once, each piece right after the last, before any other byte", {
  timeout: 30_000,
}, async (t) => {
  const pair = await socketPair(t);
  const { write, offsets } = scriptedWrite([
    5,
    0,
    12,
    () => assert.fail("a write after the whole notice"),
  ]);
  const written = await new Promise<boolean>((resolve) =>
    writeNotice(pair.writer, resolve, write),
  );
  assert.equal(written, true);
  assert.deepEqual(offsets, [0, 5, 5]);
  assert.equal(pair.writer.destroyed, false);
  assert.deepEqual(await pair.bytes(), shutdownNotice);
});

test("a peer that takes part of the notice and then nothing is disconnected after about 50 ms: nothing may follow half a frame", {
  timeout: 30_000,
}, async (t) => {
  const pair = await socketPair(t);
  const { write } = scriptedWrite([5, 0]);
  const started = performance.now();
  const written = await new Promise<boolean>((resolve) =>
    writeNotice(pair.writer, resolve, write),
  );
  const waited = performance.now() - started;
  assert.equal(written, false);
  assert.ok(waited >= 40 && waited < goAwayNoticeMs, `${waited} ms`);
  assert.equal(pair.writer.destroyed, true);
  assert.deepEqual(await pair.bytes(), shutdownNotice.subarray(0, 5));
});

test("a full kernel buffer is waited out a few milliseconds at a time, without tearing the connection: 60 ms later the notice goes out whole", {
  timeout: 30_000,
}, async (t) => {
  const pair = await socketPair(t);
  const { write, offsets } = scriptedWrite([
    (sinceFirstMs) => (sinceFirstMs < 60 ? 0 : shutdownNotice.length),
  ]);
  const started = performance.now();
  const written = await new Promise<boolean>((resolve) =>
    writeNotice(pair.writer, resolve, write),
  );
  const waited = performance.now() - started;
  assert.equal(written, true);
  assert.ok(waited >= 55 && waited < goAwayNoticeMs, `${waited} ms`);
  assert.ok(
    offsets.every((o) => o === 0),
    "never a partial write",
  );
  assert.equal(pair.writer.destroyed, false);
  assert.deepEqual(await pair.bytes(), shutdownNotice);
});

test("a connection whose write fails is left to its session (destroyed if half a frame is out), and one without a descriptor (not connected, or destroyed) is given up at once", {
  timeout: 30_000,
}, async (t) => {
  const pair = await socketPair(t);
  let outcome: boolean | undefined;
  writeNotice(pair.writer, (w) => (outcome = w), scriptedWrite([-1]).write);
  assert.equal(outcome, false, "given up before writeNotice returned");
  assert.equal(pair.writer.destroyed, false);

  // Broken halfway through: no use waiting, and half a frame is out.
  const halfway = await socketPair(t);
  const { write, offsets } = scriptedWrite([5, -1]);
  let brokenOutcome: boolean | undefined;
  writeNotice(halfway.writer, (w) => (brokenOutcome = w), write);
  assert.equal(brokenOutcome, false);
  assert.equal(offsets.length, 2, "no write after the failed one");
  assert.equal(halfway.writer.destroyed, true);

  const destroyed = await socketPair(t);
  destroyed.writer.destroy();
  for (const socket of [new net.Socket(), destroyed.writer]) {
    let gaveUp: boolean | undefined;
    writeNotice(socket, (w) => (gaveUp = w), scriptedWrite([]).write);
    assert.equal(gaveUp, false);
  }
});

test("writeSome reports what the kernel took of the notice: all of it, 0 while its buffer is full, the rest from an offset once there is room, -1 on a descriptor that is gone", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "notice-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, "fifo");
  execFileSync("mkfifo", [fifo]);
  // Open for reading and writing, a FIFO opens without a peer, and only this
  // test reads it: once full, it stays full until the test reads.
  const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
  let open = true;
  t.after(() => open && closeSync(fd));
  assert.equal(writeSome(fd, 0), shutdownNotice.length);
  for (const size of [4096, 1]) {
    for (;;) {
      try {
        writeSync(fd, Buffer.alloc(size));
      } catch (e) {
        assert.equal((e as NodeJS.ErrnoException).code, "EAGAIN");
        break;
      }
    }
  }
  assert.equal(writeSome(fd, 0), 0);
  const drained: Buffer[] = [];
  const readAll = () => {
    for (;;) {
      const buffer = Buffer.alloc(65536);
      try {
        const n = readSync(fd, buffer);
        drained.push(buffer.subarray(0, n));
      } catch (e) {
        assert.equal((e as NodeJS.ErrnoException).code, "EAGAIN");
        return;
      }
    }
  };
  readAll();
  assert.equal(writeSome(fd, 5), shutdownNotice.length - 5);
  readAll();
  const all = Buffer.concat(drained);
  assert.deepEqual(all.subarray(0, 17), shutdownNotice);
  assert.deepEqual(all.subarray(all.length - 12), shutdownNotice.subarray(5));
  closeSync(fd);
  open = false;
  assert.equal(writeSome(fd, 0), -1);
});
