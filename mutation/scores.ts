/**
 * `tsx mutation/scores.ts <group>...`, after `npm run test:mutation` ran
 * those groups: their scores, from the JSON reports Stryker wrote
 * (reports/mutation/<group>/mutation.json), into the README's table, one
 * row per group (mutation/groups/); the other groups' rows stay as they were.
 */
import { readdir, readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { calculateMutationTestMetrics } from "mutation-testing-metrics";

/** A JSON report of Stryker's (mutation-testing-report-schema). */
export type Report = Parameters<typeof calculateMutationTestMetrics>[0];

const begin =
  "<!-- mutation scores: begin (npm run test:mutation writes this table) -->";
const end = "<!-- mutation scores: end -->";

/**
 * A group's row: Stryker's score (killed and timed out over the mutants run:
 * the one its break threshold checks), the survivors (not killed, or not
 * covered by any test) and the accepted survivors (disabled by a comment,
 * not run).
 */
export function row(group: string, report: Report, date: string): string {
  const m = calculateMutationTestMetrics(report).systemUnderTestMetrics.metrics;
  // Rounded down, so that a score just under a break of 100 does not show 100.0.
  const score = (Math.floor(m.mutationScore * 10) / 10).toFixed(1);
  return `| ${group} | ${score} % | ${m.totalDetected} | ${m.totalUndetected} | ${m.ignored} | ${date} |`;
}

/** `doc` with its table's rows of `rows`' groups replaced, one row for each of `groups`. */
export function withRows(
  doc: string,
  rows: ReadonlyMap<string, string>,
  groups: readonly string[],
): string {
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  if (from < 0 || to < from) throw new Error(`no "${begin}" ... "${end}"`);
  const kept = new Map(
    doc
      .slice(from + begin.length, to)
      .split("\n")
      .filter((l) => l.startsWith("| ") && !l.startsWith("| Group "))
      .map((l) => [l.split("|")[1]?.trim(), l]),
  );
  const table = [
    "| Group | Score | Killed | Survived | Accepted | Run on |",
    "| --- | --- | --- | --- | --- | --- |",
    ...groups.map(
      (g) => rows.get(g) ?? kept.get(g) ?? `| ${g} | not run | | | | |`,
    ),
  ];
  return `${doc.slice(0, from + begin.length)}\n\n${table.join("\n")}\n\n${doc.slice(to)}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = new URL("..", import.meta.url);
  const groups = (await readdir(new URL("mutation/groups", root)))
    .filter((f) => f.endsWith(".mjs"))
    .map((f) => f.slice(0, -".mjs".length));
  const date = new Date().toISOString().slice(0, 10);
  const rows = new Map<string, string>();
  for (const g of process.argv.slice(2)) {
    const path = new URL(`reports/mutation/${g}/mutation.json`, root);
    const text = await readFile(path, "utf8").catch(() => undefined);
    if (text === undefined) {
      console.error(`${g} wrote no report: its row stays as it was`);
      continue;
    }
    rows.set(g, row(g, JSON.parse(text) as Report, date));
  }
  const readme = new URL("README.md", root);
  await writeFile(
    readme,
    withRows(await readFile(readme, "utf8"), rows, groups),
  );
}
