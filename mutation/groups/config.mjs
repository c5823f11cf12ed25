// configuration: every setting parsed and validated once
import { group } from "../group.mjs";

export default group("config", {
  mutate: ["src/config.ts"],
  testFiles: ["test/config.test.ts"],
  breakBelow: 100,
});
