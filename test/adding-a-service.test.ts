import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import {
  access,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type TestContext, test } from "node:test";
import { promisify } from "node:util";
import { type Exit, repoRoot, startChild } from "./support/child.js";
import { type Fence, fences, parseShBlock } from "./support/doc-blocks.js";
import { until } from "./support/wait.js";

/** The page this test carries out, step by step; its blocks are the steps, so the two cannot drift. */
const pagePath = "docs/adding-a-service.md";
const blocks = fences(await readFile(join(repoRoot, pagePath), "utf8"));

/** The page's addresses of the API and admin ports, rewritten to the copy's server. */
const docAddress = "localhost:50051";
const docAdminAddress = "localhost:9464";

/** The four methods the page's Echo has, what each is sent and what it answers. */
const calls = [
  { method: "Say", kind: "unary", send: ["a b"], answer: ["a b"] },
  { method: "Split", kind: "server_stream", send: ["a b"], answer: ["a", "b"] },
  { method: "Join", kind: "client_stream", send: ["a", "b"], answer: ["a b"] },
  { method: "Chat", kind: "bidi_stream", send: ["a", "b"], answer: ["a", "b"] },
] as const;

const origin = "https://app.example.com";

test("a service added as docs/adding-a-service.md says, on a copy of the project, gets the protocol engine, the call log, metrics, health, reflection and CORS with no other change", {
  timeout: 600_000,
}, async (t) => {
  const copy = await copyProject(t);
  let server: CopyServer | undefined;

  for (const fence of blocks) {
    const where = `${pagePath} line ${fence.line}`;
    if (fence.lang === "proto" || fence.lang === "ts") {
      const path = /^\/\/ ([\w./-]+)$/.exec(fence.lines[0] ?? "")?.[1];
      assert.ok(path, `${where}: a file's first line is "// <its path>"`);
      const file = join(copy, path);
      await assert.rejects(access(file), `${where}: ${path} is a new file`);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, `${fence.lines.join("\n")}\n`);
    } else if (fence.lang === "diff") {
      const exit = await sh(t, copy, "git apply --verbose", lines(fence));
      assert.equal(exit.code, 0, `${where}: git apply: ${exit.stderr}`);
    } else if (fence.lang === "sh") {
      const block = parseShBlock(fence);
      if (!block.run) continue;
      for (const { command, stdout, line } of block.commands) {
        const callsServer =
          command.includes(docAddress) || command.includes(docAdminAddress);
        if (callsServer && server === undefined) {
          server = await startCopyServer(t, copy, startEnv());
        }
        const exit = await sh(t, copy, server?.rewrite(command) ?? command);
        const at = `${pagePath} line ${line}: ${command}\nstderr: ${exit.stderr}`;
        assert.equal(exit.stdout, stdout, at);
        assert.equal(exit.code, 0, at);
      }
    } else {
      assert.fail(`${where}: no way to carry out a \`\`\`${fence.lang} block`);
    }
  }
  assert.ok(server, `${pagePath} calls the new service`);
  const s = server;

  const before = await scrape(s);
  // The page's own calls came first; their log lines may still be in the
  // server's write buffer, so they are counted by the metrics (updated as
  // each call ends), not by the lines seen so far.
  const echoCallsBefore = echoCalls(before);
  await t.test(
    "all four kinds of call work over gRPC and Connect, each served by the protocol engine",
    async () => {
      for (const protocol of ["grpc", "connect"] as const) {
        for (const call of calls) {
          const engineBefore = engineCalls(await scrape(s));
          const exit = await sh(
            t,
            copy,
            `npx buf curl --schema proto --protocol ${protocol} --http2-prior-knowledge -d @- ${s.url}/Echo/${call.method}`,
            call.send.map((text) => `${JSON.stringify({ text })}\n`).join(""),
          );
          const what = `${protocol} ${call.method}: ${exit.stderr}`;
          assert.equal(exit.code, 0, what);
          assert.deepEqual(replies(exit.stdout), call.answer, what);
          assert.equal(
            engineCalls(await scrape(s)) - engineBefore,
            1,
            `${what}: served by the engine`,
          );
        }
      }
    },
  );

  await t.test("each of those calls has its line in the call log", async () => {
    const entries = () =>
      s.log
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter(
          (e) =>
            e.msg === "finished call" &&
            String(e.procedure).startsWith("/Echo/"),
        )
        .slice(echoCallsBefore);
    // Log lines are written asynchronously: wait for them, boundedly.
    await until(
      "a line for each call",
      () => entries().length >= calls.length * 2,
      10_000,
      20,
    );
    assert.deepEqual(
      entries().map((e) => ({
        procedure: e.procedure,
        protocol: e.protocol,
        httpVersion: e.httpVersion,
        code: e.code,
        received: e.received,
        sent: e.sent,
      })),
      ["grpc", "connect"].flatMap((protocol) =>
        calls.map((c) => ({
          procedure: `/Echo/${c.method}`,
          protocol,
          httpVersion: "2.0",
          code: "ok",
          received: c.kind === "unary" ? undefined : c.send.length,
          sent: c.kind === "unary" ? undefined : c.answer.length,
        })),
      ),
    );
  });

  await t.test(
    "the admin port's metrics count each of those calls by method and protocol",
    async () => {
      const after = await scrape(s);
      for (const protocol of ["grpc", "connect"]) {
        for (const c of calls) {
          const series = `grpc_server_handled_total{grpc_type="${c.kind}",grpc_service="Echo",grpc_method="${c.method}",protocol="${protocol}",grpc_code="OK"}`;
          assert.equal(
            sample(after, series) - sample(before, series),
            1,
            `${series} counted the call`,
          );
        }
      }
    },
  );

  await t.test("health knows Echo and reports it SERVING", async () => {
    const exit = await sh(
      t,
      copy,
      `npx buf curl --protocol grpc --http2-prior-knowledge -d '{"service":"Echo"}' ${s.url}/grpc.health.v1.Health/Check`,
    );
    assert.equal(exit.code, 0, exit.stderr);
    assert.deepEqual(JSON.parse(exit.stdout), { status: "SERVING" });
  });

  await t.test("reflection lists Echo and its four methods", async () => {
    const exit = await sh(
      t,
      copy,
      `npx buf curl --protocol grpc --http2-prior-knowledge --list-methods ${s.url}`,
    );
    assert.equal(exit.code, 0, exit.stderr);
    const methods = exit.stdout
      .split("\n")
      .filter((m) => m.startsWith("Echo/"));
    assert.deepEqual(
      methods,
      ["Chat", "Join", "Say", "Split"].map((m) => `Echo/${m}`),
    );
  });

  await t.test(
    "CORS lets the allowed origin call Echo from a browser, and no other",
    async () => {
      const preflight = await fetch(`${s.url}/Echo/Say`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST" },
      });
      assert.equal(preflight.status, 204);
      assert.equal(
        preflight.headers.get("access-control-allow-origin"),
        origin,
      );
      const call = (from: string) =>
        fetch(`${s.url}/Echo/Say`, {
          method: "POST",
          headers: { origin: from, "content-type": "application/json" },
          body: JSON.stringify({ text: "hi" }),
        });
      const allowed = await call(origin);
      assert.deepEqual(await allowed.json(), { text: "hi" });
      assert.equal(allowed.headers.get("access-control-allow-origin"), origin);
      const other = await call("https://elsewhere.example");
      await other.body?.cancel();
      assert.equal(other.headers.get("access-control-allow-origin"), null);
    },
  );
});

/** A copy of the project's files (tracked, and new ones not ignored) in a temp dir, sharing node_modules; removed after the test. */
async function copyProject(t: TestContext): Promise<string> {
  const copy = await mkdtemp(join(tmpdir(), "connect-greeter-copy-"));
  t.after(() => rm(copy, { recursive: true, force: true }));
  const { stdout } = await promisify(execFile)(
    "git",
    ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 },
  );
  for (const file of new Set(stdout.split("\0").filter((f) => f !== ""))) {
    await mkdir(dirname(join(copy, file)), { recursive: true });
    // A tracked file deleted in the work tree is not part of the project now.
    await copyFile(join(repoRoot, file), join(copy, file)).catch(
      (e: NodeJS.ErrnoException) => {
        if (e.code !== "ENOENT") throw e;
      },
    );
  }
  await symlink(join(repoRoot, "node_modules"), join(copy, "node_modules"));
  return copy;
}

/** The environment the page starts its server with: the assignments before `npm start` in its not-run block. */
function startEnv(): Record<string, string> {
  const starts = blocks.flatMap((fence) => {
    if (fence.lang !== "sh" || parseShBlock(fence).run) return [];
    const m = /^((?:[A-Z_]+=\S+ )*)npm start$/.exec(fence.lines[1] ?? "");
    return m ? [m[1] ?? ""] : [];
  });
  assert.equal(
    starts.length,
    1,
    `${pagePath} says once how to start the server`,
  );
  return Object.fromEntries(
    (starts[0] ?? "")
      .trim()
      .split(/\s+/)
      .filter((a) => a !== "")
      .map((a) => [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]),
  );
}

interface CopyServer {
  /** Such as http://127.0.0.1:41234. */
  readonly url: string;
  readonly metricsUrl: string;
  /** Every line the server has written to stdout since its ready line. */
  readonly log: string[];
  /** A page's command with its addresses pointed at this server. */
  rewrite(command: string): string;
}

/** Start the copy's own server as `npm start` runs it (Node with tsx's loader, src/main.ts), on free ports on loopback. */
async function startCopyServer(
  t: TestContext,
  copy: string,
  env: Record<string, string>,
): Promise<CopyServer> {
  const child = startChild(
    t,
    process.execPath,
    [
      "--import",
      "tsx",
      "src/main.ts",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--admin-port",
      "0",
    ],
    { cwd: copy, env: { ...process.env, ...env }, input: "" },
  );
  const ready = JSON.parse(await child.nextLine()) as {
    msg: string;
    port: number;
    metricsUrl: string;
  };
  assert.match(ready.msg, /^connect-greeter listening on /);
  const log: string[] = [];
  void (async () => {
    for (;;) log.push(await child.nextLine());
  })().catch(() => {
    // stdout ended: the server is gone, after the test.
  });
  const url = `http://127.0.0.1:${ready.port}`;
  const admin = new URL(ready.metricsUrl).host;
  return {
    url,
    metricsUrl: ready.metricsUrl,
    log,
    rewrite: (command) =>
      command
        .replaceAll(docAddress, `127.0.0.1:${ready.port}`)
        .replaceAll(docAdminAddress, admin),
  };
}

/** Run `command` with bash in the copy, with `input` on stdin. */
function sh(
  t: TestContext,
  copy: string,
  command: string,
  input = "",
): Promise<Exit> {
  return startChild(t, "bash", ["-c", command], { cwd: copy, input, env })
    .exited;
}

/**
 * The environment of the page's commands: this process's, but for the
 * variable that tells a `node --test` it runs inside another one (it would
 * then skip its files).
 */
const env = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => name !== "NODE_TEST_CONTEXT"),
);

function lines(fence: Fence): string {
  return fence.lines.map((l) => `${l}\n`).join("");
}

/** The `text` of each JSON message buf curl printed. */
function replies(stdout: string): string[] {
  return stdout
    .trim()
    .split(/\n(?=\{)/)
    .map((m) => (JSON.parse(m) as { text: string }).text);
}

async function scrape(server: CopyServer): Promise<string> {
  const res = await fetch(server.metricsUrl);
  assert.equal(res.status, 200);
  return res.text();
}

function sample(metrics: string, series: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Every Echo call the metrics have counted, whatever its method, protocol or code. */
function echoCalls(metrics: string): number {
  return metrics
    .split("\n")
    .filter((l) =>
      /^grpc_server_handled_total\{[^}]*grpc_service="Echo"/.test(l),
    )
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

function engineCalls(metrics: string): number {
  const m = /^connect_greeter_engine_calls_total (\d+)$/m.exec(metrics);
  assert.ok(m, "the admin port counts the engine's calls");
  return Number(m[1]);
}
