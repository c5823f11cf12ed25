import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Explained } from "../mutation/explained.js";
import type { Group } from "../mutation/groups.js";
import { runGroup } from "../mutation/run.js";
import { page, summarize } from "../mutation/summary.js";
import { repoRoot, startChild } from "./support/child.js";

// npm run test:mutation's machinery on an example small enough for npm test
// (test/fixtures/mutation/): Stryker mutates a file, runs the group's test
// file against each mutant, and the summary gives the score and every
// survivor with its explanation, or says it has none. The real groups take
// far longer; docs/testing.md says how to run them.

const example: Group = {
  name: "example",
  about: "an example",
  mutate: async () => ["test/fixtures/mutation/clamp.ts"],
  testFiles: ["test/fixtures/mutation/clamp.test.ts"],
  coverageAnalysis: "perTest",
};

test("a mutation run scores the example, and its summary lists every survivor: explained and run, explained and left out, or a gap", {
  timeout: 120_000,
}, async (t) => {
  const reportsDir = await mkdtemp(join(tmpdir(), "mutation-"));
  t.after(() => rm(reportsDir, { recursive: true, force: true }));
  // Under `node --test` this process tells its children to report to it in
  // its own format; Stryker's test processes must print TAP instead.
  const context = process.env.NODE_TEST_CONTEXT;
  delete process.env.NODE_TEST_CONTEXT;
  t.after(() => {
    if (context !== undefined) process.env.NODE_TEST_CONTEXT = context;
  });
  const file = "test/fixtures/mutation/clamp.ts";
  const explanations: Explained[] = [
    // Names its replacement: run, and listed with its reason. Its code
    // spans into the next line, which the run gives a Stryker comment
    // (below): the summary reads the source as it was.
    {
      file,
      mutator: "EqualityOperator",
      code: "if (n < low) return low;\n  if (n > high)",
      replacement: "n <= low",
      reason: "equal to the lower bound, n is the bound",
    },
    // Every ConditionalExpression on the line: left out of the run (these
    // two would be killed; an explanation is trusted, and counted against
    // the score).
    {
      file,
      mutator: "ConditionalExpression",
      code: "if (n > high) return high;",
      reason: "left out on purpose",
    },
    { file, mutator: "BlockStatement", code: "no such code", reason: "stale" },
  ];
  await runGroup(example, { reportsDir, quiet: true, explanations });
  const summary = await summarize(reportsDir, [example], explanations);
  // The tests never try a bound itself: `<=` for `<` survives, at either bound.
  assert.deepEqual(
    summary.survivors
      .map((s) => [s.line, s.mutator, s.replacement, s.status, s.reason])
      .sort(),
    [
      [3, "EqualityOperator", "n <= low", "Survived", explanations[0]?.reason],
      [4, "ConditionalExpression", "false", "Ignored", "left out on purpose"],
      [4, "ConditionalExpression", "true", "Ignored", "left out on purpose"],
      [4, "EqualityOperator", "n >= high", "Survived", undefined],
    ],
  );
  assert.equal(summary.unexplained, 1);
  const [score] = summary.scores;
  assert.ok(score);
  assert.equal(score.file, file);
  assert.deepEqual(
    [score.survived, score.ignored, score.explained, score.errors],
    [2, 2, 3, 0],
    JSON.stringify(score),
  );
  assert.ok(score.killed + score.timeout >= 4, JSON.stringify(score));
  assert.equal(
    score.score,
    (100 * (score.killed + score.timeout)) / (score.killed + score.timeout + 4),
  );
  // An explanation that matched no survivor is named, to be removed.
  assert.deepEqual(
    summary.stale.map((e) => e.code),
    ["no such code"],
  );
  const text = page(summary, repoRoot);
  assert.match(
    text,
    /`test\/fixtures\/mutation\/clamp.ts:4` EqualityOperator: `n > high` → `n >= high`\. \*\*Not explained: a gap in the tests\.\*\*/,
  );
  assert.match(
    text,
    /`test\/fixtures\/mutation\/clamp.ts:4` ConditionalExpression \(explained, not run\): `n > high` → `true`\. left out on purpose/,
  );
  assert.match(
    text,
    /`test\/fixtures\/mutation\/clamp.ts:3` EqualityOperator: `n < low` → `n <= low`\. equal to the lower bound/,
  );
  // Stryker's own report is there for the details.
  const report = JSON.parse(
    await readFile(join(reportsDir, "example", "mutation.json"), "utf8"),
  ) as { files: Record<string, unknown> };
  assert.deepEqual(Object.keys(report.files), [file]);
});

test("npm run test:mutation -- --list names the groups, and an unknown group is refused", async (t) => {
  const run = (...args: string[]) =>
    startChild(t, "npm", ["run", "--silent", "test:mutation", "--", ...args])
      .exited;
  const list = await run("--list");
  const bad = await run("nope");
  assert.ok(list && bad);
  assert.deepEqual(
    list.stdout
      .trim()
      .split("\n")
      .map((l) => l.split(":")[0]),
    [
      "engine",
      "config",
      "limits",
      "cluster",
      "listener",
      "shutdown",
      "signals",
    ],
  );

  assert.match(bad.stderr, /^unknown group nope; groups: engine, config,/m);
});
