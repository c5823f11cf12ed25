import assert from "node:assert/strict";
import { test } from "node:test";
import { startChild } from "./support/child.js";
import { within } from "./support/wait.js";

// The process's log (src/logger.ts): lines gather in batches on their way to
// stdout. Whatever the batch holds reaches stdout in order, within a bound of
// its own, and at exit.

/** Run `code` as an ES module with the project's logger, and return its stdout. */
async function logFrom(t: import("node:test").TestContext, code: string) {
  const child = startChild(t, process.execPath, [
    "--import",
    "tsx",
    "--input-type=module",
    "--eval",
    `import { createLogger } from "./src/logger.ts";\n${code}`,
  ]);
  const exit = await child.exited;
  assert.equal(exit.code, 0, exit.stderr);
  return exit.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { msg: string });
}

test("lines still gathering when the process exits are written, in order", async (t) => {
  const lines = await logFrom(
    t,
    `const log = createLogger();
for (let i = 0; i < 5; i++) log.info("line " + i);
process.exit(0);`,
  );
  assert.deepEqual(
    lines.map((l) => l.msg),
    ["line 0", "line 1", "line 2", "line 3", "line 4"],
  );
});

test("a lone line reaches stdout on its own, though no more lines come to fill its batch", async (t) => {
  const child = startChild(t, process.execPath, [
    "--import",
    "tsx",
    "--input-type=module",
    "--eval",
    `import { createLogger } from "./src/logger.ts";
createLogger().info("alone");
setInterval(() => {}, 60_000);`,
  ]);
  // The flush delay is 100 ms; starting Node with tsx takes most of the bound.
  const line = await within(child.nextLine(), 5_000, "the lone line");
  assert.equal((JSON.parse(line) as { msg: string }).msg, "alone");
});

test("loggers on stdout share one batch: their lines stay in order, and the process gains no exit hook for each more", async (t) => {
  const lines = await logFrom(
    t,
    `process.on("warning", (w) => { console.error(w.name); process.exitCode = 3; });
const logs = [createLogger()];
const afterOne = process.listenerCount("exit");
for (let i = 1; i < 20; i++) logs.push(createLogger());
logs.forEach((log, i) => log.info("logger " + i));
logs[0].info("exit hooks added by 19 more: " + (process.listenerCount("exit") - afterOne));
process.exit();`,
  );
  assert.deepEqual(
    lines.map((l) => l.msg),
    [
      ...Array.from({ length: 20 }, (_, i) => `logger ${i}`),
      "exit hooks added by 19 more: 0",
    ],
  );
});
