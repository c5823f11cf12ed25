import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { oddGreeter, oddMessage } from "./support/error-message.js";
import { helloworldStubs, python, pythonEnv } from "./support/python.js";
import { startTestServer } from "./support/server.js";

// The tutorial's own client: Python grpc.aio from Debian's python3-grpcio,
// with stubs generated from proto/helloworld.proto (test/support/python.ts).
const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

test("the tutorial's Python grpc.aio client calls all four RPCs and prints the tutorial's replies", {
  timeout: 60_000,
}, async (t) => {
  const stubs = await helloworldStubs(t);

  const server = await startTestServer(t);
  // Asynchronous on purpose: the server runs in this process and must keep answering.
  const { stdout } = await run(
    python,
    [
      join(root, "test/interop-python/greeter_client.py"),
      `127.0.0.1:${server.port}`,
      stubs,
    ],
    { env: pythonEnv(), timeout: 50_000 },
  );
  assert.deepEqual(stdout.split("\n"), [
    "Greeter client received: Hello, Alice!",
    "Received: Hello Alice, message 0",
    "Received: Hello Alice, message 1",
    "Received: Hello Alice, message 2",
    "Received: Hello Alice, message 3",
    "Received: Hello Alice, message 4",
    "Received: Hello, Alice, Bob, Charlie!",
    "Received: Hello, Alice!",
    "Received: Hello, Bob!",
    "Received: Hello, Charlie!",
    "Chat status: OK",
    "SayHello error: INVALID_ARGUMENT name is required",
    "",
  ]);
});

test("Python grpcio reads an error message with ':', ',', '/', '%' and text beyond ASCII as the handler wrote it, from the engine and from connect's handlers", {
  timeout: 60_000,
}, async (t) => {
  const stubs = await helloworldStubs(t);
  for (const engine of [true, false]) {
    const server = await startTestServer(t, { routes: oddGreeter, engine });
    const { stdout } = await run(
      python,
      [
        join(root, "test/interop-python/error_messages.py"),
        `127.0.0.1:${server.port}`,
        stubs,
      ],
      { env: pythonEnv(), timeout: 50_000 },
    );
    assert.deepEqual(
      stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line)),
      [
        ["ABORTED", oddMessage],
        ["UNIMPLEMENTED", "unknown procedure /Greeter/Nope"],
      ],
      engine ? "engine" : "connect's handlers",
    );
  }
});
