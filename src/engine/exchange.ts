import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type { Readable, Writable } from "node:stream";
import type { ConnectError, ContextValues } from "@connectrpc/connect";
import type { Connection, ConnectionSource } from "../calls/connection.js";
import { RequestBody } from "../protocol/request-body.js";

/**
 * One request and its response, whichever HTTP version carries them: the
 * small interface the protocols (src/protocol-grpc/, src/protocol-connect/)
 * speak through, as connect's handlers speak through its
 * UniversalServerRequest and UniversalServerResponse. An HTTP/2 stream
 * (src/engine/http2-exchange.ts) and an HTTP/1.1 request and response
 * (src/engine/http1-exchange.ts) implement it, each on Node's own objects
 * with nothing made per call that a protocol does not read.
 */
export interface Exchange {
  readonly httpVersion: "1.1" | "2.0";
  /** The request headers as Node has them: lower-case names, HTTP/2's pseudo-headers included. */
  readonly headers: IncomingHttpHeaders;
  /** The request method. */
  readonly method: string;
  /** The request target: path and query. */
  readonly path: string;
  /** The request's URL (scheme, authority, path), as connect's handlers give it; made when read. */
  readonly url: string;
  /** The connection it arrived on, for the call's report. */
  readonly connection: Connection;
  /** The request body, read on demand. */
  readonly body: RequestBody;
  /** The client is gone: nothing more can be sent. */
  readonly gone: boolean;
  /** The response has ended (or the client is gone). */
  readonly ended: boolean;
  /** Context values from connectNodeAdapter's `contextValues` option. */
  contextValues(
    make: (source: ConnectionSource) => ContextValues,
  ): ContextValues;
  /**
   * Call `listener` once, when the exchange is over: with undefined when it
   * ended normally, or with why the client cut it short (an HTTP/2
   * RST_STREAM code, a dropped connection).
   */
  onClose(listener: (reason: ConnectError | undefined) => void): void;
  /** The response head: its status and headers, and whether trailers end it. */
  respond(
    status: number,
    headers: OutgoingHttpHeaders,
    trailers: boolean,
  ): void;
  /**
   * A chunk of the response body: true when more may follow at once; a
   * promise when the client must read first (back-pressure), true once it
   * has, false if it went away meanwhile.
   */
  write(chunk: Uint8Array): boolean | Promise<boolean>;
  /** End the response, with a last chunk, and with trailers if `respond` said so. */
  end(
    chunk: Uint8Array | undefined,
    trailers: OutgoingHttpHeaders | undefined,
  ): void;
}

/**
 * Write `chunk` to `out` as Exchange.write does: at once, or once `out`
 * drains; false if it closed first (`gone`).
 */
export function writeWithRoom(
  out: Writable,
  chunk: Uint8Array,
  gone: () => boolean,
): boolean | Promise<boolean> {
  if (out.write(chunk)) return true;
  return new Promise<boolean>((resolve) => {
    const done = () => {
      out.off("drain", done);
      out.off("close", done);
      resolve(!gone());
    };
    out.on("drain", done);
    out.on("close", done);
  });
}

/**
 * What both exchanges keep alike: the request body, made on first read from
 * the stream Node gives, and headers every response carries besides the
 * protocol's (CORS).
 */
export abstract class NodeExchange {
  readonly #source: Readable;
  readonly #extra: OutgoingHttpHeaders | undefined;
  #body: RequestBody | undefined = undefined;

  constructor(source: Readable, extra: OutgoingHttpHeaders | undefined) {
    this.#source = source;
    this.#extra = extra;
  }

  get body(): RequestBody {
    this.#body ??= new RequestBody(this.#source);
    return this.#body;
  }

  /** The exchange is over: a read still waiting for the body fails. */
  protected bodyClosed(): void {
    this.#body?.closed();
  }

  /**
   * `headers` with the headers every response carries, those first, as on
   * connect's path: the HTTP chain's cors step sets them before connect-node's
   * universalResponseToNodeResponse calls writeHead, whose headers come after
   * them and win a clash.
   */
  protected withExtra(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
    const extra = this.#extra;
    return extra === undefined ? headers : { ...extra, ...headers };
  }
}
