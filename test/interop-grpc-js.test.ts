import assert from "node:assert/strict";
import { once } from "node:events";
import { type TestContext, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type { RunningServer } from "../src/server.js";
import { oddGreeter, oddMessage } from "./support/error-message.js";
import {
  type GreeterClient,
  grpcJsGreeter,
  type HelloReply,
  sayHello,
} from "./support/grpc-js.js";
import { startTestServer } from "./support/server.js";
import { selfSignedCert } from "./support/tls.js";

// An independent gRPC implementation: grpc-js (test/support/grpc-js.ts).

function greeterClient(
  t: TestContext,
  server: RunningServer,
  credentials = grpc.credentials.createInsecure(),
): GreeterClient {
  const client = grpcJsGreeter(`127.0.0.1:${server.port}`, credentials);
  t.after(() => client.close());
  return client;
}

/** Every message of a server stream, and the status it ended with. */
async function readAll(
  call: grpc.ClientReadableStream<HelloReply>,
): Promise<{ messages: string[]; error?: grpc.ServiceError }> {
  const messages: string[] = [];
  try {
    for await (const r of call as AsyncIterable<HelloReply>)
      messages.push(r.message);
  } catch (e) {
    return { messages, error: e as grpc.ServiceError };
  }
  return { messages };
}

test("grpc-js SayHello gets the greeting", async (t) => {
  const client = greeterClient(t, await startTestServer(t));
  assert.deepEqual(await sayHello(client, { name: "Alice" }), {
    message: "Hello, Alice!",
  });
});

test("grpc-js SayHello with an empty name gets INVALID_ARGUMENT 'name is required'", async (t) => {
  const client = greeterClient(t, await startTestServer(t));
  await assert.rejects(sayHello(client, { name: "" }), {
    code: grpc.status.INVALID_ARGUMENT,
    details: "name is required",
  });
});

test("grpc-js StreamHello gets five greetings and status OK", async (t) => {
  const client = greeterClient(t, await startTestServer(t));
  const call = client.streamHello({ name: "Bob" });
  const status = once(call, "status");
  const { messages, error } = await readAll(call);
  assert.equal(error, undefined);
  assert.deepEqual(
    messages,
    [0, 1, 2, 3, 4].map((i) => `Hello Bob, message ${i}`),
  );
  const [s] = (await status) as [grpc.StatusObject];
  assert.equal(s.code, grpc.status.OK);
});

test("grpc-js CollectGreetings greets every name written", async (t) => {
  const client = greeterClient(t, await startTestServer(t));
  const reply = await new Promise<HelloReply>((resolve, reject) => {
    const call = client.collectGreetings((err, res) =>
      err || !res ? reject(err) : resolve(res),
    );
    for (const name of ["Alice", "Bob", "Carol"]) call.write({ name });
    call.end();
  });
  assert.equal(reply.message, "Hello, Alice, Bob, Carol!");
});

test("grpc-js CollectGreetings with no names gets INVALID_ARGUMENT", async (t) => {
  const client = greeterClient(t, await startTestServer(t));
  await assert.rejects(
    new Promise<HelloReply>((resolve, reject) => {
      const call = client.collectGreetings((err, res) =>
        err || !res ? reject(err) : resolve(res),
      );
      call.end();
    }),
    {
      code: grpc.status.INVALID_ARGUMENT,
      details: "at least one name is required",
    },
  );
});

test("grpc-js Chat gets each reply before it sends the next name", {
  timeout: 20_000,
}, async (t) => {
  const client = greeterClient(t, await startTestServer(t));
  const call = client.chat();
  const replies = (call as AsyncIterable<HelloReply>)[Symbol.asyncIterator]();
  for (const name of ["Alice", "Bob", "Carol"]) {
    call.write({ name });
    const r = await replies.next();
    assert.equal(r.done, false);
    assert.equal(r.value.message, `Hello, ${name}!`);
  }
  const status = once(call, "status");
  call.end();
  assert.equal((await replies.next()).done, true);
  const [s] = (await status) as [grpc.StatusObject];
  assert.equal(s.code, grpc.status.OK);
});

test("grpc-js Chat with no names ends OK without replies", async (t) => {
  const client = greeterClient(t, await startTestServer(t));
  const call = client.chat();
  const status = once(call, "status");
  call.end();
  const { messages, error } = await readAll(call);
  assert.equal(error, undefined);
  assert.deepEqual(messages, []);
  const [s] = (await status) as [grpc.StatusObject];
  assert.equal(s.code, grpc.status.OK);
});

test("grpc-js StreamHello with a deadline gets DEADLINE_EXCEEDED, and the server handler stops", {
  timeout: 20_000,
}, async (t) => {
  const server = await startTestServer(t, { streamIntervalMs: 600_000 });
  const client = greeterClient(t, server);
  const call = client.streamHello({ name: "Dave" }, new grpc.Metadata(), {
    deadline: Date.now() + 300,
  });
  const { messages, error } = await readAll(call);
  // The first reply, unless the deadline passed even before it; never a second.
  assert.deepEqual(
    messages,
    ["Hello Dave, message 0"].slice(0, messages.length),
  );
  assert.equal(error?.code, grpc.status.DEADLINE_EXCEEDED);
  await server.inflight.whenIdle();
});

test("grpc-js cancelling StreamHello after the first reply gets CANCELLED, and the server handler stops", {
  timeout: 20_000,
}, async (t) => {
  const server = await startTestServer(t, { streamIntervalMs: 600_000 });
  const client = greeterClient(t, server);
  const call = client.streamHello({ name: "Erin" });
  const [first] = (await once(call, "data")) as [HelloReply];
  assert.equal(first.message, "Hello Erin, message 0");
  assert.equal(server.inflight.count, 1);
  const error = once(call, "error");
  call.cancel();
  const [err] = (await error) as [grpc.ServiceError];
  assert.equal(err.code, grpc.status.CANCELLED);
  await server.inflight.whenIdle();
});

test("grpc-js SayHello with custom metadata works and gets response headers", async (t) => {
  const client = greeterClient(t, await startTestServer(t));
  const metadata = new grpc.Metadata();
  metadata.set("x-request-id", "abc-123");
  metadata.set("x-trace-bin", Buffer.from([1, 2, 3]));
  let headers: grpc.Metadata | undefined;
  const reply = await new Promise<HelloReply>((resolve, reject) => {
    const call = client.sayHello({ name: "Frank" }, metadata, {}, (err, res) =>
      err || !res ? reject(err) : resolve(res),
    );
    call.once("metadata", (m) => {
      headers = m;
    });
  });
  assert.deepEqual(reply, { message: "Hello, Frank!" });
  assert.match(String(headers?.get("content-type")[0]), /^application\/grpc/);
});

test("grpc-js reads an error message with ':', ',', '/', '%' and text beyond ASCII as the handler wrote it, from the engine and from connect's handlers", async (t) => {
  for (const engine of [true, false]) {
    const server = await startTestServer(t, { routes: oddGreeter, engine });
    await assert.rejects(sayHello(greeterClient(t, server), { name: "A" }), {
      code: grpc.status.ABORTED,
      details: oddMessage,
    });
    assert.equal(server.engine.calls, engine ? 1 : 0);
  }
});

test("grpc-js reads the path in UNIMPLEMENTED's message for an unknown method as it is", async (t) => {
  const server = await startTestServer(t);
  const client = new grpc.Client(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  );
  t.after(() => client.close());
  const bytes = (b: Buffer) => b;
  await assert.rejects(
    new Promise((resolve, reject) =>
      client.makeUnaryRequest(
        "/Greeter/Nope",
        bytes,
        bytes,
        Buffer.alloc(0),
        (err, res) => (err ? reject(err) : resolve(res)),
      ),
    ),
    {
      code: grpc.status.UNIMPLEMENTED,
      details: "unknown procedure /Greeter/Nope",
    },
  );
});

test("grpc-js over TLS (ALPN h2) gets the greeting", async (t) => {
  const tls = selfSignedCert();
  const server = await startTestServer(t, { tls });
  const client = greeterClient(t, server, grpc.credentials.createSsl(tls.cert));
  assert.deepEqual(await sayHello(client, { name: "Grace" }), {
    message: "Hello, Grace!",
  });
});
