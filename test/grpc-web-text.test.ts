import assert from "node:assert/strict";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { Code } from "@connectrpc/connect";
import { streamHelloCount } from "../src/services/greeter.js";
import { LogCapture } from "./support/log-capture.js";
import {
  base64Text,
  envelope,
  envelopes,
  fromBase64Text,
  helloReply,
  helloRequest,
  type RawRequest,
  type RawResponse,
  rawH1,
  rawH2,
} from "./support/raw.js";
import { startTestServer } from "./support/server.js";
import { httpVersions } from "./support/transports.js";
import { until } from "./support/wait.js";

// gRPC-Web's text mode (application/grpc-web-text), which connect-es does not
// speak, so there is no engine-off answer to compare with: these tests hold
// it to PROTOCOL-WEB.md ("Text-encoded (response) streams"), and
// test/browser.test.ts to Google's grpc-web client.

const send = { "1.1": rawH1, "2": rawH2 } as const;

/** A text-mode request to `method` with `body` (base64 text, in these chunks), as Google's client sends it. */
function textRequest(
  method: string,
  body: Uint8Array[],
  headers: Record<string, string> = {},
): RawRequest {
  return {
    headers: {
      ":path": `/Greeter/${method}`,
      "content-type": "application/grpc-web-text",
      accept: "application/grpc-web-text",
      "x-grpc-web": "1",
      ...headers,
    },
    body,
  };
}

/** An answer's messages and trailers, its body decoded from base64 as a client would. */
function decoded(res: RawResponse) {
  const frames = envelopes(fromBase64Text(res.body));
  const last = frames.at(-1);
  assert.equal(last?.flags, 0x80, "the last message is the trailer");
  const trailers: Record<string, string> = {};
  for (const line of String(last?.data).split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) trailers[line.slice(0, colon)] = line.slice(colon + 2);
  }
  return {
    replies: frames.slice(0, -1).map((f) => helloReply(f.data).message),
    trailers,
  };
}

for (const http of httpVersions) {
  test(`text mode over HTTP/${http}: SayHello and StreamHello answer in base64, through the engine, with the call logged and counted as gRPC-Web`, async (t) => {
    const log = new LogCapture();
    const server = await startTestServer(t, {
      logDestination: log.destination,
      logLevel: "info",
    });
    const request = base64Text(envelope(helloRequest("Ada")));
    const unary = await send[http](
      server.url,
      textRequest("SayHello", [request]),
    );
    assert.equal(unary.status, 200);
    assert.equal(
      unary.headers["content-type"],
      "application/grpc-web-text+proto",
    );
    assert.deepEqual(decoded(unary), {
      replies: ["Hello, Ada!"],
      trailers: { "grpc-status": "0" },
    });
    const stream = await send[http](
      server.url,
      textRequest("StreamHello", [request]),
    );
    assert.deepEqual(decoded(stream), {
      replies: Array.from(
        { length: streamHelloCount },
        (_, i) => `Hello Ada, message ${i}`,
      ),
      trailers: { "grpc-status": "0" },
    });
    // Each message went out as its own padded base64, as PROTOCOL-WEB.md
    // says a server flushes them: every reply decodes on its own.
    const text = stream.body.toString("latin1");
    assert.ok(text.indexOf("=") < text.length - 4, "padding inside the body");
    assert.equal(server.engine.calls, 2);
    await until("both calls logged", () => log.calls().length === 2);
    assert.deepEqual(
      log.calls().map((l) => [l.procedure, l.protocol, l.httpVersion, l.code]),
      ["/Greeter/SayHello", "/Greeter/StreamHello"].map((p) => [
        p,
        "grpc-web",
        http === "2" ? "2.0" : "1.1",
        "ok",
      ]),
    );
    const handled = (
      await server.metrics.registry
        .getSingleMetric("grpc_server_handled_total")
        ?.get()
    )?.values.filter((v) => v.labels.protocol === "grpc-web");
    assert.deepEqual(
      handled?.map((v) => [v.labels.grpc_method, v.labels.grpc_code, v.value]),
      [
        ["SayHello", "OK", 1],
        ["StreamHello", "OK", 1],
      ],
    );
  });

  test(`text mode over HTTP/${http}: a request in pieces split inside a quantum, or padded piece by piece, is read whole`, async (t) => {
    const server = await startTestServer(t);
    const frame = envelope(helloRequest("Bo"));
    const whole = base64Text(frame);
    // Split at every odd place: 1, 2 and 3 characters into a quantum.
    const split = await send[http](
      server.url,
      textRequest("SayHello", [
        whole.subarray(0, 1),
        whole.subarray(1, 6),
        whole.subarray(6, 11),
        whole.subarray(11),
      ]),
    );
    assert.deepEqual(decoded(split).replies, ["Hello, Bo!"]);
    // The frame's bytes encoded in pieces, each with its padding.
    const padded = await send[http](
      server.url,
      textRequest("SayHello", [
        base64Text(frame.subarray(0, 4)),
        base64Text(frame.subarray(4, 5)),
        base64Text(frame.subarray(5)),
      ]),
    );
    assert.deepEqual(decoded(padded).replies, ["Hello, Bo!"]);
  });
}

test("text mode in JSON (application/grpc-web-text+json) answers in JSON, in base64", async (t) => {
  const server = await startTestServer(t);
  const res = await rawH1(
    server.url,
    textRequest(
      "SayHello",
      [base64Text(envelope(Buffer.from('{"name":"Cy"}')))],
      { "content-type": "application/grpc-web-text+json" },
    ),
  );
  assert.equal(res.headers["content-type"], "application/grpc-web-text+json");
  const [reply] = envelopes(fromBase64Text(res.body));
  assert.equal(String(reply?.data), '{"message":"Hello, Cy!"}');
});

test("text mode with a gzip-compressed message, asking for gzip back, is read and answered compressed", async (t) => {
  const server = await startTestServer(t, { compressMinBytes: 0 });
  const res = await rawH2(
    server.url,
    textRequest(
      "SayHello",
      [base64Text(envelope(gzipSync(helloRequest("Di")), 1))],
      { "grpc-encoding": "gzip", "grpc-accept-encoding": "gzip" },
    ),
  );
  assert.equal(res.headers["grpc-encoding"], "gzip");
  const [reply] = envelopes(fromBase64Text(res.body));
  assert.equal(reply?.flags, 1);
});

test("text mode keeps the limits: a message over maxMessageBytes gets RESOURCE_EXHAUSTED, a timeout of 0 DEADLINE_EXCEEDED", async (t) => {
  const server = await startTestServer(t, { maxMessageBytes: 64 });
  const big = await rawH1(
    server.url,
    textRequest("SayHello", [
      base64Text(envelope(helloRequest("x".repeat(100)))),
    ]),
  );
  assert.deepEqual(decoded(big).trailers, {
    "grpc-message":
      "message size 102 is larger than configured readMaxBytes 64",
    "grpc-status": String(Code.ResourceExhausted),
  });
  const late = await rawH1(
    server.url,
    textRequest("SayHello", [base64Text(envelope(helloRequest("Ed")))], {
      "grpc-timeout": "0m",
    }),
  );
  assert.equal(
    decoded(late).trailers["grpc-status"],
    String(Code.DeadlineExceeded),
  );
});

test("text mode from a browser on an allowed origin: the preflight allows grpc-web's headers, and the answer carries the CORS headers", async (t) => {
  const origin = "https://app.example";
  const server = await startTestServer(t, { corsOrigins: [origin] });
  const preflight = await fetch(`${server.url}/Greeter/SayHello`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,x-grpc-web,x-user-agent",
    },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), origin);
  const allowed = (preflight.headers.get("access-control-allow-headers") ?? "")
    .toLowerCase()
    .split(/, */);
  for (const h of ["content-type", "x-grpc-web", "x-user-agent"]) {
    assert.ok(allowed.includes(h), `${h} in ${allowed}`);
  }
  const res = await rawH1(
    server.url,
    textRequest("SayHello", [base64Text(envelope(helloRequest("Flo")))], {
      origin,
    }),
  );
  assert.equal(res.headers["access-control-allow-origin"], origin);
  assert.match(
    String(res.headers["access-control-expose-headers"]),
    /Grpc-Status, Grpc-Message/,
  );
  assert.deepEqual(decoded(res).replies, ["Hello, Flo!"]);
});

test("with ENGINE off text mode is refused with 415, as connect's handlers refuse it", async (t) => {
  const server = await startTestServer(t, { engine: false });
  const res = await rawH1(
    server.url,
    textRequest("SayHello", [base64Text(envelope(helloRequest("Gus")))]),
  );
  assert.equal(res.status, 415);
});
