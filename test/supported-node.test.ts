import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "./support/child.js";

const exec = promisify(execFile);
const script = join(repoRoot, "scripts/supported-node.sh");

/**
 * A folder whose `node` says it is Node 20 when asked its version, and is the
 * real Node for everything else (npm runs on it).
 */
async function oldNodeFolder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "old-node-"));
  await writeFile(
    join(dir, "node"),
    [
      "#!/bin/sh",
      'case "$1" in',
      "  --version) echo v20.20.2 ;;",
      "  -p) echo 20 ;;",
      `  *) exec "${process.execPath}" "$@" ;;`,
      "esac",
      "",
    ].join("\n"),
  );
  await chmod(join(dir, "node"), 0o755);
  return dir;
}

test("on a Node older than 22, the test command's Node finder fetches Node 24 from the npm registry into the tools folder, and says so in one line", {
  timeout: 180_000,
}, async (t) => {
  const old = await oldNodeFolder();
  const tools = await mkdtemp(join(tmpdir(), "node-tools-"));
  t.after(() => rm(old, { recursive: true, force: true }));
  t.after(() => rm(tools, { recursive: true, force: true }));
  const { stdout, stderr } = await exec("bash", [script], {
    env: {
      ...process.env,
      PATH: `${old}:${process.env.PATH}`,
      NODE_TOOLS_DIR: tools,
    },
  });
  const bin = stdout.trim();
  assert.match(
    bin,
    new RegExp(`^${tools}/node-24/node_modules/node-\\w+-\\w+/bin$`),
  );
  const { stdout: version } = await exec(join(bin, "node"), ["--version"]);
  assert.match(version, /^v24\.\d+\.\d+\n$/);
  assert.equal(
    stderr,
    `Node v20.20.2 on PATH is older than 22: using Node ${version.trim()} from ${tools}/node-24\n`,
  );
});

test("on a supported Node, the Node finder picks the one on PATH and prints nothing else", async () => {
  const { stdout, stderr } = await exec("bash", [script], {
    env: {
      ...process.env,
      PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
      NODE_TOOLS_DIR: "/nonexistent",
    },
  });
  assert.equal(stdout, `${dirname(process.execPath)}\n`);
  assert.equal(stderr, "");
});

test("asking the Node finder for a line that is not supported exits 2 and names the supported lines", async () => {
  const failed = await exec("bash", [script, "20"]).then(
    () => assert.fail("line 20 was accepted"),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(failed.code, 2);
  assert.match(failed.stderr, /"20" \(22 or 24\)/);
});
