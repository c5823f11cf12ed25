import { Code, ConnectError } from "@connectrpc/connect";
import type { EnvelopedMessage } from "@connectrpc/connect/protocol";
/** Where the request body comes from: chunks on demand, null at its end (src/fast-path/request-body.ts). */
export interface ChunkSource {
  read(): Promise<Buffer | null>;
}

/** An envelope's prefix: a flags byte and a 32-bit big-endian length (gRPC over HTTP/2, Length-Prefixed-Message). */
const prefixBytes = 5;

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

  /** The next message, or undefined at the end of the body. */
  async next(): Promise<EnvelopedMessage | undefined> {
    let need = prefixBytes;
    let length = -1;
    for (;;) {
      if (this.#have >= need) {
        const buf = this.#join();
        if (length < 0) {
          length = buf.readUInt32BE(1);
          if (length > this.#readMaxBytes) {
            throw new ConnectError(
              `message size ${length} is larger than configured readMaxBytes ${this.#readMaxBytes}`,
              Code.ResourceExhausted,
            );
          }
          need = prefixBytes + length;
        }
        if (this.#have >= need) {
          this.#take(buf, need);
          return {
            flags: buf[0] as number,
            data: buf.subarray(prefixBytes, need),
          };
        }
      }
      const chunk = await this.#body.read();
      if (chunk === null) {
        if (this.#have === 0) return undefined;
        throw new ConnectError(
          "protocol error: incomplete envelope",
          Code.InvalidArgument,
        );
      }
      this.#chunks.push(chunk);
      this.#have += chunk.length;
    }
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

  /** Drop the first `n` bytes of `buf`, the one pending chunk. */
  #take(buf: Buffer, n: number): void {
    this.#have -= n;
    if (this.#have === 0) this.#chunks.length = 0;
    else this.#chunks[0] = buf.subarray(n);
  }
}
