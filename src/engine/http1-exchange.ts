import type {
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from "node:http";
import type { TLSSocket } from "node:tls";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import {
  type Connection,
  type ConnectionSource,
  connectionOf,
} from "../calls/connection.js";
import { type Exchange, NodeExchange, writeWithRoom } from "./exchange.js";

/** An HTTP/1.1 request and its response as an exchange. */
export class Http1Exchange extends NodeExchange implements Exchange {
  readonly httpVersion = "1.1";

  /** `extra`: headers every response carries besides the protocol's (CORS). */
  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    extra: OutgoingHttpHeaders | undefined,
  ) {
    super(req, extra);
  }

  get headers(): IncomingHttpHeaders {
    return this.req.headers;
  }

  get method(): string {
    return this.req.method ?? "";
  }

  get path(): string {
    return this.req.url ?? "";
  }

  get url(): string {
    const scheme = (this.req.socket as TLSSocket).encrypted ? "https" : "http";
    return `${scheme}://${this.req.headers.host}${this.req.url}`;
  }

  get connection(): Connection {
    return connectionOf(this.req);
  }

  get gone(): boolean {
    return this.res.destroyed;
  }

  get ended(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  contextValues(
    make: (source: ConnectionSource) => ContextValues,
  ): ContextValues {
    return make(this.req);
  }

  onClose(listener: (reason: ConnectError | undefined) => void): void {
    // As connect-node: HTTP/1.1 has no reset codes, and the request closes
    // as soon as its body is read, so the response's close ends the call; a
    // response closed before it finished lost its client.
    this.res.on("close", () => {
      this.bodyClosed();
      listener(
        this.res.writableFinished ? undefined : clientGone(this.req.errored),
      );
    });
  }

  respond(
    status: number,
    headers: OutgoingHttpHeaders,
    _trailers: boolean,
  ): void {
    // Trailers need no word in advance: without a content-length, Node
    // sends the body chunked, and the trailers after the last chunk.
    this.res.writeHead(status, this.withExtra(headers));
  }

  write(chunk: Uint8Array): boolean | Promise<boolean> {
    return writeWithRoom(this.res, chunk, () => this.gone);
  }

  end(
    chunk: Uint8Array | undefined,
    trailers: OutgoingHttpHeaders | undefined,
  ): void {
    const res = this.res;
    if (trailers !== undefined) res.addTrailers(trailers);
    if (chunk === undefined) {
      res.end();
    } else if (trailers === undefined && chunk.byteLength <= oneWriteBytes) {
      // Node sends the head and a string body in one write
      // (OutgoingMessage._send prepends the head to a string), a Buffer body
      // as a second buffer of a writev: one system call less per call.
      // latin1 maps each byte to one character, so the bytes go as they are.
      res.end(
        Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString(
          "latin1",
        ),
        "latin1",
      );
    } else {
      res.end(chunk);
    }
  }
}

/** Bodies up to this size are copied into a string to go out with their head in one write. */
const oneWriteBytes = 16 * 1024;

/**
 * Why a client that left ended its call, as connect-node's
 * connectErrorFromNodeReason tells it for an HTTP/1.1 request that failed
 * (a connection reset is ABORTED); undefined, as a plain abort, otherwise.
 */
function clientGone(error: Error | null): ConnectError | undefined {
  if (error === null) return undefined;
  const code = (error as NodeJS.ErrnoException).code;
  return ConnectError.from(
    error,
    code === "ECONNRESET" || code === "ERR_STREAM_DESTROYED"
      ? Code.Aborted
      : Code.Internal,
  );
}
