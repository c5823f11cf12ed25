import assert from "node:assert/strict";
import { once } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import { test } from "node:test";
import * as zlib from "node:zlib";
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
} from "@connectrpc/connect";
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
import { repoRoot } from "./support/child.js";
import { startTestServer } from "./support/server.js";

/** The response header that names the encoding of the response messages, per protocol and call kind. */
const encodingHeaders = [
  "grpc-encoding",
  "content-encoding",
  "connect-content-encoding",
];

for (const compression of [compressionGzip, compressionBrotli]) {
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

test("a @grpc/grpc-js client compressing with deflate, which the server does not support, gets UNIMPLEMENTED", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t);
  const client = grpcJsClient(server.url, 1); // 1: deflate
  t.after(() => client.close());
  const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
    client.SayHello({ name: "deflated" }, (e) =>
      e ? resolve(e) : reject(new Error("the call succeeded")),
    ),
  );
  assert.equal(err.code, grpc.status.UNIMPLEMENTED);
  assert.match(err.details, /unknown compression "deflate"/);
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
        ? grpcFrame(zlib.gzipSync(payload), 1)
        : grpcFrame(payload, 0),
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
  stream.end(grpcFrame(helloRequest("x"), 1));
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
    "gzip,br",
  );
});

test("a small gzipped message that inflates past maxMessageBytes fails with RESOURCE_EXHAUSTED", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t, { maxMessageBytes: 64 * 1024 });
  const client = createClient(
    Greeter,
    createGrpcTransport({
      baseUrl: server.url,
      sendCompression: compressionGzip,
      compressMinBytes: 0,
    }),
  );
  // 1 MiB of one letter gzips to about 1 KiB.
  await assert.rejects(client.sayHello({ name: "z".repeat(1 << 20) }), (e) => {
    assert.equal(ConnectError.from(e).code, Code.ResourceExhausted);
    return true;
  });
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

/** A HelloRequest in protobuf binary: field 1, varint length, the name. */
function helloRequest(name: string): Buffer {
  const bytes = Buffer.from(name);
  const length: number[] = [];
  for (let n = bytes.length; n >= 0x80; n >>>= 7)
    length.push((n & 0x7f) | 0x80);
  length.push(bytes.length >>> (7 * length.length));
  return Buffer.concat([Buffer.from([0x0a, ...length]), bytes]);
}

function grpcFrame(payload: Buffer, flag: number): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}
