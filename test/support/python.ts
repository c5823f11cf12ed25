import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "./child.js";

/**
 * Debian's Python, with its python3-grpcio and python3-grpc-tools
 * (test/system-deps.sh installs both): not the first python3 on PATH, which
 * may be another one without these packages.
 */
export const python = "/usr/bin/python3";

/** The environment of the Python processes: no proxy for loopback. */
export function pythonEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(https?|grpc|all)_proxy$/i.test(k)) delete env[k];
  }
  return env;
}

/**
 * The Greeter's Python stubs, generated from proto/helloworld.proto by
 * grpc_tools.protoc into a directory of the test's own; resolves with it.
 */
export async function helloworldStubs(t: TestContext): Promise<string> {
  const stubs = await mkdtemp(join(tmpdir(), "greeter-python-"));
  t.after(() => rm(stubs, { recursive: true, force: true }));
  await promisify(execFile)(
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
    { cwd: repoRoot, env: pythonEnv() },
  );
  assert.deepEqual((await readdir(stubs)).sort(), [
    "helloworld_pb2.py",
    "helloworld_pb2_grpc.py",
  ]);
  return stubs;
}
