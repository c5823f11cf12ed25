// limits: the settings handed to the listener and the HTTP servers (src/server.ts)
import { readFileSync } from "node:fs";
import { group } from "../group.mjs";

// Only the createListener call in src/server.ts, found by its text so that
// the range follows edits.
const server = "src/server.ts";
const lines = readFileSync(
  new URL(`../../${server}`, import.meta.url),
  "utf8",
).split("\n");
const from = lines.findIndex((l) => l.includes("createListener(handler, {"));
const to = lines.indexOf("  });", from);
if (from < 0 || to < 0) {
  throw new Error(`${server}: the createListener(handler, {...}) call is gone`);
}

export default group("limits", {
  mutate: [`${server}:${from + 1}-${to + 1}`],
  testFiles: ["test/limits.test.ts"],
  breakBelow: 100,
});
