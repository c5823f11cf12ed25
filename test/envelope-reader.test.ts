import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import type { EnvelopedMessage } from "@connectrpc/connect/protocol";
import { type ChunkSource, EnvelopeReader } from "../src/protocol/envelope.js";

/** An enveloped message: flags, 32-bit big-endian length, data. */
function envelope(data: string | Buffer, flags = 0): Buffer {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([head, bytes]);
}

/**
 * A body given as chunks; each chunk comes at once (`sync`) or after a
 * promise, and the source counts how often it was asked.
 */
function source(
  chunks: Buffer[],
  sync = false,
): ChunkSource & { reads: number } {
  const queue = [...chunks];
  return {
    reads: 0,
    read() {
      this.reads++;
      const chunk = queue.shift() ?? null;
      return sync ? chunk : Promise.resolve(chunk);
    },
  };
}

/** Every message of the body, then the end. */
async function readAll(reader: EnvelopeReader): Promise<EnvelopedMessage[]> {
  const all: EnvelopedMessage[] = [];
  for (
    let env = await reader.next();
    env !== undefined;
    env = await reader.next()
  ) {
    all.push(env);
  }
  return all;
}

const text = (envs: EnvelopedMessage[]) =>
  envs.map((e) => [e.flags, Buffer.from(e.data).toString()]);

for (const sync of [false, true]) {
  const how = sync ? "chunks at hand" : "chunks that arrive later";
  test(`envelopes split across chunks anywhere, prefix included, come out whole (${how})`, async () => {
    const body = Buffer.concat([
      envelope("Alice"),
      envelope("Bob"),
      envelope(""),
    ]);
    for (let a = 1; a < body.length; a++) {
      for (const b of [a + 1, a + 3, body.length]) {
        if (b > body.length) continue;
        const chunks = [
          body.subarray(0, a),
          body.subarray(a, b),
          body.subarray(b),
        ].filter((c) => c.length > 0);
        const got = await readAll(
          new EnvelopeReader(source(chunks, sync), 100),
        );
        assert.deepEqual(
          text(got),
          [
            [0, "Alice"],
            [0, "Bob"],
            [0, ""],
          ],
          `split at ${a} and ${b}`,
        );
      }
    }
  });
}

test("several envelopes in one chunk come out one per next(), without reading more", async () => {
  const body = source([Buffer.concat([envelope("a"), envelope("b")])], true);
  const reader = new EnvelopeReader(body, 100);
  assert.deepEqual(text([(await reader.next()) as EnvelopedMessage]), [
    [0, "a"],
  ]);
  assert.equal(body.reads, 1);
  assert.deepEqual(text([(await reader.next()) as EnvelopedMessage]), [
    [0, "b"],
  ]);
  assert.equal(body.reads, 1, "the second message was already in");
  assert.equal(await reader.next(), undefined);
});

test("a message is read only when asked for: nothing is pulled from the body ahead of the reader", async () => {
  const body = source([envelope("one"), envelope("two"), envelope("three")]);
  const reader = new EnvelopeReader(body, 100);
  assert.equal(body.reads, 0);
  await reader.next();
  assert.equal(body.reads, 1);
  await reader.next();
  assert.equal(body.reads, 2);
});

test("a zero-length message is a message, and an empty body is none", async () => {
  assert.deepEqual(
    text(await readAll(new EnvelopeReader(source([envelope("")]), 0))),
    [[0, ""]],
  );
  assert.deepEqual(await readAll(new EnvelopeReader(source([]), 100)), []);
});

test("the compressed flag is passed on as it came, for the caller to decompress", async () => {
  const got = await readAll(
    new EnvelopeReader(source([envelope("zz", 1), envelope("plain", 0)]), 100),
  );
  assert.deepEqual(text(got), [
    [1, "zz"],
    [0, "plain"],
  ]);
});

test("a message of exactly readMaxBytes is read; one byte more fails with RESOURCE_EXHAUSTED as soon as its prefix is in, before its body", async () => {
  const limit = 8;
  const exact = await readAll(
    new EnvelopeReader(source([envelope("x".repeat(limit))]), limit),
  );
  assert.equal(exact[0]?.data.length, limit);

  const over = envelope("x".repeat(limit + 1));
  // Only the prefix arrives: the reader must not wait for the rest.
  const body = source([over.subarray(0, 5)]);
  const error = await Promise.resolve()
    .then(() => new EnvelopeReader(body, limit).next())
    .then(
      () => assert.fail("an oversized message was accepted"),
      (e: unknown) => e,
    );
  assert.ok(error instanceof ConnectError);
  assert.equal(error.code, Code.ResourceExhausted);
  assert.equal(
    error.rawMessage,
    `message size ${limit + 1} is larger than configured readMaxBytes ${limit}`,
  );
  assert.equal(body.reads, 1);
});

test("a length over readMaxBytes fails the messages that came with it, read in the same chunk, as connect's EnvelopeDecoder splits a whole chunk before it hands any message on; those that came before are handed out", async () => {
  const limit = 8;
  const over = envelope("x".repeat(limit + 1)).subarray(0, 5);
  const two = Buffer.concat([envelope("a"), envelope("b")]);
  const outcomes = async (chunks: Buffer[]) => {
    const reader = new EnvelopeReader(source(chunks), limit);
    const got: string[] = [];
    for (;;) {
      try {
        const env = await reader.next();
        if (env === undefined) return got;
        got.push(Buffer.from(env.data).toString());
      } catch (e) {
        got.push(Code[ConnectError.from(e).code]);
        return got;
      }
    }
  };
  // In one chunk: nothing before the long one comes out.
  assert.deepEqual(await outcomes([Buffer.concat([two, over])]), [
    "ResourceExhausted",
  ]);
  // In a chunk of its own: what came before does.
  assert.deepEqual(await outcomes([two, over]), [
    "a",
    "b",
    "ResourceExhausted",
  ]);
  // "b" completes in the chunk with the long one: it fails with it.
  assert.deepEqual(
    await outcomes([
      two.subarray(0, 8),
      Buffer.concat([two.subarray(8), over]),
    ]),
    ["a", "ResourceExhausted"],
  );
});

test('a body that ends inside an envelope fails with INVALID_ARGUMENT "incomplete envelope", after the whole messages before it', async () => {
  for (const cut of [1, 4, 5, 7]) {
    const reader = new EnvelopeReader(
      source([
        Buffer.concat([envelope("ok"), envelope("broken").subarray(0, cut)]),
      ]),
      100,
    );
    assert.deepEqual(text([(await reader.next()) as EnvelopedMessage]), [
      [0, "ok"],
    ]);
    const error = await Promise.resolve()
      .then(() => reader.next())
      .then(
        () => assert.fail("a truncated envelope was accepted"),
        (e: unknown) => e,
      );
    assert.ok(error instanceof ConnectError, `cut at ${cut}`);
    assert.equal(error.code, Code.InvalidArgument);
    assert.equal(error.rawMessage, "protocol error: incomplete envelope");
  }
});

test("a failing body (the call ended) fails the read with its reason", async () => {
  const reason = new ConnectError("gone", Code.Canceled);
  const reader = new EnvelopeReader(
    {
      read() {
        return Promise.reject(reason);
      },
    },
    100,
  );
  await assert.rejects(
    Promise.resolve().then(() => reader.next()),
    reason,
  );
});
