/**
 * The mutation report in short: the score of every file in scope and every
 * surviving mutant (file:line, what it changed, and why no test kills it, or
 * that nothing explains it), from the JSON reports Stryker wrote per group.
 * Always written to <reports>/summary.md; after a run of every group, also
 * to docs/mutation.md, and the scores into docs/testing.md.
 */
import { execFileSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Explained, explained } from "./explained.js";
import { type Group, groups } from "./groups.js";

/** The part of mutation-testing-report-schema this reads. */
interface Report {
  files: Record<
    string,
    {
      source: string;
      mutants: {
        id: string;
        mutatorName: string;
        replacement?: string;
        status: string;
        statusReason?: string;
        location: {
          start: { line: number; column: number };
          end: { line: number; column: number };
        };
      }[];
    }
  >;
}

/** A mutant no test killed. */
export interface Survivor {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly mutator: string;
  /** The code it replaced. */
  readonly original: string;
  readonly replacement: string;
  /** Survived (tests ran and passed), NoCoverage (no test ran the code) or Ignored (explained, not run). */
  readonly status: string;
  readonly reason: string | undefined;
}

export interface FileScore {
  readonly group: string;
  readonly file: string;
  readonly killed: number;
  readonly timeout: number;
  readonly survived: number;
  readonly noCoverage: number;
  /** Explained survivors left out of the run. */
  readonly ignored: number;
  readonly errors: number;
  /** Killed and timed-out mutants over all valid ones, in percent. */
  readonly score: number;
  /** The survivors explained in mutation/explained.ts. */
  readonly explained: number;
}

export interface Summary {
  readonly scores: FileScore[];
  readonly survivors: Survivor[];
  /** Groups with no report (not run yet). */
  readonly missing: string[];
  /** Entries of mutation/explained.ts for a file in the reports that matched no survivor. */
  readonly stale: Explained[];
  readonly unexplained: number;
}

/** `s` with its whitespace runs made single spaces. */
export const squash = (s: string) => s.replace(/\s+/g, " ").trim();

/** The source text of a location (lines and columns counted from 1, end exclusive). */
function textAt(
  lines: string[],
  start: { line: number; column: number },
  end: { line: number; column: number },
): string {
  if (start.line === end.line) {
    return (lines[start.line - 1] ?? "").slice(
      start.column - 1,
      end.column - 1,
    );
  }
  return [
    (lines[start.line - 1] ?? "").slice(start.column - 1),
    ...lines.slice(start.line, end.line - 1),
    (lines[end.line - 1] ?? "").slice(0, end.column - 1),
  ].join("\n");
}

/**
 * `code` without the "Stryker disable" comments mutation/run.ts put in the
 * copy Stryker ran on (a report's source is that copy's), so that an
 * explanation spanning two lines still matches when one of them has one.
 * Their reasons have no comment end in them ("*\/" is written "* /").
 */
export function withoutRunComments(code: string): string {
  return code.replaceAll(/\/\* Stryker disable next-line .*?\*\/ ?/g, "");
}

/** Whether `e` explains `s`, whose source lines are `context`. */
function matches(
  e: Explained,
  s: Omit<Survivor, "reason">,
  context: string,
): boolean {
  return (
    e.file === s.file &&
    (e.mutator === undefined || e.mutator === s.mutator) &&
    squash(context).includes(squash(e.code)) &&
    (e.replacement === undefined ||
      squash(e.replacement) === squash(s.replacement))
  );
}

/** The summary of the reports of `of` (by default every group) under `reportsDir`. */
export async function summarize(
  reportsDir: string,
  of: readonly Pick<Group, "name">[] = groups,
  explanations: readonly Explained[] = explained,
): Promise<Summary> {
  const scores: FileScore[] = [];
  const survivors: Survivor[] = [];
  const missing: string[] = [];
  const used = new Set<Explained>();
  for (const group of of) {
    let report: Report;
    try {
      report = JSON.parse(
        await readFile(join(reportsDir, group.name, "mutation.json"), "utf8"),
      ) as Report;
    } catch {
      missing.push(group.name);
      continue;
    }
    for (const [file, { source, mutants }] of Object.entries(report.files)) {
      const lines = source.split("\n");
      // Each comment sits on one line: strip them once per file.
      const bare = lines.map(withoutRunComments);
      const count = (status: string) =>
        mutants.filter((m) => m.status === status).length;
      let explainedHere = 0;
      for (const m of mutants) {
        // Ignored: explained, so left out of the run (mutation/run.ts).
        if (!["Survived", "NoCoverage", "Ignored"].includes(m.status)) continue;
        const s = {
          file,
          line: m.location.start.line,
          column: m.location.start.column,
          mutator: m.mutatorName,
          original: withoutRunComments(
            textAt(lines, m.location.start, m.location.end),
          ),
          replacement: m.replacement ?? "",
          status: m.status,
        };
        // Its own lines first; then with one line on either side, for an
        // explanation that names its neighbours to tell like lines apart.
        const own = bare
          .slice(m.location.start.line - 1, m.location.end.line)
          .join("\n");
        const around = bare
          .slice(
            Math.max(0, m.location.start.line - 2),
            m.location.end.line + 1,
          )
          .join("\n");
        const e =
          explanations.find((e) => matches(e, s, own)) ??
          explanations.find((e) => matches(e, s, around));
        if (e !== undefined) {
          used.add(e);
          explainedHere++;
        }
        survivors.push({
          ...s,
          reason:
            e?.reason ?? (m.status === "Ignored" ? m.statusReason : undefined),
        });
      }
      const killed = count("Killed");
      const timeout = count("Timeout");
      const survived = count("Survived");
      const noCoverage = count("NoCoverage");
      const ignored = count("Ignored");
      // Explained mutants left out of the run count as survivors.
      const valid = killed + timeout + survived + noCoverage + ignored;
      scores.push({
        group: group.name,
        file,
        killed,
        timeout,
        survived,
        noCoverage,
        ignored,
        errors: count("CompileError") + count("RuntimeError"),
        score: valid === 0 ? 100 : (100 * (killed + timeout)) / valid,
        explained: explainedHere,
      });
    }
  }
  survivors.sort((a, b) =>
    a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1,
  );
  return {
    scores,
    survivors,
    missing,
    stale: explanations.filter(
      (e) => !used.has(e) && scores.some((f) => f.file === e.file),
    ),
    unexplained: survivors.filter((s) => s.reason === undefined).length,
  };
}

const pct = (n: number) => `${n.toFixed(1)} %`;
const code = (s: string) => {
  const one = squash(s);
  const short = one.length > 70 ? `${one.slice(0, 67)}...` : one;
  return `\`${short.replaceAll("`", "'").replaceAll("|", "\\|")}\``;
};

/** The table of scores, one row per file. */
export function scoresTable(scores: readonly FileScore[]): string {
  const rows = scores.map(
    (s) =>
      `| ${s.group} | \`${s.file}\` | ${pct(s.score)} | ${s.killed + s.timeout} | ${s.survived + s.noCoverage + s.ignored} | ${s.explained} |`,
  );
  return [
    "| Group | File | Score | Killed | Survived | Of them explained |",
    "| --- | --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}

/** The table of scores, one row per group: what the README shows. */
export function groupsTable(scores: readonly FileScore[]): string {
  const rows = [...Map.groupBy(scores, (s) => s.group)].map(
    ([group, files]) => {
      const sum = (f: (s: FileScore) => number) =>
        files.reduce((n, s) => n + f(s), 0);
      const killed = sum((s) => s.killed + s.timeout);
      const survived = sum((s) => s.survived + s.noCoverage + s.ignored);
      const explained = sum((s) => s.explained);
      const all = killed + survived;
      const score = all === 0 ? 100 : (100 * killed) / all;
      const lowest = files.reduce((a, b) => (b.score < a.score ? b : a));
      return `| ${group} | ${pct(score)} | ${files.length === 1 ? "" : `${pct(lowest.score)} (\`${lowest.file}\`)`} | ${killed} of ${all} | ${survived - explained} |`;
    },
  );
  return [
    "| Group | Score | Lowest file | Killed | Survivors not explained |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}

function survivorsList(survivors: readonly Survivor[]): string {
  if (survivors.length === 0) return "None.";
  return survivors
    .map(
      (s) =>
        `- \`${s.file}:${s.line}\` ${s.mutator}${s.status === "NoCoverage" ? " (no test runs it)" : s.status === "Ignored" ? " (explained, not run)" : ""}: ${code(s.original)} → ${code(s.replacement)}. ${s.reason ?? "**Not explained: a gap in the tests.**"}`,
    )
    .join("\n");
}

function revision(root: string): string {
  try {
    return execFileSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
    }).trim();
  } catch {
    return "unknown";
  }
}

/** The page of the full report. */
export function page(summary: Summary, root: string): string {
  const date = new Date().toISOString().slice(0, 10);
  return `# Mutation testing: the latest report

Written by \`npm run test:mutation\` (see [Testing](testing.md)) on ${date}, at commit
\`${revision(root)}\`${summary.missing.length > 0 ? `, without the groups ${summary.missing.join(", ")}` : ""}.
A mutant is one small change to the code (a condition flipped, a line removed, a
constant changed); it is killed when a test fails. The score is killed over all
mutants; a survivor is either explained below (equivalent to the original, or only
a matter of speed or memory) or a gap in the tests. Explained mutants are left out
of a run unless it is asked to check them (\`--run-explained\`), and still count
as survivors.

## Scores

${scoresTable(summary.scores)}

## Survivors

${survivorsList(summary.survivors)}
${
  summary.stale.length === 0
    ? ""
    : `\n## Explanations that matched no survivor\n\nRemove them from \`mutation/explained.ts\`:\n\n${summary.stale.map((e) => `- \`${e.file}\` ${e.mutator ?? "any mutator"}: ${code(e.code)}`).join("\n")}\n`
}`;
}

/** Put `table` between the markers named `what` in the file at `path`, if it has them. */
async function writeBetweenMarkers(
  path: string,
  what: string,
  table: string,
): Promise<void> {
  const begin = `<!-- ${what}: begin (written by npm run test:mutation) -->`;
  const end = `<!-- ${what}: end -->`;
  const doc = await readFile(path, "utf8");
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  if (from < 0 || to < from) return;
  await writeFile(
    path,
    `${doc.slice(0, from + begin.length)}\n\n${table}\n\n${doc.slice(to)}`,
  );
}

/** Write the summary; after a run of every group, into docs/ as well. */
export async function writeSummary(
  root: string,
  reportsDir: string,
): Promise<Summary> {
  const summary = await summarize(reportsDir);
  const text = page(summary, root);
  await writeFile(join(reportsDir, "summary.md"), text);
  const written = [join(reportsDir, "summary.md")];
  if (
    summary.missing.length === 0 &&
    reportsDir === join(root, "reports", "mutation")
  ) {
    await writeFile(join(root, "docs", "mutation.md"), text);
    const testing = join(root, "docs", "testing.md");
    const readme = join(root, "README.md");
    await writeBetweenMarkers(
      testing,
      "mutation scores",
      scoresTable(summary.scores),
    );
    await writeBetweenMarkers(
      readme,
      "mutation groups",
      groupsTable(summary.scores),
    );
    written.push(join(root, "docs", "mutation.md"), testing, readme);
  }
  // The tables as Biome formats Markdown, so the docs stay as committed.
  try {
    execFileSync("npx", ["biome", "format", "--write", ...written], {
      cwd: root,
      stdio: "ignore",
    });
  } catch {
    // Unformatted is still readable.
  }
  console.log(
    `\nmutation summary: ${written[0]}\n${summary.scores.map((s) => `  ${pct(s.score).padStart(7)}  ${s.file}`).join("\n")}\n  ${summary.survivors.length} survivors, ${summary.unexplained} not explained${summary.missing.length > 0 ? `; groups not run: ${summary.missing.join(", ")}` : ""}`,
  );
  return summary;
}
