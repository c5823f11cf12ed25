import assert from "node:assert/strict";
import { test } from "node:test";
import { startTestServer } from "./support/server.js";

test("the server answers a Connect JSON unary call over HTTP/1.1", async (t) => {
  const server = await startTestServer(t);
  const res = await fetch(`${server.url}/Greeter/SayHello`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "Alice" }),
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { message: "Hello, Alice!" });
});
