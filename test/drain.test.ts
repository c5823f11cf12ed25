import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { test } from "node:test";
import { Greeter } from "../gen/helloworld_pb.js";
import { createGreeter } from "../src/services/greeter.js";
import { envelope, helloRequest } from "./support/raw.js";
import { startTestServer } from "./support/server.js";

// shutdown() (src/lifecycle/shutdown.ts) in process, where a test can see
// what the drain waits for. test/shutdown.test.ts drains real processes.

/** Resolves once `check` is true; fails after `ms`. */
async function until(
  what: string,
  check: () => boolean,
  ms = 10_000,
): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    assert.ok(performance.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test("the drain waits for a handler still stopping after its client left, though its response is gone", async (t) => {
  const cleanupMs = 500;
  let cleanedUp = false;
  let yielded = 0;
  const server = await startTestServer(t, {
    routes: (router) =>
      router.service(Greeter, {
        ...createGreeter({ streamIntervalMs: 0 }),
        async *streamHello() {
          try {
            for (;;) {
              yielded++;
              yield { message: "x".repeat(16 * 1024) };
            }
          } finally {
            // Slow cleanup, such as closing a cursor or flushing a buffer.
            await new Promise((resolve) => setTimeout(resolve, cleanupMs));
            cleanedUp = true;
          }
        },
      }),
  });
  const session = http2.connect(server.url);
  t.after(() => session.destroy());
  const stream = session.request({
    ":method": "POST",
    ":path": "/Greeter/StreamHello",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => {});
  // The client reads nothing: the server's writes wait for flow control.
  stream.pause();
  stream.end(envelope(helloRequest("slow reader")));
  const [response] = await new Promise<http2.ServerHttp2Stream[]>((resolve) => {
    const find = () => {
      const waiting = [...server.listener.responses].filter(
        (r) => "writableNeedDrain" in r && r.writableNeedDrain,
      ) as http2.ServerHttp2Stream[];
      if (waiting.length > 0) resolve(waiting);
      else setTimeout(find, 5);
    };
    find();
  });
  assert.ok(response && yielded > 1, "the handler waits for its client");
  // The client goes away while the handler waits to write: the response is
  // gone at once, the handler stops only after its cleanup.
  stream.close(http2.constants.NGHTTP2_CANCEL);
  await until("the response to go", () => server.listener.responses.size === 0);
  assert.equal(server.inflight.count, 1, "the handler is still stopping");
  const result = await server.shutdown(10_000);
  assert.equal(cleanedUp, true, "shutdown resolved before the handler stopped");
  assert.equal(result.callsAtStart, 1);
  assert.equal(result.callsEnded, 0);
  assert.ok(
    result.durationMs < 10_000,
    `drained in ${result.durationMs} ms, within the grace period`,
  );
});
