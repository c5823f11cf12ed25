/**
 * The project's performance goals, each checked against one run: every ratio
 * is between servers measured in the same run, on the same Node, in
 * interleaved rounds.
 */
import { allScenarios, labelOf, type Scenario } from "./scenarios.js";
import { fmt, type IdleResult, type Row, ratio } from "./table.js";

/** One goal, as measured. */
export interface GoalResult {
  goal: string;
  target: string;
  /** What the run measured, or why it could not. */
  measured: string;
  /** undefined when the run did not measure what the goal needs. */
  met: boolean | undefined;
}

/** How many idle StreamHello calls the memory goal is about. */
const idleGoalStreams = 10_000;

/** Every goal against the rows and idle results of one run. */
export function evaluateGoals(
  rows: readonly Row[],
  idle: readonly IdleResult[],
): GoalResult[] {
  const row = (server: string, scenario: Scenario) =>
    rows.find((r) => r.server === server && r.scenario === scenario);
  /** `server`'s rate in `scenario` over `other`'s in `otherScenario`, at least (or at most) `bound`. */
  const compare = (
    goal: string,
    mine: Row | undefined,
    theirs: Row | undefined,
    value: (r: Row) => number,
    bound: { atLeast: number } | { atMost: number },
    target: string,
    show: (r: Row) => string,
  ): GoalResult => {
    if (mine === undefined || theirs === undefined) {
      return { goal, target, measured: "not measured", met: undefined };
    }
    const x = value(mine) / value(theirs);
    return {
      goal,
      target,
      measured: `${ratio(x)} (${show(mine)} against ${show(theirs)})`,
      met: "atLeast" in bound ? x >= bound.atLeast : x <= bound.atMost,
    };
  };
  const rate = (r: Row) => r.rate;
  const showRate = (r: Row) => fmt(r.rate).trim();
  const rss = (r: Row) => r.peakRssMb;
  const showRss = (r: Row) => `${r.peakRssMb.toFixed(0)} MB`;
  const grpcH2 = "gRPC unary (h2)";
  const results: GoalResult[] = [];
  // Every protocol at one speed: each scenario but Chat against gRPC unary on HTTP/2.
  for (const scenario of allScenarios) {
    if (scenario === "grpc-unary" || scenario === "chat") continue;
    results.push(
      compare(
        `${labelOf(scenario)} at one speed`,
        row("connect", scenario),
        row("connect", "grpc-unary"),
        rate,
        { atLeast: 0.8 },
        `≥ 0.80× own ${grpcH2}`,
        showRate,
      ),
    );
  }
  const jsonH1 = "connect-json-unary-h1";
  results.push(
    compare(
      `${labelOf(jsonH1)} at info`,
      row("connect", jsonH1),
      row("fastify", jsonH1),
      rate,
      { atLeast: 1 },
      "≥ 1.00× fastify (logs)",
      showRate,
    ),
    compare(
      `${labelOf(jsonH1)} at warn`,
      row("connect-quiet", jsonH1),
      row("fastify-quiet", jsonH1),
      rate,
      { atLeast: 1 },
      "≥ 1.00× fastify (no logs)",
      showRate,
    ),
    compare(
      `${grpcH2} at info`,
      row("connect", "grpc-unary"),
      row("grpc-js", "grpc-unary"),
      rate,
      { atLeast: 1.3 },
      "≥ 1.30× grpc-js",
      showRate,
    ),
    compare(
      `${grpcH2} at warn`,
      row("connect-quiet", "grpc-unary"),
      row("grpc-js", "grpc-unary"),
      rate,
      { atLeast: 1.5 },
      "≥ 1.50× grpc-js",
      showRate,
    ),
    compare(
      labelOf("stream"),
      row("connect", "stream"),
      row("grpc-js", "stream"),
      rate,
      { atLeast: 1.3 },
      "≥ 1.30× grpc-js",
      showRate,
    ),
    compare(
      labelOf("chat"),
      row("connect", "chat"),
      row("grpc-js", "chat"),
      rate,
      { atLeast: 1.2 },
      "≥ 1.20× grpc-js",
      showRate,
    ),
    // Token verification on, one key, every call the same (cached) token.
    compare(
      `${grpcH2} with a token`,
      row("connect-auth", "grpc-unary"),
      row("connect", "grpc-unary"),
      rate,
      { atLeast: 0.9 },
      "≥ 0.90× without authentication",
      showRate,
    ),
    // gRPC unary runs first on every server: the peak after it is the peak under unary load.
    compare(
      "peak RSS under unary load, at info",
      row("connect", "grpc-unary"),
      row("grpc-js", "grpc-unary"),
      rss,
      { atMost: 1 },
      "≤ 1.00× grpc-js",
      showRss,
    ),
    idleGoal(idle),
  );
  return results;
}

function idleGoal(idle: readonly IdleResult[]): GoalResult {
  const n = (count: number) => count.toLocaleString("en-US");
  const goal = `${n(idleGoalStreams)} idle StreamHello calls, peak RSS`;
  const target = "≤ 0.90× grpc-js";
  const mine = idle.find((r) => r.server === "connect");
  const theirs = idle.find((r) => r.server === "grpc-js");
  if (mine === undefined || theirs === undefined) {
    return { goal, target, measured: "not measured", met: undefined };
  }
  const x = mine.peakRssMb / theirs.peakRssMb;
  const measured = `${ratio(x)} (${mine.peakRssMb.toFixed(0)} MB against ${theirs.peakRssMb.toFixed(0)} MB)`;
  const shortfall =
    mine.streams !== idleGoalStreams
      ? `${n(mine.streams)} calls, not ${n(idleGoalStreams)}`
      : mine.succeeded < mine.streams || theirs.succeeded < theirs.streams
        ? `${n(mine.succeeded)} and ${n(theirs.succeeded)} of ${n(mine.streams)} calls completed`
        : undefined;
  const complete = shortfall === undefined;
  return {
    goal,
    target,
    measured: complete ? measured : `${measured} with ${shortfall}`,
    met: complete ? x <= 0.9 : undefined,
  };
}

export function formatGoals(goals: readonly GoalResult[]): string {
  const verdict = (met: boolean | undefined) =>
    met === undefined ? "not measured" : met ? "MET" : "NOT MET";
  const lines = [
    "| goal | target | measured | |",
    "|---|---|---|---|",
    ...goals.map(
      (g) => `| ${g.goal} | ${g.target} | ${g.measured} | ${verdict(g.met)} |`,
    ),
  ];
  const met = goals.filter((g) => g.met === true).length;
  const measured = goals.filter((g) => g.met !== undefined).length;
  return `Goals (connect-greeter at info unless "at warn"; ratios within this run): ${met} of ${measured} measured met\n\n${lines.join("\n")}`;
}
