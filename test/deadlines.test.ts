import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Code, createClient } from "@connectrpc/connect";
import { Greeter } from "../gen/helloworld_pb.js";
import { connectErrorOf } from "./support/errors.js";
import {
  combinations,
  labelOf,
  outcomeOf,
  wireRequest,
} from "./support/parity.js";
import { pushable } from "./support/pushable.js";
import {
  envelope,
  envelopes,
  grpcHeaders,
  helloReply,
  helloRequest,
  rawH1,
  rawH2,
} from "./support/raw.js";
import { startTestServer } from "./support/server.js";
import {
  type HttpVersion,
  httpVersions,
  type Protocol,
  protocols,
  testTransport,
} from "./support/transports.js";
import { assertTook, until, within } from "./support/wait.js";

/**
 * Ten minutes between StreamHello replies: a handler that ignored its signal
 * would outlive every test below, whose timeouts bound each wait instead.
 */
const longInterval = 600_000;
const bound = { timeout: 20_000 };

/**
 * A call cut by its deadline got the first StreamHello reply or, on a machine
 * so loaded that the deadline passed first, none; never a second one, which
 * comes only after the long interval.
 */
function assertAtMostFirst(replies: string[], first: string): void {
  assert.deepEqual(replies, [first].slice(0, replies.length));
}

/**
 * `rawH2`, and how long it took: a deadline ends a call no sooner than it
 * says, and no later than a loaded machine's timers allow.
 */
async function timedRawH2(
  url: string,
  options: Parameters<typeof rawH2>[1],
  deadlineMs: number,
): Promise<Awaited<ReturnType<typeof rawH2>>> {
  const started = performance.now();
  const res = await rawH2(url, options);
  const took = performance.now() - started;
  assertTook(took, deadlineMs, deadlineMs + 2_000, "the call");
  return res;
}

async function longStreamServer(t: TestContext) {
  return startTestServer(t, { streamIntervalMs: longInterval });
}

for (const protocol of protocols) {
  for (const httpVersion of httpVersions) {
    test(
      `a ${protocol} client on HTTP/${httpVersion} that cancels StreamHello after the first reply sees CANCELED, and the server handler stops`,
      bound,
      async (t) => {
        const server = await longStreamServer(t);
        const client = createClient(
          Greeter,
          testTransport(protocol, httpVersion, server.url),
        );
        const abort = new AbortController();
        const replies: string[] = [];
        const err = await connectErrorOf(
          (async () => {
            for await (const r of client.streamHello(
              { name: "Alice" },
              { signal: abort.signal },
            )) {
              replies.push(r.message);
              assert.equal(server.inflight.count, 1);
              abort.abort();
            }
          })(),
        );
        assert.equal(err.code, Code.Canceled);
        assert.deepEqual(replies, ["Hello Alice, message 0"]);
        await server.inflight.whenIdle();
      },
    );

    test(
      `a ${protocol} client on HTTP/${httpVersion} whose deadline passes during StreamHello sees DEADLINE_EXCEEDED, and the server handler stops`,
      bound,
      async (t) => {
        const server = await longStreamServer(t);
        const client = createClient(
          Greeter,
          testTransport(protocol, httpVersion, server.url),
        );
        const replies: string[] = [];
        const err = await connectErrorOf(
          (async () => {
            for await (const r of client.streamHello(
              { name: "Bob" },
              { timeoutMs: 300 },
            ))
              replies.push(r.message);
          })(),
        );
        assert.equal(err.code, Code.DeadlineExceeded);
        assertAtMostFirst(replies, "Hello Bob, message 0");
        await server.inflight.whenIdle();
      },
    );
  }
}

for (const protocol of protocols) {
  const httpVersion: HttpVersion = "2";
  test(
    `a ${protocol} client that cancels Chat after the first reply sees CANCELED, and the server handler stops`,
    bound,
    async (t) => {
      const server = await startTestServer(t);
      const client = createClient(
        Greeter,
        testTransport(protocol satisfies Protocol, httpVersion, server.url),
      );
      const abort = new AbortController();
      const requests = pushable<{ name: string }>();
      t.after(() => requests.close());
      const replies = client
        .chat(requests, { signal: abort.signal })
        [Symbol.asyncIterator]();
      requests.push({ name: "Carol" });
      const first = await replies.next();
      assert.equal(first.value?.message, "Hello, Carol!");
      // The request stream is still open: the handler waits for the next name.
      assert.equal(server.inflight.count, 1);
      abort.abort();
      const err = await connectErrorOf(replies.next());
      assert.equal(err.code, Code.Canceled);
      await server.inflight.whenIdle();
    },
  );
}

test(
  "the server ends a gRPC StreamHello at the grpc-timeout a client sent, with grpc-status 4 in the trailers",
  bound,
  async (t) => {
    const server = await longStreamServer(t);
    const res = await timedRawH2(
      server.url,
      {
        headers: {
          ":path": "/Greeter/StreamHello",
          ...grpcHeaders,
          "grpc-timeout": "200m",
        },
        body: [envelope(helloRequest("Alice"))],
      },
      200,
    );
    assert.equal(res.status, 200);
    assert.equal(res.rstCode, 0);
    assertAtMostFirst(
      envelopes(res.body).map((m) => helloReply(m.data).message),
      "Hello Alice, message 0",
    );
    assert.equal(res.trailers["grpc-status"], String(Code.DeadlineExceeded));
    await server.inflight.whenIdle();
  },
);

test(
  "the server ends a gRPC CollectGreetings whose client never finishes at its grpc-timeout, with grpc-status 4",
  bound,
  async (t) => {
    const server = await startTestServer(t);
    const res = await timedRawH2(
      server.url,
      {
        headers: {
          ":path": "/Greeter/CollectGreetings",
          ...grpcHeaders,
          "grpc-timeout": "200m",
        },
        body: [envelope(helloRequest("Alice"))],
        end: false,
      },
      200,
    );
    assert.equal(res.status, 200);
    assert.equal(
      res.trailers["grpc-status"] ?? res.headers["grpc-status"],
      String(Code.DeadlineExceeded),
    );
    await server.inflight.whenIdle();
  },
);

test(
  "the server ends a gRPC Chat whose client goes quiet at its grpc-timeout, with grpc-status 4 after the replies so far",
  bound,
  async (t) => {
    const server = await startTestServer(t);
    // Long enough for the reply to come first on a loaded machine.
    const res = await timedRawH2(
      server.url,
      {
        headers: {
          ":path": "/Greeter/Chat",
          ...grpcHeaders,
          "grpc-timeout": "1000m",
        },
        body: [envelope(helloRequest("Alice"))],
        end: false,
      },
      1_000,
    );
    assert.equal(res.status, 200);
    assert.deepEqual(
      envelopes(res.body).map((m) => helloReply(m.data).message),
      ["Hello, Alice!"],
    );
    assert.equal(res.trailers["grpc-status"], String(Code.DeadlineExceeded));
    await server.inflight.whenIdle();
  },
);

/** The end-of-stream message of a Connect streaming response (flag 0x02), parsed. */
function connectEndStream(body: Buffer): {
  replies: string[];
  end: { error?: { code: string; message?: string } };
} {
  const msgs = envelopes(body);
  const last = msgs.at(-1);
  assert.ok(last, "no messages");
  assert.equal(last.flags, 0x02, "the last message is not end-of-stream");
  return {
    replies: msgs.slice(0, -1).map((m) => helloReply(m.data).message),
    end: JSON.parse(last.data.toString("utf8")),
  };
}

test(
  "the server ends a Connect StreamHello at the connect-timeout-ms a client sent, with deadline_exceeded in the end-of-stream message",
  bound,
  async (t) => {
    const server = await longStreamServer(t);
    const res = await timedRawH2(
      server.url,
      {
        headers: {
          ":path": "/Greeter/StreamHello",
          "content-type": "application/connect+proto",
          "connect-protocol-version": "1",
          "connect-timeout-ms": "200",
        },
        body: [envelope(helloRequest("Alice"))],
      },
      200,
    );
    // Connect streaming responses are HTTP 200; the error is in the last message.
    assert.equal(res.status, 200);
    const { replies, end } = connectEndStream(res.body);
    assertAtMostFirst(replies, "Hello Alice, message 0");
    assert.equal(end.error?.code, "deadline_exceeded");
    await server.inflight.whenIdle();
  },
);

test(
  "the server ends a Connect CollectGreetings whose client never finishes at its connect-timeout-ms, with deadline_exceeded",
  bound,
  async (t) => {
    const server = await startTestServer(t);
    const res = await timedRawH2(
      server.url,
      {
        headers: {
          ":path": "/Greeter/CollectGreetings",
          "content-type": "application/connect+proto",
          "connect-protocol-version": "1",
          "connect-timeout-ms": "200",
        },
        body: [envelope(helloRequest("Alice"))],
        end: false,
      },
      200,
    );
    assert.equal(res.status, 200);
    const { replies, end } = connectEndStream(res.body);
    assert.deepEqual(replies, []);
    assert.equal(end.error?.code, "deadline_exceeded");
    await server.inflight.whenIdle();
  },
);

for (const c of combinations.filter((c) => !c.json)) {
  test(
    `the server ends a ${labelOf(c)} CollectGreetings whose client never sends a message, nor ends, at its timeout, with DEADLINE_EXCEEDED, and the call is over`,
    bound,
    async (t) => {
      const server = await startTestServer(t);
      const request = wireRequest(
        { method: "CollectGreetings", timeout: 200, end: false },
        c,
      );
      assert.ok(request);
      const started = performance.now();
      // A server that ignores the deadline fails at the bound, not by the test's timeout.
      const res = await within(
        (c.http === "2" ? rawH2 : rawH1)(server.url, request),
        2_200,
        "the answer",
      );
      assertTook(performance.now() - started, 200, 2_200, "the call");
      assert.deepEqual(outcomeOf(c, "CollectGreetings", res), [
        Code.DeadlineExceeded,
        "the operation timed out",
      ]);
      await until("no call in flight", () => server.inflight.count === 0);
      assert.equal(server.engine.calls, 1);
    },
  );
}

test(
  "a gRPC timeout the server cannot parse fails with INVALID_ARGUMENT",
  bound,
  async (t) => {
    const server = await startTestServer(t);
    const res = await rawH2(server.url, {
      headers: {
        ":path": "/Greeter/SayHello",
        ...grpcHeaders,
        "grpc-timeout": "soon",
      },
      body: [envelope(helloRequest("Alice"))],
    });
    assert.equal(res.status, 200);
    assert.equal(res.trailers["grpc-status"], String(Code.InvalidArgument));
  },
);

test(
  "a Connect timeout the server cannot parse fails with HTTP 400 invalid_argument",
  bound,
  async (t) => {
    const server = await startTestServer(t);
    const res = await rawH2(server.url, {
      headers: {
        ":path": "/Greeter/SayHello",
        "content-type": "application/proto",
        "connect-protocol-version": "1",
        "connect-timeout-ms": "soon",
      },
      body: [helloRequest("Alice")],
    });
    assert.equal(res.status, 400);
    assert.equal(JSON.parse(res.body.toString()).code, "invalid_argument");
  },
);
