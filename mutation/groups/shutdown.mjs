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
  // Two survivors are left: shutdown.ts's HTTP/1.1-only check (without it an
  // HTTP/2 response in flight only prints a warning) and goaway.ts's final
  // GOAWAY for a peer that stops reading, which no test reaches.
  breakBelow: 98.8,
});
