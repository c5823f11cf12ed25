/**
 * An engine call (src/engine/call.ts) on a real HTTP/2 stream, for the unit
 * tests of the parts that work on one: the request body, the response writer.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { TestContext } from "node:test";
import { createServiceImplSpec } from "@connectrpc/connect";
import { validateUniversalHandlerOptions } from "@connectrpc/connect/protocol";
import { Greeter } from "../../gen/helloworld_pb.js";
import { procedureOf } from "../../src/calls/observer.js";
import { CallPipeline } from "../../src/calls/pipeline.js";
import { type CallHost, EngineCall } from "../../src/engine/call.js";
import { Http2Exchange } from "../../src/engine/http2-exchange.js";
import type { Route } from "../../src/engine/route.js";

export interface CallPair {
  /** A call for Greeter/SayHello on the server's stream, with connect's default options and no interceptors. */
  call: EngineCall;
  /** Its route; messages are bytes, passed through as they are. */
  route: Route;
  /** The client's side of the stream. */
  client: http2.ClientHttp2Stream;
  /** The server's side of the stream. */
  server: http2.ServerHttp2Stream;
  /** The client's TCP connection, to drop it (Node 22 refuses to destroy an HTTP/2 session's socket through the session). */
  socket: net.Socket;
}

/**
 * A server and a client on port 0 (closed after the test), one POST between
 * them, and a `EngineCall` on its server side. The request body stays open
 * unless `endRequest`.
 */
export async function callPair(
  t: TestContext,
  options: { endRequest?: boolean } = {},
): Promise<CallPair> {
  const server = http2.createServer();
  const streams: http2.ServerHttp2Stream[] = [];
  server.on("stream", (s) => streams.push(s));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const { port } = server.address() as net.AddressInfo;
  const socket = net.connect(port, "127.0.0.1");
  const session = http2.connect(`http://127.0.0.1:${port}`, {
    createConnection: () => socket,
  });
  t.after(() => session.destroy());
  const client = session.request(
    { ":method": "POST", ":path": "/x" },
    { endStream: false },
  );
  client.on("error", () => {});
  if (options.endRequest) client.end();
  while (streams.length === 0) await once(server, "stream");
  const stream = streams[0] as http2.ServerHttp2Stream;
  stream.on("error", () => {});
  const spec = createServiceImplSpec(Greeter, {}).methods.sayHello;
  assert.ok(spec);
  const host: CallHost = {
    opt: validateUniversalHandlerOptions({}),
    running: new Set(),
    contextValues: undefined,
    interceptors: [],
    pipeline: new CallPipeline(),
  };
  const route: Route = {
    spec,
    procedure: procedureOf(spec.method),
    binary: {
      parse: (d: Uint8Array) => d,
      serialize: (m: unknown) => m as Uint8Array,
    },
    json: {
      parse: (d: Uint8Array) => d,
      serialize: (m: unknown) => m as Uint8Array,
    },
  };
  return {
    call: new EngineCall(
      host,
      route,
      new Http2Exchange(stream, {}, undefined),
      "grpc",
    ),
    route,
    client,
    server: stream,
    socket,
  };
}
