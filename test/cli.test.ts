import assert from "node:assert/strict";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { protocols } from "../src/client/args.js";
import { authSettings, tempDir } from "./support/auth.js";
import { runClient, startChild, startClient } from "./support/child.js";
import { startTestServer } from "./support/server.js";
import { certificateAuthority, issue } from "./support/tls.js";
import { jwksOf, TestIssuer } from "./support/tokens.js";
import { assertTook } from "./support/wait.js";

// Each case starts npm → tsx → node; on a busy machine that takes seconds.
const slow = { timeout: 120_000 };

const commandCases = [
  {
    args: ["say-hello", "Alice"],
    stdout: "Hello, Alice!\n",
  },
  {
    args: ["stream-hello", "Alice"],
    stdout: [0, 1, 2, 3, 4].map((i) => `Hello Alice, message ${i}\n`).join(""),
  },
  {
    args: ["collect-greetings", "Alice", "Bob", "Carol"],
    stdout: "Hello, Alice, Bob, Carol!\n",
  },
  {
    args: ["chat", "Alice", "Bob", "Carol"],
    stdout: "Hello, Alice!\nHello, Bob!\nHello, Carol!\n",
  },
];

for (const protocol of protocols) {
  for (const { args, stdout } of commandCases) {
    test(`${args[0]} prints every reply over ${protocol}`, slow, async (t) => {
      const server = await startTestServer(t);
      const exit = await runClient(t, [
        ...args,
        "--url",
        server.url,
        "--protocol",
        protocol,
      ]);
      assert.deepEqual(exit, { code: 0, signal: null, stdout, stderr: "" });
    });
  }
}

for (const protocol of ["connect", "grpc-web"]) {
  test(
    `the unary and one-way streaming commands work over ${protocol} on HTTP/1.1`,
    slow,
    async (t) => {
      const server = await startTestServer(t);
      const options = ["--url", server.url, "--protocol", protocol];
      const exits = await Promise.all(
        commandCases
          .filter(({ args }) => args[0] !== "chat")
          .map(({ args }) =>
            runClient(t, [...args, ...options, "--http-version", "1.1"]),
          ),
      );
      assert.deepEqual(
        exits.map((e) => [e.code, e.stdout, e.stderr]),
        commandCases
          .filter(({ args }) => args[0] !== "chat")
          .map(({ stdout }) => [0, stdout, ""]),
      );
    },
  );
}

test(
  "collect-greetings - sends one name per line of stdin",
  slow,
  async (t) => {
    const server = await startTestServer(t);
    const exit = await runClient(
      t,
      ["collect-greetings", "-", "--url", server.url],
      { input: "Alice\nBob\r\nCarol" },
    );
    assert.deepEqual(exit, {
      code: 0,
      signal: null,
      stdout: "Hello, Alice, Bob, Carol!\n",
      stderr: "",
    });
  },
);

for (const protocol of protocols) {
  test(
    `chat - over ${protocol} prints each reply before the next line is typed`,
    slow,
    async (t) => {
      const server = await startTestServer(t);
      const child = startClient(t, [
        "chat",
        "-",
        "--url",
        server.url,
        "--protocol",
        protocol,
      ]);
      // The next name is written only once the previous reply is out: a client
      // that waited for the end of stdin would never print, and this would hang.
      for (const name of ["Alice", "Bob", "Carol"]) {
        child.process.stdin?.write(`${name}\n`);
        assert.equal(await child.nextLine(), `Hello, ${name}!`);
      }
      child.process.stdin?.end();
      const exit = await child.exited;
      assert.equal(exit.code, 0, exit.stderr);
      assert.equal(exit.stderr, "");
      assert.equal(exit.stdout, "Hello, Alice!\nHello, Bob!\nHello, Carol!\n");
    },
  );
}

test("chat - with no lines ends cleanly with no replies", slow, async (t) => {
  const server = await startTestServer(t);
  const exit = await runClient(t, ["chat", "-", "--url", server.url]);
  assert.deepEqual(exit, { code: 0, signal: null, stdout: "", stderr: "" });
});

test(
  "collect-greetings - with no lines fails with INVALID_ARGUMENT",
  slow,
  async (t) => {
    const server = await startTestServer(t);
    const exit = await runClient(t, [
      "collect-greetings",
      "-",
      "--url",
      server.url,
    ]);
    assert.deepEqual(exit, {
      code: 1,
      signal: null,
      stdout: "",
      stderr: "error: INVALID_ARGUMENT: at least one name is required\n",
    });
  },
);

test(
  "an empty name prints INVALID_ARGUMENT on stderr and exits 1 over every protocol",
  slow,
  async (t) => {
    const server = await startTestServer(t);
    const exits = await Promise.all(
      protocols.map((protocol) =>
        runClient(t, [
          "say-hello",
          "",
          "--url",
          server.url,
          "--protocol",
          protocol,
        ]),
      ),
    );
    for (const exit of exits) {
      assert.deepEqual(exit, {
        code: 1,
        signal: null,
        stdout: "",
        stderr: "error: INVALID_ARGUMENT: name is required\n",
      });
    }
  },
);

test(
  "a server that is not there prints UNAVAILABLE and exits 1",
  slow,
  async (t) => {
    // A port that was free a moment ago and that nothing listens on now.
    const probe = createServer().listen(0, "127.0.0.1");
    await once(probe, "listening");
    const { port } = probe.address() as { port: number };
    probe.close();
    await once(probe, "close");
    const exits = await Promise.all(
      protocols.map((protocol) =>
        runClient(t, [
          "say-hello",
          "Alice",
          "--url",
          `http://127.0.0.1:${port}`,
          "--protocol",
          protocol,
        ]),
      ),
    );
    for (const exit of exits) {
      assert.equal(exit.code, 1);
      assert.equal(exit.stdout, "");
      assert.match(exit.stderr, /^error: UNAVAILABLE: .*ECONNREFUSED.*\n$/);
    }
  },
);

test(
  "--timeout-ms ends a call that runs too long with DEADLINE_EXCEEDED",
  slow,
  async (t) => {
    // Replies an hour apart: the first arrives at once, the second never in
    // time. A deadline of 3 s leaves the first reply time to arrive on a
    // loaded machine, where three clients start at once.
    const server = await startTestServer(t, { streamIntervalMs: 3_600_000 });
    const timeoutMs = 3_000;
    const exits = await Promise.all(
      protocols.map(async (protocol) => {
        const started = performance.now();
        const exit = await runClient(t, [
          "stream-hello",
          "Alice",
          "--url",
          server.url,
          "--protocol",
          protocol,
          "--timeout-ms",
          String(timeoutMs),
        ]);
        return { ...exit, took: performance.now() - started };
      }),
    );
    for (const exit of exits) {
      assert.equal(exit.code, 1);
      assert.equal(exit.stdout, "Hello Alice, message 0\n");
      assert.match(exit.stderr, /^error: DEADLINE_EXCEEDED: .+\n$/);
      // Not before its deadline; after it, no later than a slow start allows.
      assertTook(exit.took, timeoutMs, timeoutMs + 20_000, "the CLI");
    }
  },
);

test(
  "bad usage prints one error line and a hint, and exits 2",
  slow,
  async (t) => {
    const cases = [
      [],
      ["greet", "Alice"],
      ["say-hello"],
      ["say-hello", "Alice", "Bob"],
      ["say-hello", "-"],
      ["stream-hello"],
      ["collect-greetings"],
      ["chat", "Alice", "-"],
      ["say-hello", "Alice", "--protocol", "soap"],
      ["say-hello", "Alice", "--http-version", "3"],
      ["say-hello", "Alice", "--protocol", "grpc", "--http-version", "1.1"],
      ["chat", "Alice", "--http-version", "1.1"],
      ["say-hello", "Alice", "--timeout-ms", "soon"],
      ["say-hello", "Alice", "--timeout-ms", "0"],
      ["say-hello", "Alice", "--url", "localhost:50051"],
      ["say-hello", "Alice", "--colour"],
    ];
    // Four at a time: the machine's two cores are shared.
    const exits = [];
    for (let i = 0; i < cases.length; i += 4) {
      const batch = cases.slice(i, i + 4);
      exits.push(...(await Promise.all(batch.map((a) => runClient(t, a)))));
    }
    exits.forEach((exit, i) => {
      const what = JSON.stringify(cases[i]);
      assert.equal(exit.code, 2, what);
      assert.equal(exit.stdout, "", what);
      assert.match(
        exit.stderr,
        /^error: [^\n]+\nhint: npm run client -- --help shows the commands and options\n$/,
        what,
      );
    });
  },
);

test(
  "--help documents every command and option and exits 0",
  slow,
  async (t) => {
    const exit = await runClient(t, ["--help"]);
    assert.equal(exit.code, 0);
    assert.equal(exit.stderr, "");
    for (const word of [
      "say-hello NAME",
      "stream-hello NAME",
      "collect-greetings NAME...",
      "chat NAME...",
      '"-"',
      "--url",
      "--protocol",
      "--http-version",
      "--timeout-ms",
      "--traceparent",
      "--token",
      "GREETER_TOKEN",
      "--ca",
      "--cert",
      "--key",
      "--help",
      "http://localhost:50051",
    ]) {
      assert.ok(exit.stdout.includes(word), `--help mentions ${word}`);
    }
  },
);

test(
  "chat - stops quietly, exit 0, when the reader of its output goes away",
  slow,
  async (t) => {
    const server = await startTestServer(t);
    const child = startClient(t, ["chat", "-", "--url", server.url]);
    child.process.stdin?.write("Alice\n");
    assert.equal(await child.nextLine(), "Hello, Alice!");
    // As `| head -1` does: close the pipe, then the client has more to print.
    child.process.stdout?.destroy();
    child.process.stdin?.write("Bob\n");
    const exit = await child.exited;
    assert.equal(exit.stderr, "");
    assert.equal(exit.code, 0);
  },
);

test(
  "chat - that fails exits at once, without waiting for stdin to end",
  slow,
  async (t) => {
    const server = await startTestServer(t);
    const child = startClient(t, ["chat", "-", "--url", server.url]);
    child.process.stdin?.write("Alice\n");
    assert.equal(await child.nextLine(), "Hello, Alice!");
    // An empty name fails the call; stdin stays open, as a terminal's would.
    child.process.stdin?.write("\n");
    const exit = await child.exited;
    assert.equal(exit.code, 1);
    assert.equal(exit.stderr, "error: INVALID_ARGUMENT: name is required\n");
  },
);

test(
  "with a token (--token or GREETER_TOKEN) and a CA, client certificate and key, the client calls a server that requires both; without the token it exits 1 with UNAUTHENTICATED",
  slow,
  async (t) => {
    const ca = certificateAuthority("cli test CA");
    const issuer = await TestIssuer.create("key-1");
    const server = await startTestServer(t, {
      ...(await authSettings(t, {
        methods: {
          "/Greeter/SayHello": { token: true, certificate: true },
          "/Greeter/StreamHello": { token: true, certificate: true },
        },
        jwks: jwksOf(issuer),
        tls: {
          ...issue(ca, { cn: "localhost", san: ["IP:127.0.0.1"] }),
          clientCa: ca.cert,
        },
      })),
    });
    const dir = await tempDir(t);
    const files = { ca: "ca.pem", cert: "client.pem", key: "client-key.pem" };
    const client = issue(ca, { cn: "cli" });
    await writeFile(join(dir, files.ca), ca.cert);
    await writeFile(join(dir, files.cert), client.cert);
    await writeFile(join(dir, files.key), client.key);
    const tls = [
      "--url",
      server.url,
      "--ca",
      join(dir, files.ca),
      "--cert",
      join(dir, files.cert),
      "--key",
      join(dir, files.key),
    ];
    const token = await issuer.mint();
    const [flag, env, none] = await Promise.all([
      runClient(t, ["say-hello", "Alice", ...tls, "--token", token]),
      startChild(
        t,
        "npm",
        [
          "run",
          "--silent",
          "client",
          "--",
          "stream-hello",
          "Bob",
          ...tls,
          "--protocol",
          "grpc",
        ],
        { input: "", env: { ...process.env, GREETER_TOKEN: token } },
      ).exited,
      runClient(t, ["say-hello", "Alice", ...tls]),
    ]);
    assert.deepEqual(
      [flag.code, flag.stdout, flag.stderr],
      [0, "Hello, Alice!\n", ""],
    );
    assert.equal(env.code, 0, env.stderr);
    assert.equal(
      env.stdout,
      [0, 1, 2, 3, 4].map((i) => `Hello Bob, message ${i}\n`).join(""),
    );
    assert.deepEqual(
      [none.code, none.stdout, none.stderr],
      [1, "", "error: UNAUTHENTICATED: this method needs a bearer token\n"],
    );
  },
);

test(
  "--cert without --key, a TLS file with an http:// URL, a token with a space, and a file that cannot be read are usage errors (exit 2)",
  slow,
  async (t) => {
    const exits = await Promise.all([
      runClient(t, [
        "say-hello",
        "A",
        "--url",
        "https://localhost:1",
        "--cert",
        "c.pem",
      ]),
      runClient(t, ["say-hello", "A", "--ca", "ca.pem"]),
      runClient(t, ["say-hello", "A", "--token", "Bearer abc"]),
      runClient(t, [
        "say-hello",
        "A",
        "--url",
        "https://localhost:1",
        "--ca",
        "/nonexistent/ca.pem",
      ]),
    ]);
    assert.deepEqual(
      exits.map((e) => [e.code, e.stderr.split("\n")[0]]),
      [
        [2, "error: --cert and --key go together"],
        [2, "error: --ca needs an https:// --url"],
        [
          2,
          "error: --token (or GREETER_TOKEN) must be the token alone: printable characters, no spaces",
        ],
        [2, 'error: --ca: cannot read "/nonexistent/ca.pem" (ENOENT)'],
      ],
    );
  },
);
