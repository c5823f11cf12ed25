import type {
  IncomingHttpHeaders,
  OutgoingHttpHeaders,
  ServerHttp2Stream,
} from "node:http2";
import type { ConnectError, ContextValues } from "@connectrpc/connect";
import {
  type Connection,
  type ConnectionSource,
  sessionConnection,
  unknownConnection,
} from "../calls/connection.js";
import { resetError } from "../protocol/reset-error.js";
import { type Exchange, NodeExchange, writeWithRoom } from "./exchange.js";

const withTrailers = { waitForTrailers: true } as const;

/**
 * An HTTP/2 stream as an exchange, taken from the session before Node's
 * compatibility layer makes request and response objects of it
 * (src/transport/listener.ts, claimStream).
 */
export class Http2Exchange extends NodeExchange implements Exchange {
  readonly httpVersion = "2.0";
  /** The header fields as they came (the "stream" event's rawHeaders), for context values. */
  readonly #rawHeaders: readonly string[] | undefined;

  /** `extra`: headers every response carries besides the protocol's (CORS). */
  constructor(
    readonly stream: ServerHttp2Stream,
    readonly headers: IncomingHttpHeaders,
    extra: OutgoingHttpHeaders | undefined,
    rawHeaders?: readonly string[],
  ) {
    super(stream, extra);
    this.#rawHeaders = rawHeaders;
  }

  get method(): string {
    return this.headers[":method"] ?? "";
  }

  get path(): string {
    return this.headers[":path"] ?? "";
  }

  get url(): string {
    const h = this.headers;
    return `${h[":scheme"] ?? "http"}://${h[":authority"] ?? h.host}${h[":path"]}`;
  }

  get connection(): Connection {
    const session = this.stream.session;
    return session === undefined
      ? unknownConnection
      : sessionConnection(session);
  }

  get gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  get ended(): boolean {
    return this.gone || this.stream.writableEnded;
  }

  contextValues(
    make: (source: ConnectionSource) => ContextValues,
  ): ContextValues {
    const session = this.stream.session;
    return make({
      httpVersion: "2.0",
      socket: session?.socket ?? {},
      stream: { session },
      rawHeaders: this.#rawHeaders,
    });
  }

  onClose(listener: (reason: ConnectError | undefined) => void): void {
    // As connect-node: a reset tells why (CANCEL → canceled); a plain close
    // ends the call. on(), not once(), for an event a stream emits once:
    // once() allocates a wrapper per listener.
    const stream = this.stream;
    stream.on("close", () => {
      this.bodyClosed();
      listener(resetError(stream.rstCode));
    });
  }

  respond(
    status: number,
    headers: OutgoingHttpHeaders,
    trailers: boolean,
  ): void {
    let head = this.withExtra(headers);
    // Node answers 200 when no :status is given.
    if (status !== 200) head = { ...head, ":status": status };
    this.stream.respond(head, trailers ? withTrailers : undefined);
  }

  write(chunk: Uint8Array): boolean | Promise<boolean> {
    return writeWithRoom(this.stream, chunk, () => this.gone);
  }

  end(
    chunk: Uint8Array | undefined,
    trailers: OutgoingHttpHeaders | undefined,
  ): void {
    const stream = this.stream;
    if (trailers !== undefined) {
      // The trailers go when the stream asks for them, after the last write.
      stream.once("wantTrailers", () => stream.sendTrailers(trailers));
      if (chunk === undefined) stream.end();
      else stream.end(chunk);
      return;
    }
    if (chunk === undefined) {
      stream.end();
      return;
    }
    // The body, then END_STREAM once it is written: ending with the body
    // closes the stream while its write is still pending in Node, whose
    // stream then builds an ERR_STREAM_DESTROYED error (with a stack trace)
    // for nobody, on every call. An empty DATA frame ends the stream instead.
    stream.write(chunk, () => stream.end());
  }
}
