/**
 * What `npm run test:mutation` mutates, and which test files judge each
 * mutant. Grouped so that a mutant runs only the tests written for its code,
 * fastest and most specific first (a killed mutant stops at the first test
 * file that fails), instead of the whole suite.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";

export interface Group {
  /** Short name: `npm run test:mutation -- <name>` runs this group alone. */
  readonly name: string;
  /** What the group covers, for the summary. */
  readonly about: string;
  /** Stryker `mutate` patterns (a `file:from-to` range mutates those lines only), from the repository root. */
  readonly mutate: (root: string) => Promise<string[]>;
  /** The test files that judge the group's mutants, in the order they run. */
  readonly testFiles: readonly string[];
  /**
   * "perTest": a mutant runs only the test files that executed its code in
   * the first, unmutated run. "off": every mutant runs every test file, for
   * code that only runs in child processes the tests start (Stryker measures
   * coverage in the test process only; the children still run the mutant).
   */
  readonly coverageAnalysis: "perTest" | "off";
  /**
   * Tests (node:test name patterns) left out of this group's runs: ones that
   * do not exercise the group's code but cost much (they still run in
   * `npm test`).
   */
  readonly skipTests?: readonly string[];
  /**
   * A test that runs longer fails (node --test-timeout; a test's own
   * timeout wins): a mutant that makes a call hang is then killed in
   * seconds, not by Stryker's timeout for the whole file. The groups' tests
   * take 4 s at most. @default 10000
   */
  readonly testTimeoutMs?: number;
}

const files =
  (...patterns: string[]) =>
  async () =>
    patterns;

export const groups: readonly Group[] = [
  {
    name: "engine",
    about:
      "the protocol engine: routing, the exchanges, the call, framing and the response writer, gRPC, gRPC-Web and Connect, what every call gets",
    mutate: files(
      "src/engine/**/*.ts",
      "src/protocol/**/*.ts",
      "src/protocol-*/**/*.ts",
      "src/calls/pipeline.ts",
      "src/calls/call-end.ts",
      "src/calls/interceptor.ts",
    ),
    testFiles: [
      "test/envelope-reader.test.ts",
      "test/request-body.test.ts",
      "test/response-writer.test.ts",
      "test/engine-handlers.test.ts",
      "test/engine.test.ts",
      "test/bad-input.test.ts",
      "test/errors.test.ts",
      "test/backpressure.test.ts",
    ],
    coverageAnalysis: "perTest",
    testTimeoutMs: 5_000,
  },
  {
    name: "config",
    about: "configuration: every setting parsed and validated once",
    mutate: files("src/config.ts"),
    testFiles: ["test/config.test.ts"],
    coverageAnalysis: "perTest",
  },
  {
    name: "limits",
    about:
      "limits: the settings handed to the listener and the HTTP servers (src/server.ts)",
    mutate: async (root) => [await listenerOptionsRange(root)],
    testFiles: ["test/limits.test.ts"],
    coverageAnalysis: "perTest",
  },
  {
    name: "cluster",
    about: "cluster supervision: workers started, restarted, stopped",
    mutate: files("src/lifecycle/cluster.ts"),
    testFiles: ["test/cluster-supervision.test.ts", "test/cluster.test.ts"],
    coverageAnalysis: "off",
  },
  {
    name: "listener",
    about:
      "the one-port listener: protocol sniffing, first-bytes and idle timeouts, stream claims",
    mutate: files(
      "src/transport/listener.ts",
      "src/transport/sniff.ts",
      "src/transport/connections.ts",
      "src/transport/claim-streams.ts",
      "src/transport/idle.ts",
    ),
    testFiles: [
      "test/listener.test.ts",
      "test/limits.test.ts",
      "test/goaway.test.ts",
      "test/protocols.test.ts",
      "test/shutdown.test.ts",
    ],
    coverageAnalysis: "perTest",
    skipTests: ["compiled entry point"],
  },
  {
    name: "shutdown",
    about:
      "shutdown: the drain, its grace period, the two-step GOAWAY, the calls in flight",
    mutate: files(
      "src/lifecycle/shutdown.ts",
      "src/transport/goaway.ts",
      "src/calls/inflight.ts",
    ),
    testFiles: [
      "test/drain.test.ts",
      "test/goaway.test.ts",
      "test/shutdown.test.ts",
    ],
    coverageAnalysis: "perTest",
    skipTests: ["compiled entry point"],
  },
  {
    name: "signals",
    about: "signals: SIGTERM and SIGINT drain, a second one exits at once",
    mutate: files("src/lifecycle/signals.ts"),
    testFiles: ["test/signals.test.ts"],
    coverageAnalysis: "perTest",
  },
];

/**
 * The lines of src/server.ts that turn settings into the listener's limits
 * (the createListener call), found by their text so the range follows edits.
 */
async function listenerOptionsRange(root: string): Promise<string> {
  const path = "src/server.ts";
  const lines = (await readFile(join(root, path), "utf8")).split("\n");
  const from = lines.findIndex((l) => l.includes("createListener(handler, {"));
  const to = lines.findIndex((l, i) => i > from && /^ {2}\}\);$/.test(l));
  if (from < 0 || to < 0) {
    throw new Error(`${path}: the createListener(handler, {...}) call is gone`);
  }
  return `${path}:${from + 1}-${to + 1}`;
}
