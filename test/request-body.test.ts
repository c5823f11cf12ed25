import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { type RequestBody, readAll } from "../src/protocol/request-body.js";
import { callPair } from "./support/engine-call.js";
import { within } from "./support/wait.js";

// The engine's request body (src/protocol/request-body.ts): read on
// demand from a real HTTP/2 stream, its end, an early close, the call's end,
// and dropping what is left; and readAll's limits, as connect's readAllBytes.

/** No request messages: the tests below read the body itself. */
const noMessages: AsyncIterable<unknown> = {
  [Symbol.asyncIterator]: () => ({
    next: async () => ({ done: true, value: undefined }),
  }),
};

/** Everything read from `body` until its end, as text. */
async function drainBody(body: RequestBody): Promise<string> {
  let text = "";
  for (let c = await body.read(); c !== null; c = await body.read()) {
    text += c.toString();
  }
  return text;
}

/** `promise`'s rejection; fails if it resolves, or has not settled within `ms`. */
async function rejection(promise: unknown, ms = 5_000): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("still pending")), ms);
      }),
    ]);
  } catch (e) {
    assert.notEqual((e as Error).message, "still pending", "still pending");
    return e;
  } finally {
    clearTimeout(timer);
  }
  assert.fail("resolved");
}

test("the body is read as it arrives, and null marks its end", async (t) => {
  const { call, client } = await callPair(t);
  const read = drainBody(call.exchange.body);
  client.write("Hello, ");
  client.end("world");
  assert.equal(await read, "Hello, world");
  assert.equal(await call.exchange.body.read(), null, "and stays at its end");
});

test("once the body has ended it holds no listener on the stream: an open server stream keeps nothing of its request's", async (t) => {
  const { call, client, server } = await callPair(t);
  // Node adds its own "end" listener once the stream's readable side ends;
  // the body's "readable" listener is the one an open call would keep.
  const readable = () => server.listenerCount("readable");
  const before = readable();
  const body = call.exchange.body;
  assert.equal(readable(), before + 1);
  client.end("the one request");
  assert.equal(await drainBody(body), "the one request");
  assert.equal(readable(), before);
});

test("a read waiting for the body fails with ABORTED when the connection drops first", async (t) => {
  const { call, client, server, socket } = await callPair(t);
  client.write("part");
  assert.equal((await call.exchange.body.read())?.toString(), "part");
  const pending = call.exchange.body.read();
  assert.ok(pending instanceof Promise, "the read waits for more");
  // Not a reset: on RST_STREAM Node ends the request body first, as if the
  // client had finished it; a lost connection closes the stream mid-body.
  socket.destroy();
  await once(server, "close");
  const e = await rejection(pending);
  assert.ok(e instanceof ConnectError);
  assert.equal(e.code, Code.Aborted);
  assert.equal(e.rawMessage, "stream closed before the request ended");
  // And any later read.
  assert.throws(
    () => call.exchange.body.read(),
    /stream closed before the request ended/,
  );
});

test("abort() fails a read in progress and every later one with its reason; a second abort does not change it", async (t) => {
  const { call, client } = await callPair(t);
  const pending = call.exchange.body.read();
  const first = new ConnectError("the first reason", Code.DeadlineExceeded);
  call.exchange.body.abort(first);
  call.exchange.body.abort(new ConnectError("a later reason", Code.Canceled));
  assert.equal(await rejection(pending), first);
  client.write("late bytes");
  await new Promise<void>((resolve) => client.write("", () => resolve()));
  assert.throws(
    () => call.exchange.body.read(),
    (e) => e === first,
  );
});

test("a streaming call's pending read fails with the reason the call ended; a unary call's read goes on", async (t) => {
  const streaming = await callPair(t);
  streaming.call.readsEndWithCall(noMessages);
  const pending = streaming.call.exchange.body.read();
  const reason = new ConnectError(
    "the operation timed out",
    Code.DeadlineExceeded,
  );
  streaming.call.end(reason);
  assert.equal(await rejection(pending), reason);
  // Already ended when the handler starts reading: its reads fail at once.
  const late = await callPair(t);
  late.call.end(reason);
  late.call.readsEndWithCall(noMessages);
  assert.throws(
    () => late.call.exchange.body.read(),
    (e) => e === reason,
  );
  // A unary request is read in full before the handler runs, as in connect.
  const unary = await callPair(t);
  const read = drainBody(unary.call.exchange.body);
  unary.call.end(reason);
  unary.client.end("all of it");
  assert.equal(await read, "all of it");
});

test("discard() drops the rest of a body the call will not read, so a client sending far more than a window still finishes", async (t) => {
  const { call, client, server } = await callPair(t);
  // Four times the 64 KiB HTTP/2 window: without a reader the client stalls.
  const chunk = Buffer.alloc(64 * 1024, 1);
  client.write("start");
  assert.equal((await call.exchange.body.read())?.toString(), "start");
  call.exchange.body.discard();
  for (let i = 0; i < 4; i++) client.write(chunk);
  client.end();
  // The client could send it all: the server took it off the window.
  await within(once(client, "finish"), 5_000, "the client's last write");
  server.respond({ ":status": 200 });
  server.end();
  client.resume();
  await Promise.all([once(client, "close"), once(server, "close")]);
});

test("discard() after the body ended or the stream closed does nothing", async (t) => {
  const { call, client, server } = await callPair(t);
  client.end("done");
  assert.equal(await drainBody(call.exchange.body), "done");
  call.exchange.body.discard();
  server.respond({ ":status": 200 });
  server.end();
  client.resume();
  await once(client, "close");
});

/** A body of the given chunks, counting the reads. */
function chunks(...parts: string[]): RequestBody & { reads: number } {
  const queue = parts.map((p) => Buffer.from(p));
  const body = {
    reads: 0,
    read() {
      body.reads++;
      return Promise.resolve(queue.shift() ?? null);
    },
  };
  return body as unknown as RequestBody & { reads: number };
}

test("readAll joins the chunks of a body up to readMaxBytes exactly; one byte more is RESOURCE_EXHAUSTED", async () => {
  assert.equal(
    Buffer.from(await readAll(chunks("ab", "cd", "e"), 5, null)).toString(),
    "abcde",
  );
  assert.equal(
    Buffer.from(await readAll(chunks("abcde"), 5, null)).toString(),
    "abcde",
  );
  await assert.rejects(readAll(chunks("abc", "def"), 5, null), {
    code: Code.ResourceExhausted,
    rawMessage: "message size is larger than configured readMaxBytes 5",
  });
  assert.deepEqual([...(await readAll(chunks(), 5, null))], []);
});

test("readAll refuses a content-length over readMaxBytes before reading anything; one of exactly readMaxBytes is read", async () => {
  const over = chunks("abcdef");
  await assert.rejects(readAll(over, 5, "6"), {
    code: Code.ResourceExhausted,
    rawMessage: "message size 6 is larger than configured readMaxBytes 5",
  });
  assert.equal(over.reads, 0, "nothing was read");
  assert.equal(
    Buffer.from(await readAll(chunks("ab", "cde"), 5, "5")).toString(),
    "abcde",
  );
  // A zero content-length is a length too.
  assert.deepEqual([...(await readAll(chunks(), 5, "0"))], []);
});

test("readAll fails a body that does not add up to its content-length with INVALID_ARGUMENT, as connect does", async () => {
  await assert.rejects(readAll(chunks("abc", "def"), 100, "4"), {
    code: Code.InvalidArgument,
    rawMessage: "protocol error: promised 4 bytes, received 6",
  });
  await assert.rejects(readAll(chunks("abc"), 100, "4"), {
    code: Code.InvalidArgument,
    rawMessage: "protocol error: promised 4 bytes, received 3",
  });
  assert.equal(
    Buffer.from(await readAll(chunks("ab", "cd"), 100, "4")).toString(),
    "abcd",
  );
});

test("readAll takes a content-length it cannot read as none", async () => {
  // As connect's readAllBytes: parseInt, so "5 bytes" would be 5.
  for (const length of ["abc", "-5", ""]) {
    assert.equal(
      Buffer.from(await readAll(chunks("ab", "cde"), 5, length)).toString(),
      "abcde",
      length,
    );
    await assert.rejects(readAll(chunks("abc", "def"), 5, length), {
      code: Code.ResourceExhausted,
      rawMessage: "message size is larger than configured readMaxBytes 5",
    });
  }
});
