/**
 * Mutual TLS and tokens over TLS with real clients: certificates made here
 * with openssl (a CA, the server's certificate, clients' from that CA, from
 * another CA, and expired), grpc-js with SSL credentials and call
 * credentials, buf curl, curl, Python's grpcio and connect-node, against
 * servers that require a client certificate and servers for which it is
 * optional.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import {
  Health,
  HealthCheckResponse_ServingStatus,
} from "../gen/health/v1/health_pb.js";
import { Greeter } from "../gen/helloworld_pb.js";
import type { RunningServer } from "../src/server.js";
import { authSettings, tempDir } from "./support/auth.js";
import { repoRoot } from "./support/child.js";
import { LogCapture } from "./support/log-capture.js";
import { helloworldStubs, python, pythonEnv } from "./support/python.js";
import { startTestServer } from "./support/server.js";
import { type CertAndKey, certificateAuthority, issue } from "./support/tls.js";
import { jwksOf, TestIssuer } from "./support/tokens.js";
import { testTransport } from "./support/transports.js";

const run = promisify(execFile);

const ca = certificateAuthority("greeter test CA");
const otherCa = certificateAuthority("somebody else's CA");
const serverCert = issue(ca, {
  cn: "localhost",
  san: ["DNS:localhost", "IP:127.0.0.1"],
});
const billing = "spiffe://greeter.test/ns/prod/sa/billing";
const client = issue(ca, { cn: "billing", san: [`URI:${billing}`] });
const frontend = issue(ca, {
  cn: "frontend",
  san: ["URI:spiffe://greeter.test/ns/prod/sa/frontend"],
});
const stranger = issue(otherCa, { cn: "billing", san: [`URI:${billing}`] });
const expired = issue(ca, { cn: "billing", san: [`URI:${billing}`], days: -1 });
const issuer = await TestIssuer.create("key-1");

/** Health public; SayHello for the billing workload's certificate; StreamHello for a token and a certificate. */
const methods = {
  "/grpc.health.v1.Health/*": "public",
  "/Greeter/SayHello": {
    certificate: { san: ["spiffe://greeter.test/ns/*/sa/billing"] },
  },
  "/Greeter/StreamHello": {
    token: { scopes: ["greeter.stream"] },
    certificate: true,
  },
};

async function mtlsServer(
  t: TestContext,
  clientAuth: "require" | "optional",
  engine = true,
  policy: Record<string, unknown> = methods,
): Promise<{ server: RunningServer; log: LogCapture }> {
  const log = new LogCapture();
  const server = await startTestServer(t, {
    ...(await authSettings(t, {
      methods: policy,
      jwks: jwksOf(issuer),
      tls: { ...serverCert, clientCa: ca.cert, clientAuth },
    })),
    engine,
    logLevel: "info",
    logDestination: log.destination,
  });
  return { server, log };
}

const GrpcJsGreeter = grpc.loadPackageDefinition(
  protoLoader.loadSync(
    fileURLToPath(new URL("../proto/helloworld.proto", import.meta.url)),
    { keepCase: true, defaults: true },
  ),
).Greeter as grpc.ServiceClientConstructor;

/** A grpc-js client over TLS, with a client certificate if given, and a bearer token as call credentials if given. */
function grpcJs(
  t: TestContext,
  server: RunningServer,
  cert: CertAndKey | undefined,
  token?: string,
): grpc.Client & Record<string, CallableFunction> {
  let credentials = grpc.credentials.createSsl(
    ca.cert,
    cert?.key ?? null,
    cert?.cert ?? null,
  );
  if (token !== undefined) {
    credentials = grpc.credentials.combineChannelCredentials(
      credentials,
      grpc.credentials.createFromMetadataGenerator((_params, callback) => {
        const metadata = new grpc.Metadata();
        metadata.set("authorization", `Bearer ${token}`);
        callback(null, metadata);
      }),
    );
  }
  const c = new GrpcJsGreeter(`127.0.0.1:${server.port}`, credentials);
  t.after(() => c.close());
  return c as grpc.Client & Record<string, CallableFunction>;
}

/** SayHello with grpc-js: the reply's message, or the error's code and details. */
function sayHello(
  c: grpc.Client & Record<string, CallableFunction>,
): Promise<string> {
  return new Promise((resolve) => {
    c.sayHello(
      { name: "Billing" },
      { deadline: Date.now() + 10_000 },
      (e: grpc.ServiceError | null, reply?: { message: string }) =>
        resolve(
          e ? `${grpc.status[e.code]}: ${e.details}` : (reply?.message ?? ""),
        ),
    );
  });
}

/** StreamHello with grpc-js: every reply, or the error. */
function streamHello(
  c: grpc.Client & Record<string, CallableFunction>,
): Promise<string[] | string> {
  return new Promise((resolve) => {
    const replies: string[] = [];
    const call = c.streamHello(
      { name: "Billing" },
      { deadline: Date.now() + 10_000 },
    ) as grpc.ClientReadableStream<{ message: string }>;
    call.on("data", (r) => replies.push(r.message));
    call.on("error", (e: grpc.ServiceError) =>
      resolve(`${grpc.status[e.code]}: ${e.details}`),
    );
    call.on("end", () => resolve(replies));
  });
}

test("TLS_CLIENT_AUTH=require: grpc-js with the CA's client certificate is served and logged as its SPIFFE ID; none, another CA's or an expired one cannot connect, and the server keeps serving", async (t) => {
  const { server, log } = await mtlsServer(t, "require");
  assert.equal(await sayHello(grpcJs(t, server, client)), "Hello, Billing!");
  const line = await log.waitFor((l) => l.msg === "finished call");
  assert.equal(line.principal, billing);
  assert.equal(line.code, "ok");
  for (const [what, cert] of [
    ["no certificate", undefined],
    ["another CA's certificate", stranger],
    ["an expired certificate", expired],
  ] as const) {
    const answer = await sayHello(grpcJs(t, server, cert));
    assert.match(answer, /^UNAVAILABLE: /, what);
  }
  assert.equal(
    await sayHello(grpcJs(t, server, client)),
    "Hello, Billing!",
    "still serving",
  );
  assert.equal(
    log.calls().length,
    2,
    "no call reached the server without a certificate",
  );
});

test("TLS_CLIENT_AUTH=optional: the policy decides per method; health is public, SayHello needs the billing certificate, each missing, untrusted, expired or wrong identity refused with its reason", async (t) => {
  for (const engine of [true, false]) {
    const { server } = await mtlsServer(t, "optional", engine);
    const cases: [string, CertAndKey | undefined, string][] = [
      ["the billing certificate", client, "Hello, Billing!"],
      [
        "no certificate",
        undefined,
        "UNAUTHENTICATED: this method needs a client certificate",
      ],
      [
        "another CA's certificate",
        stranger,
        "UNAUTHENTICATED: the client certificate is not issued by a trusted CA",
      ],
      [
        "an expired certificate",
        expired,
        "UNAUTHENTICATED: the client certificate has expired",
      ],
      [
        "the frontend's certificate",
        frontend,
        "PERMISSION_DENIED: the client certificate names no identity this method allows",
      ],
    ];
    for (const [what, cert, answer] of cases) {
      assert.equal(
        await sayHello(grpcJs(t, server, cert)),
        answer,
        `${what}, engine ${engine}`,
      );
    }
    const health = createClient(
      Health,
      testTransport("grpc", "2", server.url, { ca: ca.cert }),
    );
    assert.equal(
      (await health.check({ service: "" })).status,
      HealthCheckResponse_ServingStatus.SERVING,
    );
    const text = await (await fetch(server.metricsUrl ?? "")).text();
    const failures = text
      .split("\n")
      .filter((l) => l.startsWith("connect_greeter_auth_failures_total{"))
      .sort();
    assert.deepEqual(failures, [
      'connect_greeter_auth_failures_total{grpc_service="Greeter",grpc_method="SayHello",reason="expired"} 1',
      'connect_greeter_auth_failures_total{grpc_service="Greeter",grpc_method="SayHello",reason="forbidden"} 1',
      'connect_greeter_auth_failures_total{grpc_service="Greeter",grpc_method="SayHello",reason="missing"} 1',
      'connect_greeter_auth_failures_total{grpc_service="Greeter",grpc_method="SayHello",reason="untrusted"} 1',
    ]);
  }
});

test("grpc-js with call credentials over SSL: without a client certificate a token-only method is served; a method that needs both gets its replies with a token and a certificate, and is refused with either alone", async (t) => {
  const { server, log } = await mtlsServer(t, "optional", true, {
    "/Greeter/SayHello": { token: { scopes: ["greeter.stream"] } },
    "/Greeter/StreamHello": methods["/Greeter/StreamHello"],
  });
  const token = await issuer.mint({
    sub: "svc-reports",
    scope: "greeter.stream",
  });
  assert.equal(
    await sayHello(grpcJs(t, server, undefined, token)),
    "Hello, Billing!",
    "SSL and a token, no client certificate",
  );
  assert.deepEqual(
    await streamHello(grpcJs(t, server, client, token)),
    [0, 1, 2, 3, 4].map((i) => `Hello Billing, message ${i}`),
  );
  assert.equal(
    await streamHello(grpcJs(t, server, undefined, token)),
    "UNAUTHENTICATED: this method needs a client certificate",
  );
  assert.equal(
    await streamHello(grpcJs(t, server, client)),
    "UNAUTHENTICATED: this method needs a bearer token",
  );
  const streamed = await log.waitFor(
    (l) =>
      l.msg === "finished call" &&
      l.code === "ok" &&
      l.procedure === "/Greeter/StreamHello",
  );
  // The token's subject names the caller; the certificate is the workload it came through.
  assert.equal(streamed.principal, "svc-reports");
});

/**
 * The client certificate, key and CA as files, for the command-line
 * clients, and the flags that name them, which buf curl and curl share.
 */
async function pemFiles(
  t: TestContext,
): Promise<{ ca: string; cert: string; key: string; flags: string[] }> {
  const dir = await tempDir(t);
  const files = {
    ca: join(dir, "ca.pem"),
    cert: join(dir, "client.pem"),
    key: join(dir, "client-key.pem"),
  };
  await writeFile(files.ca, ca.cert);
  await writeFile(files.cert, client.cert);
  await writeFile(files.key, client.key);
  return {
    ...files,
    flags: ["--cacert", files.ca, "--cert", files.cert, "--key", files.key],
  };
}

test("buf curl with --cert, --key and --cacert, and a bearer token in -H, calls both methods over gRPC and Connect", {
  timeout: 120_000,
}, async (t) => {
  const { server } = await mtlsServer(t, "require");
  const files = await pemFiles(t);
  const token = await issuer.mint({ scope: "greeter.stream" });
  for (const protocol of ["grpc", "connect"]) {
    const bufCurl = (method: string, ...flags: string[]) =>
      run(
        "npx",
        [
          "buf",
          "curl",
          "--schema",
          "proto",
          "--protocol",
          protocol,
          ...files.flags,
          ...flags,
          "-d",
          '{"name":"Buf"}',
          `${server.url}/Greeter/${method}`,
        ],
        { cwd: repoRoot },
      );
    const hello = await bufCurl("SayHello");
    assert.deepEqual(JSON.parse(hello.stdout), { message: "Hello, Buf!" });
    const stream = await bufCurl(
      "StreamHello",
      "-H",
      `Authorization: Bearer ${token}`,
    );
    assert.equal(
      stream.stdout.split("\n}\n").filter((s) => s.trim() !== "").length,
      5,
      protocol,
    );
  }
});

test("curl calls Connect with its client certificate and a token; without the token it gets 401, without the scope 403", async (t) => {
  // SayHello for a token with its scope, through a client certificate.
  const { server } = await mtlsServer(t, "require", true, {
    "/Greeter/SayHello": {
      token: { scopes: ["greeter.hello"] },
      certificate: true,
    },
  });
  const files = await pemFiles(t);
  const curl = async (...headers: string[]) => {
    const { stdout } = await run("curl", [
      "-sS",
      "-w",
      "\n%{http_code}",
      ...files.flags,
      "-H",
      "content-type: application/json",
      ...headers.flatMap((h) => ["-H", h]),
      "-d",
      '{"name":"Curl"}',
      `${server.url}/Greeter/SayHello`,
    ]);
    return stdout.split("\n");
  };
  const token = await issuer.mint({ scope: "greeter.hello" });
  assert.deepEqual(await curl(`Authorization: Bearer ${token}`), [
    '{"message":"Hello, Curl!"}',
    "200",
  ]);
  assert.deepEqual(await curl(), [
    '{"code":"unauthenticated","message":"this method needs a bearer token"}',
    "401",
  ]);
  const other = await issuer.mint({ scope: "greeter.read" });
  assert.deepEqual(await curl(`Authorization: Bearer ${other}`), [
    '{"code":"permission_denied","message":"the bearer token lacks scope greeter.hello"}',
    "403",
  ]);
});

test("Python grpcio over TLS with a client certificate is served; without one it cannot connect", {
  timeout: 60_000,
}, async (t) => {
  const stubs = await helloworldStubs(t);
  const { server } = await mtlsServer(t, "require");
  const files = await pemFiles(t);
  const env = pythonEnv();
  const script = join(repoRoot, "test/mtls/greeter_tls_client.py");
  const target = `127.0.0.1:${server.port}`;
  const ok = await run(
    python,
    [script, target, stubs, files.ca, files.cert, files.key],
    { env, timeout: 50_000 },
  );
  assert.equal(ok.stdout, "Hello, Python!\n");
  const refused = await run(
    python,
    [script, target, stubs, files.ca, "-", "-"],
    {
      env,
      timeout: 50_000,
    },
  ).catch((e: { stdout: string; code: number }) => e);
  assert.equal((refused as { code: number }).code, 1);
  assert.match((refused as { stdout: string }).stdout, /^error: UNAVAILABLE: /);
});

test("connect-node clients with a client certificate, over HTTP/1.1 and HTTP/2, reach the same verdicts", async (t) => {
  const { server } = await mtlsServer(t, "optional");
  for (const httpVersion of ["1.1", "2"] as const) {
    const greeter = (cert?: CertAndKey) =>
      createClient(
        Greeter,
        testTransport("connect", httpVersion, server.url, {
          ca: ca.cert,
          ...(cert === undefined ? {} : { cert: cert.cert, key: cert.key }),
        }),
      );
    assert.equal(
      (await greeter(client).sayHello({ name: "Node" })).message,
      "Hello, Node!",
    );
    await assert.rejects(
      greeter(frontend).sayHello({ name: "Node" }),
      (e: unknown) =>
        e instanceof ConnectError && e.code === Code.PermissionDenied,
    );
  }
});
