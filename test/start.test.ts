import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { imageNodeFlags } from "../bench/image-command.js";
import { settings } from "../src/config.js";
import { repoRoot, startChild } from "./support/child.js";

const slow = { timeout: 120_000 };

const readyLine =
  /^connect-greeter listening on http:\/\/localhost:(\d+) \(gRPC, gRPC-Web and Connect over .+\)$/;

/** The test runner's environment without any of the server's settings, plus `env`. */
function envWith(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const clean = { ...process.env };
  for (const s of Object.values(settings)) delete clean[s.env];
  // Other test files run servers at the same time: a free admin port, not 9464.
  return { ...clean, ADMIN_PORT: "0", ...env };
}

/** `npm start`; --silent keeps npm's own banner and lifecycle error lines out of the output. */
function npmStart(
  t: Parameters<typeof startChild>[0],
  args: string[],
  env: Record<string, string> = {},
) {
  return startChild(t, "npm", ["--silent", "start", "--", ...args], {
    env: envWith(env),
  });
}

/** The port of the ready line (a JSON log line); log lines before it are passed over. */
async function readyPort(server: ReturnType<typeof npmStart>): Promise<string> {
  for (;;) {
    const line = await server.nextLine();
    const port = readyLine.exec(logMessage(line))?.[1];
    if (port !== undefined) {
      assert.ok(Number(port) > 0, line);
      return port;
    }
  }
}

/** Resolves once no process of group `pgid` exists; fails after `timeoutMs`. */
async function groupGone(pgid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      process.kill(-pgid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ESRCH") return;
      throw e;
    }
    assert.ok(Date.now() < deadline, `process group ${pgid} still running`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The `msg` of a JSON log line, or the line itself when it is not JSON. */
function logMessage(line: string): string {
  try {
    const { msg } = JSON.parse(line) as { msg?: unknown };
    return typeof msg === "string" ? msg : line;
  } catch {
    return line;
  }
}

async function sayHello(port: string): Promise<unknown> {
  const res = await fetch(`http://localhost:${port}/Greeter/SayHello`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "Alice" }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

test(
  "npm start -- --port 0 prints the ready line, answers, and exits 0 on SIGTERM",
  slow,
  async (t) => {
    const server = npmStart(t, ["--port", "0"]);
    const port = await readyPort(server);
    assert.deepEqual(await sayHello(port), { message: "Hello, Alice!" });
    // As a process manager does: the signal goes to the process it started
    // (npm), which must pass it on so the server itself shuts down.
    server.process.kill("SIGTERM");
    const exit = await server.exited;
    assert.equal(exit.signal, null);
    assert.equal(exit.code, 0, exit.stderr);
    // The server logged its drain, and nothing of the process group is left
    // running. npm may exit a moment before its children are reaped, and no
    // event tells a test when a grandchild is gone, so the check is a bounded poll.
    assert.match(exit.stdout, /"msg":"stopped"/);
    await groupGone(server.process.pid as number, 5_000);
  },
);

test(
  "PORT=0 npm start listens on a free port and answers, run by node with the container image's flags",
  slow,
  async (t) => {
    const server = npmStart(t, [], { PORT: "0" });
    const port = await readyPort(server);
    assert.deepEqual(await sayHello(port), { message: "Hello, Alice!" });
    // npm runs the start script in a shell that execs node: npm's child.
    const npmPid = server.process.pid as number;
    const [child] = readFileSync(
      `/proc/${npmPid}/task/${npmPid}/children`,
      "utf8",
    )
      .trim()
      .split(" ");
    const argv = readFileSync(`/proc/${child}/cmdline`, "utf8").split("\0");
    assert.match(argv[0] ?? "", /node$/);
    assert.deepEqual(
      argv.slice(1, 1 + imageNodeFlags(repoRoot).length),
      imageNodeFlags(repoRoot),
    );
  },
);

const badSettings: {
  what: string;
  args: string[];
  env: Record<string, string>;
  names: RegExp;
}[] = [
  {
    what: "--port abc",
    args: ["--port", "abc"],
    env: {},
    names: /--port/,
  },
  {
    what: "PORT=70000",
    args: [],
    env: { PORT: "70000" },
    names: /\bPORT\b/,
  },
  {
    what: "ADMIN_PORT=metrics",
    args: [],
    env: { ADMIN_PORT: "metrics" },
    names: /ADMIN_PORT.*"off"/,
  },
  {
    what: "the admin port equal to the API port",
    args: ["--port", "50099", "--admin-port", "50099"],
    env: {},
    names: /ADMIN_PORT.*differ from PORT/,
  },
  {
    what: "REFLECTION=maybe",
    args: [],
    env: { REFLECTION: "maybe" },
    names: /REFLECTION.*on or off/,
  },
  {
    what: "a TLS certificate file that does not exist",
    args: ["--tls-cert", "missing-cert.pem", "--tls-key", "missing-key.pem"],
    env: {},
    names: /TLS_CERT.*missing-cert\.pem/,
  },
  {
    what: "a TLS certificate without a key",
    args: ["--tls-cert", "proto/helloworld.proto"],
    env: {},
    names: /TLS_KEY/,
  },
  {
    what: "a TLS key without a certificate",
    args: [],
    env: { TLS_KEY: "proto/helloworld.proto" },
    names: /TLS_CERT/,
  },
];

for (const { what, args, env, names } of badSettings) {
  test(
    `npm start with ${what} exits non-zero with one line naming the setting`,
    slow,
    async (t) => {
      const exit = await npmStart(t, args, env).exited;
      assert.notEqual(exit.code, 0);
      assert.equal(exit.stdout, "");
      assert.match(exit.stderr, /^[^\n]+\n$/, "exactly one line on stderr");
      assert.match(exit.stderr, names);
    },
  );
}
