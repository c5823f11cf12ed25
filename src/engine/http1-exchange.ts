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
import { RequestBody } from "../protocol/request-body.js";
import { type Exchange, writeWithRoom } from "./exchange.js";

/** An HTTP/1.1 request and its response as an exchange. */
export class Http1Exchange implements Exchange {
  readonly httpVersion = "1.1";
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** Headers every response of this exchange carries besides the protocol's (CORS). */
  readonly #extra: OutgoingHttpHeaders | undefined;
  #body: RequestBody | undefined = undefined;

  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    extra: OutgoingHttpHeaders | undefined,
  ) {
    this.req = req;
    this.res = res;
    this.#extra = extra;
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

  get body(): RequestBody {
    this.#body ??= new RequestBody(this.req);
    return this.#body;
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
      this.#body?.closed();
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
    const extra = this.#extra;
    // Trailers need no word in advance: without a content-length, Node
    // sends the body chunked, and the trailers after the last chunk.
    // The extra headers first, as on connect's path, where the HTTP chain's
    // cors step sets them before connect-node's
    // universalResponseToNodeResponse calls writeHead, whose headers come
    // after them and win a clash.
    this.res.writeHead(
      status,
      extra === undefined ? headers : { ...extra, ...headers },
    );
  }

  write(chunk: Uint8Array): boolean | Promise<boolean> {
    return writeWithRoom(this.res, chunk, () => this.gone);
  }

  end(
    chunk: Uint8Array | undefined,
    trailers: OutgoingHttpHeaders | undefined,
  ): void {
    if (trailers !== undefined) this.res.addTrailers(trailers);
    if (chunk === undefined) this.res.end();
    else this.res.end(chunk);
  }
}

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
