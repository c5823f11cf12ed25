import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type Report, row, withRows } from "../mutation/scores.js";
import { repoRoot, startChild } from "./support/child.js";

// npm run test:mutation's machinery on an example small enough for npm test
// (test/fixtures/mutation/): Stryker runs a group's configuration made as
// the real groups' are (mutation/group.mjs), and the group's score goes into
// a table as into the README's. The real groups take far longer;
// docs/testing.md says how to run them.

test("a group's run leaves its accepted survivor out with the comment's reason, reports the other survivor, and fails under its break threshold", {
  timeout: 120_000,
}, async (t) => {
  const reports = await mkdtemp(join(tmpdir(), "mutation-"));
  t.after(() => rm(reports, { recursive: true, force: true }));
  // Under `node --test` this process tells its children to report to it in
  // its own format; Stryker's test processes must print TAP instead.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const run = await startChild(
    t,
    "npx",
    ["stryker", "run", "test/fixtures/mutation/example.mjs"],
    { env: { ...env, EXAMPLE_REPORTS: reports } },
  ).exited;
  // 6 killed of the 7 mutants run: 85.71 %, under the example's 90.
  assert.equal(run.code, 1, run.stdout + run.stderr);
  assert.match(
    run.stdout,
    /Final mutation score 85\.71 under breaking threshold 90, setting exit code to 1/,
  );
  // Stryker's clear-text report shows each survivor as a diff.
  assert.match(
    run.stdout,
    /\[Survived\] EqualityOperator\ntest\/fixtures\/mutation\/clamp\.ts:5:7\n- +if \(n > high\) return high;\n\+ +if \(n >= high\) return high;\n/,
  );
  const report = JSON.parse(
    await readFile(join(reports, "mutation.json"), "utf8"),
  ) as Report;
  assert.deepEqual(Object.keys(report.files), [
    "test/fixtures/mutation/clamp.ts",
  ]);
  const mutants = report.files["test/fixtures/mutation/clamp.ts"]?.mutants;
  // The tests never try a bound itself: `<=` for `<` survives at either
  // bound. The comment at line 4 names a mutator, so it leaves out both of
  // that line's EqualityOperator mutants, the one the tests kill too.
  assert.deepEqual(
    mutants
      ?.filter((m) => m.status !== "Killed")
      .map((m) => [
        m.location.start.line,
        m.mutatorName,
        m.replacement,
        m.status,
        m.statusReason,
      ])
      .sort(),
    [
      [
        4,
        "EqualityOperator",
        "n <= low",
        "Ignored",
        "equivalent, at the lower bound n is the bound",
      ],
      [
        4,
        "EqualityOperator",
        "n >= low",
        "Ignored",
        "equivalent, at the lower bound n is the bound",
      ],
      [5, "EqualityOperator", "n >= high", "Survived", undefined],
    ],
  );
  assert.equal(mutants?.filter((m) => m.status === "Killed").length, 6);

  // Its row in a table as the README's: the other groups' rows stay, and a
  // group with none yet gets one.
  const begin =
    "<!-- mutation scores: begin (npm run test:mutation writes this table) -->";
  const end = "<!-- mutation scores: end -->";
  const doc = `Scores:\n\n${begin}\n\n| Group | Score |\n| --- | --- |\n| example | 10.0 % | 1 | 9 | 0 | 2026-01-01 |\n| other | 50.0 % | 1 | 1 | 0 | 2026-01-02 |\n\n${end}\n\nMore.\n`;
  const rows = new Map([["example", row("example", report, "2026-12-31")]]);
  assert.equal(
    withRows(doc, rows, ["example", "new", "other"]),
    `Scores:\n\n${begin}\n\n| Group | Score | Killed | Survived | Accepted | Run on |\n| --- | --- | --- | --- | --- | --- |\n| example | 85.7 % | 6 | 1 | 2 | 2026-12-31 |\n| new | not run | | | | |\n| other | 50.0 % | 1 | 1 | 0 | 2026-01-02 |\n\n${end}\n\nMore.\n`,
  );
});

test("npm run test:mutation -- --list names the groups, the README has a row for each, and an unknown group or option is refused", async (t) => {
  const run = (...args: string[]) =>
    startChild(t, "npm", ["run", "--silent", "test:mutation", "--", ...args])
      .exited;
  const [list, group, option] = await Promise.all([
    run("--list"),
    run("config", "nope"),
    run("config", "--nope"),
  ]);
  const groups = (await readdir(join(repoRoot, "mutation", "groups"))).map(
    (f) => f.replace(/\.mjs$/, ""),
  );
  assert.deepEqual(groups, [
    "cluster",
    "config",
    "engine",
    "limits",
    "listener",
    "shutdown",
    "signals",
  ]);
  assert.equal(list?.code, 0, list?.stderr);
  assert.deepEqual(
    list?.stdout
      .trim()
      .split("\n")
      .map((l) => l.split(":")[0]),
    groups,
  );
  assert.match(list?.stdout ?? "", /^config: configuration: every setting/m);
  assert.deepEqual(
    [group?.code, group?.stderr],
    [
      2,
      "unknown group nope; groups: cluster, config, engine, limits, listener, shutdown, signals\n",
    ],
  );
  assert.deepEqual(
    [option?.code, option?.stderr],
    [2, "unknown option --nope\n"],
  );
  const readme = await readFile(join(repoRoot, "README.md"), "utf8");
  const table = readme.slice(
    readme.indexOf("<!-- mutation scores: begin"),
    readme.indexOf("<!-- mutation scores: end -->"),
  );
  assert.deepEqual(
    [...table.matchAll(/^\| (\w+) +\|/gm)].map((m) => m[1]),
    ["Group", ...groups],
  );
});
