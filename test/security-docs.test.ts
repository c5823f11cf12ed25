/**
 * Carries out docs/security.md step by step, as its reader would: the files
 * it shows are written, its commands run in order from the repository's root
 * with their output compared, against a server started as the block's
 * "# server:" line says, and its TypeScript is type-checked. Its
 * auth-demo/ directory is one of this test's own, removed after it.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { type TestContext, test } from "node:test";
import {
  type Child,
  repoRoot,
  startChild,
  startServerProcess,
} from "./support/child.js";
import { fences, parseShBlock } from "./support/doc-blocks.js";

const pagePath = "docs/security.md";
const blocks = fences(await readFile(join(repoRoot, pagePath), "utf8"));

/** The page's addresses of the API and admin ports, and its directory. */
const docAddress = "localhost:50051";
const docAdminAddress = "localhost:9464";
const docDir = "auth-demo/";

interface DemoServer extends Child {
  readonly port: number;
  readonly adminPort: number;
}

async function startDemoServer(
  t: TestContext,
  flags: readonly string[],
): Promise<DemoServer> {
  const server = await startServerProcess(
    t,
    process.execPath,
    [
      "--import",
      "tsx",
      "src/main.ts",
      ...flags,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--admin-port",
      "0",
      "--stream-interval-ms",
      "0",
    ],
    { env: { ...process.env, ADMIN_PORT: "0" } },
  );
  const ready = await server.lines.first((l) => l.includes("listening on"));
  const { port, metricsUrl } = JSON.parse(ready) as {
    port: number;
    metricsUrl: string;
  };
  return Object.assign(server, {
    port,
    adminPort: Number(new URL(metricsUrl).port),
  });
}

test("docs/security.md's worked example, carried out: certificates, a token, the policy, and every client's call, with the output the page shows", {
  timeout: 300_000,
}, async (t) => {
  const dir = await mkdtemp(join(repoRoot, ".auth-demo-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const demo = `${basename(dir)}/`;
  let server: DemoServer | undefined;
  const rewrite = (text: string) => {
    let out = text.replaceAll(docDir, demo);
    if (server !== undefined) {
      out = out
        .replaceAll(docAddress, `localhost:${server.port}`)
        .replaceAll(docAdminAddress, `localhost:${server.adminPort}`);
    }
    return out;
  };
  const written: string[] = [];
  let token = "";

  for (const fence of blocks) {
    const where = `${pagePath} line ${fence.line}`;
    if (fence.lang === "ts") {
      const path = /^\/\/ (auth-demo\/[\w.-]+\.ts)$/.exec(
        fence.lines[0] ?? "",
      )?.[1];
      assert.ok(
        path,
        `${where}: a file's first line is "// auth-demo/<name>.ts"`,
      );
      const file = join(repoRoot, rewrite(path));
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, `${fence.lines.join("\n")}\n`);
      written.push(file);
    } else if (fence.lang === "sh") {
      const block = parseShBlock(fence);
      if (!block.run) continue;
      if (block.server.length > 0) {
        server = await startDemoServer(t, block.server.map(rewrite));
      }
      for (const { command, stdout, line } of block.commands) {
        const exit = await startChild(t, "bash", ["-c", rewrite(command)], {
          input: "",
        }).exited;
        const at = `${pagePath} line ${line}: ${command}\nstderr: ${exit.stderr}`;
        assert.equal(exit.stdout, stdout, at);
        assert.equal(exit.code, 0, at);
      }
      token ||= await readFile(join(dir, "token.txt"), "utf8").catch(() => "");
    }
  }
  assert.ok(server, `${pagePath} starts a server`);
  await assert.rejects(
    readFile(join(repoRoot, "auth-demo", "token.txt")),
    "every path of the page was in auth-demo/, and rewritten",
  );
  assert.ok(token.length > 0, "the page mints a token");

  // The server's log: a line per call, the principal of each served one,
  // and the token in none.
  const lines = server
    .stdout()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const served = lines.filter(
    (l) => l.msg === "finished call" && l.code === "ok",
  );
  assert.ok(served.length >= 5, "the page's calls were logged");
  assert.deepEqual(new Set(served.map((l) => l.principal)), new Set(["alice"]));
  assert.ok(!server.stdout().includes(token), "the token is in no log line");

  // The handler the page shows compiles against the project.
  await writeFile(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      extends: "../tsconfig.json",
      include: written.map((f) => basename(f)),
    }),
  );
  const tsc = await startChild(
    t,
    join(repoRoot, "node_modules", ".bin", "tsc"),
    ["--noEmit", "-p", dir],
    { input: "" },
  ).exited;
  assert.equal(tsc.code, 0, `tsc: ${tsc.stdout}${tsc.stderr}`);
});
