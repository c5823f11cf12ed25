import { Code, ConnectError } from "@connectrpc/connect";
import type { EnvelopedMessage } from "@connectrpc/connect/protocol";

/**
 * Enveloped messages, the framing gRPC, gRPC-Web and Connect's streaming
 * calls share: a flags byte, a 32-bit big-endian length, the message
 * (gRPC over HTTP/2, Length-Prefixed-Message; connect's protocol/envelope.ts).
 */

/** Where the request body comes from: chunks on demand, null at its end, at once when they are there (src/protocol/request-body.ts). */
export interface ChunkSource {
  read(): Buffer | null | Promise<Buffer | null>;
}

/** What `next` gives: a message, undefined at the end of the body; a promise only when it has to wait for the body. */
export type NextEnvelope =
  | EnvelopedMessage
  | undefined
  | Promise<EnvelopedMessage | undefined>;

/** An envelope's prefix: a flags byte and a 32-bit big-endian length. */
const prefixBytes = 5;

/** One enveloped message, as connect's encodeEnvelope makes it, in a Buffer for Node's writes. */
export function envelope(flags: number, data: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(prefixBytes + data.byteLength);
  frame[0] = flags;
  frame.writeUInt32BE(data.byteLength, 1);
  frame.set(data, prefixBytes);
  return frame;
}

/**
 * Splits a request body into enveloped messages, one when asked for, like
 * connect's transformSplitEnvelope: a length over `readMaxBytes` fails as
 * soon as its prefix is in, before the message is read; a body ending inside
 * an envelope is "incomplete envelope".
 */
export class EnvelopeReader {
  #body: ChunkSource;
  #readMaxBytes: number;
  /** Chunks read from the body and not yet handed out, and their total size: joined once a whole envelope is in, not chunk by chunk. */
  #chunks: Buffer[] = [];
  #have = 0;

  constructor(body: ChunkSource, readMaxBytes: number) {
    this.#body = body;
    this.#readMaxBytes = readMaxBytes;
  }

  /** Bytes needed before the next step: the prefix, then the whole envelope. */
  #need = prefixBytes;
  /** The length the pending envelope's prefix announced; -1 until it is in. */
  #length = -1;
  /** Where, in the pending bytes, the first envelope whose prefix is not yet checked against the limit starts. */
  #checked = 0;

  /** The next message, or undefined at the end of the body. */
  next(): NextEnvelope {
    for (;;) {
      const env = this.#take();
      if (env !== undefined) return env;
      const chunk = this.#body.read();
      if (chunk instanceof Promise) return chunk.then(this.#nextAfter);
      if (chunk === null) return this.#end();
      this.#add(chunk);
    }
  }

  readonly #nextAfter = (chunk: Buffer | null): NextEnvelope => {
    if (chunk === null) return this.#end();
    this.#add(chunk);
    return this.next();
  };

  /** A whole envelope from the pending bytes, if they hold one; fails on a prefix over the limit. */
  #take(): EnvelopedMessage | undefined {
    if (this.#have < this.#need) return undefined;
    const buf = this.#join();
    if (this.#length < 0) {
      const length = buf.readUInt32BE(1);
      this.#assertWithinLimit(length);
      this.#length = length;
      this.#need = prefixBytes + length;
      if (this.#have < this.#need) return undefined;
    }
    const end = this.#need;
    // As connect's EnvelopeDecoder.decode, which splits all it has read
    // before it hands any envelope on: a length over the limit in the bytes
    // that came with this envelope fails it too.
    if (this.#have - end >= prefixBytes && this.#checked < this.#have) {
      this.#checkAhead(buf, end);
    }
    this.#checked = this.#checked > end ? this.#checked - end : 0;
    this.#have -= end;
    if (this.#have === 0) this.#chunks.length = 0;
    else this.#chunks[0] = buf.subarray(end);
    this.#need = prefixBytes;
    this.#length = -1;
    return { flags: buf[0] as number, data: buf.subarray(prefixBytes, end) };
  }

  /** Check the prefix of every envelope after the pending one, from `end`, that the pending bytes hold. */
  #checkAhead(buf: Buffer, end: number): void {
    let at = Math.max(end, this.#checked);
    while (at + prefixBytes <= this.#have) {
      const length = buf.readUInt32BE(at + 1);
      this.#assertWithinLimit(length);
      at += prefixBytes + length;
    }
    this.#checked = at;
  }

  #assertWithinLimit(length: number): void {
    if (length > this.#readMaxBytes) {
      throw new ConnectError(
        `message size ${length} is larger than configured readMaxBytes ${this.#readMaxBytes}`,
        Code.ResourceExhausted,
      );
    }
  }

  #add(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#have += chunk.length;
  }

  /** The body ended: cleanly between envelopes, or inside one. */
  #end(): undefined {
    if (this.#have === 0) return undefined;
    throw new ConnectError(
      "protocol error: incomplete envelope",
      Code.InvalidArgument,
    );
  }

  /** The pending chunks as one buffer. */
  #join(): Buffer {
    const chunks = this.#chunks;
    if (chunks.length > 1) {
      chunks[0] = Buffer.concat(chunks, this.#have);
      chunks.length = 1;
    }
    return chunks[0] as Buffer;
  }
}
