/**
 * Token keys fetched from an issuer's https:// JWKS endpoint, a real HTTPS
 * server started here (certificate made with openssl, trusted through
 * AUTH_JWKS_CA): rotation, unknown key ids without amplification, the
 * endpoint down or slow (UNAVAILABLE fast, public methods unaffected,
 * recovery), and the verified-token cache that spares a verification.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
} from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus,
} from "../gen/health/v1/health_pb.js";
import { Greeter } from "../gen/helloworld_pb.js";
import type { RunningServer } from "../src/server.js";
import { authSettings, tempDir } from "./support/auth.js";
import { LogCapture } from "./support/log-capture.js";
import { startTestServer } from "./support/server.js";
import { certificateAuthority, issue } from "./support/tls.js";
import { jwksOf, TestIssuer } from "./support/tokens.js";
import { testTransport } from "./support/transports.js";
import { assertTook, until } from "./support/wait.js";

const ca = certificateAuthority("issuer test CA");
const issuerCert = issue(ca, {
  cn: "localhost",
  san: ["DNS:localhost", "IP:127.0.0.1"],
});
const keyA = await TestIssuer.create("key-a");
const keyB = await TestIssuer.create("key-b");

const methods = {
  "/grpc.health.v1.Health/*": "public",
  "/Greeter/SayHello": { token: true },
};

/** How the endpoint behaves for the next requests: its key set, no answer, or this status and body. */
type Mode = "serve" | "hang" | { status: number; body: string };

/** The issuer's JWKS endpoint: its key set, its requests counted, down or slow on demand. */
class JwksEndpoint {
  keys: TestIssuer[];
  mode: Mode = "serve";
  /** When each request came (performance.now()). */
  readonly requests: number[] = [];
  readonly #server: https.Server;
  readonly #hanging = new Set<import("node:http").ServerResponse>();

  private constructor(keys: TestIssuer[]) {
    this.keys = keys;
    this.#server = https.createServer(issuerCert, (_req, res) => {
      this.requests.push(performance.now());
      if (this.mode === "hang") {
        this.#hanging.add(res);
        return;
      }
      if (typeof this.mode === "object") {
        res.writeHead(this.mode.status, { "content-type": "application/json" });
        res.end(this.mode.body);
        return;
      }
      res.writeHead(200, { "content-type": "application/jwk-set+json" });
      res.end(JSON.stringify(jwksOf(...this.keys)));
    });
  }

  static async start(
    t: TestContext,
    keys: TestIssuer[],
    port = 0,
  ): Promise<JwksEndpoint> {
    const endpoint = new JwksEndpoint(keys);
    await new Promise<void>((resolve) =>
      endpoint.#server.listen(port, "127.0.0.1", resolve),
    );
    t.after(() => endpoint.stop());
    return endpoint;
  }

  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `https://127.0.0.1:${port}/.well-known/jwks.json`;
  }

  stop(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** A port nothing listens on (for now). */
async function freePort(): Promise<number> {
  const server = https.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function serverWithJwks(
  t: TestContext,
  url: string,
  timing: { cooldownMs: number; timeoutMs?: number; maxAgeMs?: number },
): Promise<{
  server: RunningServer;
  log: LogCapture;
  greeter: Client<typeof Greeter>;
}> {
  const dir = await tempDir(t);
  await writeFile(join(dir, "ca.pem"), ca.cert);
  const log = new LogCapture();
  const server = await startTestServer(t, {
    ...(await authSettings(t, {
      methods,
      jwks: url,
      flags: [
        "--auth-jwks-ca",
        join(dir, "ca.pem"),
        "--auth-jwks-cooldown-ms",
        String(timing.cooldownMs),
        "--auth-jwks-timeout-ms",
        String(timing.timeoutMs ?? 2000),
        "--auth-jwks-max-age-ms",
        String(timing.maxAgeMs ?? 600_000),
      ],
    })),
    logLevel: "info",
    logDestination: log.destination,
  });
  const greeter = createClient(Greeter, testTransport("grpc", "2", server.url));
  return { server, log, greeter };
}

/** SayHello with `token`: "ok", or the error's code name and message. */
async function call(
  greeter: Client<typeof Greeter>,
  token: string,
): Promise<string> {
  try {
    await greeter.sayHello(
      { name: "A" },
      { headers: { authorization: `Bearer ${token}` } },
    );
    return "ok";
  } catch (e) {
    const error = ConnectError.from(e);
    return `${Code[error.code]}: ${error.rawMessage}`;
  }
}

const unknownKey =
  "Unauthenticated: the bearer token is signed with a key the issuer does not list";
const unavailable =
  "Unavailable: the keys that verify bearer tokens are unavailable; try again later";

test("the issuer rotates its keys: a token of a new key id is accepted once the cooldown since the last fetch has passed, with one fetch", {
  timeout: 30_000,
}, async (t) => {
  const endpoint = await JwksEndpoint.start(t, [keyA]);
  const cooldownMs = 300;
  const { greeter } = await serverWithJwks(t, endpoint.url, { cooldownMs });
  assert.equal(await call(greeter, await keyA.mint()), "ok");
  assert.equal(endpoint.requests.length, 1, "the fetch at start");
  endpoint.keys = [keyA, keyB];
  const tokenB = await keyB.mint();
  await until(
    "the cooldown since the last fetch to pass",
    () => performance.now() > (endpoint.requests.at(-1) ?? 0) + cooldownMs,
  );
  assert.equal(await call(greeter, tokenB), "ok");
  assert.equal(endpoint.requests.length, 2, "one fetch for the new key");
  assert.equal(await call(greeter, await keyA.mint()), "ok");
  assert.equal(await call(greeter, await keyB.mint()), "ok");
  assert.equal(endpoint.requests.length, 2, "known keys fetch nothing");
});

test("tokens with unknown key ids are refused, and fetch the key set at most once per cooldown, never once per call", {
  timeout: 30_000,
}, async (t) => {
  const endpoint = await JwksEndpoint.start(t, [keyA]);
  const cooldownMs = 1000;
  const { server, greeter } = await serverWithJwks(t, endpoint.url, {
    cooldownMs,
  });
  assert.equal(await call(greeter, await keyA.mint()), "ok");
  const strangers = await Promise.all(
    Array.from({ length: 20 }, (_, i) => TestIssuer.create(`made-up-${i}`)),
  );
  const tokens = await Promise.all(strangers.map((s) => s.mint()));
  // One after another: each would have its own fetch if calls could cause one.
  const answers: string[] = [];
  for (const tk of tokens) answers.push(await call(greeter, tk));
  assert.deepEqual(new Set(answers), new Set([unknownKey]));
  // Within the cooldown of the start's fetch: none; after it: one for all.
  assert.ok(
    endpoint.requests.length <= 2,
    `${endpoint.requests.length} fetches for 20 unknown keys`,
  );
  await until(
    "the cooldown to pass",
    () => performance.now() > (endpoint.requests.at(-1) ?? 0) + cooldownMs,
  );
  const before = endpoint.requests.length;
  const again: string[] = [];
  for (const tk of tokens) again.push(await call(greeter, tk));
  assert.deepEqual(new Set(again), new Set([unknownKey]));
  assert.equal(endpoint.requests.length, before + 1, "one fetch for 20 calls");
  const text = await (await fetch(server.metricsUrl ?? "")).text();
  assert.match(
    text,
    /connect_greeter_auth_failures_total\{grpc_service="Greeter",grpc_method="SayHello",reason="unknown_key"\} 40\n/,
  );
});

test("the JWKS endpoint down: calls that need a token fail fast with UNAVAILABLE, public methods keep working, one error line per failed fetch, and calls succeed once it is back", {
  timeout: 30_000,
}, async (t) => {
  const port = await freePort();
  const cooldownMs = 500;
  const { greeter, server, log } = await serverWithJwks(
    t,
    `https://127.0.0.1:${port}/.well-known/jwks.json`,
    { cooldownMs },
  );
  const token = await keyA.mint();
  const start = performance.now();
  assert.equal(await call(greeter, token), unavailable);
  assertTook(performance.now() - start, 0, 1000, "the first refusal");
  // Within the cooldown: no fetch, no wait.
  const fast = performance.now();
  for (let i = 0; i < 10; i++) {
    assert.equal(await call(greeter, token), unavailable);
  }
  assertTook(performance.now() - fast, 0, 1000, "ten refusals");
  const health = createClient(Health, testTransport("grpc", "2", server.url));
  assert.equal(
    (await health.check({ service: "" })).status,
    HealthCheckResponse_ServingStatus.SERVING,
  );
  const errors = log.lines.filter((l) => l.level === 50);
  assert.equal(errors.length, 1, "one error line for the failed fetch");
  assert.equal(
    errors[0]?.msg,
    "cannot fetch the keys that verify bearer tokens; calls that need a token fail with UNAVAILABLE until a fetch succeeds",
  );
  assert.equal(
    errors[0]?.jwks,
    `https://127.0.0.1:${port}/.well-known/jwks.json`,
  );
  assert.match(
    String((errors[0]?.err as { message?: string } | undefined)?.message),
    /ECONNREFUSED/,
  );

  const endpoint = await JwksEndpoint.start(t, [keyA], port);
  const back = performance.now();
  let answer = await call(greeter, token);
  while (answer !== "ok") {
    assert.equal(answer, unavailable);
    assert.ok(
      performance.now() - back < cooldownMs + 2000,
      "still refused 2 s after the cooldown",
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    answer = await call(greeter, token);
  }
  assertTook(performance.now() - back, 0, cooldownMs + 2000, "the recovery");
  assert.equal(endpoint.requests.length, 1, "one fetch when it came back");
});

test("the JWKS endpoint slow: the first call fails with UNAVAILABLE at the fetch timeout, later ones at once until the cooldown has passed", {
  timeout: 30_000,
}, async (t) => {
  const endpoint = await JwksEndpoint.start(t, [keyA]);
  endpoint.mode = "hang";
  const timeoutMs = 400;
  const start = performance.now();
  const { greeter } = await serverWithJwks(t, endpoint.url, {
    cooldownMs: 5000,
    timeoutMs,
  });
  const token = await keyA.mint();
  assert.equal(await call(greeter, token), unavailable);
  // The fetch started with the server; the call waited for its timeout.
  assertTook(
    performance.now() - start,
    timeoutMs,
    timeoutMs + 2000,
    "the first refusal",
  );
  const fast = performance.now();
  assert.equal(await call(greeter, token), unavailable);
  assertTook(performance.now() - fast, 0, timeoutMs / 2, "the next refusal");
  assert.equal(
    endpoint.requests.length,
    1,
    "one fetch, no more within the cooldown",
  );
});

test("a verified token is not verified again while remembered: with the issuer gone and its keys too old, it is still accepted, and a new token is not", {
  timeout: 30_000,
}, async (t) => {
  const endpoint = await JwksEndpoint.start(t, [keyA]);
  const maxAgeMs = 1000;
  const { greeter } = await serverWithJwks(t, endpoint.url, {
    cooldownMs: 200,
    maxAgeMs,
  });
  const remembered = await keyA.mint();
  assert.equal(await call(greeter, remembered), "ok");
  const fetchedAt = endpoint.requests.at(-1) ?? 0;
  await endpoint.stop();
  // jose counts the keys' age from when their answer arrived, a little after
  // the endpoint saw the request: a loaded machine needs the margin.
  await until(
    "the keys to grow too old",
    () => performance.now() > fetchedAt + maxAgeMs + 500,
    maxAgeMs + 5000,
  );
  assert.equal(await call(greeter, remembered), "ok");
  assert.equal(await call(greeter, await keyA.mint()), unavailable);
});

test("a JWKS endpoint that answers 204, 500, a redirect or something that is not a key set: UNAVAILABLE with one error line each, and the server keeps serving", {
  timeout: 30_000,
}, async (t) => {
  const answers: { status: number; body: string }[] = [
    { status: 204, body: "" },
    { status: 500, body: "oops" },
    { status: 302, body: "" },
    { status: 200, body: "not json" },
    { status: 200, body: '{"keys":"none"}' },
  ];
  for (const answer of answers) {
    const endpoint = await JwksEndpoint.start(t, [keyA]);
    endpoint.mode = answer;
    const { greeter, server, log } = await serverWithJwks(t, endpoint.url, {
      cooldownMs: 5000,
    });
    const what = `${answer.status} ${JSON.stringify(answer.body)}`;
    assert.equal(await call(greeter, await keyA.mint()), unavailable, what);
    const errors = log.lines.filter((l) => l.level === 50);
    assert.equal(errors.length, 1, what);
    const health = createClient(Health, testTransport("grpc", "2", server.url));
    assert.equal(
      (await health.check({ service: "" })).status,
      HealthCheckResponse_ServingStatus.SERVING,
      what,
    );
  }
});
