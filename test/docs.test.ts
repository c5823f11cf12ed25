import assert from "node:assert/strict";
import {
  access,
  mkdtemp,
  readdir,
  readFile,
  rm,
  writeFile,
} from "node:fs/promises";
import { dirname, join, normalize } from "node:path";
import { test } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { type Config, loadConfig, settings } from "../src/config.js";
import { otelSettings } from "../src/otel-config.js";
import type { RunningServer } from "../src/server.js";
import { repoRoot, startChild } from "./support/child.js";
import {
  type Fence,
  fences,
  heredocTerminators,
  links,
  parseShBlock,
  type ShBlock,
  tableCells,
} from "./support/doc-blocks.js";
import { startTestServer } from "./support/server.js";

/** A page of the documentation: README.md, or any docs/*.md (found, not listed, so new pages are tested too). */
interface Page {
  /** Its path from the repository root, such as docs/calling.md. */
  readonly path: string;
  readonly text: string;
  readonly blocks: readonly Fence[];
  /** The test that carries out this page's steps itself, when the page names one. */
  readonly carriedOutBy: string | undefined;
}

async function readPage(path: string): Promise<Page> {
  const text = await readFile(join(repoRoot, path), "utf8");
  return {
    path,
    text,
    blocks: fences(text),
    carriedOutBy: /^<!-- doc test: (\S+\.test\.ts) carries out/m.exec(
      text,
    )?.[1],
  };
}

const docs = (await readdir(join(repoRoot, "docs")))
  .filter((f) => f.endsWith(".md"))
  .sort()
  .map((f) => `docs/${f}`);
const pages = await Promise.all(["README.md", ...docs].map(readPage));
const page = (path: string): Page => {
  const found = pages.find((p) => p.path === path);
  assert.ok(found, `${path} exists`);
  return found;
};

// npm, npx and tsx start in seconds on a busy machine; a generous bound, not a speed goal.
const slow = { timeout: 180_000 };

/** The docs' addresses of the server's API and admin ports, rewritten to the test's server. */
const docAddress = "localhost:50051";
const docAdminAddress = "localhost:9464";

function rewrite(text: string, server: RunningServer): string {
  const admin = new URL(server.metricsUrl ?? "http://unset").host;
  return text
    .replaceAll(docAddress, `127.0.0.1:${server.port}`)
    .replaceAll(docAdminAddress, admin);
}

/** The settings a block's "# server: npm start -- <flags>" line changes from their defaults. */
function serverOptions(flags: readonly string[]): Partial<Config> {
  const given = loadConfig(flags, {});
  const defaults = loadConfig([], {});
  return Object.fromEntries(
    Object.entries(given).filter(
      ([key, value]) =>
        !isDeepStrictEqual(value, defaults[key as keyof Config]),
    ),
  );
}

function shBlocks(p: Page): { fence: Fence; block: ShBlock }[] {
  return p.blocks
    .filter((f) => f.lang === "sh")
    .map((fence) => {
      try {
        return { fence, block: parseShBlock(fence) };
      } catch (e) {
        throw new Error(`${p.path} ${(e as Error).message}`);
      }
    });
}

for (const p of pages.filter((p) => p.carriedOutBy === undefined)) {
  const titles = new Set<string>();
  for (const { fence, block } of shBlocks(p)) {
    if (!block.run) continue;
    const first = block.commands[0];
    assert.ok(first, `${p.path} line ${fence.line}: a run block has a command`);
    let title = `${p.path}: $ ${first.title}`;
    if (titles.has(title)) title += ` (line ${first.line})`;
    titles.add(title);
    test(title, slow, async (t) => {
      // Stream interval 0 unless the block's server line says otherwise.
      const server = await startTestServer(t, serverOptions(block.server));
      for (const { command, stdout, line } of block.commands) {
        const exit = await startChild(
          t,
          "bash",
          ["-c", rewrite(command, server)],
          { input: "" },
        ).exited;
        const where = `${p.path} line ${line}: ${command}\nstderr: ${exit.stderr}`;
        assert.equal(exit.stdout, stdout, where);
        assert.equal(exit.code, 0, where);
      }
    });
  }

  const tsBlocks = p.blocks.flatMap((fence, i) =>
    fence.lang === "ts" ? [{ fence, output: p.blocks[i + 1] }] : [],
  );
  for (const { fence, output } of tsBlocks) {
    test(
      `${p.path}: the TypeScript program (${fence.lines[0]})`,
      slow,
      async (t) => {
        assert.equal(
          output?.lang,
          "text",
          `${p.path} line ${fence.line}: a ts block is followed by a text block of its output`,
        );
        const server = await startTestServer(t);
        // Inside the repository, one level down, so "../gen" and node_modules resolve as the page says.
        const dir = await mkdtemp(join(repoRoot, ".doc-ts-"));
        t.after(() => rm(dir, { recursive: true, force: true }));
        const file = join(dir, "program.ts");
        await writeFile(file, `${rewrite(fence.lines.join("\n"), server)}\n`);
        await writeFile(
          join(dir, "tsconfig.json"),
          JSON.stringify({
            extends: "../tsconfig.json",
            include: ["program.ts"],
          }),
        );
        const bin = (name: string) =>
          join(repoRoot, "node_modules", ".bin", name);
        const tsc = await startChild(t, bin("tsc"), ["--noEmit", "-p", dir], {
          input: "",
        }).exited;
        assert.equal(tsc.code, 0, `tsc: ${tsc.stdout}${tsc.stderr}`);
        const run = await startChild(t, bin("tsx"), [file], { input: "" })
          .exited;
        assert.equal(run.stdout, linesOf(output as Fence), run.stderr);
        assert.equal(run.code, 0, run.stderr);
      },
    );
  }
}

function linesOf(fence: Fence): string {
  return fence.lines.map((l) => `${l}\n`).join("");
}

for (const p of pages.filter((p) => p.carriedOutBy !== undefined)) {
  test(`${p.path} is carried out by ${p.carriedOutBy}, which reads it`, async () => {
    const source = await readFile(
      join(repoRoot, p.carriedOutBy as string),
      "utf8",
    );
    assert.ok(
      source.includes(`"${p.path}"`),
      `${p.carriedOutBy} reads ${p.path}`,
    );
  });
}

test("every ```sh block of the README and docs/ is run, or says why not and which test covers it", () => {
  let run = 0;
  for (const p of pages) {
    for (const { fence, block } of shBlocks(p)) {
      const where = `${p.path} line ${fence.line}`;
      if (block.run) {
        assert.ok(block.commands.length > 0, where);
        run++;
      } else {
        assert.match(block.reason, /\S/, where);
      }
    }
  }
  assert.ok(run > 0);
});

test("a doc command continues over \\ lines and through its heredocs", () => {
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
    server: [],
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

test("a block's server line names the settings its server runs with; the rest keep the test server's", () => {
  const block = parseShBlock({
    lang: "sh",
    line: 10,
    lines: [
      "# server: npm start -- --cors-origins https://a.example --log-level warn",
      "$ echo hi",
      "hi",
    ],
  });
  assert.ok(block.run);
  assert.deepEqual(block.server, [
    "--cors-origins",
    "https://a.example",
    "--log-level",
    "warn",
  ]);
  assert.equal(block.commands[0]?.line, 12);
  assert.deepEqual(serverOptions(block.server), {
    corsOrigins: ["https://a.example"],
    logLevel: "warn",
  });
});

test("docs/configuration.md's settings table lists exactly the settings of src/config.ts, with their defaults", () => {
  const rows = page("docs/configuration.md")
    .text.split("\n")
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

test("docs/configuration.md's OpenTelemetry table lists exactly the variables of src/otel-config.ts, with their defaults", () => {
  const rows = page("docs/configuration.md")
    .text.split("\n")
    .filter((l) => l.startsWith("| `OTEL_"))
    .map(tableCells);
  assert.deepEqual(
    rows.map(([env, dflt]) => ({ env, default: dflt })),
    Object.values(otelSettings).map((s) => ({
      env: `\`${s.env}\``,
      default: s.default === "" ? "(empty)" : `\`${s.default}\``,
    })),
  );
  for (const row of rows)
    assert.ok((row[2] ?? "") !== "", `${row[0]} has a meaning`);
});

test("docs/architecture.md's project layout names every file in src/, and no file that is not there", async () => {
  const files = (await readdir(join(repoRoot, "src"), { recursive: true }))
    .filter((f) => f.endsWith(".ts"))
    .map((f) => `src/${f.split("\\").join("/")}`);
  assert.ok(files.length > 0);
  const { text } = page("docs/architecture.md");
  const layout = text.slice(text.indexOf("## Project layout"));
  for (const file of files) {
    assert.ok(layout.includes(`\`${file}\``), `${file} is not in the layout`);
  }
  for (const [, named] of layout.matchAll(/`(src\/[\w./-]+\.ts)`/g)) {
    assert.ok(files.includes(named as string), `${named} is not in src/`);
  }
});

test("every docs/ page can be reached from the README by its links, and every image they show exists", async () => {
  const reached = new Set(["README.md"]);
  const queue = ["README.md"];
  for (let path = queue.shift(); path !== undefined; path = queue.shift()) {
    for (const link of links(page(path).text)) {
      if (/^[a-z]+:/i.test(link.target) || link.target === "") continue;
      const target = normalize(join(dirname(path), link.target));
      if (link.image) {
        await access(join(repoRoot, target)).catch(() =>
          assert.fail(`${path} line ${link.line}: no image ${link.target}`),
        );
      }
      if (docs.includes(target) && !reached.has(target)) {
        reached.add(target);
        queue.push(target);
      }
    }
  }
  assert.deepEqual(
    docs.filter((d) => !reached.has(d)),
    [],
    "pages no link leads to",
  );
});
