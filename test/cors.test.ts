import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { test } from "node:test";
import { startTestServer } from "./support/server.js";

const allowed = "https://app.example";
const other = "https://evil.example";

function preflight(
  url: string,
  origin: string,
  requestHeaders: string,
): Promise<Response> {
  return fetch(`${url}/Greeter/SayHello`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": requestHeaders,
    },
  });
}

/** A gRPC-Web unary request body: one uncompressed JSON message in its frame. */
function grpcWebBody(message: object): Uint8Array<ArrayBuffer> {
  const json = Buffer.from(JSON.stringify(message));
  const frame = Buffer.alloc(5 + json.length);
  frame.writeUInt32BE(json.length, 1);
  json.copy(frame, 5);
  return new Uint8Array(frame);
}

function list(header: string | null): string[] {
  return (header ?? "")
    .split(",")
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== "");
}

const corsHeaders = [
  "access-control-allow-origin",
  "access-control-allow-methods",
  "access-control-allow-headers",
  "access-control-max-age",
  "access-control-expose-headers",
];

function assertNoCors(res: Response): void {
  for (const h of corsHeaders) {
    assert.equal(res.headers.get(h), null, `no ${h}`);
  }
}

test("a preflight for a Connect call from an allowed origin gets the methods, headers and max age", async (t) => {
  const server = await startTestServer(t, { corsOrigins: [allowed] });
  const res = await preflight(
    server.url,
    allowed,
    "content-type,connect-protocol-version,connect-timeout-ms,authorization",
  );
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("access-control-allow-origin"), allowed);
  assert.deepEqual(list(res.headers.get("access-control-allow-methods")), [
    "post",
    "get",
  ]);
  const headers = list(res.headers.get("access-control-allow-headers"));
  for (const h of [
    "content-type",
    "connect-protocol-version",
    "connect-timeout-ms",
    // a bearer token, for a server with authentication on
    "authorization",
  ]) {
    assert.ok(headers.includes(h), `allows ${h}: ${headers.join(", ")}`);
  }
  assert.equal(res.headers.get("access-control-max-age"), "7200");
  assert.ok(list(res.headers.get("vary")).includes("origin"));
});

test("a preflight for a gRPC-Web call from an allowed origin allows its headers", async (t) => {
  const server = await startTestServer(t, { corsOrigins: [allowed] });
  const res = await preflight(
    server.url,
    allowed,
    "content-type,x-grpc-web,x-user-agent,grpc-timeout",
  );
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("access-control-allow-origin"), allowed);
  const headers = list(res.headers.get("access-control-allow-headers"));
  for (const h of [
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
  ]) {
    assert.ok(headers.includes(h), `allows ${h}: ${headers.join(", ")}`);
  }
  assert.ok(list(res.headers.get("vary")).includes("origin"));
});

test("a preflight from an origin not allowed gets no CORS header", async (t) => {
  const server = await startTestServer(t, { corsOrigins: [allowed] });
  const res = await preflight(server.url, other, "content-type");
  assert.equal(res.status, 204);
  assertNoCors(res);
  assert.ok(list(res.headers.get("vary")).includes("origin"));
});

test("an actual cross-origin gRPC-Web call from an allowed origin exposes grpc-status and grpc-message", async (t) => {
  const server = await startTestServer(t, { corsOrigins: [allowed] });
  const res = await fetch(`${server.url}/Greeter/SayHello`, {
    method: "POST",
    headers: {
      origin: allowed,
      "content-type": "application/grpc-web+json",
      "x-grpc-web": "1",
    },
    body: grpcWebBody({ name: "Ada" }),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("access-control-allow-origin"), allowed);
  const exposed = list(res.headers.get("access-control-expose-headers"));
  for (const h of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) {
    assert.ok(exposed.includes(h), `exposes ${h}: ${exposed.join(", ")}`);
  }
  assert.ok(list(res.headers.get("vary")).includes("origin"));
  const body = Buffer.from(await res.arrayBuffer());
  assert.ok(body.includes("Hello, Ada!"), "the call itself worked");
  assert.match(
    body.toString("latin1"),
    /grpc-status: ?0\r\n/,
    "with its status in the trailer frame",
  );
});

test("an actual cross-origin Connect call over HTTP/2 from an allowed origin gets the CORS headers", async (t) => {
  const server = await startTestServer(t, { corsOrigins: [allowed] });
  const session = http2.connect(server.url);
  t.after(() => session.close());
  const req = session.request({
    ":method": "POST",
    ":path": "/Greeter/SayHello",
    origin: allowed,
    "content-type": "application/json",
  });
  req.end(JSON.stringify({ name: "Ada" }));
  const [headers, body] = await Promise.all([
    new Promise<http2.IncomingHttpHeaders>((resolve) =>
      req.once("response", resolve),
    ),
    (async () => {
      let text = "";
      for await (const chunk of req) text += chunk;
      return text;
    })(),
  ]);
  assert.equal(headers[":status"], 200);
  assert.equal(headers["access-control-allow-origin"], allowed);
  assert.ok(
    list(String(headers["access-control-expose-headers"])).includes(
      "grpc-status",
    ),
  );
  assert.deepEqual(JSON.parse(body), { message: "Hello, Ada!" });
});

test("a call from an origin not allowed is served without CORS headers, so the browser hides it", async (t) => {
  const server = await startTestServer(t, { corsOrigins: [allowed] });
  const res = await fetch(`${server.url}/Greeter/SayHello`, {
    method: "POST",
    headers: { origin: other, "content-type": "application/json" },
    body: JSON.stringify({ name: "Ada" }),
  });
  assert.equal(res.status, 200);
  assertNoCors(res);
  assert.ok(list(res.headers.get("vary")).includes("origin"));
  await res.body?.cancel();
});

test('"*" allows any origin', async (t) => {
  const server = await startTestServer(t, { corsOrigins: ["*"] });
  const pre = await preflight(server.url, other, "content-type");
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "*");
  const res = await fetch(`${server.url}/Greeter/SayHello`, {
    method: "POST",
    headers: { origin: other, "content-type": "application/json" },
    body: JSON.stringify({ name: "Ada" }),
  });
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  assert.deepEqual(await res.json(), { message: "Hello, Ada!" });
});

test("with the default configuration no origin is allowed", async (t) => {
  const server = await startTestServer(t);
  assert.deepEqual(server.config.corsOrigins, []);
  const pre = await preflight(server.url, allowed, "content-type");
  assertNoCors(pre);
  assert.notEqual(pre.status, 204, "no preflight is answered");
  await pre.body?.cancel();
  const res = await fetch(`${server.url}/Greeter/SayHello`, {
    method: "POST",
    headers: { origin: allowed, "content-type": "application/json" },
    body: JSON.stringify({ name: "Ada" }),
  });
  assert.equal(res.status, 200);
  assertNoCors(res);
  await res.body?.cancel();
});
