import assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import { type TestContext, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { compressionGzip } from "@connectrpc/connect-node";
import { CallContext } from "../src/engine/context.js";
import { ResponseWriter } from "../src/protocol/response-writer.js";
import { callPair } from "./support/engine-call.js";

const init = {
  header: { "content-type": "application/grpc+proto" },
  trailer: { "grpc-status": "0" },
};
const head = {
  plain: {
    "grpc-accept-encoding": "gzip",
    "content-type": "application/grpc+proto",
  },
  before: { "grpc-accept-encoding": "gzip" },
  trailers: true,
};

/** A ResponseWriter on a real HTTP/2 stream, and the client's side of that stream. */
async function writerPair(
  t: TestContext,
  compressMinBytes = 1024,
): Promise<{
  writer: ResponseWriter;
  ctx: CallContext;
  client: http2.ClientHttp2Stream;
  server: http2.ServerHttp2Stream;
}> {
  const {
    call,
    route,
    client,
    server: stream,
  } = await callPair(t, {
    endRequest: true,
  });
  const ctx = new CallContext(call, "grpc", init);
  const writer = new ResponseWriter(
    call.exchange,
    ctx,
    route.binary,
    head,
    compressionGzip,
    compressMinBytes,
  );
  return { writer, ctx, client, server: stream };
}

/** Everything the client gets: response headers, body bytes, trailers. */
function collect(client: http2.ClientHttp2Stream) {
  const chunks: Buffer[] = [];
  client.on("data", (c: Buffer) => chunks.push(c));
  const headers = once(client, "response") as Promise<
    [http2.IncomingHttpHeaders]
  >;
  const trailers = once(client, "trailers") as Promise<
    [http2.IncomingHttpHeaders]
  >;
  return {
    headers: headers.then(([h]) => h),
    trailers: trailers.then(([h]) => h),
    body: () => Buffer.concat(chunks),
  };
}

/** The enveloped messages of a gRPC body: flags and data. */
function envelopes(body: Buffer): { flags: number; data: Buffer }[] {
  const out: { flags: number; data: Buffer }[] = [];
  for (let i = 0; i < body.length; ) {
    const length = body.readUInt32BE(i + 1);
    out.push({
      flags: body[i] as number,
      data: body.subarray(i + 5, i + 5 + length),
    });
    i += 5 + length;
  }
  return out;
}

test("a response writer sends the protocol's headers with the first message, each message enveloped, then grpc-status 0 in the trailers", async (t) => {
  const { writer, client } = await writerPair(t);
  const got = collect(client);
  assert.equal(await writer.write(Buffer.from("one")), true);
  assert.equal(await writer.write(Buffer.from("")), true);
  writer.finish();
  const headers = await got.headers;
  assert.equal(headers[":status"], 200);
  assert.equal(headers["content-type"], "application/grpc+proto");
  assert.equal(headers["grpc-accept-encoding"], "gzip");
  assert.equal((await got.trailers)["grpc-status"], "0");
  assert.deepEqual(
    envelopes(got.body()).map((e) => [e.flags, e.data.toString()]),
    [
      [0, "one"],
      [0, ""],
    ],
  );
});

test("messages from compressMinBytes up are compressed and flagged; smaller ones are sent as they are", async (t) => {
  const { writer, client } = await writerPair(t, 10);
  const got = collect(client);
  await writer.write(Buffer.from("x".repeat(9)));
  await writer.write(Buffer.from("y".repeat(10)));
  writer.finish();
  await got.trailers;
  const [small, large] = envelopes(got.body());
  assert.equal(small?.flags, 0);
  assert.equal(small?.data.toString(), "x".repeat(9));
  assert.equal(large?.flags, 1);
  assert.equal(
    gunzipSync(large?.data ?? Buffer.alloc(0)).toString(),
    "y".repeat(10),
  );
});

test("headers and trailers a handler set on its context replace the protocol's own", async (t) => {
  const { writer, ctx, client } = await writerPair(t);
  const got = collect(client);
  ctx.responseHeader.set("x-greeting", "hi");
  ctx.responseTrailer.set("x-count", "1");
  writer.finishWith(Buffer.from("only"));
  const headers = await got.headers;
  assert.equal(headers["x-greeting"], "hi");
  assert.equal(headers["content-type"], "application/grpc+proto");
  const trailers = await got.trailers;
  assert.equal(trailers["x-count"], "1");
  assert.equal(trailers["grpc-status"], "0");
  assert.deepEqual(
    envelopes(got.body()).map((e) => e.data.toString()),
    ["only"],
  );
});

test("a write waits while the client reads nothing and the stream's buffer is full, and goes on when it reads", async (t) => {
  const { writer, client, server } = await writerPair(
    t,
    Number.MAX_SAFE_INTEGER,
  );
  client.pause();
  const message = Buffer.alloc(64 * 1024, 1);
  let last: boolean | Promise<boolean> = true;
  let writes = 0;
  while (!server.writableNeedDrain && writes < 64) {
    last = writer.write(message);
    writes++;
  }
  assert.ok(
    server.writableNeedDrain,
    `${writes} writes never filled the stream`,
  );
  assert.ok(last instanceof Promise, "the write that filled the stream waits");
  let settled = false;
  void last.then(() => {
    settled = true;
  });
  // Round trips on the connection: time passes, the client still reads nothing.
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve, reject) =>
      client.session?.ping((e) => (e ? reject(e) : resolve(undefined))),
    );
  }
  assert.equal(
    settled,
    false,
    "the write went on while the client read nothing",
  );
  client.on("data", () => {});
  client.resume();
  assert.equal(await last, true);
});

test("once the client is gone, write answers false and nothing more is sent", async (t) => {
  const { writer, client, server } = await writerPair(t);
  client.close(http2.constants.NGHTTP2_CANCEL);
  await once(server, "close");
  assert.equal(await writer.write(Buffer.from("late")), false);
  writer.finish();
});
