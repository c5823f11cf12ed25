/**
 * `npm run test:mutation [-- <group>...] [--incremental]`: StrykerJS over the
 * code users' calls depend on (mutation/groups.ts), one group at a time,
 * each mutant judged by its group's test files, one test process at a time
 * (the machine is shared). Writes reports/mutation/<group>/mutation.json and
 * .html, then the summary (mutation/summary.ts).
 *
 * --incremental reuses the last run's results for mutants whose code and
 * tests did not change (Stryker's incremental mode): for iterating on tests.
 * --list names the groups.
 */
import { mkdir, rm } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { PartialStrykerOptions } from "@stryker-mutator/api/core";
import { Stryker } from "@stryker-mutator/core";
import { type Group, groups } from "./groups.js";
import { writeSummary } from "./summary.js";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Where a run writes its reports, and whether it reuses the last run's results. */
export interface RunOptions {
  /** @default reports/mutation */
  reportsDir?: string;
  /** Stryker's incremental mode. @default false */
  incremental?: boolean;
  /** No progress or score table on the console, and only Stryker's errors. @default false */
  quiet?: boolean;
}

/** Mutation-test one group, writing its JSON and HTML reports under `reportsDir`/<group>. */
export async function runGroup(
  group: Group,
  {
    reportsDir = defaultReportsDir,
    incremental = false,
    quiet = false,
  }: RunOptions = {},
): Promise<void> {
  const dir = join(reportsDir, group.name);
  await mkdir(dir, { recursive: true });
  const tempDir = join(root, ".stryker-tmp", group.name);
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
        `--test-timeout=${group.testTimeoutMs ?? 30_000}`,
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
    // Other engineers' tests share the machine's two cores.
    concurrency: 1,
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
    tempDirName: relative(root, tempDir),
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
  await new Stryker(options).runMutationTest();
  const minutes = (performance.now() - started) / 60_000;
  if (!quiet) console.log(`=== ${group.name} took ${minutes.toFixed(1)} min`);
}

const defaultReportsDir = join(root, "reports", "mutation");

async function main(args: string[]): Promise<number> {
  const incremental = args.includes("--incremental");
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
    await runGroup(group, { incremental });
  }
  await rm(join(root, ".stryker-tmp"), { recursive: true, force: true });
  const { unexplained } = await writeSummary(root, defaultReportsDir);
  return unexplained > 0 ? 1 : 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
