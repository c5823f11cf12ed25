import assert from "node:assert/strict";
import { test } from "node:test";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Greeter } from "../gen/helloworld_pb.js";
import { sayHelloCacheControl } from "../src/services/greeter.js";
import { startTestServer } from "./support/server.js";
import { httpVersions } from "./support/transports.js";

// Connect's GET requests, for SayHello, which the contract marks side-effect
// free. test/engine.test.ts holds the engine's answers to connect's, case by
// case; here a real Connect client asks for GET.

test("the contract marks SayHello side-effect free, and nothing else: Connect GET clients depend on it", () => {
  assert.deepEqual(
    Greeter.methods.map((m) => [m.name, m.idempotency]),
    [
      ["SayHello", MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS],
      ["StreamHello", MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN],
      ["CollectGreetings", MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN],
      ["Chat", MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN],
    ],
  );
});

for (const httpVersion of httpVersions) {
  test(`a Connect client with useHttpGet calls SayHello by GET over HTTP/${httpVersion}, served by the engine, and gets a reply it may cache`, async (t) => {
    const methods: string[] = [];
    const server = await startTestServer(t, {
      interceptors: [
        (next) => (req) => {
          methods.push(req.requestMethod);
          return next(req);
        },
      ],
    });
    let cacheControl: string | null = null;
    const seeHeaders: Interceptor = (next) => async (req) => {
      const res = await next(req);
      if (!res.stream) cacheControl = res.header.get("cache-control");
      return res;
    };
    for (const useBinaryFormat of [true, false]) {
      const client = createClient(
        Greeter,
        createConnectTransport({
          baseUrl: server.url,
          httpVersion,
          useHttpGet: true,
          useBinaryFormat,
          interceptors: [seeHeaders],
        }),
      );
      assert.deepEqual(await client.sayHello({ name: "Ada/Lovelace?&" }), {
        $typeName: "HelloReply",
        message: "Hello, Ada/Lovelace?&!",
      });
      assert.equal(cacheControl, sayHelloCacheControl);
      // A streaming method has no GET: the client POSTs it.
      let replies = 0;
      for await (const _ of client.streamHello({ name: "Ada" })) replies++;
      assert.equal(replies, 5);
    }
    assert.deepEqual(methods, ["GET", "POST", "GET", "POST"]);
    assert.equal(server.engine.calls, 4);
  });
}
