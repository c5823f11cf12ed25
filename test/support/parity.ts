/**
 * One call described once and put on the wire of every protocol, encoding
 * and HTTP version the server speaks, and the status read back from each
 * protocol's answer: for the parity tests (test/engine.test.ts), which send
 * the same request to a server with the engine on and to one with it off.
 */
import {
  brotliCompressSync,
  brotliDecompressSync,
  gunzipSync,
  gzipSync,
} from "node:zlib";
import { Code } from "@connectrpc/connect";
import {
  envelope,
  envelopes,
  helloRequest,
  type RawRequest,
  type RawResponse,
} from "./raw.js";
import {
  type HttpVersion,
  httpVersions,
  type Protocol,
  protocols,
} from "./transports.js";

/** A protocol, an encoding and an HTTP version: where a call can go. */
export interface Combination {
  readonly protocol: Protocol;
  /** JSON messages rather than protobuf. */
  readonly json: boolean;
  readonly http: HttpVersion;
}

/** Every combination the server answers on: 3 protocols, 2 encodings, 2 HTTP versions. */
export const combinations: readonly Combination[] = protocols.flatMap(
  (protocol) =>
    [false, true].flatMap((json) =>
      httpVersions.map((http) => ({ protocol, json, http })),
    ),
);

const protocolNames: Record<Protocol, string> = {
  grpc: "gRPC",
  "grpc-web": "gRPC-Web",
  connect: "Connect",
};

/** "gRPC-Web JSON over HTTP/1.1". */
export function labelOf(c: Combination): string {
  return `${protocolNames[c.protocol]} ${c.json ? "JSON" : "proto"} over HTTP/${c.http}`;
}

/** The Greeter's methods, and whether each streams (Connect's streaming protocol, then). */
export const streams = {
  SayHello: false,
  StreamHello: true,
  CollectGreetings: true,
  Chat: true,
} as const;
export type Method = keyof typeof streams;

/** A request message: a HelloRequest with this name, or bytes of no message. */
export type Message =
  | string
  | {
      /** The HelloRequest's name; absent: bytes that are neither protobuf nor JSON. */
      name?: string;
      /**
       * Compress it (gzip, br), or only flag it compressed in its envelope
       * ("flag"; a Connect unary body, which has no flag, goes as it is).
       */
      compress?: "gzip" | "br" | "flag";
    };

/** A call, described once for every protocol. */
export interface ParityCase {
  method: Method;
  /** The request messages, in order. */
  messages?: Message[];
  /** Bytes after the messages: a frame the body ends inside. Enveloped protocols only. */
  tail?: Uint8Array;
  /** The client's timeout in milliseconds, or a value that is none. */
  timeout?: number | string;
  /** The request's compression, in the protocol's header for it. */
  encoding?: string;
  /** The compressions the client accepts, in the protocol's header for it. */
  acceptEncoding?: string;
  /** More request headers (metadata, Origin). */
  headers?: Record<string, string>;
  /** Send a content-length header with the body's size. */
  contentLength?: boolean;
  /** A JSON content type with "; charset=utf-8" (JSON only). */
  charset?: boolean;
  /**
   * gRPC's and gRPC-Web's other spelling of the protobuf content type:
   * application/grpc+proto and application/grpc-web where clients send
   * application/grpc and application/grpc-web+proto (protobuf only).
   */
  otherSpelling?: boolean;
  /** End the request body after the messages. @default true */
  end?: boolean;
  /** Write the body in one piece, rather than a message at a time. */
  oneWrite?: boolean;
}

/** A Connect unary call: one raw message as the body, errors as JSON with an HTTP status. */
export function isConnectUnary(c: Combination, method: Method): boolean {
  return c.protocol === "connect" && !streams[method];
}

/** The payload of a message, in the combination's encoding, compressed if asked. */
function payloadOf(m: Message, json: boolean): Uint8Array {
  const { name, compress } = typeof m === "string" ? { name: m } : m;
  let data: Uint8Array;
  if (name === undefined) {
    data = json ? Buffer.from("{name:") : Buffer.from([0xff, 0xff, 0xff, 0xff]);
  } else {
    data = json ? Buffer.from(JSON.stringify({ name })) : helloRequest(name);
  }
  if (compress === "gzip") return gzipSync(data);
  if (compress === "br") return brotliCompressSync(data);
  return data;
}

function flagsOf(m: Message): number {
  return typeof m !== "string" && m.compress !== undefined ? 1 : 0;
}

/**
 * The case as a raw request in combination `c`, or undefined where the
 * protocol has no way to say it: a Connect unary body has no frames (two
 * messages, a truncated frame, a frame flagged compressed without an
 * encoding), a charset is JSON's, the other spelling protobuf's.
 */
export function wireRequest(
  k: ParityCase,
  c: Combination,
): RawRequest | undefined {
  const messages = k.messages ?? [];
  const unary = isConnectUnary(c, k.method);
  if (k.charset && !c.json) return undefined;
  if (k.otherSpelling && (c.json || c.protocol === "connect")) return undefined;
  if (
    unary &&
    (messages.length > 1 ||
      k.tail !== undefined ||
      (k.encoding === undefined && messages.some((m) => flagsOf(m) !== 0)))
  ) {
    return undefined;
  }
  const subtype = c.json ? "json" : "proto";
  const charset = k.charset ? "; charset=utf-8" : "";
  const headers: Record<string, string> = { ":path": `/Greeter/${k.method}` };
  const timeout =
    k.timeout === undefined
      ? undefined
      : typeof k.timeout === "number" && c.protocol !== "connect"
        ? `${k.timeout}m`
        : String(k.timeout);
  switch (c.protocol) {
    case "grpc":
      headers["content-type"] = k.otherSpelling
        ? "application/grpc+proto"
        : c.json
          ? `application/grpc+json${charset}`
          : "application/grpc";
      headers.te = "trailers";
      break;
    case "grpc-web":
      headers["content-type"] = k.otherSpelling
        ? "application/grpc-web"
        : `application/grpc-web+${subtype}${charset}`;
      break;
    case "connect":
      headers["content-type"] = unary
        ? `application/${subtype}${charset}`
        : `application/connect+${subtype}${charset}`;
      break;
  }
  const names =
    c.protocol !== "connect"
      ? ["grpc-timeout", "grpc-encoding", "grpc-accept-encoding"]
      : unary
        ? ["connect-timeout-ms", "content-encoding", "accept-encoding"]
        : [
            "connect-timeout-ms",
            "connect-content-encoding",
            "connect-accept-encoding",
          ];
  const values = [timeout, k.encoding, k.acceptEncoding];
  names.forEach((name, i) => {
    const value = values[i];
    if (value !== undefined) headers[name] = value;
  });
  Object.assign(headers, k.headers);
  const body: Uint8Array[] = unary
    ? messages.map((m) => payloadOf(m, c.json))
    : messages.map((m) => envelope(payloadOf(m, c.json), flagsOf(m)));
  if (k.tail !== undefined) body.push(k.tail);
  if (k.oneWrite) body.splice(0, body.length, Buffer.concat(body));
  if (k.contentLength) {
    headers["content-length"] = String(
      body.reduce((n, chunk) => n + chunk.length, 0),
    );
  }
  return { headers, body, end: k.end };
}

/** gRPC's status 0, which connect's Code enum leaves out. */
export const ok = 0 as Code;

/** A call's status and message. */
export type Outcome = [Code, string];

/**
 * The HTTP status of a Connect unary error, by its code, as the Connect
 * protocol maps them (connectrpc.com/docs/protocol, "Error codes").
 */
const connectHttpStatus: Partial<Record<Code, number>> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
};

/** A Connect error as JSON (an error body, or an end-of-stream message's error). */
interface ConnectErrorJson {
  code: string;
  message?: string;
}

/** The code and message of a Connect error; its code named as Connect's JSON names it (FailedPrecondition: "failed_precondition"). */
function connectOutcome(error: ConnectErrorJson): Outcome {
  const code = Object.values(Code).find(
    (v): v is Code =>
      typeof v === "number" &&
      Code[v].replace(/[a-z][A-Z]/g, (s) => `${s[0]}_${s[1]}`).toLowerCase() ===
        error.code,
  );
  if (code === undefined) throw new Error(`unknown code ${error.code}`);
  return [code, error.message ?? ""];
}

/** `data` decompressed with the encoding a response header names. */
function decompress(data: Buffer, encoding: unknown): Buffer {
  if (encoding === "gzip") return gunzipSync(data);
  if (encoding === "br") return brotliDecompressSync(data);
  throw new Error(`a compressed message in encoding ${String(encoding)}`);
}

/** The data of the body's last message, which must have `flag` (and may be compressed). */
function lastMessage(
  res: RawResponse,
  flag: number,
  encoding: unknown,
): Buffer {
  const last = envelopes(res.body).at(-1);
  if (last === undefined || (last.flags & ~1) !== flag) {
    throw new Error(
      `the body's last message is not flagged ${flag}: ${res.body.toString("hex")}`,
    );
  }
  return last.flags & 1 ? decompress(last.data, encoding) : last.data;
}

/**
 * The status and message of an answer in combination `c`, where each
 * protocol puts them: gRPC's trailers (or headers, for a trailers-only
 * answer), gRPC-Web's last message (flag 0x80) or headers, Connect
 * streaming's end-of-stream message (flag 0x02), Connect unary's HTTP status
 * and JSON error body, whose HTTP status must be the code's.
 */
export function outcomeOf(
  c: Combination,
  method: Method,
  res: RawResponse,
): Outcome {
  if (isConnectUnary(c, method)) {
    if (res.status === 200) return [ok, ""];
    const body =
      res.headers["content-encoding"] === undefined
        ? res.body
        : decompress(res.body, res.headers["content-encoding"]);
    const [code, message] = connectOutcome(JSON.parse(body.toString()));
    if (res.status !== connectHttpStatus[code]) {
      throw new Error(`HTTP ${res.status} for ${Code[code]}`);
    }
    return [code, message];
  }
  if (c.protocol === "connect") {
    const end = JSON.parse(
      lastMessage(res, 2, res.headers["connect-content-encoding"]).toString(),
    ) as { error?: ConnectErrorJson };
    return end.error === undefined ? [ok, ""] : connectOutcome(end.error);
  }
  let fields: Record<string, string | string[] | undefined>;
  if (res.headers["grpc-status"] !== undefined) fields = res.headers;
  else if (c.protocol === "grpc") fields = res.trailers;
  else {
    fields = {};
    const text = lastMessage(res, 0x80, res.headers["grpc-encoding"]);
    for (const line of text.toString().split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) {
        fields[line.slice(0, colon).toLowerCase()] = line
          .slice(colon + 1)
          .trim();
      }
    }
  }
  return [
    Number(fields["grpc-status"]) as Code,
    decodeURIComponent(String(fields["grpc-message"] ?? "")),
  ];
}
