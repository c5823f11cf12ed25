import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { h2load } from "../bench/h2load.js";
import { grpcFrame, requestBytes } from "../bench/wire.js";
import { Greeter } from "../gen/helloworld_pb.js";
import type { RunningServer, ServerOptions } from "../src/server.js";
import { mainWithTsx, startChild } from "./support/child.js";
import { LogCapture, type LogLine } from "./support/log-capture.js";
import { startTestServer } from "./support/server.js";

/** A real server whose log lines the test reads. */
async function loggingServer(
  t: TestContext,
  options: Omit<ServerOptions, "logDestination">,
): Promise<{ log: LogCapture; server: RunningServer }> {
  const log = new LogCapture();
  const server = await startTestServer(t, {
    logDestination: log.destination,
    ...options,
  });
  return { log, server };
}

/** Every peer the server has a socket from, as address:port. */
function peersOf(server: RunningServer): string[] {
  return [...server.listener.sockets].map(
    (s) => `${s.remoteAddress}:${s.remotePort}`,
  );
}

function assertCallLine(
  line: LogLine,
  expected: Record<string, unknown>,
  server: RunningServer,
): void {
  assert.equal(line.level, 30, "an ok call logs at info");
  for (const [key, value] of Object.entries(expected)) {
    assert.deepEqual(
      line[key],
      value,
      `field ${key} of ${JSON.stringify(line)}`,
    );
  }
  assert.equal(typeof line.durationMs, "number");
  assert.ok((line.durationMs as number) >= 0);
  assert.ok(
    peersOf(server).includes(line.peer as string),
    `peer ${String(line.peer)} is one of the server's sockets ${peersOf(server).join(", ")}`,
  );
}

test("a Connect unary call over HTTP/1.1 logs one line with procedure, protocol, HTTP version, code, duration and peer", async (t) => {
  const { log, server } = await loggingServer(t, {
    logLevel: "info",
  });
  const client = createClient(
    Greeter,
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  );
  await client.sayHello({ name: "Ada" });
  const line = await log.waitFor((l) => l.msg === "finished call");
  assertCallLine(
    line,
    {
      procedure: "/Greeter/SayHello",
      protocol: "connect",
      httpVersion: "1.1",
      code: "ok",
    },
    server,
  );
  assert.equal("sent" in line, false, "a unary call has no message counts");
  assert.equal(log.calls().length, 1);
});

test("a gRPC server stream over HTTP/2 logs one line at its end, with the messages each way", async (t) => {
  const { log, server } = await loggingServer(t, {
    logLevel: "info",
  });
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  const replies: string[] = [];
  for await (const r of client.streamHello({ name: "Ada" })) {
    replies.push(r.message);
  }
  assert.equal(replies.length, 5);
  const line = await log.waitFor((l) => l.msg === "finished call");
  assertCallLine(
    line,
    {
      procedure: "/Greeter/StreamHello",
      protocol: "grpc",
      httpVersion: "2.0",
      code: "ok",
      received: 1,
      sent: 5,
    },
    server,
  );
  assert.equal(log.calls().length, 1, "one line per call, none per message");
});

test("a Connect client stream over HTTP/2 and a gRPC-Web unary call over HTTP/1.1 each log their protocol and version", async (t) => {
  const { log, server } = await loggingServer(t, {
    logLevel: "info",
  });
  const connect = createClient(
    Greeter,
    createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
  );
  async function* names() {
    yield { name: "Ada" };
    yield { name: "Grace" };
    yield { name: "Edsger" };
  }
  await connect.collectGreetings(names());
  const grpcWeb = createClient(
    Greeter,
    createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  );
  await grpcWeb.sayHello({ name: "Ada" });
  const collect = await log.waitFor(
    (l) => l.procedure === "/Greeter/CollectGreetings",
  );
  assertCallLine(
    collect,
    {
      protocol: "connect",
      httpVersion: "2.0",
      code: "ok",
      received: 3,
      sent: 1,
    },
    server,
  );
  const hello = await log.waitFor((l) => l.procedure === "/Greeter/SayHello");
  assertCallLine(
    hello,
    { protocol: "grpc-web", httpVersion: "1.1", code: "ok" },
    server,
  );
  assert.equal(log.calls().length, 2);
});

test("a call that fails with INVALID_ARGUMENT logs its code and message", async (t) => {
  const { log, server } = await loggingServer(t, {
    logLevel: "info",
  });
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  await assert.rejects(client.sayHello({ name: "" }), (e) => {
    assert.equal(ConnectError.from(e).code, Code.InvalidArgument);
    return true;
  });
  const line = await log.waitFor((l) => l.msg === "finished call");
  assert.equal(line.code, "invalid_argument");
  assert.equal(line.error, "name is required");
  assert.equal(line.protocol, "grpc");
});

test("at info, a bidi Chat of three messages logs one line and none per message", async (t) => {
  const { log, server } = await loggingServer(t, {
    logLevel: "info",
  });
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  async function* names() {
    yield { name: "a" };
    yield { name: "b" };
    yield { name: "c" };
  }
  let replies = 0;
  for await (const _ of client.chat(names())) replies++;
  assert.equal(replies, 3);
  const line = await log.waitFor((l) => l.msg === "finished call");
  assert.equal(line.received, 3);
  assert.equal(line.sent, 3);
  assert.deepEqual(
    log.lines.map((l) => l.msg),
    ["finished call"],
    "nothing but the one line",
  );
});

test("at debug, every message of a call is logged too, without its content", async (t) => {
  const { log, server } = await loggingServer(t, {
    logLevel: "debug",
  });
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  async function* names() {
    yield { name: "secret-a" };
    yield { name: "secret-b" };
  }
  for await (const _ of client.chat(names()));
  await log.waitFor((l) => l.msg === "finished call");
  const perMessage = log.lines.filter((l) => l.level === 20);
  assert.equal(
    perMessage.filter((l) => l.msg === "received message").length,
    2,
  );
  assert.equal(perMessage.filter((l) => l.msg === "sent message").length, 2);
  assert.equal(JSON.stringify(log.lines).includes("secret"), false);
});

test("LOG_LEVEL=warn suppresses the lines of successful and client-error calls, not of a missed deadline", async (t) => {
  const { log, server } = await loggingServer(t, {
    logLevel: "warn",
    streamIntervalMs: 60_000,
  });
  const client = createClient(
    Greeter,
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  );
  await client.sayHello({ name: "Ada" });
  await assert.rejects(client.sayHello({ name: "" }));
  // A call's line is written before its response is sent, so by now any
  // line of those two would be there.
  assert.deepEqual(log.lines, []);
  await assert.rejects(
    async () => {
      // The deadline goes in the header only: a client that also timed out
      // itself could close the call first, and the server would log a cancel.
      for await (const _ of client.streamHello(
        { name: "Ada" },
        { headers: { "connect-timeout-ms": "200" } },
      ));
    },
    (e) => ConnectError.from(e).code === Code.DeadlineExceeded,
  );
  const line = await log.waitFor((l) => l.msg === "finished call");
  assert.equal(line.level, 40);
  assert.equal(line.code, "deadline_exceeded");
  assert.equal(log.lines.length, 1);
});

test("a handler that returns after its client went away is logged as canceled, not ok", async (t) => {
  const log = new LogCapture();
  const { promise: started, resolve: handlerStarted } =
    Promise.withResolvers<void>();
  const server = await startTestServer(t, {
    logDestination: log.destination,
    logLevel: "info",
    routes: (router) =>
      router.service(Greeter, {
        async sayHello(_req, ctx) {
          handlerStarted();
          await new Promise((resolve) =>
            ctx.signal.addEventListener("abort", resolve, { once: true }),
          );
          return { message: "too late" };
        },
      }),
  });
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  const abort = new AbortController();
  const call = client.sayHello({ name: "Ada" }, { signal: abort.signal });
  await started;
  abort.abort();
  await assert.rejects(call);
  await server.inflight.whenIdle();
  const line = await log.waitFor((l) => l.msg === "finished call");
  assert.equal(line.code, "canceled");
});

for (const level of ["info", "warn"]) {
  test(`at LOG_LEVEL=${level}, npm start logs a JSON ready line that names the URL, and JSON lines when stopped by SIGTERM`, async (t) => {
    const child = startChild(
      t,
      process.execPath,
      mainWithTsx("--port", "0", "--host", "127.0.0.1"),
      { env: { ...process.env, LOG_LEVEL: level, ADMIN_PORT: "0" } },
    );
    const ready = JSON.parse(await child.nextLine()) as LogLine;
    const url = /listening on (\S+)/.exec(ready.msg)?.[1];
    assert.ok(url, `the ready line names the URL: ${JSON.stringify(ready)}`);
    assert.match(
      ready.msg,
      /^connect-greeter listening on http:\/\/127\.0\.0\.1:\d+ \(gRPC, gRPC-Web and Connect over HTTP\/2 \(h2c\) and HTTP\/1\.1\)$/,
    );
    assert.equal(ready.level, 30);
    assert.equal(ready.url, url);
    assert.equal(ready.port, Number(new URL(url).port));
    assert.deepEqual(ready.protocols, ["grpc", "grpc-web", "connect"]);
    assert.equal(ready.pid, child.process.pid);
    child.process.kill("SIGTERM");
    const exit = await child.exited;
    assert.deepEqual(
      child.lines.items
        .slice(1)
        .map((l) => JSON.parse(l) as LogLine)
        .map((l) => [l.msg, l.signal]),
      [
        ["shutting down", "SIGTERM"],
        ["stopped", undefined],
      ],
    );
    assert.equal(exit.code, 0, exit.stderr);
  });
}

test("when stdout stops taking log lines, the server queues them up to its limit, then drops them with one note on stderr, and keeps serving", {
  timeout: 120_000,
}, async (t) => {
  const child = startChild(
    t,
    process.execPath,
    mainWithTsx("--port", "0", "--host", "127.0.0.1"),
    { env: { ...process.env, ADMIN_PORT: "0" } },
  );
  // Read the ready line, then nothing more: stdout's pipe fills and stays full.
  const ready = await child.nextLine();
  child.process.stdout?.pause();
  const url = (JSON.parse(ready) as { url: string }).url;

  // 100,000 calls log ~21 MB (~210 bytes a line), more than maxQueuedLogBytes (16 MiB).
  const run = await h2load({
    url,
    path: "/Greeter/SayHello",
    headers: { "content-type": "application/grpc", te: "trailers" },
    body: grpcFrame(requestBytes("Alice")),
    connections: 4,
    streams: 32,
    requests: 100_000,
    cpus: undefined,
  });
  assert.equal(run.succeeded, 100_000);
  assert.equal(run.failed + run.errored, 0);
  const stderr = child.stderr();
  assert.match(
    stderr,
    /stdout is not keeping up with the log; dropping lines beyond 16777216 queued bytes\n/,
  );
  assert.equal(stderr.match(/not keeping up/g)?.length, 1, "said once");
  const client = createClient(Greeter, createGrpcTransport({ baseUrl: url }));
  assert.equal((await client.sayHello({ name: "A" })).message, "Hello, A!");
});
