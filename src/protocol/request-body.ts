import type { Readable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * A request body, read on demand from the stream's own buffer (paused mode):
 * an HTTP/2 stream, or an HTTP/1.1 request. Nothing is read ahead beyond what
 * the stream buffers itself (its highWaterMark), so a client that sends
 * faster than the handler reads is held back by HTTP/2 flow control
 * (RFC 9113, 5.2) or TCP's, as through connect's handlers.
 */
export class RequestBody {
  #stream: Readable;
  #ended = false;
  #closed = false;
  #aborted: { reason: unknown } | undefined = undefined;
  #wake: (() => void) | undefined = undefined;
  readonly #onEvent = () => {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  };
  readonly #onEnd = () => {
    this.#ended = true;
    // Nothing more to wait for: an open call (a server stream) holds no
    // listener of the body's from here on.
    this.#stream.removeListener("readable", this.#onEvent);
    this.#stream.removeListener("end", this.#onEnd);
    this.#onEvent();
  };

  /** The exchange's end is the call's to hear: it tells the body (`closed`). */
  constructor(stream: Readable) {
    this.#stream = stream;
    stream.on("readable", this.#onEvent);
    stream.on("end", this.#onEnd);
  }

  /** The stream closed: a read still waiting for the body's end fails. */
  closed(): void {
    this.#closed = true;
    this.#onEvent();
  }

  /**
   * What the stream has buffered, at least one chunk, or null at the end of
   * the body: at once when the stream has it, else a promise. Throws (or
   * rejects) if the stream closes before the body ended, as a Node stream
   * iterator reports a premature close through connect-node.
   */
  read(): Buffer | null | Promise<Buffer | null> {
    if (this.#aborted !== undefined) throw this.#aborted.reason;
    const chunk = this.#stream.read() as Buffer | null;
    if (chunk !== null) return chunk;
    if (this.#ended) return null;
    if (this.#closed) {
      throw new ConnectError(
        "stream closed before the request ended",
        Code.Aborted,
      );
    }
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
    }).then(this.#readAgain);
  }

  readonly #readAgain = () => this.read();

  /** The call ended: a pending read, and any later one, rejects with `reason`. */
  abort(reason: unknown): void {
    if (this.#aborted !== undefined) return;
    this.#aborted = { reason };
    this.#onEvent();
  }

  /** The call is over: drop the rest of the body, so the stream can close. */
  discard(): void {
    if (this.#ended || this.#closed) return;
    // A stream with "readable" listeners stays paused whatever resume() says.
    this.#stream.removeListener("readable", this.#onEvent);
    this.#stream.removeListener("end", this.#onEnd);
    this.#stream.resume();
  }
}

/**
 * The whole body, as connect's readAllBytes reads it, with its errors: over
 * `readMaxBytes` is RESOURCE_EXHAUSTED (at once when a content-length says
 * so), a body that does not match its content-length is INVALID_ARGUMENT.
 */
export async function readAll(
  body: RequestBody,
  readMaxBytes: number,
  contentLength: string | null,
): Promise<Uint8Array> {
  const hint =
    contentLength === null ? Number.NaN : Number.parseInt(contentLength, 10);
  const known = Number.isSafeInteger(hint) && hint >= 0;
  if (known && hint > readMaxBytes) {
    throw new ConnectError(
      `message size ${hint} is larger than configured readMaxBytes ${readMaxBytes}`,
      Code.ResourceExhausted,
    );
  }
  const chunks: Buffer[] = [];
  let count = 0;
  for (
    let chunk = await body.read();
    chunk !== null;
    chunk = await body.read()
  ) {
    count += chunk.length;
    if (known && count > hint) {
      throw new ConnectError(
        `protocol error: promised ${hint} bytes, received ${count}`,
        Code.InvalidArgument,
      );
    }
    if (!known && count > readMaxBytes) {
      throw new ConnectError(
        `message size is larger than configured readMaxBytes ${readMaxBytes}`,
        Code.ResourceExhausted,
      );
    }
    chunks.push(chunk);
  }
  if (known && count < hint) {
    throw new ConnectError(
      `protocol error: promised ${hint} bytes, received ${count}`,
      Code.InvalidArgument,
    );
  }
  return chunks.length === 1
    ? (chunks[0] as Buffer)
    : Buffer.concat(chunks, count);
}
