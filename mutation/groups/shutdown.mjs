// shutdown: the drain, its grace period, the two-step GOAWAY, the calls in flight
import { group } from "../group.mjs";

export default group("shutdown", {
  mutate: [
    "src/lifecycle/shutdown.ts",
    "src/transport/goaway.ts",
    "src/calls/inflight.ts",
  ],
  testFiles: [
    "test/drain.test.ts",
    "test/goaway.test.ts",
    "test/shutdown.test.ts",
  ],
  skipTests: ["compiled entry point"],
  breakBelow: 100,
});
