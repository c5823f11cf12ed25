import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { oddGreeter, oddMessage } from "./support/error-message.js";
import { startTestServer } from "./support/server.js";

// The tutorial's own client: Python grpc.aio from Debian's python3-grpcio, with
// stubs generated from proto/helloworld.proto by Debian's python3-grpc-tools
// (test/system-deps.sh installs both). Debian's interpreter, not the first
// python3 on PATH, which may be another one without these packages.
const python = "/usr/bin/python3";
const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

/** The environment of the Python processes: no proxy for loopback. */
function pythonEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(https?|grpc|all)_proxy$/i.test(k)) delete env[k];
  }
  return env;
}

/** Python stubs generated from proto/helloworld.proto into a folder removed after the test. */
async function pythonStubs(t: TestContext): Promise<string> {
  const stubs = await mkdtemp(join(tmpdir(), "greeter-python-"));
  t.after(() => rm(stubs, { recursive: true, force: true }));
  await run(
    python,
    [
      "-m",
      "grpc_tools.protoc",
      "-I",
      "proto",
      `--python_out=${stubs}`,
      `--grpc_python_out=${stubs}`,
      "proto/helloworld.proto",
    ],
    { cwd: root, env: pythonEnv() },
  );
  assert.deepEqual((await readdir(stubs)).sort(), [
    "helloworld_pb2.py",
    "helloworld_pb2_grpc.py",
  ]);
  return stubs;
}

test("the tutorial's Python grpc.aio client calls all four RPCs and prints the tutorial's replies", {
  timeout: 60_000,
}, async (t) => {
  const stubs = await pythonStubs(t);
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
  const stubs = await pythonStubs(t);
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
