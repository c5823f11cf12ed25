import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createClient,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { Greeter } from "../gen/helloworld_pb.js";
import { LogCapture } from "./support/log-capture.js";
import { startTestServer } from "./support/server.js";

/** Something no client should ever read: a path on the server. */
const secretPath = "/srv/connect-greeter/secrets/db.sqlite";

/** A Greeter whose handlers fail the ways real code does. */
function failingGreeter(router: ConnectRouter): void {
  router.service(Greeter, {
    sayHello() {
      throw new Error(`cannot open ${secretPath}: EACCES`);
    },
    async *streamHello() {
      yield { message: "first" };
      throw new Error(`lost ${secretPath} mid-stream`);
    },
    collectGreetings() {
      throw new ConnectError("no greetings today", Code.FailedPrecondition);
    },
    async *chat(reqs) {
      for await (const _ of reqs) {
        const missing = undefined as unknown as { name: string };
        yield { message: missing.name };
      }
    },
  });
}

async function startFailing(t: TestContext) {
  const log = new LogCapture();
  const server = await startTestServer(t, {
    routes: failingGreeter,
    logDestination: log.destination,
    logLevel: "info",
  });
  return { server, log };
}

const transports: [string, (url: string) => Transport][] = [
  ["gRPC", (baseUrl) => createGrpcTransport({ baseUrl })],
  [
    "Connect over HTTP/1.1",
    (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  ],
  [
    "gRPC-Web over HTTP/2",
    (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
  ],
];

function assertGenericInternal(e: unknown): true {
  assert.ok(e instanceof ConnectError, String(e));
  assert.equal(e.code, Code.Internal);
  assert.equal(e.rawMessage, "internal error");
  assert.deepEqual(e.details, []);
  const everything = `${e.message} ${JSON.stringify([...e.metadata])}`;
  assert.equal(everything.includes("/srv"), false, everything);
  assert.equal(everything.includes("at "), false, "no stack frames");
  return true;
}

for (const [name, transport] of transports) {
  test(`a plain Error thrown by a unary handler reaches a ${name} client as internal with a generic message`, async (t) => {
    const { server, log } = await startFailing(t);
    const client = createClient(Greeter, transport(server.url));
    await assert.rejects(
      client.sayHello({ name: "Ada" }),
      assertGenericInternal,
    );
    const logged = await log.waitFor((l) => l.msg === "handler failed");
    assert.equal(logged.level, 50, "at error level");
    assert.equal(logged.procedure, "/Greeter/SayHello");
    const err = logged.err as { message: string; stack: string };
    assert.equal(err.message, `cannot open ${secretPath}: EACCES`);
    assert.match(err.stack, /errors\.test\.ts/, "the stack names the handler");
    const finished = await log.waitFor((l) => l.msg === "finished call");
    assert.equal(finished.code, "internal");
    assert.equal(finished.error, "internal error");
  });

  test(`an Error thrown by a streaming handler after its first reply ends the ${name} stream with internal`, async (t) => {
    const { server, log } = await startFailing(t);
    const client = createClient(Greeter, transport(server.url));
    const replies: string[] = [];
    await assert.rejects(async () => {
      for await (const r of client.streamHello({ name: "Ada" })) {
        replies.push(r.message);
      }
    }, assertGenericInternal);
    assert.deepEqual(replies, ["first"]);
    const logged = await log.waitFor((l) => l.msg === "handler failed");
    assert.equal(logged.procedure, "/Greeter/StreamHello");
    assert.match(
      (logged.err as { stack: string }).stack,
      /lost \/srv\/connect-greeter\/secrets\/db\.sqlite mid-stream/,
    );
    const finished = await log.waitFor((l) => l.msg === "finished call");
    assert.equal(finished.code, "internal");
    assert.equal(finished.sent, 1);
  });
}

test("a TypeError in a bidi handler reaches the gRPC client as internal, with the stack only in the log", async (t) => {
  const { server, log } = await startFailing(t);
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  await assert.rejects(async () => {
    for await (const _ of client.chat(
      (async function* () {
        yield { name: "Ada" };
      })(),
    ));
  }, assertGenericInternal);
  const logged = await log.waitFor((l) => l.msg === "handler failed");
  assert.equal((logged.err as { type: string }).type, "TypeError");
  assert.match((logged.err as { stack: string }).stack, /errors\.test\.ts/);
});

test("the raw Connect error body says internal error and nothing more", async (t) => {
  const { server } = await startFailing(t);
  const res = await fetch(`${server.url}/Greeter/SayHello`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "Ada" }),
  });
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), {
    code: "internal",
    message: "internal error",
  });
  for (const [key, value] of res.headers) {
    assert.equal(`${key}: ${value}`.includes("/srv"), false);
  }
});

test("a ConnectError from a handler passes through unchanged and is not logged as a failure", async (t) => {
  const { server, log } = await startFailing(t);
  for (const transport of [
    createGrpcTransport({ baseUrl: server.url }),
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  ]) {
    const client = createClient(Greeter, transport);
    await assert.rejects(
      client.collectGreetings(
        (async function* () {
          yield { name: "Ada" };
        })(),
      ),
      (e) => {
        assert.ok(e instanceof ConnectError);
        assert.equal(e.code, Code.FailedPrecondition);
        assert.equal(e.rawMessage, "no greetings today");
        return true;
      },
    );
  }
  assert.equal(log.calls("/Greeter/CollectGreetings").length, 2);
  assert.equal(
    log.lines.some((l) => l.msg === "handler failed"),
    false,
  );
});

test("the Greeter's own INVALID_ARGUMENT reaches the client with its message", async (t) => {
  const server = await startTestServer(t);
  const res = await fetch(`${server.url}/Greeter/SayHello`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "" }),
  });
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), {
    code: "invalid_argument",
    message: "name is required",
  });
});
