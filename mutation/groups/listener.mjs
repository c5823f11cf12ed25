// the one-port listener: protocol sniffing, first-bytes and idle timeouts, stream claims
import { group } from "../group.mjs";

export default group("listener", {
  mutate: [
    "src/transport/listener.ts",
    "src/transport/sniff.ts",
    "src/transport/connections.ts",
    "src/transport/claim-streams.ts",
    "src/transport/idle.ts",
  ],
  testFiles: [
    "test/listener.test.ts",
    "test/limits.test.ts",
    "test/goaway.test.ts",
    "test/protocols.test.ts",
    "test/shutdown.test.ts",
  ],
  skipTests: ["compiled entry point"],
  breakBelow: 100,
});
