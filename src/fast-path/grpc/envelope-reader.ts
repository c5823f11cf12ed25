import type { ServerHttp2Stream } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { EnvelopedMessage } from "@connectrpc/connect/protocol";

/**
 * Splits the request body into enveloped messages as they arrive, like
 * connect's transformSplitEnvelope: a length over readMaxBytes fails as soon
 * as its header is in, a body ending inside a frame is "incomplete envelope".
 * Errors are queued behind the messages before them, so they surface in the
 * same order as in connect's pipeline.
 */
export class EnvelopeReader {
  private readonly queue: (EnvelopedMessage | { error: unknown })[] = [];
  private buf: Buffer | undefined;
  private ended = false;
  private failed = false;
  private discarding = false;
  private wake: (() => void) | undefined;
  private first: (() => void) | undefined;
  private queuedBytes = 0;

  /** Enough read ahead of the handler: more waits in the client, held by HTTP/2 flow control. */
  private get full(): boolean {
    return this.queue.length >= 16 || this.queuedBytes >= 64 * 1024;
  }

  constructor(
    private readonly req: ServerHttp2Stream,
    private readonly readMaxBytes: number,
    first: () => void,
  ) {
    this.first = first;
    req.on("data", (chunk: Buffer) => this.push(chunk));
    req.on("end", () => {
      if (!this.failed && this.buf !== undefined && this.buf.length > 0) {
        this.fail(
          new ConnectError(
            "protocol error: incomplete envelope",
            Code.InvalidArgument,
          ),
        );
      }
      this.ended = true;
      this.wake?.();
    });
    req.on("close", () => {
      if (!this.ended) {
        this.ended = true;
        // As a Node stream iterator reports a premature close, through connect-node.
        if (!this.failed)
          this.fail(
            new ConnectError(
              "stream closed before the request ended",
              Code.Aborted,
            ),
          );
      }
      this.wake?.();
    });
  }

  private fail(error: unknown): void {
    this.failed = true;
    this.queue.push({ error });
    this.buf = undefined;
    // A reader may be waiting: an oversized length prefix fails a request
    // whose body is still arriving, or never will.
    this.wake?.();
  }

  /** The call is over: read and drop the rest of the body, so the stream can close. */
  discard(): void {
    if (this.ended) return;
    this.discarding = true;
    this.buf = undefined;
    this.req.resume();
  }

  private push(chunk: Buffer): void {
    if (this.failed || this.discarding) return;
    let buf =
      this.buf === undefined || this.buf.length === 0
        ? chunk
        : Buffer.concat([this.buf, chunk]);
    while (buf.length >= 5) {
      const length = buf.readUInt32BE(1);
      if (length > this.readMaxBytes) {
        this.fail(
          new ConnectError(
            `message size ${length} is larger than configured readMaxBytes ${this.readMaxBytes}`,
            Code.ResourceExhausted,
          ),
        );
        return;
      }
      if (buf.length < 5 + length) break;
      this.queue.push({
        flags: buf[0] as number,
        data: buf.subarray(5, 5 + length),
      });
      this.queuedBytes += length;
      buf = buf.subarray(5 + length);
    }
    this.buf = buf;
    // Hold the client to the HTTP/2 window while messages wait to be read.
    if (this.full) this.req.pause();
    this.wake?.();
  }

  /** The next message, undefined at the end of the body; throws a queued error. */
  async next(): Promise<EnvelopedMessage | undefined> {
    if (this.first !== undefined) {
      const check = this.first;
      this.first = undefined;
      check();
    }
    while (this.queue.length === 0 && !this.ended) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
    const item = this.queue.shift();
    if (item === undefined) return undefined;
    if ("error" in item) throw item.error;
    this.queuedBytes -= item.data.byteLength;
    if (!this.full && this.req.isPaused() && !this.ended) this.req.resume();
    return item;
  }
}
