/**
 * gRPC-Web's text mode (application/grpc-web-text, PROTOCOL-WEB.md,
 * "Text-encoded (response) streams"): the same enveloped messages and
 * trailer as binary gRPC-Web, the body in base64 both ways, for clients that
 * read a response as text (Google's grpc-web client in its default mode,
 * over XMLHttpRequest). connect-es does not speak it; Envoy's grpc-web
 * filter does.
 *
 * Requests are decoded a 4-character quantum at a time, so padding may end
 * any quantum, as when a client sends several separately encoded pieces; the
 * RFC 4648 alphabet only, padded. Responses are encoded one write at a time,
 * each a whole message with its padding, as the spec says a server runtime
 * flushes them, so each reply of a stream reaches the client as it is sent.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { ChunkSource } from "../protocol/envelope.js";

/** The response content types of text mode, by format. */
export const contentTypeTextProto = "application/grpc-web-text+proto";
export const contentTypeTextJson = "application/grpc-web-text+json";

const alphabet = 1;
const padding = 2;
/** What each byte is in base64: 0 none of it, 1 the alphabet, 2 padding. */
const kind = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
  kind[c.charCodeAt(0)] = alphabet;
}
kind["=".charCodeAt(0)] = padding;

const none = Buffer.alloc(0);

/** A text-mode request body, decoded from base64 as it is read from `source`. */
export class Base64Body implements ChunkSource {
  readonly #source: ChunkSource;
  /** The characters of a quantum not yet whole (0 to 3), from the last chunk. */
  #carry: Buffer = none;

  constructor(source: ChunkSource) {
    this.#source = source;
  }

  read(): Buffer | null | Promise<Buffer | null> {
    const chunk = this.#source.read();
    return chunk instanceof Promise
      ? chunk.then(this.#decode)
      : this.#decode(chunk);
  }

  /**
   * The bytes of the whole quanta in what has come so far; every character
   * checked as it arrives, so bad input fails at once, not at the end.
   */
  readonly #decode = (chunk: Buffer | null): Buffer | null => {
    if (chunk === null) {
      if (this.#carry.length === 0) return null;
      throw new ConnectError(
        "protocol error: the grpc-web-text body ends inside a base64 quantum",
        Code.InvalidArgument,
      );
    }
    const text =
      this.#carry.length === 0 ? chunk : Buffer.concat([this.#carry, chunk]);
    const whole = text.length - (text.length % 4);
    const out: Buffer[] = [];
    let from = 0;
    for (let at = 0; at < text.length; at += 4) {
      const padded = checkQuantum(text, at);
      // Node's base64 decoder stops at the first padding: decode up to it.
      if (padded && at + 4 <= whole) {
        out.push(decode(text, from, at + 4));
        from = at + 4;
      }
    }
    if (from < whole) out.push(decode(text, from, whole));
    this.#carry = Buffer.from(text.subarray(whole));
    if (out.length === 0) return none;
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  };
}

/**
 * Check the quantum (or the start of one) at `at`: two characters of the
 * alphabet, then the alphabet or padding, padding only at its end. True if it
 * is padded.
 */
function checkQuantum(text: Buffer, at: number): boolean {
  const end = Math.min(at + 4, text.length);
  let padded = false;
  for (let i = at; i < end; i++) {
    const k = kind[text[i] as number];
    const ok = k === alphabet ? !padded : k === padding && i - at >= 2;
    if (!ok) {
      throw new ConnectError(
        "protocol error: the grpc-web-text body is not base64",
        Code.InvalidArgument,
      );
    }
    if (k === padding) padded = true;
  }
  return padded;
}

function decode(text: Buffer, from: number, to: number): Buffer {
  return Buffer.from(text.toString("latin1", from, to), "base64");
}

/** One write of a text-mode response: the bytes in base64, padded. */
export function base64Frame(frame: Buffer): Buffer {
  return Buffer.from(frame.toString("base64"), "latin1");
}
