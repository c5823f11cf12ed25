import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Compression,
  compressedFlag,
  type EnvelopedMessage,
} from "@connectrpc/connect/protocol";
import type { Codec } from "../engine/route.js";
import type { EnvelopeReader } from "./envelope.js";

type Result = IteratorResult<unknown>;

/**
 * A call's request messages: envelopes from the body, decompressed and
 * parsed, one when asked for, as connect's transformSplitEnvelope,
 * transformDecompressEnvelope and transformParseEnvelope make them. Its own
 * object rather than closures in the handler, so that a server stream whose
 * single request has been read holds none of this while it runs.
 */
export class RequestMessages
  implements AsyncIterable<unknown>, AsyncIterator<unknown>
{
  #reader: EnvelopeReader;
  #codec: Codec;
  #compression: Compression | null;
  #readMaxBytes: number;
  /**
   * Envelopes with this flag are skipped, as connect's transformParseEnvelope
   * skips a gRPC-Web trailer or a Connect end-of-stream message that a client
   * sends; 0 skips none (gRPC).
   */
  #skipFlag: number;
  /** Raised on the first read, as connect's transformPrepend raises it (a bad encoding or timeout header). */
  #firstError: ConnectError | undefined;
  readonly #decode = (
    env: EnvelopedMessage | undefined,
  ): Result | Promise<Result> => {
    if (env === undefined) return { done: true, value: undefined };
    if ((env.flags & compressedFlag) !== compressedFlag) {
      return this.#parse(env.flags, env.data);
    }
    if (this.#compression === null) {
      throw new ConnectError(
        "received compressed envelope, but do not know how to decompress",
        Code.Internal,
      );
    }
    return this.#compression
      .decompress(env.data, this.#readMaxBytes)
      .then((data) => this.#parse(env.flags ^ compressedFlag, data));
  };

  constructor(
    reader: EnvelopeReader,
    codec: Codec,
    compression: Compression | null,
    readMaxBytes: number,
    skipFlag: number,
    firstError: ConnectError | undefined,
  ) {
    this.#reader = reader;
    this.#codec = codec;
    this.#compression = compression;
    this.#readMaxBytes = readMaxBytes;
    this.#skipFlag = skipFlag;
    this.#firstError = firstError;
  }

  #parse(flags: number, data: Uint8Array): Result | Promise<Result> {
    const skip = this.#skipFlag;
    if (skip !== 0 && (flags & skip) === skip) return this.read();
    return { done: false, value: this.#codec.parse(data) };
  }

  /** The next request message: at once when its bytes are in, else a promise. */
  read(): Result | Promise<Result> {
    const error = this.#firstError;
    if (error !== undefined) {
      this.#firstError = undefined;
      throw error;
    }
    const env = this.#reader.next();
    return env instanceof Promise ? env.then(this.#decode) : this.#decode(env);
  }

  async next(): Promise<Result> {
    return this.read();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
