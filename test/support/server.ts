import {
  type RunningServer,
  type ServerOptions,
  startServer,
} from "../../src/server.js";

/**
 * Start a real server on a free port for one test, torn down after it.
 * Stream pacing defaults to 0 so tests do not wait on the tutorial's one-second sleep,
 * and logging to silent so test output stays readable (test/logging.test.ts reads logs).
 * `t` is a test's context, or anything with an `after` hook (node:test's
 * own, for a server that serves every test of a file).
 */
export async function startTestServer(
  t: { after(fn: () => Promise<void>): void },
  options: ServerOptions = {},
): Promise<RunningServer> {
  const server = await startServer({
    port: 0,
    host: "127.0.0.1",
    streamIntervalMs: 0,
    logLevel: "silent",
    // Many servers run at once in the tests: each its own free admin port.
    adminPort: 0,
    ...options,
  });
  t.after(() => server.close());
  return server;
}

/**
 * Whether a response in progress on `server` waits for its client to read:
 * the stream (or HTTP/1.1 response) under it has a full buffer. Node 22's
 * Http2ServerResponse does not say so itself; its stream does.
 */
export function writesBackedUp(server: {
  listener: { responses: ReadonlySet<unknown> };
}): boolean {
  return [...server.listener.responses].some((r) => {
    const w = (
      r !== null && typeof r === "object" && "stream" in r ? r.stream : r
    ) as { writableNeedDrain?: boolean };
    return w.writableNeedDrain === true;
  });
}
