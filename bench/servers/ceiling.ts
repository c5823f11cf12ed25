/**
 * The ceiling: bare node:http2 answering every Greeter path with fixed,
 * pre-encoded bytes (no decoding, no routing library, no validation). Nothing a
 * real Node service does can be faster on the same runtime; the benchmark
 * reports every server as a fraction of it. Prints "listening on
 * http://127.0.0.1:<port>" once it serves.
 */
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { benchName, FrameCounter, grpcFrame, replyBytes } from "../wire.js";

const unaryReply = replyBytes(`Hello, ${benchName}!`);
const grpcUnary = grpcFrame(unaryReply);
const grpcStream = Buffer.concat(
  [0, 1, 2, 3, 4].map((i) =>
    grpcFrame(replyBytes(`Hello ${benchName}, message ${i}`)),
  ),
);
const grpcHeaders = { ":status": 200, "content-type": "application/grpc" };
const grpcTrailers = { "grpc-status": "0" };
const connectHeaders = { ":status": 200, "content-type": "application/proto" };

const server = http2.createServer();
server.on("stream", (stream, headers) => {
  const path = headers[":path"];
  const isGrpc = String(headers["content-type"]).startsWith("application/grpc");
  if (path === "/Greeter/Chat") {
    const counter = new FrameCounter();
    stream.respond(grpcHeaders, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers(grpcTrailers));
    stream.on("data", (chunk: Buffer) => {
      for (let n = counter.push(chunk); n > 0; n--) stream.write(grpcUnary);
    });
    stream.on("end", () => stream.end());
    return;
  }
  stream.resume();
  stream.on("end", () => {
    if (!isGrpc) {
      stream.respond(connectHeaders);
      stream.end(unaryReply);
      return;
    }
    stream.respond(grpcHeaders, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers(grpcTrailers));
    stream.end(path === "/Greeter/StreamHello" ? grpcStream : grpcUnary);
  });
});
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  console.log(`listening on http://127.0.0.1:${port}`);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => process.exit(0));
}
