/**
 * What every mutation group's Stryker configuration shares
 * (mutation/groups/<name>.mjs). A group mutates some of src/ and judges each
 * mutant by the group's own test files, fastest and most specific first (a
 * killed mutant stops at the first file that fails), not the whole suite.
 * A survivor no test should kill is accepted where it is, with a
 * `// Stryker disable next-line <mutator>: <reason>` comment; Stryker then
 * leaves it out of the run and the score, and lists it in its report as
 * Ignored, with the reason.
 */

// A test's `until` that names no bound gives up after this long in a
// mutation run (test/support/wait.ts; 10 s in `npm test`): every condition
// the groups' tests wait for that way comes true within a second here, and a
// mutant that keeps one from coming true then costs 3 s, not 10. Stryker's
// test processes inherit it.
process.env.TEST_WAIT_MS ??= "3000";

/**
 * @param {string} name  the group's name, its reports' folder under reports/mutation/
 * @param {object} group
 * @param {string[]} group.mutate  Stryker `mutate` patterns (`file:from-to` mutates those lines only)
 * @param {string[]} group.testFiles  the test files that judge the mutants, in the order they run
 * @param {number | null} group.breakBelow  a score below it fails the run (exit 1)
 * @param {string[]} [group.skipTests]  node:test name patterns left out: costly tests that do not
 *   exercise the group's code (they still run in `npm test`)
 * @param {number} [group.testTimeoutMs]  a test that runs longer fails (a test's own timeout wins),
 *   so a mutant that makes a call hang is killed in seconds, not by Stryker's timeout for the file
 * @param {string} [group.reportsDir]
 * @returns {import("@stryker-mutator/api/core").PartialStrykerOptions}
 */
export function group(
  name,
  {
    mutate,
    testFiles,
    breakBelow,
    skipTests = [],
    testTimeoutMs = 10_000,
    reportsDir = `reports/mutation/${name}`,
  },
) {
  return {
    mutate,
    testRunner: "tap",
    plugins: ["@stryker-mutator/tap-runner"],
    tap: {
      testFiles,
      // node:test prints TAP with this reporter; Stryker's hook counts
      // coverage and picks the active mutant; tsx runs the TypeScript.
      nodeArgs: [
        "--test-reporter=tap",
        "-r",
        "{{hookFile}}",
        "--import",
        "tsx",
        `--test-timeout=${testTimeoutMs}`,
        // Once its tests are done a file's process ends, even if a mutant
        // left a socket or timer behind: a leak alone is no failure here,
        // and waiting for Stryker's timeout would cost half a minute.
        "--test-force-exit",
        ...skipTests.map((p) => `--test-skip-pattern=${p}`),
        "{{testFile}}",
      ],
      forceBail: true,
    },
    // A mutant runs only the test files that ran its code in the first,
    // unmutated run (the TAP runner measures coverage per file, in the test
    // process: code that runs only in a child process it starts is never
    // covered, whatever this says).
    coverageAnalysis: "perTest",
    // One test process per core of this machine. The groups' test files
    // pass two at a time as they do alone (their time limits allow for a
    // loaded machine): a failure from load alone would count as a kill.
    concurrency: 2,
    // The project's typescript (7, native) has no JavaScript API for
    // Stryker's tsconfig rewriting, which only a tsconfig that extends or
    // references files outside the project needs (this one does not).
    tsconfigFile: ".no-tsconfig-to-rewrite",
    // Left out of Stryker's copy of the project: tools and output git
    // ignores (dist/ stays: the page the tests serve is dist/web).
    ignorePatterns: [
      "/reports",
      "/.tools",
      "/bench/results",
      "/.doc-ts-*",
      "*.cpuprofile",
    ],
    cleanTempDir: "always",
    incrementalFile: `${reportsDir}/incremental.json`,
    reporters: ["progress", "clear-text", "json", "html"],
    clearTextReporter: { reportTests: false },
    jsonReporter: { fileName: `${reportsDir}/mutation.json` },
    htmlReporter: { fileName: `${reportsDir}/mutation.html` },
    thresholds: { high: 90, low: 80, break: breakBelow },
  };
}
