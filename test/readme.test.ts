import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { settings } from "../src/config.js";
import type { RunningServer } from "../src/server.js";
import { repoRoot, startChild } from "./support/child.js";
import {
  type Fence,
  fences,
  heredocTerminators,
  parseShBlock,
  tableCells,
} from "./support/readme.js";
import { startTestServer } from "./support/server.js";

const readme = await readFile(join(repoRoot, "README.md"), "utf8");
const blocks = fences(readme);

// npm, npx and tsx start in seconds on a busy machine; a generous bound, not a speed goal.
const slow = { timeout: 180_000 };

/** The README's addresses of the server's API and admin ports, rewritten to the test's server. */
const readmeAddress = "localhost:50051";
const readmeAdminAddress = "localhost:9464";

function rewrite(text: string, server: RunningServer): string {
  const admin = new URL(server.metricsUrl ?? "http://unset").host;
  return text
    .replaceAll(readmeAddress, `127.0.0.1:${server.port}`)
    .replaceAll(readmeAdminAddress, admin);
}

for (const fence of blocks.filter((f) => f.lang === "sh")) {
  const block = parseShBlock(fence);
  if (!block.run) continue;
  const first = block.commands[0];
  assert.ok(first, `README line ${fence.line}: a run block has a command`);
  test(`README: $ ${first.title}`, slow, async (t) => {
    const server = await startTestServer(t);
    for (const { command, stdout, line } of block.commands) {
      const exit = await startChild(
        t,
        "bash",
        ["-c", rewrite(command, server)],
        { input: "" },
      ).exited;
      const where = `README line ${line}: ${command}\nstderr: ${exit.stderr}`;
      assert.equal(exit.stdout, stdout, where);
      assert.equal(exit.code, 0, where);
    }
  });
}

const tsBlocks = blocks.flatMap((fence, i) =>
  fence.lang === "ts" ? [{ fence, output: blocks[i + 1] }] : [],
);

for (const { fence, output } of tsBlocks) {
  test(`README: the TypeScript client (${fence.lines[0]})`, slow, async (t) => {
    assert.equal(
      output?.lang,
      "text",
      `README line ${fence.line}: a ts block is followed by a text block of its output`,
    );
    const server = await startTestServer(t);
    // Inside the repository, one level down, so "../gen" and node_modules resolve as in the README.
    const dir = await mkdtemp(join(repoRoot, ".readme-ts-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, "hello.ts");
    await writeFile(file, `${rewrite(fence.lines.join("\n"), server)}\n`);
    await writeFile(
      join(dir, "tsconfig.json"),
      JSON.stringify({ extends: "../tsconfig.json", include: ["hello.ts"] }),
    );
    const bin = (name: string) => join(repoRoot, "node_modules", ".bin", name);
    const tsc = await startChild(t, bin("tsc"), ["--noEmit", "-p", dir], {
      input: "",
    }).exited;
    assert.equal(tsc.code, 0, `tsc: ${tsc.stdout}${tsc.stderr}`);
    const run = await startChild(t, bin("tsx"), [file], { input: "" }).exited;
    assert.equal(run.stdout, linesOf(output as Fence), run.stderr);
    assert.equal(run.code, 0, run.stderr);
  });
}

function linesOf(fence: Fence): string {
  return fence.lines.map((l) => `${l}\n`).join("");
}

test("the README's configuration table lists exactly the settings of src/config.ts, with their defaults", () => {
  const rows = readme
    .split("\n")
    .filter((l) => l.startsWith("| `--"))
    .map(tableCells);
  assert.deepEqual(
    rows.map(([flag, env, dflt]) => ({ flag, env, default: dflt })),
    Object.values(settings).map((s) => ({
      flag: `\`--${s.flag}\``,
      env: `\`${s.env}\``,
      default: s.default === "" ? "(empty)" : `\`${s.default}\``,
    })),
  );
  for (const row of rows)
    assert.ok((row[3] ?? "") !== "", `${row[0]} has a meaning`);
});

test("every README ```sh block is run, or says why not and which test covers it", () => {
  const sh = blocks.filter((f) => f.lang === "sh");
  assert.ok(sh.length > 0);
  for (const fence of sh) {
    const block = parseShBlock(fence);
    if (block.run) {
      assert.ok(block.commands.length > 0, `README line ${fence.line}`);
    } else {
      assert.match(block.reason, /\S/, `README line ${fence.line}`);
    }
  }
});

test("a README command continues over \\ lines and through its heredocs", () => {
  const block = parseShBlock({
    lang: "sh",
    line: 1,
    lines: [
      "$ cat - \\",
      "    /dev/null <<'EOF'",
      "$ not a command",
      "EOF",
      "$ not a command",
      "$ echo done",
      "done",
    ],
  });
  assert.deepEqual(block, {
    run: true,
    commands: [
      {
        command: "cat - \\\n    /dev/null <<'EOF'\n$ not a command\nEOF",
        title: "cat -",
        stdout: "",
        line: 2,
      },
      {
        command: "not a command",
        title: "not a command",
        stdout: "",
        line: 6,
      },
      { command: "echo done", title: "echo done", stdout: "done\n", line: 7 },
    ],
  });
  assert.deepEqual(heredocTerminators(`a <<EOF b <<"END" c <<<"x"`), [
    "EOF",
    "END",
  ]);
});

test("the README's project layout names every file in src/", async () => {
  const files = (await readdir(join(repoRoot, "src"), { recursive: true }))
    .filter((f) => f.endsWith(".ts"))
    .map((f) => `src/${f.split("\\").join("/")}`);
  assert.ok(files.length > 0);
  const layout = readme.slice(readme.indexOf("## Project layout"));
  for (const file of files) {
    assert.ok(layout.includes(`\`${file}\``), `${file} is not in the layout`);
  }
});
