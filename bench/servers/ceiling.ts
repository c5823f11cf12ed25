/**
 * The ceiling: bare node:http2 and node:http answering every Greeter call of
 * the benchmark with fixed, pre-encoded bytes chosen by content type and path
 * (no decoding, no routing library, no validation). Nothing a real Node
 * service does can be faster on the same runtime; the benchmark reports every
 * server as a fraction of it. One port speaks HTTP/2 (prior knowledge) and
 * HTTP/1.1, told apart by the connection's first bytes. Prints "listening on
 * http://127.0.0.1:<port>" once it serves.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import {
  connectEndStream,
  FrameCounter,
  grpcFrame,
  grpcWebTrailers,
  replyBytes,
  replyJson,
  streamReplyTexts,
  unaryReplyText,
} from "../wire.js";

const frames = (encode: (text: string) => Uint8Array) =>
  streamReplyTexts.map((text) => grpcFrame(encode(text)));
const grpcUnary = grpcFrame(replyBytes(unaryReplyText));

/** The answer body by request content type, for SayHello (unary) and StreamHello (stream). */
const bodies: Record<string, { unary?: Buffer; stream?: Buffer }> = {
  "application/grpc": {
    unary: grpcUnary,
    stream: Buffer.concat(frames(replyBytes)),
  },
  "application/grpc-web+proto": {
    unary: Buffer.concat([grpcUnary, grpcWebTrailers()]),
    stream: Buffer.concat([...frames(replyBytes), grpcWebTrailers()]),
  },
  "application/proto": { unary: Buffer.from(replyBytes(unaryReplyText)) },
  "application/json": { unary: Buffer.from(replyJson(unaryReplyText)) },
  "application/connect+proto": {
    stream: Buffer.concat([...frames(replyBytes), connectEndStream()]),
  },
  "application/connect+json": {
    stream: Buffer.concat([...frames(replyJson), connectEndStream()]),
  },
};

function bodyFor(
  path: string | undefined,
  contentType: string | undefined,
): Buffer | undefined {
  const kind = path === "/Greeter/StreamHello" ? "stream" : "unary";
  return bodies[contentType ?? ""]?.[kind];
}

const grpcTrailers = { "grpc-status": "0" };

const h2 = http2.createServer();
h2.on("stream", (stream, headers) => {
  const contentType = headers["content-type"];
  const grpc = contentType === "application/grpc";
  if (headers[":path"] === "/Greeter/Chat") {
    const counter = new FrameCounter();
    stream.respond(
      { ":status": 200, "content-type": contentType },
      { waitForTrailers: true },
    );
    stream.on("wantTrailers", () => stream.sendTrailers(grpcTrailers));
    stream.on("data", (chunk: Buffer) => {
      for (let n = counter.push(chunk); n > 0; n--) stream.write(grpcUnary);
    });
    stream.on("end", () => stream.end());
    return;
  }
  stream.resume();
  stream.on("end", () => {
    const body = bodyFor(headers[":path"], contentType);
    if (body === undefined) {
      stream.respond({ ":status": 415 });
      stream.end();
      return;
    }
    stream.respond(
      { ":status": 200, "content-type": contentType },
      { waitForTrailers: grpc },
    );
    if (grpc)
      stream.on("wantTrailers", () => stream.sendTrailers(grpcTrailers));
    stream.end(body);
  });
});

const h1 = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    const contentType = req.headers["content-type"];
    const body = bodyFor(req.url, contentType);
    if (body === undefined) {
      res.writeHead(415).end();
      return;
    }
    res.writeHead(200, {
      "content-type": contentType,
      "content-length": body.length,
    });
    res.end(body);
  });
});

// HTTP/2 with prior knowledge opens with "PRI * HTTP/2.0" (RFC 9113, 3.4); no
// HTTP/1.1 request starts with "PRI", so its first bytes decide. A socket
// handed to a server this way skips that server's own connection set-up, so
// an HTTP/1.1 one gets what http.createServer gives its own (the noDelay
// option, default true): without it, Nagle's algorithm holds back a response
// written in two pieces until the client acknowledges the first.
const server = net.createServer((socket) => {
  socket.once("readable", () => {
    const first: Buffer | null = socket.read();
    if (first === null) {
      socket.destroy();
      return;
    }
    socket.unshift(first);
    if (first.subarray(0, 3).toString("latin1") === "PRI") {
      h2.emit("connection", socket);
    } else {
      socket.setNoDelay(true);
      h1.emit("connection", socket);
    }
  });
});
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as net.AddressInfo;
  console.log(`listening on http://127.0.0.1:${port}`);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => process.exit(0));
}
