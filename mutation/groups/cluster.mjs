// cluster supervision: workers started, restarted, stopped
import { group } from "../group.mjs";

export default group("cluster", {
  mutate: ["src/lifecycle/cluster.ts"],
  testFiles: ["test/cluster-supervision.test.ts", "test/cluster.test.ts"],
  breakBelow: 100,
});
