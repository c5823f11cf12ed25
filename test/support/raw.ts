import * as http from "node:http";
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type HelloReply,
  HelloReplySchema,
  HelloRequestSchema,
} from "../../gen/helloworld_pb.js";

/** What a raw HTTP request got back, byte for byte. */
export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The trailers (empty for a trailers-only response, which has only headers, and for a response with none). */
  trailers: Record<string, string | string[] | undefined>;
  /** HTTP/2 RST_STREAM code the stream closed with (0: a clean end, and always over HTTP/1.1). */
  rstCode: number;
  /** Whether the response HEADERS frame ended the stream (a gRPC trailers-only response); false over HTTP/1.1. */
  headersEndStream: boolean;
  /** HTTP/1.1: the header lines as received, names in their case, in order (name, value, name, ...). */
  rawHeaders?: string[];
  /** HTTP/1.1: the trailer lines alike. */
  rawTrailers?: string[];
}

/** A raw request, for either HTTP version. */
export interface RawRequest {
  /** Request headers, :path included; :method defaults to POST. */
  headers: http2.OutgoingHttpHeaders;
  /** Body chunks, written in order. */
  body?: Uint8Array[];
  /** End the request body after the chunks. @default true */
  end?: boolean;
}

/** Options of a raw HTTP/2 request. */
export interface RawH2Options extends RawRequest {
  /** Called with the stream once the response headers arrived (for example to cancel it). */
  onResponse?: (stream: http2.ClientHttp2Stream) => void;
}

/**
 * Send one request over a fresh HTTP/2 prior-knowledge (h2c) session with
 * node:http2, a client that adds nothing and enforces nothing (no deadline of
 * its own), and collect everything the server sends until the stream closes.
 */
export async function rawH2(
  url: string,
  options: RawH2Options,
): Promise<RawResponse> {
  const session = http2.connect(url);
  session.on("error", () => {});
  try {
    return await new Promise<RawResponse>((resolve, reject) => {
      const stream = session.request(
        { ":method": "POST", ...options.headers },
        { endStream: false },
      );
      const res: RawResponse = {
        status: 0,
        headers: {},
        body: Buffer.alloc(0),
        trailers: {},
        rstCode: 0,
        headersEndStream: false,
      };
      const chunks: Buffer[] = [];
      stream.on("response", (headers, flags) => {
        res.status = Number(headers[":status"]);
        res.headers = headers;
        res.headersEndStream =
          (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
        options.onResponse?.(stream);
      });
      stream.on("trailers", (trailers) => {
        res.trailers = trailers;
      });
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", () => {});
      // The response is complete at its end (after any trailers), even while
      // the request side is still open: the server need not reset it
      // (RFC 9113, 8.1), and gRPC clients take the trailers as the end of the call.
      const finish = () => {
        res.body = Buffer.concat(chunks);
        res.rstCode = stream.rstCode ?? 0;
        if (res.status === 0)
          reject(new Error(`no response (RST ${res.rstCode})`));
        else resolve(res);
      };
      stream.on("end", finish);
      stream.on("close", finish);
      for (const chunk of options.body ?? []) stream.write(chunk);
      if (options.end ?? true) stream.end();
    });
  } finally {
    session.close();
  }
}

/**
 * Send one request over a fresh HTTP/1.1 keep-alive connection with
 * node:http, the HTTP/1.1 counterpart of `rawH2`: the same request (its
 * pseudo-headers give the method and target), each body chunk written as it
 * is (chunked, unless a content-length header says otherwise), and the
 * response collected until its end: status, headers (and their raw lines, in
 * order and case as sent), the body de-chunked, the trailers after it. A
 * response that completes while the request is still open (an error, a
 * deadline) counts; its connection is closed after it.
 */
export async function rawH1(
  url: string,
  options: RawRequest,
): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  const {
    ":path": path,
    ":method": method = "POST",
    ...headers
  } = options.headers;
  // Keep-alive, as browsers and connect-node's HTTP/1.1 client ask, so the
  // server's keep-alive headers show as a client sees them.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    return await new Promise<RawResponse>((resolve, reject) => {
      const req = http.request(
        {
          host: hostname,
          port,
          path: String(path ?? "/"),
          method: String(method),
          headers: headers as http.OutgoingHttpHeaders,
          agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              rawHeaders: res.rawHeaders,
              rawTrailers: res.rawTrailers,
              body: Buffer.concat(chunks),
              trailers: res.trailers,
              rstCode: 0,
              headersEndStream: false,
            }),
          );
          res.on("error", reject);
        },
      );
      // Once the response is complete, a request side the server stopped
      // reading may fail to write: that is not the answer's failure.
      req.on("error", reject);
      for (const chunk of options.body ?? []) req.write(chunk);
      // Node holds back the head of a request with no body yet; an open one
      // is sent at once, as rawH2's is.
      if (options.end ?? true) req.end();
      else req.flushHeaders();
    });
  } finally {
    agent.destroy();
  }
}

/** The headers of a gRPC request in protobuf (gRPC's PROTOCOL-HTTP2.md), beside :path. */
export const grpcHeaders = {
  "content-type": "application/grpc",
  te: "trailers",
};

/** What a gRPC call got: grpc-status ("none" if it came in no headers), grpc-message and the body. */
export interface GrpcCallResult {
  status: string;
  message: string;
  data: string;
}

/** A gRPC call to `path` on `session` with `body`, read to its end; rejects if the stream errs. */
export function grpcCall(
  session: http2.ClientHttp2Session,
  path: string,
  body: Buffer,
): Promise<GrpcCallResult> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      ...grpcHeaders,
    });
    const chunks: Buffer[] = [];
    let status = "none";
    let message = "";
    const read = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) {
        status = String(h["grpc-status"]);
        message = decodeURIComponent(String(h["grpc-message"] ?? ""));
      }
    };
    stream.on("response", read);
    stream.on("trailers", read);
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", reject);
    stream.on("close", () =>
      resolve({
        status,
        message,
        data: Buffer.concat(chunks).toString("latin1"),
      }),
    );
    stream.end(body);
  });
}

/** A HelloRequest in the protobuf binary encoding. */
export function helloRequest(name: string): Uint8Array {
  return toBinary(HelloRequestSchema, create(HelloRequestSchema, { name }));
}

/** One length-prefixed message (gRPC, gRPC-Web and Connect streaming framing): flags, 4-byte big-endian length, payload. */
export function envelope(payload: Uint8Array, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Split a body into its length-prefixed messages; fails on a truncated one. */
export function envelopes(body: Buffer): { flags: number; data: Buffer }[] {
  const out: { flags: number; data: Buffer }[] = [];
  let i = 0;
  while (i < body.length) {
    if (body.length - i < 5) throw new Error("truncated envelope header");
    const flags = body.readUInt8(i);
    const len = body.readUInt32BE(i + 1);
    if (body.length - i - 5 < len) throw new Error("truncated envelope");
    out.push({ flags, data: body.subarray(i + 5, i + 5 + len) });
    i += 5 + len;
  }
  return out;
}

/** Decode a HelloReply from the protobuf binary encoding. */
export function helloReply(data: Uint8Array): HelloReply {
  return fromBinary(HelloReplySchema, data);
}

/** A gRPC SayHello whose one message is `compressed` in `encoding`. */
export function compressedSayHello(
  encoding: string,
  compressed: Uint8Array,
): RawRequest {
  return {
    headers: {
      ":path": "/Greeter/SayHello",
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-encoding": encoding,
    },
    body: [envelope(compressed, 1)],
  };
}

/** Bytes as gRPC-Web's text mode sends them: base64, padded. */
export function base64Text(bytes: Uint8Array): Buffer {
  return Buffer.from(Buffer.from(bytes).toString("base64"), "latin1");
}

/**
 * A gRPC-Web text-mode body decoded as PROTOCOL-WEB.md tells a client to:
 * four characters at a time, padding allowed at the end of any of them (a
 * server may flush each message with its own padding).
 */
export function fromBase64Text(body: Buffer): Buffer {
  const text = body.toString("latin1");
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/=]*$/.test(text)) {
    throw new Error(`not base64 in quanta: ${text}`);
  }
  const out: Buffer[] = [];
  for (let i = 0; i < text.length; i += 4) {
    out.push(Buffer.from(text.slice(i, i + 4), "base64"));
  }
  return Buffer.concat(out);
}
