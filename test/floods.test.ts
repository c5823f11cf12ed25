import assert from "node:assert/strict";
import { test } from "node:test";
import { attacks, type Seen } from "../bench/floods/attacks.js";
import { flood, floodSettings } from "../bench/floods/flood.js";
import { mainWithTsx, startServerProcess } from "./support/child.js";

/**
 * The floods a server on the open internet meets (bench/floods/attacks.ts),
 * each run for two rounds against a real server process with the settings
 * docs/operations.md recommends against them, while a canary client on a
 * connection of its own calls SayHello throughout. Each passes when the
 * canary keeps at least 95 % of its calls with a p99 under a second, the
 * server answers a new client afterwards, the attacker was refused or
 * closed with the code this server gives (what Node's HTTP/2 and nghttp2
 * answer, or the server's own policies), nothing of the attack is kept
 * once it is over (no connection of its open, no call in flight), and the
 * second round grows the server's resident memory no more than the first
 * did (with 32 MiB to spare). bench/floods.ts runs the same against grpc-js
 * for the table in docs/operations.md.
 */

/** What the attacker must have seen, attack by attack. */
const expected: Record<string, (seen: Seen) => void> = {
  "rapid-reset": (seen) => {
    // Node's rapid-reset limit (nghttp2's stream reset rate) ends the connection.
    assert.ok(seen.has("GOAWAY INTERNAL_ERROR"), seen.summary().join(", "));
    assert.ok(seen.closedByServer > 0);
  },
  continuation: (seen) => {
    assert.ok(seen.has("GOAWAY INTERNAL_ERROR"), seen.summary().join(", "));
    assert.ok(seen.closedByServer > 0);
  },
  "settings-flood": (seen) => {
    // It reads nothing, so it sees no frame: its connection is closed.
    assert.ok(seen.closedByServer > 0, seen.summary().join(", "));
  },
  "ping-flood": (seen) => {
    assert.ok(
      seen.has('GOAWAY ENHANCE_YOUR_CALM "too_many_pings"'),
      seen.summary().join(", "),
    );
    assert.ok(seen.closedByServer > 0);
  },
  "streams-past-limit": (seen) => {
    // It opens them after acknowledging the limit: a connection error
    // (RFC 9113, 5.1.2), which nghttp2 answers so.
    assert.ok(
      seen.has(
        'GOAWAY PROTOCOL_ERROR "request HEADERS: max concurrent streams exceeded"',
      ),
      seen.summary().join(", "),
    );
    assert.ok(seen.closedByServer > 0);
  },
  "zero-window": (seen) => {
    // It answers no PING: keepalive drops it.
    assert.ok(
      seen.has("closed by the server, no GOAWAY"),
      seen.summary().join(", "),
    );
  },
  "hpack-bomb": (seen) => {
    assert.ok(
      seen.has("RST_STREAM ENHANCE_YOUR_CALM"),
      seen.summary().join(", "),
    );
  },
  "big-header": (seen) => {
    assert.ok(seen.has("GOAWAY COMPRESSION_ERROR"), seen.summary().join(", "));
    assert.ok(seen.closedByServer > 0);
  },
  "idle-connections": (seen) => {
    // The first hundred from its address get GOAWAY after the first-call
    // timeout; the rest are closed as they are accepted.
    assert.ok(seen.has("GOAWAY NO_ERROR (notice)"), seen.summary().join(", "));
    assert.ok(seen.has("closed by the server, no GOAWAY"));
  },
  slowloris: (seen) => {
    assert.ok(seen.has("HTTP 408, closed"), seen.summary().join(", "));
  },
  "gzip-bomb-grpc": (seen) => {
    assert.deepEqual(
      [...seen.counts.keys()],
      ["grpc-status RESOURCE_EXHAUSTED"],
      seen.summary().join(", "),
    );
  },
  "gzip-bomb-connect": (seen) => {
    assert.deepEqual(
      [...seen.counts.keys()],
      ["HTTP 429 resource_exhausted"],
      seen.summary().join(", "),
    );
  },
};

test("every flood has its expected outcome here", () => {
  assert.deepEqual(
    attacks.map((a) => a.name),
    Object.keys(expected),
  );
});

for (const attack of attacks) {
  test(`${attack.title}: the canary keeps being served, the attacker is refused or closed, and memory stays bounded`, {
    timeout: 60_000,
  }, async (t) => {
    const server = await startServerProcess(
      t,
      process.execPath,
      mainWithTsx(),
      {
        env: {
          ...process.env,
          PORT: "0",
          HOST: "127.0.0.1",
          ...floodSettings,
        },
      },
    );
    const result = await flood(
      {
        url: server.url.replace("//localhost:", "//127.0.0.1:"),
        pid: server.process.pid as number,
      },
      attack,
      { roundMs: 1500, rounds: 2 },
    );
    t.diagnostic(
      `attacker: ${result.rounds.map((r) => `${r.connections} connections, ${r.seen.join(", ")}`).join(" | ")}`,
    );
    t.diagnostic(
      `canary: ${result.canary.succeeded}/${result.canary.calls}, p99 ${result.canary.p99Ms.toFixed(0)} ms; RSS ${result.rssMb.map((m) => m.toFixed(0)).join(" → ")} MiB`,
    );
    assert.ok(
      result.canary.successRate >= 0.95,
      `canary ${result.canary.succeeded}/${result.canary.calls}: ${JSON.stringify(result.canary.failures)}`,
    );
    assert.ok(
      result.canary.p99Ms < 1000,
      `canary p99 ${result.canary.p99Ms} ms`,
    );
    assert.equal(result.answersAfter, true, "a new client is served after");
    for (const seen of result.allSeen) expected[attack.name]?.(seen);
    // Nothing of the attack is kept once it is over: its connections are
    // closed and none of its calls runs.
    const metricsUrl = (
      JSON.parse(server.stdout().split("\n")[0] as string) as {
        metricsUrl: string;
      }
    ).metricsUrl;
    const held = async () => {
      const text = await (await fetch(metricsUrl)).text();
      const open = Number(
        /^connect_greeter_connections_open (\d+)$/m.exec(text)?.[1],
      );
      let inFlight = 0;
      for (const m of text.matchAll(
        /^grpc_server_streams_in_flight\{[^}]*\} (\d+)$/gm,
      )) {
        inFlight += Number(m[1]);
      }
      return { open, inFlight };
    };
    const bound = performance.now() + 5000;
    let left = await held();
    while ((left.open > 2 || left.inFlight > 0) && performance.now() < bound) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      left = await held();
    }
    assert.ok(
      left.open <= 2 && left.inFlight === 0,
      `after the flood: ${left.open} connections open (the canary's and the last client's at most), ${left.inFlight} calls in flight`,
    );
    // The resident set grows while V8 and the allocator take memory for the
    // flood, and keeps most of it; a second round adds no more than the
    // first did (and 32 MiB of noise), where a leak would add as much again
    // and more.
    const [before, first, second] = result.rssMb as [number, number, number];
    assert.ok(
      second - first <= first - before + 32,
      `RSS ${before.toFixed(0)} → ${first.toFixed(0)} → ${second.toFixed(0)} MiB`,
    );
    assert.equal(server.process.exitCode, null, "the server still runs");
  });
}
