import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  create,
  createFileRegistry,
  type DescService,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  file_google_protobuf_descriptor,
  file_google_protobuf_empty,
} from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import {
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
  ServerReflection as ServerReflectionV1,
} from "../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflectionRequestSchema as ServerReflectionRequestSchemaV1alpha,
  type ServerReflectionRequest as ServerReflectionRequestV1alpha,
  ServerReflectionResponseSchema as ServerReflectionResponseSchemaV1alpha,
  ServerReflection as ServerReflectionV1alpha,
} from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { Greeter } from "../gen/helloworld_pb.js";
import { createGreeter } from "../src/services/greeter.js";
import { registerReflection } from "../src/services/reflection.js";
import { rawH2 } from "./support/raw.js";
import { startTestServer } from "./support/server.js";

const exec = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));

/** Run `npx buf curl` from the project, as a user would. */
async function bufCurl(
  ...args: string[]
): Promise<{ stdout: string; stderr: string }> {
  return exec("npx", ["--no-install", "buf", "curl", ...args], {
    cwd: root,
    timeout: 60_000,
  });
}

/** The Content-Type of every reflection request buf curl -v reports sending. */
function reflectionContentTypes(stderr: string): string[] {
  const ids = new Set(
    [...stderr.matchAll(/> \(#(\d+)\) POST \/grpc\.reflection\./g)].map(
      (m) => m[1],
    ),
  );
  return [...stderr.matchAll(/> \(#(\d+)\) Content-Type: (\S+)/g)]
    .filter((m) => ids.has(m[1]))
    .map((m) => m[2] ?? "");
}

const allServices = [
  "Greeter",
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
];

/** buf curl's --protocol values, the flags to use it, and its Content-Type. */
const grpcFlags = ["--protocol", "grpc", "--http2-prior-knowledge"];
const bufProtocols: Record<string, [string[], string]> = {
  grpc: [grpcFlags, "application/grpc"],
  grpcweb: [["--protocol", "grpcweb"], "application/grpc-web+proto"],
  connect: [["--protocol", "connect"], "application/connect+proto"],
};

for (const [protocol, [flags, contentType]] of Object.entries(bufProtocols)) {
  test(`buf curl --protocol ${protocol} lists the services and calls SayHello with no schema, through reflection in that protocol`, {
    timeout: 120_000,
  }, async (t) => {
    const server = await startTestServer(t);
    const services = await bufCurl(
      "-v",
      ...flags,
      "--list-services",
      server.url,
    );
    assert.deepEqual(services.stdout.trim().split("\n"), allServices);
    const types = reflectionContentTypes(services.stderr);
    assert.ok(types.length > 0, services.stderr);
    assert.deepEqual(new Set(types), new Set([contentType]), services.stderr);
    const hello = await bufCurl(
      ...flags,
      "-d",
      '{"name":"A"}',
      `${server.url}/Greeter/SayHello`,
    );
    assert.deepEqual(JSON.parse(hello.stdout), { message: "Hello, A!" });
  });
}

test("buf curl --list-methods lists every method of every service", {
  timeout: 60_000,
}, async (t) => {
  const server = await startTestServer(t);
  const methods = await bufCurl(...grpcFlags, "--list-methods", server.url);
  assert.deepEqual(methods.stdout.trim().split("\n"), [
    "Greeter/Chat",
    "Greeter/CollectGreetings",
    "Greeter/SayHello",
    "Greeter/StreamHello",
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/List",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
  ]);
});

test("with reflection off, both reflection services answer UNIMPLEMENTED and buf curl cannot list services, while the Greeter still answers", {
  timeout: 60_000,
}, async (t) => {
  const server = await startTestServer(t, { reflection: false });
  const listed = await bufCurl(
    ...grpcFlags,
    "--list-services",
    server.url,
  ).then(
    () => assert.fail("buf curl listed services with reflection off"),
    (e: { code: number; stderr: string }) => e,
  );
  assert.notEqual(listed.code, 0);
  assert.match(listed.stderr, /unimplemented/i);
  for (const version of ["v1", "v1alpha"]) {
    const res = await rawH2(server.url, {
      headers: {
        ":path": `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
        "content-type": "application/grpc",
        te: "trailers",
      },
      body: [],
    });
    assert.equal(res.headers["grpc-status"], String(Code.Unimplemented));
  }
  const hello = await bufCurl(
    ...grpcFlags,
    "--schema",
    "proto",
    "-d",
    '{"name":"A"}',
    `${server.url}/Greeter/SayHello`,
  );
  assert.deepEqual(JSON.parse(hello.stdout), { message: "Hello, A!" });
});

test("buf curl asks grpc.reflection.v1 by default and v1alpha with --reflect-protocol grpc-v1alpha", {
  timeout: 60_000,
}, async (t) => {
  const server = await startTestServer(t);
  for (const [reflectProtocol, path] of [
    [[], "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"],
    [
      ["--reflect-protocol", "grpc-v1"],
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ],
    [
      ["--reflect-protocol", "grpc-v1alpha"],
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ],
  ] as const) {
    const { stdout, stderr } = await bufCurl(
      "-v",
      ...grpcFlags,
      ...reflectProtocol,
      "-d",
      '{"service":"Greeter"}',
      `${server.url}/grpc.health.v1.Health/Check`,
    );
    assert.deepEqual(JSON.parse(stdout), { status: "SERVING" });
    // buf curl -v prints each request line it sends.
    const reflectionCalls = [
      ...stderr.matchAll(/POST (\/grpc\.reflection\.\S+)/g),
    ].map((m) => m[1]);
    assert.ok(reflectionCalls.length > 0, stderr);
    assert.deepEqual(new Set(reflectionCalls), new Set([path]), stderr);
  }
});

type RequestInit = MessageInitShape<typeof ServerReflectionRequestSchema>;

/** One reflection stream: ask one question at a time on it, get its answer. */
interface ReflectionStream {
  ask(req: RequestInit["messageRequest"]): Promise<ServerReflectionResponse>;
  close(): void;
}

/**
 * Open a ServerReflectionInfo stream with a Connect client, over either
 * version of the protocol. v1alpha answers are re-read as v1 ones: the two
 * are the same on the wire, which is the point of serving both.
 */
function openReflection(
  transport: Transport,
  version: "v1" | "v1alpha" = "v1",
): ReflectionStream {
  const requests = createWritableIterable<RequestInit>();
  let responses: AsyncIterator<ServerReflectionResponse>;
  if (version === "v1") {
    responses = createClient(ServerReflectionV1, transport)
      .serverReflectionInfo(requests)
      [Symbol.asyncIterator]();
  } else {
    const alpha = createClient(ServerReflectionV1alpha, transport)
      .serverReflectionInfo(asV1alpha(requests))
      [Symbol.asyncIterator]();
    responses = {
      async next() {
        const r = await alpha.next();
        if (r.done) return r;
        const bytes = toBinary(ServerReflectionResponseSchemaV1alpha, r.value);
        return {
          done: false,
          value: fromBinary(ServerReflectionResponseSchema, bytes),
        };
      },
    };
  }
  return {
    async ask(messageRequest) {
      const written = requests.write({ host: "test", messageRequest });
      const res = await responses.next();
      await written;
      assert.equal(res.done, false, "the stream ended early");
      return res.value;
    },
    close() {
      requests.close();
    },
  };
}

/** The same requests as v1alpha messages (same fields, same numbers, other package). */
async function* asV1alpha(
  requests: AsyncIterable<RequestInit>,
): AsyncIterable<ServerReflectionRequestV1alpha> {
  for await (const req of requests) {
    const bytes = toBinary(
      ServerReflectionRequestSchema,
      create(ServerReflectionRequestSchema, req),
    );
    yield fromBinary(ServerReflectionRequestSchemaV1alpha, bytes);
  }
}

/** The file descriptors of an answer, decoded; fails if the answer is anything else. */
function filesOf(res: ServerReflectionResponse): FileDescriptorProto[] {
  assert.equal(
    res.messageResponse.case,
    "fileDescriptorResponse",
    JSON.stringify(res.messageResponse.value),
  );
  return res.messageResponse.value.fileDescriptorProto.map((b) =>
    fromBinary(FileDescriptorProtoSchema, b),
  );
}

/** Every file an answer's files import is in the answer too: a client can build them alone. */
function assertSelfContained(files: FileDescriptorProto[]): void {
  const names = new Set(files.map((f) => f.name));
  for (const f of files) {
    for (const dep of f.dependency) {
      assert.ok(names.has(dep), `${f.name} imports ${dep}, not sent`);
    }
  }
  // And they really build a registry, whatever order they came in.
  const [first] = files;
  assert.ok(first);
  createFileRegistry(first, (name) => files.find((f) => f.name === name));
}

function assertNotFound(res: ServerReflectionResponse, what: RegExp): void {
  assert.equal(res.messageResponse.case, "errorResponse");
  assert.equal(res.messageResponse.value.errorCode, Code.NotFound);
  assert.match(res.messageResponse.value.errorMessage, what);
}

const connectProtocols: Record<string, (baseUrl: string) => Transport> = {
  gRPC: (baseUrl) => createGrpcTransport({ baseUrl }),
  "gRPC-Web": (baseUrl) =>
    createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
  Connect: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" }),
};

for (const version of ["v1", "v1alpha"] as const) {
  for (const [protocol, transport] of Object.entries(connectProtocols)) {
    test(`reflection ${version} over ${protocol}: list_services, symbols, files, and errors that leave the stream usable`, {
      timeout: 30_000,
    }, async (t) => {
      const server = await startTestServer(t);
      const stream = openReflection(transport(server.url), version);
      t.after(() => stream.close());

      const list = await stream.ask({ case: "listServices", value: "" });
      assert.equal(list.validHost, "test");
      assert.equal(list.originalRequest?.messageRequest.case, "listServices");
      assert.equal(list.messageResponse.case, "listServicesResponse");
      assert.deepEqual(
        list.messageResponse.value.service.map((s) => s.name),
        allServices,
      );

      for (const [symbol, file] of [
        ["Greeter", "helloworld.proto"],
        ["HelloRequest", "helloworld.proto"],
        ["Greeter.SayHello", "helloworld.proto"],
        ["grpc.health.v1.Health", "health/v1/health.proto"],
        [
          "grpc.health.v1.HealthCheckResponse.SERVING",
          "health/v1/health.proto",
        ],
        [
          "grpc.reflection.v1alpha.ServerReflection",
          "grpc/reflection/v1alpha/reflection.proto",
        ],
      ]) {
        const files = filesOf(
          await stream.ask({ case: "fileContainingSymbol", value: symbol }),
        );
        assert.equal(files[0]?.name, file, symbol);
        assertSelfContained(files);
      }

      const byName = filesOf(
        await stream.ask({ case: "fileByFilename", value: "helloworld.proto" }),
      );
      assert.equal(byName.length, 1);
      const greeter = byName[0]?.service.find((s) => s.name === "Greeter");
      assert.deepEqual(
        greeter?.method.map((m) => [
          m.name,
          m.inputType,
          m.outputType,
          m.clientStreaming,
          m.serverStreaming,
        ]),
        [
          ["SayHello", ".HelloRequest", ".HelloReply", false, false],
          ["StreamHello", ".HelloRequest", ".HelloReply", false, true],
          ["CollectGreetings", ".HelloRequest", ".HelloReply", true, false],
          ["Chat", ".HelloRequest", ".HelloReply", true, true],
        ],
      );

      assertNotFound(
        await stream.ask({ case: "fileContainingSymbol", value: "NoSuch" }),
        /NoSuch/,
      );
      assertNotFound(
        await stream.ask({ case: "fileByFilename", value: "nosuch.proto" }),
        /nosuch\.proto/,
      );
      // The stream answers on after errors.
      const again = filesOf(
        await stream.ask({ case: "fileContainingSymbol", value: "HelloReply" }),
      );
      assert.equal(again[0]?.name, "helloworld.proto");
    });
  }
}

test("extension requests get honest answers: none for known types, NOT_FOUND for unknown ones", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t);
  const stream = openReflection(createGrpcTransport({ baseUrl: server.url }));
  t.after(() => stream.close());
  const numbers = await stream.ask({
    case: "allExtensionNumbersOfType",
    value: "HelloRequest",
  });
  assert.equal(numbers.messageResponse.case, "allExtensionNumbersResponse");
  assert.deepEqual(numbers.messageResponse.value.extensionNumber, []);
  assert.equal(numbers.messageResponse.value.baseTypeName, "HelloRequest");
  assertNotFound(
    await stream.ask({ case: "allExtensionNumbersOfType", value: "NoSuch" }),
    /NoSuch/,
  );
  assertNotFound(
    await stream.ask({
      case: "fileContainingExtension",
      value: { containingType: "HelloRequest", extensionNumber: 100 },
    }),
    /100/,
  );
  const missing = await stream.ask({ case: undefined });
  assert.equal(missing.messageResponse.case, "errorResponse");
  assert.equal(missing.messageResponse.value.errorCode, Code.Unimplemented);
});

/**
 * A service whose file imports two others and extends one: what the Greeter's
 * dependency-free file cannot show. Built at run time from a descriptor, as
 * protoc would write it for:
 *
 *   syntax = "proto3"; package reflectiontest;
 *   import "google/protobuf/empty.proto"; import "google/protobuf/descriptor.proto";
 *   extend google.protobuf.FileOptions { string owner = 50001; }
 *   service Pinger { rpc Ping(google.protobuf.Empty) returns (google.protobuf.Empty); }
 */
function pingerService(): DescService {
  const proto = create(FileDescriptorProtoSchema, {
    name: "reflectiontest/pinger.proto",
    package: "reflectiontest",
    syntax: "proto3",
    dependency: [
      "google/protobuf/empty.proto",
      "google/protobuf/descriptor.proto",
    ],
    extension: [
      {
        name: "owner",
        number: 50001,
        label: 1, // LABEL_OPTIONAL
        type: 9, // TYPE_STRING
        extendee: ".google.protobuf.FileOptions",
        jsonName: "owner",
      },
    ],
    service: [
      {
        name: "Pinger",
        method: [
          {
            name: "Ping",
            inputType: ".google.protobuf.Empty",
            outputType: ".google.protobuf.Empty",
          },
        ],
      },
    ],
  });
  const deps = [file_google_protobuf_empty, file_google_protobuf_descriptor];
  const registry = createFileRegistry(proto, (name) =>
    deps.find((f) => f.proto.name === name),
  );
  const service = registry.getService("reflectiontest.Pinger");
  assert.ok(service);
  return service;
}

/** A real HTTP/2 server on a free port serving `routes`, closed after the test. */
async function serve(
  t: TestContext,
  routes: Parameters<typeof connectNodeAdapter>[0]["routes"],
): Promise<string> {
  const server = http2.createServer(connectNodeAdapter({ routes }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Clients keep idle sessions open; the server's close waits for them.
        for (const session of sessions) session.destroy();
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test("reflection describes whatever the router serves, and sends every file a file imports", {
  timeout: 30_000,
}, async (t) => {
  const pinger = pingerService();
  const url = await serve(t, (router) => {
    router.service(Greeter, createGreeter());
    router.service(pinger, {});
    registerReflection(router);
  });
  const stream = openReflection(createGrpcTransport({ baseUrl: url }));
  t.after(() => stream.close());

  const list = await stream.ask({ case: "listServices", value: "" });
  assert.equal(list.messageResponse.case, "listServicesResponse");
  assert.deepEqual(
    list.messageResponse.value.service.map((s) => s.name),
    [
      "Greeter",
      "reflectiontest.Pinger",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ],
  );

  const files = filesOf(
    await stream.ask({
      case: "fileContainingSymbol",
      value: "reflectiontest.Pinger.Ping",
    }),
  );
  assert.deepEqual(
    files.map((f) => f.name),
    [
      "reflectiontest/pinger.proto",
      "google/protobuf/empty.proto",
      "google/protobuf/descriptor.proto",
    ],
  );
  assertSelfContained(files);

  // A dependency is reachable by name and by its symbols.
  const empty = filesOf(
    await stream.ask({
      case: "fileContainingSymbol",
      value: "google.protobuf.Empty",
    }),
  );
  assert.deepEqual(
    empty.map((f) => f.name),
    ["google/protobuf/empty.proto"],
  );

  const numbers = await stream.ask({
    case: "allExtensionNumbersOfType",
    value: "google.protobuf.FileOptions",
  });
  assert.equal(numbers.messageResponse.case, "allExtensionNumbersResponse");
  assert.deepEqual(numbers.messageResponse.value.extensionNumber, [50001]);

  const ext = filesOf(
    await stream.ask({
      case: "fileContainingExtension",
      value: {
        containingType: "google.protobuf.FileOptions",
        extensionNumber: 50001,
      },
    }),
  );
  assert.equal(ext[0]?.name, "reflectiontest/pinger.proto");
  assertSelfContained(ext);
});

test("an independent gRPC client (@grpc/grpc-js with the official reflection proto) lists the services and reads the Greeter's file", {
  timeout: 30_000,
}, async (t) => {
  const server = await startTestServer(t);
  const definition = protoLoader.loadSync(
    "grpc/reflection/v1/reflection.proto",
    {
      includeDirs: [
        fileURLToPath(
          new URL(
            "../node_modules/@grpc/reflection/build/proto",
            import.meta.url,
          ),
        ),
      ],
      keepCase: true,
      oneofs: true,
    },
  );
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: {
      reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } };
    };
  };
  const client = new loaded.grpc.reflection.v1.ServerReflection(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  );
  t.after(() => client.close());
  const call = (
    client as unknown as {
      ServerReflectionInfo(): grpc.ClientDuplexStream<object, GrpcJsResponse>;
    }
  ).ServerReflectionInfo();
  const answers = call[Symbol.asyncIterator]();
  const read = async (): Promise<GrpcJsResponse> => {
    const r = await answers.next();
    assert.equal(r.done, false, "the stream ended early");
    return r.value as GrpcJsResponse;
  };

  call.write({ list_services: "" });
  const list = await read();
  assert.equal(list.message_response, "list_services_response");
  assert.deepEqual(
    list.list_services_response?.service.map((s) => s.name),
    allServices,
  );

  call.write({ file_containing_symbol: "Greeter" });
  const file = await read();
  assert.equal(file.message_response, "file_descriptor_response");
  const protos = file.file_descriptor_response?.file_descriptor_proto ?? [];
  assert.equal(protos.length, 1);
  const [bytes] = protos;
  assert.ok(bytes);
  const greeter = fromBinary(FileDescriptorProtoSchema, bytes);
  assert.equal(greeter.name, "helloworld.proto");
  assert.deepEqual(
    greeter.service.map((s) => s.name),
    ["Greeter"],
  );

  call.write({ file_containing_symbol: "NoSuch" });
  const error = await read();
  assert.equal(error.message_response, "error_response");
  assert.equal(error.error_response?.error_code, grpc.status.NOT_FOUND);

  call.end();
  const end = await answers.next();
  assert.equal(end.done, true);
});

/** A reflection response as @grpc/proto-loader decodes it (keepCase, oneofs). */
interface GrpcJsResponse {
  message_response: string;
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Uint8Array[] };
  error_response?: { error_code: number; error_message: string };
}
