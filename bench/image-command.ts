import { readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The Node flags the container image runs the server with (the Dockerfile's
 * CMD, between "node" and the script), so that the benchmark measures the
 * server as it is deployed.
 */
export function imageNodeFlags(root: string): string[] {
  const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");
  const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
  if (cmd === undefined) throw new Error("the Dockerfile has no CMD [...]");
  const argv = JSON.parse(cmd) as string[];
  if (argv[0] !== "node" || argv.at(-1) !== "dist/src/main.js") {
    throw new Error(
      `the Dockerfile's CMD is not node ... dist/src/main.js: ${cmd}`,
    );
  }
  return argv.slice(1, -1);
}
