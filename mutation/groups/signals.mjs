// signals: SIGTERM and SIGINT drain, a second one exits at once
import { group } from "../group.mjs";

export default group("signals", {
  mutate: ["src/lifecycle/signals.ts"],
  testFiles: ["test/signals.test.ts"],
  breakBelow: 100,
});
