import type { OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { type Compression, compressedFlag } from "@connectrpc/connect/protocol";
import { nodeHeaders } from "../../http/headers.js";
import { FastContext } from "../call.js";

/**
 * Writes a gRPC response as connect-node's universalResponseToNodeResponse
 * does: headers with the first message (so handlers may still set them),
 * each message enveloped and compressed from compressMinBytes, waiting for
 * 'drain' when the stream asks, then the trailers.
 */
export class ResponseWriter {
  #stream: ServerHttp2Stream;
  #ctx: FastContext;
  /** The response headers when the handler set none of its own. */
  #plainHeader: OutgoingHttpHeaders;
  #acceptEncoding: string;
  #compression: Compression | null;
  #compressMinBytes: number;
  #headersSent = false;

  constructor(
    stream: ServerHttp2Stream,
    ctx: FastContext,
    plainHeader: OutgoingHttpHeaders,
    acceptEncoding: string,
    compression: Compression | null,
    compressMinBytes: number,
  ) {
    this.#stream = stream;
    this.#ctx = ctx;
    this.#plainHeader = plainHeader;
    this.#acceptEncoding = acceptEncoding;
    this.#compression = compression;
    this.#compressMinBytes = compressMinBytes;
  }

  get #gone(): boolean {
    return this.#stream.destroyed || this.#stream.closed;
  }

  #sendHeaders(): void {
    if (this.#headersSent) return;
    this.#headersSent = true;
    // Trailers are read when the stream asks for them, after the last write.
    this.#stream.on("wantTrailers", this.#sendTrailers);
    const { header } = FastContext.written(this.#ctx);
    this.#stream.respond(
      header === undefined
        ? this.#plainHeader
        : {
            ":status": 200,
            "grpc-accept-encoding": this.#acceptEncoding,
            ...nodeHeaders(header),
          },
      { waitForTrailers: true },
    );
  }

  readonly #sendTrailers = (): void => {
    const { trailer, init } = FastContext.written(this.#ctx);
    this.#stream.sendTrailers(
      trailer === undefined ? init.trailer : nodeHeaders(trailer),
    );
  };

  /** Write one message; false when the client is gone and nothing more should be produced. */
  async write(message: Uint8Array): Promise<boolean> {
    const frame = await this.#frame(message);
    if (frame === undefined) return false;
    this.#sendHeaders();
    if (this.#stream.write(frame)) return true;
    // Back-pressure: wait until the stream drains or closes.
    const stream = this.#stream;
    await new Promise<void>((resolve) => {
      const done = () => {
        stream.off("drain", done);
        stream.off("close", done);
        resolve();
      };
      stream.on("drain", done);
      stream.on("close", done);
    });
    return !this.#gone;
  }

  /** Headers if none went yet, then the trailers, and end the stream. */
  finish(): void {
    if (this.#gone || this.#stream.writableEnded) return;
    this.#sendHeaders();
    this.#stream.end();
  }

  /**
   * A unary response: headers, the one message and the end of the stream in
   * one go; a promise only when the message is compressed.
   */
  finishWith(message: Uint8Array): void | Promise<void> {
    const frame = this.#frame(message);
    if (frame instanceof Promise) {
      return frame.then((f) => this.#end(f));
    }
    this.#end(frame);
  }

  #end(frame: Buffer | undefined): void {
    if (frame === undefined) return;
    this.#sendHeaders();
    this.#stream.end(frame);
  }

  /** The message enveloped, compressed when it is large enough; undefined when the client is gone. */
  #frame(
    message: Uint8Array,
  ): Buffer | undefined | Promise<Buffer | undefined> {
    if (this.#gone) return undefined;
    const compression = this.#compression;
    if (compression === null || message.byteLength < this.#compressMinBytes) {
      return envelope(0, message);
    }
    return compression
      .compress(message)
      .then((data) =>
        this.#gone ? undefined : envelope(compressedFlag, data),
      );
  }
}

/** One enveloped message (gRPC over HTTP/2, Length-Prefixed-Message). */
function envelope(flags: number, data: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + data.byteLength);
  frame[0] = flags;
  frame.writeUInt32BE(data.byteLength, 1);
  frame.set(data, 5);
  return frame;
}
