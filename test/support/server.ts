import type { TestContext } from "node:test";
import {
  type RunningServer,
  type ServerOptions,
  startServer,
} from "../../src/server.js";

/**
 * Start a real server on a free port for one test, torn down after it.
 * Stream pacing defaults to 0 so tests do not wait on the tutorial's one-second sleep.
 */
export async function startTestServer(
  t: TestContext,
  options: ServerOptions = {},
): Promise<RunningServer> {
  const server = await startServer({
    port: 0,
    host: "127.0.0.1",
    streamIntervalMs: 0,
    ...options,
  });
  t.after(() => server.close());
  return server;
}
