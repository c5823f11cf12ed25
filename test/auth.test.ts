/**
 * Bearer tokens and the access policy over real sockets: tokens minted here
 * with jose, a key set file, every bad input the server must refuse, each
 * with its status, its reason in the metrics and its log line (never the
 * token), on every protocol and HTTP version, and the same answer from the
 * protocol engine and from connect's handlers (ENGINE=off).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHmac } from "node:crypto";
import { once } from "node:events";
import * as http2 from "node:http2";
import { type TestContext, test } from "node:test";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus,
} from "../gen/health/v1/health_pb.js";
import { Greeter, HelloReplySchema } from "../gen/helloworld_pb.js";
import type { AuthFailureReason } from "../src/auth/failure.js";
import { principalKey } from "../src/auth/principal.js";
import type { RunningServer, ServerOptions } from "../src/server.js";
import { routes } from "../src/services/routes.js";
import { authSettings } from "./support/auth.js";
import { LogCapture } from "./support/log-capture.js";
import {
  envelope,
  grpcHeaders,
  helloRequest,
  type RawH2Options,
  type RawResponse,
  rawH1,
  rawH2,
} from "./support/raw.js";
import { startTestServer } from "./support/server.js";
import { jwksOf, rawJwt, TestIssuer } from "./support/tokens.js";
import {
  httpVersions,
  protocols,
  testTransport,
} from "./support/transports.js";
import { assertTook, until } from "./support/wait.js";

const run = promisify(execFile);

const issuer = await TestIssuer.create("key-1");
const rsa = await TestIssuer.create("rsa-1", "RS256");
/** Not in the key set: its tokens name a key the server does not have, or forge one it has. */
const stranger = await TestIssuer.create("key-9");

/** The policy of these tests: health public, each Greeter method with its own need, reflection not named. */
const methods = {
  "/grpc.health.v1.Health/*": "public",
  "/Greeter/SayHello": { token: { scopes: ["greeter.hello"] } },
  "/Greeter/StreamHello": { token: { claims: { team: "greeters" } } },
  "/Greeter/CollectGreetings": { token: true },
  "/Greeter/Chat": { token: true },
};

const good = { scope: "greeter.hello other", team: ["greeters", "x"] };

async function authServer(
  t: TestContext,
  options: ServerOptions & { flags?: string[] } = {},
): Promise<{ server: RunningServer; log: LogCapture }> {
  const { flags, ...rest } = options;
  const log = new LogCapture();
  const server = await startTestServer(t, {
    ...(await authSettings(t, {
      methods,
      jwks: jwksOf(issuer, rsa),
      flags,
    })),
    logLevel: "info",
    logDestination: log.destination,
    ...rest,
  });
  return { server, log };
}

function sayHello(authorization?: string): RawH2Options {
  return {
    headers: {
      ":path": "/Greeter/SayHello",
      ...grpcHeaders,
      ...(authorization === undefined ? {} : { authorization }),
    },
    body: [envelope(helloRequest("Alice"))],
  };
}

/** The gRPC status and message of a raw answer (grpc-message is percent-encoded). */
function grpcStatusOf(res: RawResponse): [number, string] {
  const trailers = res.headersEndStream ? res.headers : res.trailers;
  return [
    Number(trailers["grpc-status"]),
    decodeURIComponent(String(trailers["grpc-message"] ?? "")),
  ];
}

/** Every sample of a metric on the server's admin port, by its labels. */
async function samples(
  server: RunningServer,
  name: string,
): Promise<Record<string, number>> {
  const text = await (await fetch(server.metricsUrl ?? "")).text();
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const space = line.lastIndexOf(" ");
    out[line.slice(name.length, space)] = Number(line.slice(space + 1));
  }
  return out;
}

/** A token signed HS256 with the RSA key's public PEM as its secret: key confusion. */
async function keyConfusionToken(): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const unsigned = rawJwt(
    { alg: "HS256", kid: rsa.kid, typ: "JWT" },
    {
      iss: "https://issuer.test",
      aud: "greeter",
      sub: "mallory",
      exp: now + 300,
      ...good,
    },
  ).slice(0, -1);
  const mac = createHmac("sha256", await rsa.publicPem())
    .update(unsigned)
    .digest("base64url");
  return `${unsigned}.${mac}`;
}

const now = () => Math.floor(Date.now() / 1000);

/** Each bad credential, the Authorization value that carries it, and what the server must answer. */
const badCases: {
  what: string;
  authorization: () => Promise<string | undefined>;
  code: Code;
  message: string;
  reason: AuthFailureReason;
}[] = [
  {
    what: "no token",
    authorization: async () => undefined,
    code: Code.Unauthenticated,
    message: "this method needs a bearer token",
    reason: "missing",
  },
  {
    what: "an Authorization that is not Bearer",
    authorization: async () => "Basic YWxpY2U6c2VjcmV0",
    code: Code.Unauthenticated,
    message: 'the Authorization header must be "Bearer <token>"',
    reason: "malformed",
  },
  {
    what: "Bearer and no token",
    authorization: async () => "Bearer",
    code: Code.Unauthenticated,
    message: 'the Authorization header must be "Bearer <token>"',
    reason: "malformed",
  },
  {
    what: "a token of garbage",
    authorization: async () => "Bearer not.a-jwt.at-all%%",
    code: Code.Unauthenticated,
    message: "the bearer token is not a valid JWT",
    reason: "malformed",
  },
  {
    what: "alg none",
    authorization: async () =>
      `Bearer ${rawJwt(
        { alg: "none", kid: issuer.kid },
        {
          iss: "https://issuer.test",
          aud: "greeter",
          sub: "mallory",
          exp: now() + 300,
          ...good,
        },
      )}`,
    code: Code.Unauthenticated,
    message: "the bearer token's signing algorithm is not accepted",
    reason: "bad_signature",
  },
  {
    what: "HS256 signed with the RSA public key as its secret (key confusion)",
    authorization: async () => `Bearer ${await keyConfusionToken()}`,
    code: Code.Unauthenticated,
    message: "the bearer token's signing algorithm is not accepted",
    reason: "bad_signature",
  },
  {
    what: "a signature by another key under a known key id",
    authorization: async () =>
      `Bearer ${await stranger.mint(good, { kid: issuer.kid })}`,
    code: Code.Unauthenticated,
    message: "the bearer token's signature is not valid",
    reason: "bad_signature",
  },
  {
    what: "an unknown key id",
    authorization: async () => `Bearer ${await stranger.mint(good)}`,
    code: Code.Unauthenticated,
    message: "the bearer token is signed with a key the issuer does not list",
    reason: "unknown_key",
  },
  {
    what: "an expired token (past the clock tolerance)",
    authorization: async () =>
      `Bearer ${await issuer.mint({ ...good, exp: now() - 60 })}`,
    code: Code.Unauthenticated,
    message: "the bearer token has expired",
    reason: "expired",
  },
  {
    what: "a token not yet valid",
    authorization: async () =>
      `Bearer ${await issuer.mint({ ...good, nbf: now() + 120 })}`,
    code: Code.Unauthenticated,
    message: "the bearer token is not valid yet",
    reason: "not_yet_valid",
  },
  {
    what: "a wrong issuer",
    authorization: async () =>
      `Bearer ${await issuer.mint({ ...good, iss: "https://other.test" })}`,
    code: Code.Unauthenticated,
    message: "the bearer token is from another issuer",
    reason: "wrong_issuer",
  },
  {
    what: "a wrong audience",
    authorization: async () =>
      `Bearer ${await issuer.mint({ ...good, aud: "billing" })}`,
    code: Code.Unauthenticated,
    message: "the bearer token is meant for another audience",
    reason: "wrong_audience",
  },
  {
    what: "a token with no subject",
    authorization: async () =>
      `Bearer ${await issuer.mint({ ...good, sub: undefined })}`,
    code: Code.Unauthenticated,
    message: 'the bearer token lacks a valid "sub" claim',
    reason: "malformed",
  },
  {
    what: "a token that never expires",
    authorization: async () =>
      `Bearer ${await issuer.mint({ ...good, exp: undefined })}`,
    code: Code.Unauthenticated,
    message: 'the bearer token lacks a valid "exp" claim',
    reason: "malformed",
  },
  {
    what: "a valid token without the method's scope",
    authorization: async () =>
      `Bearer ${await issuer.mint({ scope: "greeter.other" })}`,
    code: Code.PermissionDenied,
    message: "the bearer token lacks scope greeter.hello",
    reason: "forbidden",
  },
];

for (const c of badCases) {
  test(`${c.what}: ${Code[c.code]} (${c.reason}), the same from the engine and connect's handlers, counted, logged without the token, and the server keeps serving`, async (t) => {
    const authorization = await c.authorization();
    const seen = [];
    for (const engine of [true, false]) {
      const { server, log } = await authServer(t, { engine });
      const refused = await rawH2(server.url, sayHello(authorization));
      assert.deepEqual(grpcStatusOf(refused), [c.code, c.message]);
      assert.equal(refused.body.length, 0, "no message");
      const ok = await rawH2(
        server.url,
        sayHello(`Bearer ${await issuer.mint(good)}`),
      );
      assert.deepEqual(grpcStatusOf(ok), [0, ""], "the next call succeeds");
      const line = await log.waitFor(
        (l) => l.msg === "finished call" && l.code !== "ok",
      );
      await log.waitFor((l) => l.msg === "finished call" && l.code === "ok");
      if (authorization !== undefined && authorization.length > 12) {
        const secret = authorization.slice(7);
        for (const l of log.lines) {
          assert.ok(
            !JSON.stringify(l).includes(secret),
            `the token is in a log line: ${JSON.stringify(l)}`,
          );
        }
      }
      const { time, pid, hostname, durationMs, peer, ...rest } = line;
      seen.push({
        served: server.engine.calls,
        answer: {
          status: refused.status,
          headers: { ...refused.headers, date: undefined },
          headersEndStream: refused.headersEndStream,
          trailers: refused.trailers,
        },
        line: rest,
        failures: await samples(server, "connect_greeter_auth_failures_total"),
        handled: await samples(server, "grpc_server_handled_total"),
      });
    }
    const [fast, slow] = seen;
    assert.equal(fast?.served, 2, "the engine served both calls");
    assert.equal(slow?.served, 0);
    assert.deepEqual({ ...fast, served: 0 }, slow);
    assert.deepEqual(fast?.failures, {
      [`{grpc_service="Greeter",grpc_method="SayHello",reason="${c.reason}"}`]: 1,
    });
    const codeName =
      c.code === Code.Unauthenticated ? "Unauthenticated" : "PermissionDenied";
    assert.equal(
      fast?.handled[
        `{grpc_type="unary",grpc_service="Greeter",grpc_method="SayHello",protocol="grpc",grpc_code="${codeName}"}`
      ],
      1,
      "the refused call is counted by its code",
    );
    const level = c.code === Code.Unauthenticated ? 30 : 40;
    assert.deepEqual(fast?.line, {
      level,
      procedure: "/Greeter/SayHello",
      protocol: "grpc",
      httpVersion: "2.0",
      code:
        c.code === Code.Unauthenticated
          ? "unauthenticated"
          : "permission_denied",
      error: c.message,
      msg: "finished call",
      // A refused token names no one; a valid one without the right does.
      ...(c.reason === "forbidden" ? { principal: "alice" } : {}),
    });
  });
}

test("every protocol and HTTP version, on both paths: no token is UNAUTHENTICATED, a good one is served, and the call's log line names its principal", {
  timeout: 60_000,
}, async (t) => {
  const token = await issuer.mint({ ...good, sub: "svc-billing" });
  for (const engine of [true, false]) {
    const { server, log } = await authServer(t, { engine });
    for (const protocol of protocols) {
      for (const httpVersion of httpVersions) {
        const client = createClient(
          Greeter,
          testTransport(protocol, httpVersion, server.url),
        );
        const what = `${protocol} over HTTP/${httpVersion}, engine ${engine}`;
        await assert.rejects(
          client.sayHello({ name: "Alice" }),
          (e: unknown) =>
            e instanceof ConnectError &&
            e.code === Code.Unauthenticated &&
            e.rawMessage === "this method needs a bearer token",
          what,
        );
        const headers = { authorization: `Bearer ${token}` };
        const reply = await client.sayHello({ name: "Alice" }, { headers });
        assert.equal(reply.message, "Hello, Alice!", what);
        // A server stream is checked at its start: its claim, then its replies.
        const streamed: string[] = [];
        for await (const r of client.streamHello(
          { name: "Bob" },
          { headers },
        )) {
          streamed.push(r.message);
        }
        assert.equal(streamed.length, 5, what);
        await assert.rejects(
          async () => {
            for await (const _ of client.streamHello(
              { name: "Bob" },
              {
                headers: {
                  authorization: `Bearer ${await issuer.mint({ team: "other" })}`,
                },
              },
            )) {
              assert.fail("a message came");
            }
          },
          (e: unknown) =>
            e instanceof ConnectError &&
            e.code === Code.PermissionDenied &&
            e.rawMessage === "the bearer token lacks claim team",
          what,
        );
      }
    }
    await until("the log lines", () => log.calls().length >= 4 * 6);
    const principals = new Set(
      log
        .calls()
        .filter((l) => l.code === "ok")
        .map((l) => l.principal),
    );
    assert.deepEqual([...principals], ["svc-billing"]);
  }
});

test("client and bidi streams are checked at their start, before the request body is read: a refused call is answered while its body is still open", async (t) => {
  for (const engine of [true, false]) {
    const { server } = await authServer(t, { engine });
    for (const path of ["/Greeter/CollectGreetings", "/Greeter/Chat"]) {
      const res = await rawH2(server.url, {
        headers: { ":path": path, ...grpcHeaders },
        // Headers and one message, and the request never ended.
        body: [envelope(helloRequest("A"))],
        end: false,
      });
      assert.deepEqual(
        grpcStatusOf(res),
        [Code.Unauthenticated, "this method needs a bearer token"],
        `${path}, engine ${engine}`,
      );
    }
    const token = await issuer.mint(good);
    const client = createClient(
      Greeter,
      testTransport("grpc", "2", server.url),
    );
    const collected = await client.collectGreetings(
      (async function* () {
        yield { name: "A" };
        yield { name: "B" };
      })(),
      { headers: { authorization: `Bearer ${token}` } },
    );
    assert.equal(collected.message, "Hello, A, B!");
  }
});

test("Connect answers 401 for a missing token and 403 for a token without the right, with the code in its JSON body", async (t) => {
  for (const engine of [true, false]) {
    const { server } = await authServer(t, { engine });
    const call = (authorization?: string) =>
      fetch(`${server.url}/Greeter/SayHello`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(authorization === undefined ? {} : { authorization }),
        },
        body: JSON.stringify({ name: "Alice" }),
      });
    const missing = await call();
    assert.equal(missing.status, 401);
    assert.deepEqual(await missing.json(), {
      code: "unauthenticated",
      message: "this method needs a bearer token",
    });
    const forbidden = await call(
      `Bearer ${await issuer.mint({ scope: "greeter.read" })}`,
    );
    assert.equal(forbidden.status, 403);
    assert.deepEqual(await forbidden.json(), {
      code: "permission_denied",
      message: "the bearer token lacks scope greeter.hello",
    });
    const ok = await call(`Bearer ${await issuer.mint(good)}`);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { message: "Hello, Alice!" });
  }
});

test("two Authorization headers, sent by curl over HTTP/2 and HTTP/1.1, are refused as malformed on both paths, whichever comes first", async (t) => {
  const valid = `Bearer ${await issuer.mint(good)}`;
  for (const engine of [true, false]) {
    const { server } = await authServer(t, { engine });
    for (const http of ["--http2-prior-knowledge", "--http1.1"]) {
      for (const pair of [
        [valid, "Bearer other"],
        ["Bearer other", valid],
      ]) {
        const { stdout } = await run("curl", [
          "-sS",
          http,
          "-w",
          "\n%{http_code} %{http_version}",
          "-H",
          "content-type: application/json",
          "-H",
          `Authorization: ${pair[0]}`,
          "-H",
          `Authorization: ${pair[1]}`,
          // No body: the gate answers before reading one, and curl 7.88
          // reports a stream the server closes while it still uploads as
          // an error (92) even after a complete response.
          "-X",
          "POST",
          `${server.url}/Greeter/SayHello`,
        ]);
        const [body, status] = stdout.split("\n");
        assert.equal(
          status,
          http === "--http1.1" ? "401 1.1" : "401 2",
          `${http}, engine ${engine}`,
        );
        assert.deepEqual(JSON.parse(body ?? ""), {
          code: "unauthenticated",
          message: "the request has more than one Authorization header",
        });
      }
    }
    assert.equal(server.engine.calls, engine ? 4 : 0);
  }
});

test("public methods need no token, and a method the policy does not name (reflection) is denied to everyone, even with a good token", async (t) => {
  const { server } = await authServer(t);
  const health = createClient(Health, testTransport("grpc", "2", server.url));
  assert.equal(
    (await health.check({ service: "" })).status,
    HealthCheckResponse_ServingStatus.SERVING,
  );
  const reflection = await rawH2(server.url, {
    headers: {
      ":path": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      ...grpcHeaders,
      authorization: `Bearer ${await issuer.mint(good)}`,
    },
    body: [],
  });
  assert.deepEqual(grpcStatusOf(reflection), [
    Code.PermissionDenied,
    "the access policy allows no one to call this method",
  ]);
  assert.deepEqual(
    await samples(server, "connect_greeter_auth_failures_total"),
    {
      '{grpc_service="grpc.reflection.v1.ServerReflection",grpc_method="ServerReflectionInfo",reason="forbidden"}': 1,
    },
  );
});

test("a handler reads who called from its context (principalKey), on both paths", async (t) => {
  const whoami: Partial<ServiceImpl<typeof Greeter>> = {
    sayHello(_req, ctx) {
      const principal = ctx.values.get(principalKey);
      return create(HelloReplySchema, {
        message: `${principal?.id} with ${[...(principal?.token?.scopes ?? [])].join(" ")}`,
      });
    },
  };
  for (const engine of [true, false]) {
    const { server } = await authServer(t, {
      engine,
      routes: (router) => {
        routes()(router);
        router.service(Greeter, whoami);
      },
    });
    const client = createClient(
      Greeter,
      testTransport("connect", "2", server.url),
    );
    const reply = await client.sayHello(
      { name: "x" },
      {
        headers: {
          authorization: `Bearer ${await issuer.mint({ ...good, sub: "carol" })}`,
        },
      },
    );
    assert.equal(reply.message, "carol with greeter.hello other");
  }
});

test("a token whose Authorization field is larger than the header limit is refused by the transport: RST_STREAM on HTTP/2, 431 on HTTP/1.1", async (t) => {
  const { server } = await authServer(t, { maxHeaderBytes: 4096 });
  const big = `Bearer ${await issuer.mint({ ...good, pad: "x".repeat(6000) })}`;
  // The limit holds once the client has acknowledged the server's
  // SETTINGS (RFC 9113, 6.5.3): a client's very first header block may
  // come before that, and is checked by the gate instead.
  const session = http2.connect(server.url);
  session.on("error", () => {});
  t.after(() => session.destroy());
  await once(session, "remoteSettings");
  const stream = session.request({
    ...sayHello(big).headers,
    ":method": "POST",
  });
  stream.on("error", () => {});
  const closed = new Promise((resolve) => stream.on("close", resolve));
  stream.end(envelope(helloRequest("Alice")));
  await closed;
  assert.equal(
    stream.rstCode,
    http2.constants.NGHTTP2_ENHANCE_YOUR_CALM,
    "the stream is reset",
  );
  const http1 = await fetch(`${server.url}/Greeter/SayHello`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: big },
    body: "{}",
  });
  assert.equal(http1.status, 431);
  const after = await rawH2(
    server.url,
    sayHello(`Bearer ${await issuer.mint(good)}`),
  );
  assert.deepEqual(grpcStatusOf(after), [0, ""]);
});

test("a verified token is remembered only until it expires: the same token is refused once its exp has passed", {
  timeout: 30_000,
}, async (t) => {
  const { server } = await authServer(t, {
    flags: ["--auth-clock-tolerance-ms", "0"],
  });
  const lifetimeMs = 2000;
  const exp = Math.ceil((Date.now() + lifetimeMs) / 1000);
  const token = await issuer.mint({ ...good, exp });
  const start = performance.now();
  const expiresInMs = exp * 1000 - Date.now();
  const client = createClient(Greeter, testTransport("grpc", "2", server.url));
  const headers = { authorization: `Bearer ${token}` };
  assert.equal(
    (await client.sayHello({ name: "A" }, { headers })).message,
    "Hello, A!",
  );
  let error: ConnectError | undefined;
  // Called again and again until refused: the refusal is what is timed.
  while (error === undefined) {
    try {
      await client.sayHello({ name: "A" }, { headers });
    } catch (e) {
      error = ConnectError.from(e);
      break;
    }
    assert.ok(
      performance.now() - start < expiresInMs + 5000,
      "still accepted 5 s after it expired",
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assertTook(
    performance.now() - start,
    expiresInMs,
    expiresInMs + 5000,
    "the token's acceptance",
  );
  assert.equal(error.code, Code.Unauthenticated);
  assert.equal(error.rawMessage, "the bearer token has expired");
});

test("a refused call gets the same answer, byte for byte, from the engine and from connect's handlers, in every protocol and on both HTTP versions", async (t) => {
  const forbidden = `Bearer ${await issuer.mint({ scope: "greeter.other" })}`;
  const cases: [string, Record<string, string>, Buffer, string | undefined][] =
    [
      [
        "gRPC-Web",
        { "content-type": "application/grpc-web+proto" },
        envelope(helloRequest("A")),
        undefined,
      ],
      [
        "Connect unary, protobuf",
        { "content-type": "application/proto" },
        Buffer.from(helloRequest("A")),
        undefined,
      ],
      [
        "Connect unary, JSON",
        { "content-type": "application/json" },
        Buffer.from('{"name":"A"}'),
        forbidden,
      ],
      [
        "Connect stream",
        { "content-type": "application/connect+json" },
        envelope(Buffer.from('{"name":"A"}')),
        undefined,
      ],
    ];
  const fast = await authServer(t, { engine: true });
  const slow = await authServer(t, { engine: false });
  for (const [what, headers, body, authorization] of cases) {
    const path =
      what === "Connect stream" ? "/Greeter/StreamHello" : "/Greeter/SayHello";
    const auth = authorization === undefined ? {} : { authorization };
    const request = {
      headers: { ":path": path, ...headers, ...auth },
      body: [body],
    };
    const h2 = (url: string) => rawH2(url, request);
    const h1 = (url: string) => rawH1(url, request);
    const pick = (r: RawResponse) => ({
      status: r.status,
      headers: {
        ...r.headers,
        date: undefined,
        connection: undefined,
        "keep-alive": undefined,
      },
      body: r.body.toString("hex"),
      trailers: r.trailers,
    });
    const [a2, b2, a1, b1] = [
      await h2(fast.server.url),
      await h2(slow.server.url),
      await h1(fast.server.url),
      await h1(slow.server.url),
    ];
    assert.deepEqual(pick(a2), pick(b2), `${what} over HTTP/2`);
    assert.deepEqual(pick(a1), pick(b1), `${what} over HTTP/1.1`);
    assert.notEqual(a2.status, 0);
  }
  assert.equal(fast.server.engine.calls, cases.length * 2);
  assert.equal(slow.server.engine.calls, 0);
});
