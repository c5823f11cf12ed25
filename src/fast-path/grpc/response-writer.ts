import type { OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { type Compression, compressedFlag } from "@connectrpc/connect/protocol";
import { nodeHeaders } from "../../http/headers.js";
import { type Codec, FastContext } from "../call.js";

/**
 * Writes a gRPC response (messages serialized with `codec`) as connect-node's universalResponseToNodeResponse
 * does: headers with the first message (so handlers may still set them),
 * each message enveloped and compressed from compressMinBytes, waiting for
 * 'drain' when the stream asks, then the trailers.
 */
export class ResponseWriter {
  #stream: ServerHttp2Stream;
  #ctx: FastContext;
  #codec: Codec;
  /** The response headers when the handler set none of its own. */
  #plainHeader: OutgoingHttpHeaders;
  #acceptEncoding: string;
  #compression: Compression | null;
  #compressMinBytes: number;
  #headersSent = false;

  constructor(
    stream: ServerHttp2Stream,
    ctx: FastContext,
    codec: Codec,
    plainHeader: OutgoingHttpHeaders,
    acceptEncoding: string,
    compression: Compression | null,
    compressMinBytes: number,
  ) {
    this.#stream = stream;
    this.#ctx = ctx;
    this.#codec = codec;
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

  /** End the stream; the trailers go when it asks for them, after the last write. */
  #end(frame?: Buffer): void {
    this.#stream.once("wantTrailers", () => {
      const { trailer, init } = FastContext.written(this.#ctx);
      this.#stream.sendTrailers(
        trailer === undefined ? init.trailer : nodeHeaders(trailer),
      );
    });
    if (frame === undefined) this.#stream.end();
    else this.#stream.end(frame);
  }

  /**
   * Write one message; false when the client is gone and nothing more should
   * be produced. At once when the stream takes it; a promise while it
   * compresses or waits for the stream to drain (back-pressure).
   */
  write(message: unknown): boolean | Promise<boolean> {
    const frame = this.#frame(message);
    if (frame instanceof Promise) return frame.then((f) => this.#send(f));
    return this.#send(frame);
  }

  #send(frame: Buffer | undefined): boolean | Promise<boolean> {
    if (frame === undefined) return false;
    this.#sendHeaders();
    if (this.#stream.write(frame)) return true;
    const stream = this.#stream;
    return new Promise<boolean>((resolve) => {
      const done = () => {
        stream.off("drain", done);
        stream.off("close", done);
        resolve(!this.#gone);
      };
      stream.on("drain", done);
      stream.on("close", done);
    });
  }

  /** Headers if none went yet, then the trailers, and end the stream. */
  finish(): void {
    if (this.#gone || this.#stream.writableEnded) return;
    this.#sendHeaders();
    this.#end();
  }

  /**
   * A unary response: headers, the one message and the end of the stream in
   * one go; a promise only when the message is compressed.
   */
  finishWith(message: unknown): void | Promise<void> {
    const frame = this.#frame(message);
    if (frame instanceof Promise) {
      return frame.then((f) => this.#endWith(f));
    }
    this.#endWith(frame);
  }

  #endWith(frame: Buffer | undefined): void {
    if (frame === undefined) return;
    this.#sendHeaders();
    this.#end(frame);
  }

  /** The message enveloped, compressed when it is large enough; undefined when the client is gone. */
  #frame(message: unknown): Buffer | undefined | Promise<Buffer | undefined> {
    if (this.#gone) return undefined;
    const data = this.#codec.serialize(message);
    const compression = this.#compression;
    if (compression === null || data.byteLength < this.#compressMinBytes) {
      return envelope(0, data);
    }
    return compression
      .compress(data)
      .then((compressed) =>
        this.#gone ? undefined : envelope(compressedFlag, compressed),
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
