import assert from "node:assert/strict";
import { once } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import { test } from "node:test";
import * as zlib from "node:zlib";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Greeter } from "../gen/helloworld_pb.js";
import {
  compressionDeflate,
  compressionZstd,
} from "../src/protocol/compression.js";
import { repoRoot } from "./support/child.js";
import {
  compressedSayHello,
  envelope,
  helloRequest,
  rawH2,
} from "./support/raw.js";
import { startTestServer } from "./support/server.js";

/** The response header that names the encoding of the response messages, per protocol and call kind. */
const encodingHeaders = [
  "grpc-encoding",
  "content-encoding",
  "connect-content-encoding",
];

/** Every encoding the server reads and writes (src/server.ts), each as a connect-node client uses it. */
const compressions = [
  compressionGzip,
  compressionBrotli,
  compressionZstd,
  compressionDeflate,
];

for (const compression of compressions) {
  for (const [protocol, makeTransport] of [
    ["gRPC", createGrpcTransport],
    ["gRPC-Web", createGrpcWebTransport],
    ["Connect", createConnectTransport],
  ] as const) {
    test(`a ${protocol} client that sends and accepts ${compression.name} gets ${compression.name} responses, unary and streaming`, {
      timeout: 30_000,
    }, async (t) => {
      const server = await startTestServer(t, { compressMinBytes: 0 });
      const seen: (string | null)[] = [];
      const recordEncoding: Interceptor = (next) => async (req) => {
        const res = await next(req);
        seen.push(
          encodingHeaders.map((h) => res.header.get(h)).find((v) => v) ?? null,
        );
        return res;
      };
      const client = createClient(
        Greeter,
        makeTransport({
          baseUrl: server.url,
          httpVersion: protocol === "gRPC" ? "2" : "1.1",
          sendCompression: compression,
          acceptCompression: [compression],
          compressMinBytes: 0,
          interceptors: [recordEncoding],
        }),
      );
      assert.equal(
        (await client.sayHello({ name: "zip" })).message,
        "Hello, zip!",
      );
      const streamed: string[] = [];
      for await (const res of client.streamHello({ name: "zip" }))
        streamed.push(res.message);
      assert.equal(streamed.length, 5);
      const collected = await client.collectGreetings(
        (async function* () {
          yield { name: "a" };
          yield { name: "b" };
        })(),
      );
      assert.equal(collected.message, "Hello, a, b!");
      assert.deepEqual(seen, [
        compression.name,
        compression.name,
        compression.name,
      ]);
    });
  }
}

test("a @grpc/grpc-js client with gzip as its default compression is answered", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { compressMinBytes: 0 });
  const client = grpcJsClient(server.url, 2); // 2: gzip in grpc-js's numbering
  t.after(() => client.close());
  const reply = await new Promise<{ message: string }>((resolve, reject) =>
    client.SayHello({ name: "grpc-js" }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
  assert.equal(reply.message, "Hello, grpc-js!");
});

test("a @grpc/grpc-js client with deflate as its default compression sends deflate and is answered", {
  timeout: 30_000,
}, async (t) => {
  const encodings: (string | null)[] = [];
  const server = await startTestServer(t, {
    compressMinBytes: 0,
    interceptors: [
      (next) => (req) => {
        encodings.push(req.header.get("grpc-encoding"));
        return next(req);
      },
    ],
  });
  const client = grpcJsClient(server.url, 1); // 1: deflate
  t.after(() => client.close());
  const reply = await new Promise<{ message: string }>((resolve, reject) =>
    client.SayHello({ name: "deflated" }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
  assert.equal(reply.message, "Hello, deflated!");
  assert.deepEqual(encodings, ["deflate"]);
});

test("a @grpc/grpc-js client sending a deflated message that inflates past maxMessageBytes gets RESOURCE_EXHAUSTED", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { maxMessageBytes: 64 * 1024 });
  const client = grpcJsClient(server.url, 1);
  t.after(() => client.close());
  const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
    client.SayHello({ name: "z".repeat(1 << 20) }, (e) =>
      e ? resolve(e) : reject(new Error("the call succeeded")),
    ),
  );
  assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(
    err.details,
    "message is larger than configured readMaxBytes 65536 after decompression",
  );
});

test("gRPC: a reply under compressMinBytes goes uncompressed and a larger one gzipped; a gzipped request is read", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { compressMinBytes: 100 });
  const session = http2.connect(server.url);
  t.after(() => session.destroy());
  const call = async (name: string, compressRequest: boolean) => {
    const payload = helloRequest(name);
    const stream = session.request({
      ":method": "POST",
      ":path": "/Greeter/SayHello",
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-accept-encoding": "gzip",
      ...(compressRequest ? { "grpc-encoding": "gzip" } : {}),
    });
    stream.end(
      compressRequest
        ? envelope(zlib.gzipSync(payload), 1)
        : envelope(payload, 0),
    );
    const [headers] = (await once(stream, "response")) as [
      http2.IncomingHttpHeaders,
    ];
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const flag = body[0];
    const message = body.subarray(5);
    const text = (flag === 1 ? zlib.gunzipSync(message) : message).toString();
    return { encoding: headers["grpc-encoding"], flag, text };
  };
  const small = await call("Al", false);
  assert.equal(small.flag, 0);
  assert.match(small.text, /Hello, Al!/);
  const name = "B".repeat(200);
  const large = await call(name, true);
  assert.equal(large.encoding, "gzip");
  assert.equal(large.flag, 1);
  assert.match(large.text, new RegExp(`Hello, ${name}!`));
});

test("Connect: a JSON reply under compressMinBytes goes uncompressed, a larger one as Content-Encoding: br; a gzipped request body is read", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { compressMinBytes: 100 });
  const post = async (name: string, requestEncoding?: string) => {
    const json = Buffer.from(JSON.stringify({ name }));
    const body = requestEncoding === "gzip" ? zlib.gzipSync(json) : json;
    const req = http.request(`${server.url}/Greeter/SayHello`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "accept-encoding": "br",
        ...(requestEncoding ? { "content-encoding": requestEncoding } : {}),
      },
    });
    req.end(body);
    const [res] = (await once(req, "response")) as [http.IncomingMessage];
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const encoding = res.headers["content-encoding"];
    return {
      status: res.statusCode,
      encoding,
      text: (encoding === "br"
        ? zlib.brotliDecompressSync(raw)
        : raw
      ).toString(),
    };
  };
  const small = await post("Al");
  assert.equal(small.encoding, undefined);
  assert.deepEqual(JSON.parse(small.text), { message: "Hello, Al!" });
  const name = "B".repeat(200);
  const large = await post(name, "gzip");
  assert.equal(large.encoding, "br");
  assert.deepEqual(JSON.parse(large.text), { message: `Hello, ${name}!` });
  const unsupported = await post("Al", "snappy");
  assert.equal(unsupported.status, 501);
  assert.equal(JSON.parse(unsupported.text).code, "unimplemented");
});

test("gRPC: an unsupported grpc-encoding gets UNIMPLEMENTED with the supported ones in grpc-accept-encoding", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t);
  const session = http2.connect(server.url);
  t.after(() => session.destroy());
  const stream = session.request({
    ":method": "POST",
    ":path": "/Greeter/SayHello",
    "content-type": "application/grpc",
    te: "trailers",
    "grpc-encoding": "snappy",
  });
  stream.end(envelope(helloRequest("x"), 1));
  stream.resume();
  const [headers] = (await once(stream, "response")) as [
    http2.IncomingHttpHeaders,
  ];
  const [trailers] = (await once(stream, "trailers")) as [
    http2.IncomingHttpHeaders,
  ];
  assert.equal(trailers["grpc-status"], String(Code.Unimplemented));
  assert.equal(
    headers["grpc-accept-encoding"] ?? trailers["grpc-accept-encoding"],
    "gzip,br,zstd,deflate",
  );
});

/** A stream compressing in `encoding`, as tightly as it does quickly. */
function compressing(encoding: string): zlib.Gzip | zlib.ZstdCompress {
  switch (encoding) {
    case "gzip":
      return zlib.createGzip({ level: 9 });
    case "br":
      return zlib.createBrotliCompress({
        params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 },
      });
    case "zstd":
      return zlib.createZstdCompress();
    case "deflate":
      return zlib.createDeflate({ level: 9 });
  }
  throw new Error(`no encoding ${encoding}`);
}

/** `size` zero bytes compressed in `encoding`, made a MiB at a time so the test never holds them. */
async function zeroes(encoding: string, size: number): Promise<Buffer> {
  const z = compressing(encoding);
  const out: Buffer[] = [];
  z.on("data", (c: Buffer) => out.push(c));
  const mib = Buffer.alloc(1 << 20);
  for (let n = 0; n < size; n += mib.length) {
    if (!z.write(mib)) await once(z, "drain");
  }
  await new Promise((resolve) => z.end(resolve));
  return Buffer.concat(out);
}

test("a bomb is refused once it has inflated past maxMessageBytes, not inflated whole: the server process's peak memory does not grow by the bomb, in every encoding", {
  timeout: 120_000,
}, async (t) => {
  // Bombs of 128 MiB, a few hundred KiB compressed at most: within the limit
  // as they come, so it is decompression that must stop them.
  const whole = 128 << 20;
  const maxMessageBytes = 1 << 20;
  const server = await startTestServer(t, { maxMessageBytes });
  for (const encoding of compressions.map((c) => c.name)) {
    const compressed = await zeroes(encoding, whole);
    assert.ok(compressed.length < maxMessageBytes, `${compressed.length}`);
    // The peak resident memory of this process, which runs the server: a
    // bomb inflated whole would raise it by at least its 128 MiB.
    const before = process.resourceUsage().maxRSS * 1024;
    const res = await rawH2(
      server.url,
      compressedSayHello(encoding, compressed),
    );
    const grew = process.resourceUsage().maxRSS * 1024 - before;
    assert.ok(
      grew < 16 << 20,
      `${encoding}: peak memory grew by ${(grew / 2 ** 20).toFixed(1)} MiB`,
    );
    assert.deepEqual(
      [res.trailers["grpc-status"], res.trailers["grpc-message"]],
      [
        String(Code.ResourceExhausted),
        `message is larger than configured readMaxBytes ${maxMessageBytes} after decompression`,
      ],
      encoding,
    );
  }
});

test("a zstd message that asks for a window over 8 MiB is refused with RESOURCE_EXHAUSTED however little it holds (RFC 9659's limit for HTTP)", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t);
  // A streaming encoder does not know the size, so it writes the window it
  // was given into the frame: 2^27 bytes, for a message of a few bytes.
  const z = zlib.createZstdCompress({
    params: { [zlib.constants.ZSTD_c_windowLog]: 27 },
  });
  const out: Buffer[] = [];
  z.on("data", (c: Buffer) => out.push(c));
  z.end(helloRequest("wide"));
  await once(z, "end");
  const frame = Buffer.concat(out);
  assert.equal(zlib.zstdDecompressSync(frame).length, 6, "the frame is whole");
  const res = await rawH2(server.url, compressedSayHello("zstd", frame));
  assert.deepEqual(
    [res.trailers["grpc-status"], res.trailers["grpc-message"]],
    [
      String(Code.ResourceExhausted),
      "message needs a zstd window larger than 8388608 bytes",
    ],
  );
  // The same message with a window the limit allows is read.
  const fits = await rawH2(
    server.url,
    compressedSayHello("zstd", zlib.zstdCompressSync(helloRequest("wide"))),
  );
  assert.equal(fits.trailers["grpc-status"], "0");
});

interface GreeterJs extends grpc.Client {
  SayHello(
    req: { name: string },
    cb: (err: grpc.ServiceError | null, res: { message: string }) => void,
  ): void;
}

/** A @grpc/grpc-js Greeter client with `algorithm` (0 identity, 1 deflate, 2 gzip) as its default compression. */
function grpcJsClient(url: string, algorithm: number): GreeterJs {
  const definition = protoLoader.loadSync(`${repoRoot}proto/helloworld.proto`);
  const Ctor = grpc.loadPackageDefinition(definition)
    .Greeter as grpc.ServiceClientConstructor;
  return new Ctor(new URL(url).host, grpc.credentials.createInsecure(), {
    "grpc.default_compression_algorithm": algorithm,
  }) as unknown as GreeterJs;
}
