import type { OutgoingHttpHeaders } from "node:http";
import { type Compression, compressedFlag } from "@connectrpc/connect/protocol";
import { CallContext } from "../engine/context.js";
import type { Exchange } from "../engine/exchange.js";
import type { Codec } from "../engine/route.js";
import { envelope } from "./envelope.js";
import { nodeHeaders } from "./headers.js";

/** What a response starts with, for one protocol and response encoding: made once, shared by its calls. */
export interface ResponseHead {
  /** The whole header block when the handler set no header of its own. */
  readonly plain: OutgoingHttpHeaders;
  /** What goes before the handler's own headers when it set some (gRPC's grpc-accept-encoding). */
  readonly before: OutgoingHttpHeaders | undefined;
  /** Whether HTTP trailers end the response (gRPC), rather than a last message in the body (gRPC-Web, Connect). */
  readonly trailers: boolean;
}

/**
 * Writes an enveloped response (gRPC, gRPC-Web, Connect streaming; messages
 * serialized with `codec`) as connect's handlers and connect-node's
 * universalResponseToNodeResponse do: headers with the first message (so
 * handlers may still set them), each message enveloped and compressed from
 * compressMinBytes (connect's envelopeCompress), waiting when the client
 * reads slowly, then the end: HTTP trailers, or a last envelope of the
 * protocol's own. Each write may be `encode`d on its way out (gRPC-Web's
 * text mode: base64).
 */
export class ResponseWriter {
  #exchange: Exchange;
  #ctx: CallContext;
  #codec: Codec;
  #head: ResponseHead;
  #compression: Compression | null;
  #compressMinBytes: number;
  #encode: ((bytes: Buffer) => Buffer) | undefined;
  #headersSent = false;

  constructor(
    exchange: Exchange,
    ctx: CallContext,
    codec: Codec,
    head: ResponseHead,
    compression: Compression | null,
    compressMinBytes: number,
    encode?: (bytes: Buffer) => Buffer,
  ) {
    this.#exchange = exchange;
    this.#ctx = ctx;
    this.#codec = codec;
    this.#head = head;
    this.#compression = compression;
    this.#compressMinBytes = compressMinBytes;
    this.#encode = encode;
  }

  #sendHeaders(): void {
    if (this.#headersSent) return;
    this.#headersSent = true;
    const header = CallContext.headerSet(this.#ctx);
    const head = this.#head;
    this.#exchange.respond(
      200,
      header === undefined
        ? head.plain
        : { ...head.before, ...nodeHeaders(header) },
      head.trailers,
    );
  }

  /** The trailers as they stand (gRPC): the handler's, or the protocol's initial ones. */
  #trailers(): OutgoingHttpHeaders | undefined {
    if (!this.#head.trailers) return undefined;
    const trailer = CallContext.trailerSet(this.#ctx);
    return trailer === undefined
      ? CallContext.init(this.#ctx).trailer
      : nodeHeaders(trailer);
  }

  /**
   * Write one message; false when the client is gone and nothing more should
   * be produced. At once when the exchange takes it; a promise while it
   * compresses or waits for the client to read (back-pressure).
   */
  write(message: unknown): boolean | Promise<boolean> {
    if (this.#exchange.gone) return false;
    const frame = this.#frame(0, this.#codec.serialize(message));
    if (frame instanceof Promise) return frame.then((f) => this.#send(f));
    return this.#send(frame);
  }

  #send(frame: Buffer): boolean | Promise<boolean> {
    if (this.#exchange.gone) return false;
    this.#sendHeaders();
    const encode = this.#encode;
    return this.#exchange.write(encode === undefined ? frame : encode(frame));
  }

  /**
   * Headers if none went yet, then the end: the trailers (gRPC), or the
   * protocol's last envelope made of `endFlags` and `endData` (a gRPC-Web
   * trailer, a Connect end-of-stream message). A promise only while the last
   * envelope is compressed.
   */
  finish(endFlags = 0, endData?: Uint8Array): void | Promise<void> {
    if (this.#exchange.ended) return;
    if (endData === undefined) {
      this.#sendHeaders();
      this.#exchange.end(undefined, this.#trailers());
      return;
    }
    const frame = this.#frame(endFlags, endData);
    if (frame instanceof Promise) return frame.then((f) => this.#endWith(f));
    this.#endWith(frame);
  }

  /**
   * A unary response: headers, the one message, the end (trailers, or the
   * last envelope made of `endFlags` and `endData` by `end()` once the
   * handler's trailers are final) in one go; a promise only while something
   * is compressed.
   */
  finishWith(
    message: unknown,
    end?: () => { flags: number; data: Uint8Array },
  ): void | Promise<void> {
    if (this.#exchange.gone) return;
    const frame = this.#frame(0, this.#codec.serialize(message));
    if (end === undefined) {
      if (frame instanceof Promise) return frame.then((f) => this.#endWith(f));
      this.#endWith(frame);
      return;
    }
    const { flags, data } = end();
    const last = this.#frame(flags, data);
    if (frame instanceof Promise || last instanceof Promise) {
      return Promise.all([frame, last]).then(([f, l]) =>
        this.#endWith(Buffer.concat([f, l])),
      );
    }
    this.#endWith(Buffer.concat([frame, last]));
  }

  #endWith(frame: Buffer): void {
    if (this.#exchange.ended) return;
    this.#sendHeaders();
    const encode = this.#encode;
    this.#exchange.end(
      encode === undefined ? frame : encode(frame),
      this.#trailers(),
    );
  }

  /** One envelope, its data compressed when it is large enough. */
  #frame(flags: number, data: Uint8Array): Buffer | Promise<Buffer> {
    const compression = this.#compression;
    if (compression === null || data.byteLength < this.#compressMinBytes) {
      return envelope(flags, data);
    }
    return compression
      .compress(data)
      .then((compressed) => envelope(flags | compressedFlag, compressed));
  }
}
