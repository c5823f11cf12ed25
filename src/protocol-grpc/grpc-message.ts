/**
 * `grpc-message` as gRPC's PROTOCOL-HTTP2.md encodes it: the message in
 * UTF-8, each byte outside 0x20–0x7E, and "%" itself, as "%" and two
 * upper-case hex digits; every other printable ASCII byte as it is.
 *
 * connect-es writes it with encodeURIComponent, which also escapes ":", ",",
 * "/", spaces and more; gRPC's own clients decode only what the spec
 * encodes (grpc-js with decodeURI, which leaves "%3A" in place), so they
 * showed such a message with its escapes. Every path that answers gRPC or
 * gRPC-Web writes it here instead: the engine (`setTrailerStatus`),
 * connect's handlers (`specGrpcMessages`), unknown paths
 * (src/http/not-found.ts). Clients that decode with decodeURIComponent
 * (connect-es) read both alike.
 */
import { constants as buffer } from "node:buffer";
import type { ConnectError } from "@connectrpc/connect";
import type {
  Compression,
  UniversalHandler,
  UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import {
  setTrailerStatus as connectSetTrailerStatus,
  headerEncoding,
  headerGrpcMessage,
} from "@connectrpc/connect/protocol-grpc";
import { parseRequestType } from "../protocol/content-type.js";
import { envelope } from "../protocol/envelope.js";
import { webTrailerFlag } from "../protocol-grpc-web/trailer.js";

/** The header's name as Node and gRPC-Web's trailer block spell it. */
export const grpcMessageHeader = headerGrpcMessage.toLowerCase();

/** `message` as PROTOCOL-HTTP2.md's Percent-Encoded rule writes it. */
export function encodeGrpcMessage(message: string): string {
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) return percentEncode(message);
  }
  return message;
}

function percentEncode(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out +=
      byte < 0x20 || byte > 0x7e || byte === 0x25
        ? `%${byte < 0x10 ? "0" : ""}${byte.toString(16).toUpperCase()}`
        : String.fromCharCode(byte);
  }
  return out;
}

/**
 * connect's setTrailerStatus (grpc-status, grpc-message, the error's details
 * and metadata), with grpc-message as the spec encodes it.
 */
export function setTrailerStatus(
  target: Headers,
  error: ConnectError | undefined,
): Headers {
  connectSetTrailerStatus(target, error);
  if (error !== undefined) {
    target.set(headerGrpcMessage, encodeGrpcMessage(error.rawMessage));
  }
  return target;
}

/** A grpc-message value connect wrote (encodeURIComponent), as the spec writes it. */
function respec(value: string): string {
  return encodeGrpcMessage(decodeURIComponent(value));
}

/**
 * Make connect's own handlers (`handlers`, the router's, as
 * connectNodeAdapter reads them) write grpc-message as the spec does: in the
 * trailers of a gRPC answer, once its body is done and they are final, and
 * in the trailer message of a gRPC-Web answer (decompressed with the answer's
 * encoding, one of `compressions`, and compressed again if it was). connect
 * sets the header inside its protocol code (setTrailerStatus), out of reach
 * of interceptors, so the answer is changed on its way out.
 */
export function specGrpcMessages(
  handlers: UniversalHandler[],
  compressions: readonly Compression[],
): void {
  handlers.forEach((handler, i) => {
    const wrapped = async (req: Parameters<UniversalHandler>[0]) => {
      const res = await handler(req);
      const protocol = parseRequestType(
        req.header.get("content-type"),
      )?.protocol;
      if (protocol === "grpc") {
        return mapBody(res, undefined, () => {
          const value = res.trailer?.get(headerGrpcMessage);
          if (value !== null && value !== undefined) {
            res.trailer?.set(headerGrpcMessage, respec(value));
          }
        });
      }
      if (protocol === "grpc-web") {
        const name = res.header?.get(headerEncoding);
        const compression = compressions.find((c) => c.name === name) ?? null;
        return mapBody(res, (chunk) => webTrailerRespec(chunk, compression));
      }
      return res;
    };
    handlers[i] = Object.assign(wrapped, handler);
  });
}

/**
 * `res` with each body chunk passed through `map`, and `done` called once
 * the body has ended; the iterator's throw and return reach connect's as
 * they are, so a failed write ends the call as before.
 */
function mapBody(
  res: UniversalServerResponse,
  map: ((chunk: Uint8Array) => Uint8Array | Promise<Uint8Array>) | undefined,
  done?: () => void,
): UniversalServerResponse {
  const body = res.body;
  if (body === undefined || !(Symbol.asyncIterator in body)) {
    done?.();
    return res;
  }
  return {
    ...res,
    body: {
      [Symbol.asyncIterator]() {
        const it = body[Symbol.asyncIterator]();
        return {
          async next() {
            const r = await it.next();
            if (r.done === true) done?.();
            else if (map !== undefined) r.value = await map(r.value);
            return r;
          },
          throw: (e?: unknown) => it.throw?.(e) ?? Promise.reject(e as Error),
          return: (v?: unknown) =>
            it.return?.(v) ?? Promise.resolve({ done: true, value: v }),
        };
      },
    },
  };
}

/**
 * A body chunk of connect's gRPC-Web handler, which writes one envelope a
 * chunk: the trailer message with its grpc-message line as the spec writes
 * it; any other chunk as it is.
 */
async function webTrailerRespec(
  chunk: Uint8Array,
  compression: Compression | null,
): Promise<Uint8Array> {
  const flags = chunk[0] ?? 0;
  if (
    chunk.byteLength < 5 ||
    (flags & webTrailerFlag) !== webTrailerFlag ||
    new DataView(chunk.buffer, chunk.byteOffset).getUint32(1) !==
      chunk.byteLength - 5
  ) {
    return chunk;
  }
  const compressed = (flags & 1) === 1;
  if (compressed && compression === null) return chunk;
  let data = chunk.subarray(5);
  if (compression !== null && compressed) {
    data = await compression.decompress(data, buffer.MAX_LENGTH);
  }
  const prefix = `${grpcMessageHeader}: `;
  let changed = false;
  const lines = Buffer.from(data)
    .toString("utf8")
    .split("\r\n")
    .map((line) => {
      if (!line.startsWith(prefix)) return line;
      const value = line.slice(prefix.length);
      const spec = respec(value);
      changed = spec !== value;
      return prefix + spec;
    });
  if (!changed) return chunk;
  let out: Uint8Array = Buffer.from(lines.join("\r\n"), "utf8");
  if (compression !== null && compressed) out = await compression.compress(out);
  return envelope(flags, out);
}
