import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Compression,
  compressedFlag,
  type EnvelopedMessage,
} from "@connectrpc/connect/protocol";
import type { Codec } from "../call.js";
import type { EnvelopeReader } from "./envelope-reader.js";

type Result = IteratorResult<unknown>;

/**
 * A gRPC call's request messages: envelopes from the body, decompressed and
 * parsed, one when asked for. Its own object rather than closures in the
 * handler, so that a server stream whose single request has been read holds
 * none of this while it runs.
 */
export class RequestMessages
  implements AsyncIterable<unknown>, AsyncIterator<unknown>
{
  #reader: EnvelopeReader;
  #codec: Codec;
  #compression: Compression | null;
  #readMaxBytes: number;
  /** Raised on the first read, as connect's transformPrepend raises it (a bad encoding or timeout header). */
  #firstError: ConnectError | undefined;
  readonly #decode = (
    env: EnvelopedMessage | undefined,
  ): Result | Promise<Result> => {
    if (env === undefined) return { done: true, value: undefined };
    if ((env.flags & compressedFlag) !== compressedFlag) {
      return { done: false, value: this.#codec.parse(env.data) };
    }
    if (this.#compression === null) {
      throw new ConnectError(
        "received compressed envelope, but do not know how to decompress",
        Code.Internal,
      );
    }
    return this.#compression
      .decompress(env.data, this.#readMaxBytes)
      .then((data) => ({ done: false, value: this.#codec.parse(data) }));
  };

  constructor(
    reader: EnvelopeReader,
    codec: Codec,
    compression: Compression | null,
    readMaxBytes: number,
    firstError: ConnectError | undefined,
  ) {
    this.#reader = reader;
    this.#codec = codec;
    this.#compression = compression;
    this.#readMaxBytes = readMaxBytes;
    this.#firstError = firstError;
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
