import assert from "node:assert/strict";
import { once } from "node:events";
import type * as http from "node:http";
import * as http2 from "node:http2";
import * as https from "node:https";
import * as net from "node:net";
import { type TestContext, test } from "node:test";
import * as tls from "node:tls";
import {
  createListener,
  type Listener,
  type ListenerOptions,
  type RequestHandler,
} from "../src/transport/listener.js";
import { selfSignedCert } from "./support/tls.js";
import { assertTook, until, within } from "./support/wait.js";

// The one-port listener (src/transport/listener.ts) on its own, with a plain
// request handler: which server a connection reaches, what it tracks for
// shutdown, and its time limits. test/limits.test.ts and
// test/protocols.test.ts test the same through the whole server.

/** How late a time limit may act on a loaded 2-core machine; far below any default. */
const slackMs = 2_000;

/** The HTTP/2 connection preface (RFC 9113, 3.4). */
const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** An empty SETTINGS frame: length 0, type 4, no flags, stream 0. */
const emptySettings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

/** Answers "h1" or "h2" with the HTTP version, after `hold` resolves when the path is /hold. */
function versionHandler(hold?: Promise<void>): RequestHandler {
  return ((req: http.IncomingMessage, res: http.ServerResponse) => {
    const answer = () => res.end(`h${req.httpVersionMajor}`);
    if (req.url === "/hold" && hold) void hold.then(answer);
    else answer();
  }) as RequestHandler;
}

async function listen(
  t: TestContext,
  options: ListenerOptions = {},
  handler: RequestHandler = versionHandler(),
): Promise<{ listener: Listener; port: number }> {
  const listener = createListener(handler, options);
  await new Promise<void>((resolve) =>
    listener.server.listen(0, "127.0.0.1", resolve),
  );
  t.after(
    () =>
      new Promise<void>((resolve) => {
        listener.server.close(() => resolve());
        for (const s of listener.sockets) s.destroy();
      }),
  );
  return {
    listener,
    port: (listener.server.address() as net.AddressInfo).port,
  };
}

/** A raw TCP connection: what it received, and when it closed (ms after opening). */
function raw(port: number): {
  socket: net.Socket;
  received: () => Buffer;
  closed: Promise<number>;
} {
  const socket = net.connect(port, "127.0.0.1");
  const opened = performance.now();
  const chunks: Buffer[] = [];
  socket.on("data", (d: Buffer) => chunks.push(d));
  socket.on("error", () => {});
  const closed = new Promise<number>((resolve) =>
    socket.once("close", () => resolve(performance.now() - opened)),
  );
  return { socket, received: () => Buffer.concat(chunks), closed };
}

/** The server-side socket of the listener's only connection. */
function serverSocket(listener: Listener): net.Socket {
  const [socket] = listener.sockets;
  assert.ok(socket);
  return socket;
}

test("a cleartext connection whose preface arrives in pieces still reaches the HTTP/2 server", async (t) => {
  const { listener, port } = await listen(t);
  const client = raw(port);
  await once(client.socket, "connect");
  // Half the preface, and the server has read it: it must wait for more.
  client.socket.write(preface.subarray(0, 10));
  await until(
    "the server to read 10 bytes",
    () => serverSocket(listener).bytesRead === 10,
  );
  client.socket.write(preface.subarray(10, 20));
  await until(
    "the server to read 20 bytes",
    () => serverSocket(listener).bytesRead === 20,
  );
  assert.equal(
    listener.sessions.size,
    0,
    "no HTTP/2 session before the whole preface",
  );
  client.socket.write(Buffer.concat([preface.subarray(20), emptySettings]));
  // An HTTP/2 server's first frame is its SETTINGS (type 4 at byte 3).
  await until("the server's SETTINGS", () => client.received().length >= 9);
  assert.equal(client.received()[3], 4);
  await until("the session", () => listener.sessions.size === 1);
  client.socket.destroy();
});

test("a connection whose first bytes leave the preface, even late, is HTTP/1.1", async (t) => {
  const { port } = await listen(t);
  for (const request of [
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    // The preface's first line with HTTP/1.1's version: not HTTP/2.
    "PRI * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  ]) {
    const client = raw(port);
    client.socket.write(request);
    await client.closed;
    const answer = client.received().toString("latin1");
    if (request.startsWith("GET"))
      assert.match(answer, /^HTTP\/1\.1 200 [\s\S]*\r\n\r\nh1$/);
    else assert.match(answer, /^HTTP\/1\.1 400 /);
  }
});

test("a connection that ends or fails before its first bytes is closed and forgotten", async (t) => {
  const { listener, port } = await listen(t);
  const ended = raw(port);
  await once(ended.socket, "connect");
  await until(
    "the connection to be tracked",
    () => listener.sockets.size === 1,
  );
  ended.socket.end();
  await ended.closed;
  await until(
    "the connection to be forgotten",
    () => listener.sockets.size === 0,
  );
  const reset = raw(port);
  await once(reset.socket, "connect");
  await until(
    "the connection to be tracked",
    () => listener.sockets.size === 1,
  );
  reset.socket.resetAndDestroy();
  await until(
    "the connection to be forgotten",
    () => listener.sockets.size === 0,
  );
  assert.equal(ended.received().length, 0);
});

test("without firstBytesTimeoutMs a connection may take 10 s to send its first bytes", async (t) => {
  const { listener, port } = await listen(t);
  const client = raw(port);
  await once(client.socket, "connect");
  await until("the connection", () => listener.sockets.size === 1);
  assert.equal(serverSocket(listener).timeout, 10_000);
  client.socket.destroy();
});

test("a TLS handshake that stalls is cut off after firstBytesTimeoutMs", async (t) => {
  const { port } = await listen(t, {
    tls: selfSignedCert(),
    firstBytesTimeoutMs: 300,
  });
  // A TCP connection that never starts its handshake.
  const client = raw(port);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), 300 + slackMs);
  });
  const closed = await Promise.race([client.closed, late]);
  clearTimeout(timer);
  if (closed === "late") assert.fail("still open");
  assertTook(closed, 300, 300 + slackMs, "closing it");
});

test("under TLS, ALPN picks HTTP/2 or HTTP/1.1, and the HTTP/1.1 side honours the keep-alive setting", async (t) => {
  const cert = selfSignedCert();
  const { listener, port } = await listen(t, {
    tls: cert,
    http1: { keepAliveTimeout: 300 },
  });
  for (const [alpn, expected] of [
    ["h2", "h2"],
    ["http/1.1", "http/1.1"],
  ] as const) {
    const socket = tls.connect({
      host: "127.0.0.1",
      port,
      ca: cert.cert,
      servername: "localhost",
      ALPNProtocols: [alpn],
    });
    socket.on("error", () => {});
    await once(socket, "secureConnect");
    assert.equal(socket.alpnProtocol, expected);
    socket.destroy();
  }
  const server = listener.http2Server as unknown as {
    keepAliveTimeout: number;
  };
  assert.equal(server.keepAliveTimeout, 300);
  const h1 = tls.connect({
    host: "127.0.0.1",
    port,
    ca: cert.cert,
    servername: "localhost",
    ALPNProtocols: ["http/1.1"],
  });
  h1.on("error", () => {});
  await once(h1, "secureConnect");
  const opened = performance.now();
  h1.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  let answer = "";
  h1.setEncoding("latin1").on("data", (d: string) => {
    answer += d;
  });
  await once(h1, "close");
  const idle = performance.now() - opened;
  assert.match(answer, /^HTTP\/1\.1 200 [\s\S]*h1$/);
  const buffer =
    (listener.http2Server as unknown as { keepAliveTimeoutBuffer?: number })
      .keepAliveTimeoutBuffer ?? 0;
  assertTook(idle, 300, 300 + buffer + slackMs, "closing the idle connection");
});

test("every response in progress is tracked until it is sent, on HTTP/1.1 and HTTP/2", async (t) => {
  let release!: () => void;
  const hold = new Promise<void>((resolve) => {
    release = resolve;
  });
  const { listener, port } = await listen(t, {}, versionHandler(hold));
  const url = `http://127.0.0.1:${port}`;
  const h1 = fetch(`${url}/hold`).then((r) => r.text());
  const session = http2.connect(url);
  t.after(() => session.destroy());
  const h2stream = session.request({ ":path": "/hold" });
  h2stream.setEncoding("latin1");
  let h2body = "";
  h2stream.on("data", (d: string) => {
    h2body += d;
  });
  const h2done = once(h2stream, "end");
  await until("both responses", () => listener.responses.size === 2);
  assert.equal(listener.sessions.size, 1);
  release();
  assert.equal(await h1, "h1");
  await h2done;
  assert.equal(h2body, "h2");
  await until("no response left", () => listener.responses.size === 0);
});

test("under TLS, connections, sessions, responses in progress and claimed streams are tracked as in cleartext, and forgotten once closed", async (t) => {
  const cert = selfSignedCert();
  let release!: () => void;
  const hold = new Promise<void>((resolve) => {
    release = resolve;
  });
  let claimed: http2.ServerHttp2Stream | undefined;
  const { listener, port } = await listen(
    t,
    {
      tls: cert,
      claimStream: (stream, headers) => {
        if (headers[":path"] !== "/mine") return false;
        claimed = stream;
        return true;
      },
    },
    versionHandler(hold),
  );
  const session = http2.connect(`https://127.0.0.1:${port}`, {
    ca: cert.cert,
    servername: "localhost",
  });
  session.on("error", () => {});
  t.after(() => session.destroy());
  const h2hold = session.request({ ":path": "/hold" });
  h2hold.setEncoding("latin1");
  let h2body = "";
  h2hold.on("data", (d: string) => {
    h2body += d;
  });
  const mine = session.request({ ":path": "/mine" });
  mine.on("error", () => {});
  const agent = new https.Agent({ keepAlive: false });
  t.after(() => agent.destroy());
  const h1 = new Promise<string>((resolve, reject) => {
    https
      .get(
        {
          host: "127.0.0.1",
          port,
          path: "/hold",
          ca: cert.cert,
          servername: "localhost",
          agent,
        },
        (res) => {
          let body = "";
          res.setEncoding("latin1").on("data", (d: string) => {
            body += d;
          });
          res.on("end", () => resolve(body));
        },
      )
      .on("error", reject);
  });
  await until(
    "two responses in progress and one claimed stream",
    () => listener.responses.size === 3 && claimed !== undefined,
  );
  assert.equal(listener.sockets.size, 2);
  assert.equal(listener.sessions.size, 1);
  release();
  assert.equal(await h1, "h1");
  await once(h2hold, "end");
  assert.equal(h2body, "h2");
  (claimed as http2.ServerHttp2Stream).respond({ ":status": 204 });
  (claimed as http2.ServerHttp2Stream).end();
  mine.resume();
  await once(mine, "close");
  await until("no response left", () => listener.responses.size === 0);
  session.close();
  await until(
    "the connections and the session to be forgotten",
    () => listener.sessions.size === 0 && listener.sockets.size === 0,
  );
});

test("a stream the claim takes never reaches the request handler and is tracked until it closes; the others go on as before", async (t) => {
  const seen: string[] = [];
  let claimed: http2.ServerHttp2Stream | undefined;
  const { listener, port } = await listen(
    t,
    {
      claimStream: (stream, headers) => {
        if (headers[":path"] !== "/mine") return false;
        claimed = stream;
        return true;
      },
    },
    ((req: http.IncomingMessage, res: http.ServerResponse) => {
      seen.push(String(req.url));
      res.end("handler");
    }) as RequestHandler,
  );
  const session = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => session.destroy());
  const mine = session.request({ ":path": "/mine" });
  mine.on("error", () => {});
  await until("the claim", () => claimed !== undefined);
  assert.equal(listener.responses.size, 1);
  const other = session.request({ ":path": "/other" });
  other.setEncoding("latin1");
  let body = "";
  other.on("data", (d: string) => {
    body += d;
  });
  await once(other, "end");
  assert.equal(body, "handler");
  (claimed as http2.ServerHttp2Stream).respond({ ":status": 204 });
  (claimed as http2.ServerHttp2Stream).end();
  mine.resume();
  await once(mine, "close");
  await until(
    "the claimed stream to be forgotten",
    () => listener.responses.size === 0,
  );
  assert.deepEqual(seen, ["/other"]);
});

test("an HTTP/2 connection is closed once no stream has been open for idleTimeoutMs, and not while one is", async (t) => {
  let release!: () => void;
  const hold = new Promise<void>((resolve) => {
    release = resolve;
  });
  const { listener, port } = await listen(
    t,
    { idleTimeoutMs: 300 },
    versionHandler(hold),
  );
  const session = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => session.destroy());
  session.on("error", () => {});
  await once(session, "remoteSettings");
  // Two calls the handler holds: ending one leaves the other, and the
  // connection, open.
  const first = session.request({ ":path": "/hold" });
  const second = session.request({ ":path": "/hold" });
  first.on("error", () => {});
  second.resume();
  await until("both calls", () => listener.responses.size === 2);
  first.close(http2.constants.NGHTTP2_CANCEL);
  await until("the first call's end", () => listener.responses.size === 1);
  let goawayAt = 0;
  const goaway = once(session, "goaway").then(() => {
    goawayAt = performance.now();
  });
  // A connection opened now with no stream gets its GOAWAY after the idle
  // time: by then the busy one would have had its own, had it been armed.
  const witness = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => witness.destroy());
  witness.on("error", () => {});
  await within(
    once(witness, "goaway"),
    300 + slackMs,
    "the idle connection's GOAWAY",
  );
  assert.equal(goawayAt, 0, "GOAWAY while a call was open");
  // Before the last call ends, so before the server arms its timer.
  const releasedAt = performance.now();
  release();
  await within(goaway, 300 + slackMs, "the GOAWAY after the last call");
  const idleFor = goawayAt - releasedAt;
  assertTook(idleFor, 300, 300 + slackMs, "the GOAWAY after the last call");
});

test("an HTTP/1.1 client that half-closes its connection after its request still gets the whole answer, even one its socket cannot take at once", async (t) => {
  // More than a loopback socket's buffers hold: most of it is still queued
  // in the process when the FIN is read.
  const size = 16 * 1024 * 1024;
  const { port } = await listen(t, {}, ((
    _req: http.IncomingMessage,
    res: http.ServerResponse,
  ) => res.end(Buffer.alloc(size, 0x61))) as RequestHandler);
  const c = raw(port);
  await once(c.socket, "connect");
  // FIN right after the request: once the sniffer has handed the
  // connection on, the end is the HTTP server's to handle, which sends
  // what it queued before it closes.
  c.socket.end("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  await within(c.closed, 10_000, "the connection's close");
  const answer = c.received();
  const bodyAt = answer.indexOf("\r\n\r\n") + 4;
  assert.match(
    answer.subarray(0, bodyAt).toString("latin1"),
    /^HTTP\/1\.1 200 /,
  );
  assert.equal(answer.length - bodyAt, size);
});

test("with idleTimeoutMs 0 an HTTP/2 connection is never closed for being idle: one stream after another, all on it", async (t) => {
  const { listener, port } = await listen(t, { idleTimeoutMs: 0 });
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  t.after(() => session.destroy());
  let goaway = false;
  session.on("goaway", () => {
    goaway = true;
  });
  // Each stream closes before the next opens: a connection closed when
  // idle would get its GOAWAY between two of them.
  for (let i = 0; i < 20; i++) {
    const stream = session.request({ ":path": "/" });
    stream.resume();
    await once(stream, "close");
    assert.equal(stream.rstCode, http2.constants.NGHTTP2_NO_ERROR);
  }
  assert.equal(goaway, false);
  assert.equal(listener.sessions.size, 1);
});

test("a response whose client left before it was sent is forgotten, as a sent one is, on HTTP/1.1 and HTTP/2", async (t) => {
  const hold = new Promise<void>(() => {});
  const { listener, port } = await listen(t, {}, versionHandler(hold));
  const h1 = raw(port);
  h1.socket.write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  const stream = session.request({ ":path": "/hold" });
  stream.on("error", () => {});
  await until("the responses in progress", () => listener.responses.size === 2);
  h1.socket.destroy();
  session.destroy();
  await until(
    "the unsent responses to be forgotten",
    () => listener.responses.size === 0,
    5_000,
  );
});
