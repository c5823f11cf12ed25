import assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import * as net from "node:net";
import { type TestContext, test } from "node:test";
import { Greeter } from "../gen/helloworld_pb.js";
import type { RunningServer } from "../src/server.js";
import { LogCapture } from "./support/log-capture.js";
import { wireRequest } from "./support/parity.js";
import { startTestServer, writesBackedUp } from "./support/server.js";
import { protocols } from "./support/transports.js";
import { until, within } from "./support/wait.js";

/**
 * A server whose CollectGreetings reads nothing until `release()`, then
 * counts the messages (calling `each` after each) and answers "read N": the
 * Greeter reads eagerly, so the stalled handler is the test's own, on the
 * server's listener, adapter and (or not) engine.
 */
async function stalledCollector(
  t: TestContext,
  engine: boolean,
  each?: () => void,
): Promise<{ server: RunningServer; release: () => void }> {
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  const server = await startTestServer(t, {
    engine,
    maxMessageBytes: 4 * 1024 * 1024,
    routes(router) {
      router.service(Greeter, {
        async collectGreetings(reqs) {
          await released;
          let count = 0;
          for await (const _ of reqs) {
            count++;
            each?.();
          }
          return { message: `read ${count}` };
        },
      });
    },
  });
  return { server, release };
}

/** An HTTP/1.1 POST's head, for a raw socket: `headers` as they are, and the body's length. */
function http1Head(
  path: unknown,
  headers: Record<string, unknown>,
  contentLength: number,
): string {
  return [
    `POST ${String(path)} HTTP/1.1`,
    "Host: localhost",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${String(v)}`),
    `Content-Length: ${contentLength}`,
    "",
    "",
  ].join("\r\n");
}

/** HTTP/2's default initial stream window (RFC 9113, 6.9.2), which Node's server keeps. */
const streamWindow = 65_535;

for (const engine of [false, true]) {
  const who = engine ? "the engine" : "connect's handler";
  test(`through ${who}, a client streaming far more than a stalled CollectGreetings reads is held back by HTTP/2 flow control: the server buffers no more than the stream's own buffer and one window, and the writes resume when the handler pulls`, {
    timeout: 60_000,
  }, async (t) => {
    // The Greeter reads eagerly, so the stalled handler is the test's own, on
    // the server's listener, adapter and (or not) fast path.
    let serverStream: http2.ServerHttp2Stream | undefined;
    let maxBuffered = 0;
    const buffered = () => serverStream?.readableLength ?? 0;
    const { server, release } = await stalledCollector(t, engine, () => {
      maxBuffered = Math.max(maxBuffered, buffered());
    });
    server.listener.http2Server.on("session", (session) =>
      session.on("stream", (stream) => {
        serverStream = stream;
      }),
    );

    const session = http2.connect(server.url);
    t.after(() => session.destroy());
    await once(session, "remoteSettings");
    const stream = session.request({
      ":method": "POST",
      ":path": "/Greeter/CollectGreetings",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const trailers = once(stream, "trailers") as Promise<
      [http2.IncomingHttpHeaders]
    >;
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));

    // 2048 messages of 16 KiB: 32 MiB, 500 times the window.
    const messages = 2048;
    const frame = helloFrame("x".repeat(16 * 1024));
    let accepted = 0;
    const writer = (async () => {
      for (let i = 0; i < messages; i++) {
        accepted += frame.length;
        if (!stream.write(frame)) await once(stream, "drain");
      }
      stream.end();
    })();

    // Wait until the client may send nothing more on this stream (the server
    // has not granted any window beyond what it buffers), or has sent far
    // more than any bound below: a server that reads ahead without limit
    // fails at once rather than by the test's timeout.
    await until(
      "the client's window to close",
      () => serverStream?.state.localWindowSize === 0 || accepted > 1024 * 1024,
    );
    // Node acknowledges DATA as it moves into the stream's buffer, which
    // stops taking more at its highWaterMark (16 KiB on Node 20, 64 KiB since
    // Node 22); what the client had in flight then still lands: at most one
    // window. Nothing else may read ahead of the handler.
    const bound = (serverStream?.readableHighWaterMark ?? 0) + streamWindow;
    assert.ok(
      buffered() <= bound,
      `the server buffers ${buffered()} bytes for the call (bound ${bound})`,
    );
    const acceptedWhileStalled = accepted;
    t.diagnostic(
      `stalled: server buffers ${buffered()} B, client had ${acceptedWhileStalled} B of ${messages * frame.length} accepted`,
    );
    // What the client could hand to write(): what the server buffers, plus
    // its own stream buffer (its high-water mark) and the message that
    // filled it.
    assert.ok(
      acceptedWhileStalled <=
        bound + stream.writableHighWaterMark + 2 * frame.length,
      `the client got ${acceptedWhileStalled} bytes accepted`,
    );
    assert.ok(
      acceptedWhileStalled < messages * frame.length,
      "the client was held back before it sent everything",
    );

    release();
    await writer;
    const [headers] = await trailers;
    assert.equal(headers["grpc-status"], "0");
    assert.match(
      Buffer.concat(chunks).toString("latin1"),
      new RegExp(`read ${messages}`),
    );
    assert.equal(server.engine.calls, engine ? 1 : 0);
    t.diagnostic(`while pulling: server buffered at most ${maxBuffered} B`);
    // Pulling one message at a time never let the buffer grow past that bound.
    assert.ok(maxBuffered <= bound, `buffered at most ${maxBuffered}`);
  });
}

/**
 * What an HTTP/1.1 server takes off a connection whose request it does not
 * read: the request's own buffer (its highWaterMark), past which Node's HTTP
 * parser stops the socket, and what one read of the socket had brought in
 * beyond it (libuv reads up to 64 KiB at a time), with the request's head.
 */
const socketRead = 64 * 1024;

for (const protocol of protocols) {
  for (const engine of [false, true]) {
    const who = engine ? "the engine" : "connect's handler";
    test(`through ${who}, a ${protocol} client streaming far more over HTTP/1.1 than a stalled CollectGreetings reads is held back by TCP flow control: the server takes no more than the request's buffer and one socket read, and the writes resume when the handler pulls`, {
      timeout: 60_000,
    }, async (t) => {
      const { server, release } = await stalledCollector(t, engine);
      let serverReq: import("node:http").IncomingMessage | undefined;
      server.listener.http1Server?.on("request", (req) => {
        serverReq = req;
      });
      const request = wireRequest(
        { method: "CollectGreetings" },
        { protocol, json: false, http: "1.1" },
      );
      assert.ok(request);
      const { ":path": path, ...headers } = request.headers;
      // 4096 messages of 16 KiB: 64 MiB, more than the kernel's socket
      // buffers on both sides hold (tcp_rmem's and tcp_wmem's maximum here:
      // 32 and 4 MiB).
      const messages = 4096;
      const frame = helloFrame("x".repeat(16 * 1024));
      const { port } = new URL(server.url);
      const socket = net.connect(Number(port), "127.0.0.1");
      t.after(() => socket.destroy());
      await once(socket, "connect");
      let answer = "";
      socket.setEncoding("latin1").on("data", (d: string) => {
        answer += d;
      });
      socket.write(http1Head(path, headers, messages * frame.length));
      let accepted = 0;
      let waiting = false;
      let done = false;
      const writer = (async () => {
        for (let i = 0; i < messages; i++) {
          accepted += frame.length;
          if (!socket.write(frame)) {
            waiting = true;
            await once(socket, "drain");
            waiting = false;
          }
        }
        done = true;
      })();
      // Until the server has stopped reading (the request's buffer is full)
      // and the client waits to write; or the server has taken far more
      // than the bound below, or the client got everything out: a server
      // that reads ahead fails at once, not by the test's timeout.
      await until("the client to be held back", () => {
        const req = serverReq;
        if (req === undefined) return false;
        const full = req.readableLength >= req.readableHighWaterMark;
        return (
          (full && (waiting || done)) || req.socket.bytesRead > 1024 * 1024
        );
      });
      const req = serverReq as import("node:http").IncomingMessage;
      const bound = req.readableHighWaterMark + socketRead + 1024;
      const taken = req.socket.bytesRead;
      t.diagnostic(
        `stalled: the server took ${taken} B, the client had ${accepted} B of ${messages * frame.length} accepted`,
      );
      assert.ok(
        taken <= bound,
        `the server took ${taken} bytes (bound ${bound})`,
      );
      assert.equal(
        done,
        false,
        "the client was held back before it sent everything",
      );
      release();
      await writer;
      await until(
        "the answer",
        () => /\r\n0\r\n/.test(answer) || /read \d+/.test(answer),
      );
      assert.match(answer, new RegExp(`read ${messages}`));
      assert.equal(server.engine.calls, engine ? 1 : 0);
    });
  }
}

/** A gRPC-framed HelloRequest with a name of any length (protobuf field 1, varint length). */
function helloFrame(name: string): Buffer {
  const bytes = Buffer.from(name);
  const length: number[] = [];
  for (let n = bytes.length; ; n >>>= 7) {
    if (n < 0x80) {
      length.push(n);
      break;
    }
    length.push((n & 0x7f) | 0x80);
  }
  const payload = Buffer.concat([Buffer.from([0x0a, ...length]), bytes]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

for (const engine of [false, true]) {
  const who = engine ? "the engine" : "connect's handler";
  test(`through ${who}, a client that stops reading a server stream holds the handler back: it produces about a window's worth, waits, and goes on when the client reads`, {
    timeout: 60_000,
  }, async (t) => {
    const messages = 2048;
    const reply = "y".repeat(16 * 1024);
    let produced = 0;
    // Listeners on the server's stream, at most, as the handler goes on: a
    // wait for the stream to drain must not leave one behind each time.
    let closeListeners = 0;
    let serverStream: http2.ServerHttp2Stream | undefined;
    const server = await startTestServer(t, {
      engine,
      routes(router) {
        router.service(Greeter, {
          async *streamHello() {
            for (let i = 0; i < messages; i++) {
              produced++;
              closeListeners = Math.max(
                closeListeners,
                serverStream?.listenerCount("close") ?? 0,
              );
              yield { message: reply };
            }
          },
        });
      },
    });
    server.listener.http2Server.on("session", (session) =>
      session.on("stream", (stream) => {
        serverStream = stream;
      }),
    );
    const session = http2.connect(server.url);
    t.after(() => session.destroy());
    const stream = session.request({
      ":method": "POST",
      ":path": "/Greeter/StreamHello",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.end(helloFrame("Alice"));
    // The client reads nothing yet: once the server's writes back up, the
    // handler must be waiting, not producing the rest into memory.
    // A handler that is not held back fails at once, not by the test's timeout.
    await until(
      "the server's writes to back up",
      () => serverStream?.writableNeedDrain === true || produced > 64,
    );
    const producedWhileStalled = produced;
    t.diagnostic(`stalled after ${producedWhileStalled} of ${messages}`);
    assert.ok(
      producedWhileStalled <= 64,
      `the handler produced ${producedWhileStalled} messages of 16 KiB`,
    );

    const trailers = once(stream, "trailers") as Promise<
      [http2.IncomingHttpHeaders]
    >;
    let bytes = 0;
    stream.on("data", (c: Buffer) => {
      bytes += c.length;
    });
    const [headers] = await trailers;
    assert.equal(headers["grpc-status"], "0");
    assert.equal(produced, messages);
    assert.ok(bytes > messages * reply.length, `received ${bytes} bytes`);
    t.diagnostic(`at most ${closeListeners} close listeners`);
    assert.ok(closeListeners <= 8, `${closeListeners} close listeners`);
    assert.equal(server.engine.calls, engine ? 1 : 0);
  });
}

for (const protocol of protocols) {
  for (const http of ["HTTP/1.1", "HTTP/2"] as const) {
    for (const engine of [true, false]) {
      test(`a ${protocol} server stream over ${http} whose client stops reading and then leaves ends its call, through ${engine ? "the engine" : "connect's handler"}: the handler is stopped, nothing is left in flight, and the call is logged canceled`, {
        timeout: 60_000,
      }, async (t) => {
        const { promise: handlerStopped, resolve: stopped } =
          Promise.withResolvers<void>();
        const log = new LogCapture();
        const server = await startTestServer(t, {
          engine,
          logDestination: log.destination,
          logLevel: "info",
          routes(router) {
            router.service(Greeter, {
              async *streamHello() {
                try {
                  for (;;) yield { message: "x".repeat(16 * 1024) };
                } finally {
                  stopped();
                }
              },
            });
          },
        });
        const request = wireRequest(
          { method: "StreamHello", messages: ["a"] },
          { protocol, json: false, http: http === "HTTP/2" ? "2" : "1.1" },
        );
        assert.ok(request);
        const { ":path": path, ...headers } = request.headers;
        const body = Buffer.concat(request.body ?? []);
        let leave: () => void;
        if (http === "HTTP/1.1") {
          const { port } = new URL(server.url);
          const socket = net.connect(Number(port), "127.0.0.1");
          t.after(() => socket.destroy());
          await once(socket, "connect");
          socket.write(http1Head(path, headers, body.length));
          socket.write(body);
          socket.pause();
          leave = () => socket.destroy();
        } else {
          const session = http2.connect(server.url);
          t.after(() => session.destroy());
          const stream = session.request({
            ":method": "POST",
            ...request.headers,
          });
          stream.on("error", () => {});
          stream.end(body);
          stream.pause();
          leave = () => stream.close(http2.constants.NGHTTP2_CANCEL);
        }
        // The client reads nothing: the server's writes back up, and the
        // handler waits to be asked for its next message.
        await until("the server's writes to back up", () =>
          writesBackedUp(server),
        );
        assert.equal(server.inflight.count, 1);
        leave();
        await within(handlerStopped, 5_000, "the handler's stop");
        await until(
          "no call in flight",
          () => server.inflight.count === 0,
          5_000,
        );
        const line = await log.waitFor(
          (l) =>
            l.msg === "finished call" && l.procedure === "/Greeter/StreamHello",
        );
        assert.equal(line.code, "canceled");
        assert.equal(line.protocol, protocol);
        assert.equal(server.engine.calls, engine ? 1 : 0, "who served it");
      });
    }
  }
}
