/**
 * `npm run test:mutation [-- <group>...] [--incremental]`: StrykerJS over the
 * code users' calls depend on (mutation/groups.ts), one group at a time,
 * each mutant judged by its group's test files, two test processes at a
 * time. Writes reports/mutation/<group>/mutation.json and
 * .html, then the summary (mutation/summary.ts).
 *
 * --incremental reuses the last run's results for mutants whose code and
 * tests did not change (Stryker's incremental mode): for iterating on tests.
 * --run-explained runs the mutants mutation/explained.ts explains too (by
 * default they are left out), to check that no test kills them.
 * --list names the groups.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { PartialStrykerOptions } from "@stryker-mutator/api/core";
import { Stryker } from "@stryker-mutator/core";
import { type Explained, explained } from "./explained.js";
import { type Group, groups } from "./groups.js";
import { squash, writeSummary } from "./summary.js";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Where a run writes its reports, and whether it reuses the last run's results. */
export interface RunOptions {
  /** @default reports/mutation */
  reportsDir?: string;
  /** Stryker's incremental mode. @default false */
  incremental?: boolean;
  /** No progress or score table on the console, and only Stryker's errors. @default false */
  quiet?: boolean;
  /**
   * Run the mutants mutation/explained.ts explains too, to check that no
   * test kills them; by default they are left out of the run (Ignored, with
   * their reason) and counted as survivors. @default false
   */
  runExplained?: boolean;
  /** The explanations. @default mutation/explained.ts */
  explanations?: readonly Explained[];
}

/**
 * A copy of the project (the files git knows, dist/, node_modules linked) in
 * which Stryker runs a group: the lines that explained mutants change carry
 * a "Stryker disable next-line" comment with the reason, so Stryker leaves
 * them out (status Ignored) instead of running every test against them.
 * Only an explanation of one mutator's every mutant on its lines is left out
 * (one that names no mutator, or a replacement, is run): a comment names
 * mutators, not replacements. Lines keep their numbers.
 */
export async function projectCopy(
  dir: string,
  explanations: readonly Explained[],
): Promise<string> {
  const copy = join(dir, "project");
  await rm(copy, { recursive: true, force: true });
  const files = execFileSync(
    "git",
    [
      "-C",
      root,
      "ls-files",
      "-z",
      "--cached",
      "--others",
      "--exclude-standard",
    ],
    { encoding: "utf8" },
  )
    .split("\0")
    .filter((f) => f !== "" && existsSync(join(root, f)));
  for (const file of files) {
    await mkdir(dirname(join(copy, file)), { recursive: true });
    await cp(join(root, file), join(copy, file));
  }
  // The browser page's build, which tests serve; dependencies as they are.
  if (existsSync(join(root, "dist"))) {
    await cp(join(root, "dist"), join(copy, "dist"), { recursive: true });
  }
  await symlink(join(root, "node_modules"), join(copy, "node_modules"), "dir");
  // Only explanations of every mutant of one mutator on their lines: a
  // comment names mutators, not replacements.
  const byFile = Map.groupBy(
    explanations.filter(
      (e) => e.mutator !== undefined && e.replacement === undefined,
    ),
    (e) => e.file,
  );
  for (const [file, entries] of byFile) {
    const path = join(copy, file);
    if (!existsSync(path)) continue;
    const lines = (await readFile(path, "utf8")).split("\n");
    const comments = new Map<number, string[]>();
    for (const e of entries) {
      const span = e.code.split("\n").length;
      const first = squash(e.code.split("\n")[0] ?? "");
      lines.forEach((line, i) => {
        const here = squash(lines.slice(i, i + span).join("\n"));
        // A comment before a closing bracket belongs to no statement.
        if (!squash(line).includes(first) || /^\s*[)}\]]/.test(line)) return;
        if (!here.includes(squash(e.code))) return;
        const reason = e.reason.replaceAll("*/", "* /").replaceAll("\n", " ");
        const list = comments.get(i) ?? [];
        list.push(
          `/* Stryker disable next-line ${e.mutator ?? "all"}: ${reason} */`,
        );
        comments.set(i, list);
      });
    }
    for (const [i, list] of comments) {
      const line = lines[i] as string;
      const indent = /^\s*/.exec(line)?.[0] ?? "";
      lines[i] = `${indent}${list.join(" ")} ${line.slice(indent.length)}`;
    }
    await writeFile(path, lines.join("\n"));
  }
  return copy;
}

/**
 * How long a test's `until` waits for a condition that names no bound of its
 * own, in a mutation run. Every condition the groups' tests wait for this way
 * comes true within a second on this machine; the tests' own default (10 s)
 * would make each mutant that breaks one cost ten.
 */
const testWaitMs = 3_000;

/** Mutation-test one group, writing its JSON and HTML reports under `reportsDir`/<group>. */
export async function runGroup(
  group: Group,
  {
    reportsDir = defaultReportsDir,
    incremental = false,
    quiet = false,
    runExplained = false,
    explanations = explained,
  }: RunOptions = {},
): Promise<void> {
  const dir = join(reportsDir, group.name);
  await mkdir(dir, { recursive: true });
  const work = join(root, ".stryker-tmp", group.name);
  const copy = await projectCopy(work, runExplained ? [] : explanations);
  const options: PartialStrykerOptions = {
    testRunner: "tap",
    plugins: ["@stryker-mutator/tap-runner"],
    mutate: await group.mutate(root),
    tap: {
      testFiles: [...group.testFiles],
      // node:test prints TAP with this reporter; Stryker's hook counts
      // coverage and picks the active mutant; tsx runs the TypeScript.
      nodeArgs: [
        "--test-reporter=tap",
        "-r",
        "{{hookFile}}",
        "--import",
        "tsx",
        `--test-timeout=${group.testTimeoutMs ?? 10_000}`,
        // Once its tests are done a file's process ends, even if a mutant
        // left a socket or timer behind: a leak alone is no failure here,
        // and waiting for Stryker's timeout would cost half a minute.
        "--test-force-exit",
        ...(group.skipTests ?? []).map((p) => `--test-skip-pattern=${p}`),
        "{{testFile}}",
      ],
      forceBail: true,
    },
    coverageAnalysis: group.coverageAnalysis,
    // Two test runners, one per core of this machine. The groups' test
    // files pass two at a time as they do one at a time (their time limits
    // allow for a loaded machine): a failure from load alone would count as
    // a kill, so the runner was checked that way before it ran two.
    concurrency: 2,
    // The project's typescript (7, native) has no JavaScript API for
    // Stryker's tsconfig rewriting, which it needs only for a tsconfig that
    // extends or references files outside the project (this one does not).
    tsconfigFile: ".no-tsconfig-to-rewrite",
    // What the sandbox copy of the project leaves out: git's ignored build
    // output and tools (dist/ stays: the page tests serve dist/web).
    ignorePatterns: [
      "/reports",
      "/.tools",
      "/bench/results",
      "/.doc-ts-*",
      "*.cpuprofile",
    ],
    tempDirName: ".stryker-tmp",
    cleanTempDir: "always",
    incremental,
    incrementalFile: join(dir, "incremental.json"),
    reporters: quiet
      ? ["json", "html"]
      : ["progress", "clear-text", "json", "html"],
    logLevel: (quiet ? "error" : "info") as PartialStrykerOptions["logLevel"],
    clearTextReporter: { reportMutants: false, reportTests: false },
    jsonReporter: { fileName: join(dir, "mutation.json") },
    htmlReporter: { fileName: join(dir, "mutation.html") },
    // Stryker's own threshold exit codes are not used: the summary says
    // which survivors are unexplained.
    thresholds: { high: 80, low: 60, break: null },
  };
  const started = performance.now();
  if (!quiet) console.log(`\n=== mutation group ${group.name}: ${group.about}`);
  // Stryker works on the project in its working directory: the copy.
  const cwd = process.cwd();
  process.chdir(copy);
  // The test processes inherit it (see test/support/wait.ts): a mutant that
  // keeps a condition from coming true fails in seconds, not ten.
  const waitMs = process.env.TEST_WAIT_MS;
  process.env.TEST_WAIT_MS = String(testWaitMs);
  try {
    await new Stryker(options).runMutationTest();
  } finally {
    if (waitMs === undefined) delete process.env.TEST_WAIT_MS;
    else process.env.TEST_WAIT_MS = waitMs;
    process.chdir(cwd);
    await rm(work, { recursive: true, force: true });
  }
  const minutes = (performance.now() - started) / 60_000;
  if (!quiet) console.log(`=== ${group.name} took ${minutes.toFixed(1)} min`);
}

const defaultReportsDir = join(root, "reports", "mutation");

async function main(args: string[]): Promise<number> {
  const incremental = args.includes("--incremental");
  const runExplained = args.includes("--run-explained");
  const names = args.filter((a) => !a.startsWith("--"));
  if (args.includes("--list")) {
    for (const g of groups) console.log(`${g.name}: ${g.about}`);
    return 0;
  }
  const unknown = names.filter((n) => !groups.some((g) => g.name === n));
  if (unknown.length > 0) {
    console.error(
      `unknown group ${unknown.join(", ")}; groups: ${groups.map((g) => g.name).join(", ")}`,
    );
    return 2;
  }
  const chosen =
    names.length === 0 ? groups : groups.filter((g) => names.includes(g.name));
  for (const group of chosen) {
    await runGroup(group, { incremental, runExplained });
  }
  await rm(join(root, ".stryker-tmp"), { recursive: true, force: true });
  const { unexplained } = await writeSummary(root, defaultReportsDir);
  return unexplained > 0 ? 1 : 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
