import type { ServerHttp2Stream } from "node:http2";
import type { HandlerContext } from "@connectrpc/connect";
import { type Compression, compressedFlag } from "@connectrpc/connect/protocol";
import { nodeHeaders } from "../headers.js";

/**
 * Writes the response as connect-node's universalResponseToNodeResponse does:
 * headers with the first message (so handlers may still set them), each
 * message enveloped and compressed from compressMinBytes, waiting for 'drain'
 * when the stream asks, then the trailers.
 */
export class ResponseWriter {
  private headersSent = false;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly acceptEncoding: string,
    private readonly context: HandlerContext,
    private readonly compression: Compression | null,
    private readonly compressMinBytes: number,
  ) {}

  private get gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    const trailer = this.context.responseTrailer;
    // Trailers are read when the stream asks for them, after the last write.
    this.stream.on("wantTrailers", () =>
      this.stream.sendTrailers(nodeHeaders(trailer)),
    );
    this.stream.respond(
      {
        ":status": 200,
        "grpc-accept-encoding": this.acceptEncoding,
        ...nodeHeaders(this.context.responseHeader),
      },
      { waitForTrailers: true },
    );
  }

  /** Write one message; false when the client is gone and nothing more should be produced. */
  async write(message: Uint8Array): Promise<boolean> {
    if (this.gone) return false;
    let flags = 0;
    let data = message;
    if (this.compression !== null && data.byteLength >= this.compressMinBytes) {
      data = await this.compression.compress(data);
      flags = compressedFlag;
      if (this.gone) return false;
    }
    const frame = Buffer.allocUnsafe(5 + data.byteLength);
    frame[0] = flags;
    frame.writeUInt32BE(data.byteLength, 1);
    frame.set(data, 5);
    this.sendHeaders();
    if (this.stream.write(frame)) return true;
    // Back-pressure: wait until the stream drains or closes.
    const stream = this.stream;
    await new Promise<void>((resolve) => {
      const done = () => {
        stream.off("drain", done);
        stream.off("close", done);
        resolve();
      };
      stream.on("drain", done);
      stream.on("close", done);
    });
    return !this.gone;
  }

  /** Headers if none went yet, then the trailers, and end the stream. */
  finish(): void {
    if (this.gone) return;
    this.sendHeaders();
    this.stream.end();
  }
}
