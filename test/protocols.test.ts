import assert from "node:assert/strict";
import { once } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import { type TestContext, test } from "node:test";
import * as tls from "node:tls";
import { type Client, Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Greeter } from "../gen/helloworld_pb.js";
import type { RunningServer } from "../src/server.js";
import { connectErrorOf } from "./support/errors.js";
import { pushable } from "./support/pushable.js";
import { startTestServer } from "./support/server.js";
import { selfSignedCert } from "./support/tls.js";
import {
  type HttpVersion,
  httpVersions,
  type Protocol,
  protocols,
  testTransport,
} from "./support/transports.js";

type GreeterClient = Client<typeof Greeter>;

/** One RPC of the matrix: how to call it and the replies a working call gets. */
interface Rpc {
  name: string;
  call(client: GreeterClient): Promise<string[]>;
  replies: string[];
  bidi: boolean;
}

const rpcs: Rpc[] = [
  {
    name: "SayHello",
    async call(client) {
      return [(await client.sayHello({ name: "Alice" })).message];
    },
    replies: ["Hello, Alice!"],
    bidi: false,
  },
  {
    name: "StreamHello",
    async call(client) {
      const out: string[] = [];
      for await (const r of client.streamHello({ name: "Bob" }))
        out.push(r.message);
      return out;
    },
    replies: [0, 1, 2, 3, 4].map((i) => `Hello Bob, message ${i}`),
    bidi: false,
  },
  {
    name: "CollectGreetings",
    async call(client) {
      async function* reqs() {
        yield { name: "Alice" };
        yield { name: "Bob" };
      }
      return [(await client.collectGreetings(reqs())).message];
    },
    replies: ["Hello, Alice, Bob!"],
    bidi: false,
  },
  {
    name: "Chat",
    // In lockstep: each request goes out only after the previous reply came
    // back, which only a full-duplex call can do.
    async call(client) {
      const reqs = pushable<{ name: string }>();
      const replies = client.chat(reqs)[Symbol.asyncIterator]();
      const out: string[] = [];
      try {
        for (const name of ["Carol", "Dave"]) {
          reqs.push({ name });
          const r = await replies.next();
          if (r.done) break;
          out.push(r.value.message);
        }
        reqs.close();
        const end = await replies.next();
        assert.equal(end.done, true);
      } finally {
        reqs.close();
      }
      return out;
    },
    replies: ["Hello, Carol!", "Hello, Dave!"],
    bidi: true,
  },
];

/** The HTTP versions (as Node reports them: "1.1", "2.0") of the requests a server received. */
function recordHttpVersions(server: RunningServer): string[] {
  const seen: string[] = [];
  const record = (req: http.IncomingMessage | http2.Http2ServerRequest) =>
    seen.push(req.httpVersion);
  server.listener.http1Server?.on("request", record);
  // HTTP/2 by its streams, which the gRPC fast path answers without a request
  // object; under TLS the HTTP/2 server also sees the HTTP/1.1 requests.
  server.listener.http2Server.on("request", (req) => {
    if (req.httpVersionMajor === 1) record(req);
  });
  server.listener.http2Server.on("session", (session) =>
    session.on("stream", () => seen.push("2.0")),
  );
  return seen;
}

const tlsCert = selfSignedCert();

async function checkCell(
  t: TestContext,
  protocol: Protocol,
  httpVersion: HttpVersion,
  rpc: Rpc,
  secure: boolean,
): Promise<void> {
  const server = await startTestServer(
    t,
    secure ? { tls: tlsCert, host: "127.0.0.1" } : {},
  );
  assert.equal(server.url.startsWith("https:"), secure);
  const seen = recordHttpVersions(server);
  const client = createClient(
    Greeter,
    testTransport(protocol, httpVersion, server.url, {
      ...(secure ? { ca: tlsCert.cert } : {}),
    }),
  );
  if (rpc.bidi && httpVersion === "1.1") {
    // Bidi streaming needs HTTP/2: Connect's handler answers HTTP 505 Version
    // Not Supported (with Connection: close), which every client reports as UNKNOWN.
    const err = await connectErrorOf(rpc.call(client));
    assert.equal(err.code, Code.Unknown);
    assert.equal(err.rawMessage, "HTTP 505");
    // The server keeps serving on a new connection.
    const res = await client.sayHello({ name: "again" });
    assert.equal(res.message, "Hello, again!");
  } else {
    assert.deepEqual(await rpc.call(client), rpc.replies);
  }
  assert.ok(seen.length > 0);
  const wire = httpVersion === "2" ? "2.0" : "1.1";
  assert.deepEqual(
    seen.filter((v) => v !== wire),
    [],
    `requests went over HTTP ${seen.join(", ")}`,
  );
}

for (const secure of [false, true]) {
  for (const protocol of protocols) {
    for (const httpVersion of httpVersions) {
      for (const rpc of rpcs) {
        const fails = rpc.bidi && httpVersion === "1.1";
        const outcome = fails
          ? "fails with HTTP 505 (bidi needs HTTP/2), and the server keeps serving"
          : "works";
        const over = `${protocol} on HTTP/${httpVersion}${secure ? " over TLS" : ""}`;
        test(`${rpc.name} over ${over} ${outcome}`, { timeout: 20_000 }, (t) =>
          checkCell(t, protocol, httpVersion, rpc, secure),
        );
      }
    }
  }
}

test("createGrpcTransport asked for HTTP/1.1 still speaks HTTP/2", async (t) => {
  const server = await startTestServer(t);
  const seen = recordHttpVersions(server);
  // The type does not even offer httpVersion; connect-node overrides it with "2".
  const options = { baseUrl: server.url, httpVersion: "1.1" };
  const client = createClient(Greeter, createGrpcTransport(options));
  const res = await client.sayHello({ name: "Alice" });
  assert.equal(res.message, "Hello, Alice!");
  assert.deepEqual(seen, ["2.0"]);
});

/** The protocol ALPN settles on when a TLS client offers `offer`. */
function alpnProtocol(port: number, offer: string[]): Promise<string | false> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: "127.0.0.1", port, ca: tlsCert.cert, ALPNProtocols: offer },
      () => {
        resolve(socket.alpnProtocol ?? false);
        socket.end();
      },
    );
    socket.once("error", reject);
  });
}

test("the TLS port negotiates h2 by ALPN when the client offers h2 first", async (t) => {
  const server = await startTestServer(t, { tls: tlsCert });
  assert.equal(await alpnProtocol(server.port, ["h2", "http/1.1"]), "h2");
});

test("the TLS port negotiates http/1.1 by ALPN when the client offers only http/1.1", async (t) => {
  const server = await startTestServer(t, { tls: tlsCert });
  assert.equal(await alpnProtocol(server.port, ["http/1.1"]), "http/1.1");
});

test("a cleartext HTTP/1.1 request to the TLS port fails, and the port keeps serving TLS", {
  timeout: 20_000,
}, async (t) => {
  const server = await startTestServer(t, { tls: tlsCert });
  const outcome = await new Promise<NodeJS.ErrnoException | number>(
    (resolve) => {
      const req = http.request({
        host: "127.0.0.1",
        port: server.port,
        method: "POST",
        path: "/Greeter/SayHello",
        headers: { "content-type": "application/json" },
      });
      req.once("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.once("error", resolve);
      req.end(JSON.stringify({ name: "Alice" }));
    },
  );
  assert.ok(
    outcome instanceof Error,
    `a cleartext request got HTTP ${outcome} from the TLS port`,
  );
  assert.equal(outcome.code, "ECONNRESET");
  const client = createClient(
    Greeter,
    testTransport("connect", "1.1", server.url, { ca: tlsCert.cert }),
  );
  assert.equal(
    (await client.sayHello({ name: "again" })).message,
    "Hello, again!",
  );
});

test("a cleartext HTTP/2 (h2c) session to the TLS port is closed without a response", {
  timeout: 20_000,
}, async (t) => {
  const server = await startTestServer(t, { tls: tlsCert });
  const session = http2.connect(`http://127.0.0.1:${server.port}`);
  t.after(() => session.destroy());
  session.on("error", () => {});
  const stream = session.request({
    ":method": "POST",
    ":path": "/Greeter/SayHello",
    "content-type": "application/json",
  });
  let responded = false;
  stream.once("response", () => {
    responded = true;
  });
  stream.on("error", () => {});
  stream.end(JSON.stringify({ name: "Alice" }));
  await Promise.all([once(stream, "close"), once(session, "close")]);
  assert.equal(responded, false);
  // The server dropped the connection, so the client cancelled its stream.
  assert.equal(stream.rstCode, http2.constants.NGHTTP2_CANCEL);
});
