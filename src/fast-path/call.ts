/**
 * One fast-path call's set-up, shared by both protocols (src/fast-path/router.ts):
 * its handler context, its deadline, and its end, for whatever reason it comes
 * (the call finished, the client reset the stream, the deadline passed, the
 * server shut down).
 *
 * Connect builds three fetch Headers, an AbortController and a URL for every
 * call before the handler runs, and aborts the signal at the end; a handler
 * that reads none of them (the Greeter's SayHello) pays for none here: each
 * is made the first time someone reads it.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import type { validateUniversalHandlerOptions } from "@connectrpc/connect/protocol";
import type { Logger } from "pino";
import type { Procedure } from "../calls/call.js";
import {
  type Connection,
  type ConnectionSource,
  sessionConnection,
  unknownConnection,
} from "../calls/connection.js";
import type { CallReport } from "../calls/report.js";
import { webHeaders } from "../http/headers.js";
import { RequestBody } from "./request-body.js";
import { resetError } from "./reset-error.js";

/** The adapter options after connect's own validation and defaults. */
export type Options = ReturnType<typeof validateUniversalHandlerOptions>;

/** How a message is read and written in one format. */
export interface Codec {
  readonly parse: (data: Uint8Array) => unknown;
  readonly serialize: (message: unknown) => Uint8Array;
}

/** A procedure the fast path can serve. */
export interface Route {
  readonly spec: MethodImplSpec;
  readonly procedure: Procedure;
  readonly binary: Codec;
  readonly json: Codec;
}

/**
 * The reason a finished call's signal carries. connect aborts the handler
 * context with no reason at the end of every call, which makes Node build a
 * DOMException with a stack trace per call; one shared DOMException gives
 * handlers the same kind of reason for free.
 */
export const callEnded = new DOMException(
  "This operation was aborted",
  "AbortError",
);

/** Why a call ended early: the reason its signal aborts with. */
export interface Ended {
  readonly reason: unknown;
}

/** What a call needs of the fast path that took it (src/fast-path/router.ts). */
export interface CallHost {
  readonly opt: Options;
  /** The calls in flight, which shutdown ends. */
  readonly running: Set<FastCall>;
  /** connectNodeAdapter's `contextValues` option, if given. */
  readonly contextValues:
    | ((req: ConnectionSource) => ContextValues)
    | undefined;
  /** The application's interceptors. */
  readonly interceptors: readonly Interceptor[];
  /** Where every call is reported. */
  readonly report: CallReport | undefined;
  /** Where hidden handler failures are logged. */
  readonly logger: Logger | undefined;
  /** The encodings the server reads, for gRPC's grpc-accept-encoding. */
  readonly grpcAcceptEncoding: string;
}

/** One call on one HTTP/2 stream. */
export class FastCall {
  readonly route: Route;
  readonly stream: ServerHttp2Stream;
  readonly headers: IncomingHttpHeaders;
  readonly host: CallHost;
  #ended: Ended | undefined = undefined;
  #abort: AbortController | undefined = undefined;
  #requestHeader: Headers | undefined = undefined;
  #timer: NodeJS.Timeout | undefined = undefined;
  #deadlineAt: number | undefined = undefined;
  #body: RequestBody | undefined = undefined;
  #readsEndWithCall = false;

  constructor(
    host: CallHost,
    route: Route,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
  ) {
    this.host = host;
    this.route = route;
    this.stream = stream;
    this.headers = headers;
    const shutdown = host.opt.shutdownSignal;
    if (shutdown?.aborted) this.end(shutdown.reason);
    else host.running.add(this);
    // As connect-node: a reset tells why (CANCEL → canceled); a plain close
    // ends the call. on(), not once(), for an event a stream emits once:
    // once() allocates a wrapper per listener.
    stream.on("close", () => {
      this.#body?.closed();
      this.end(resetError(stream.rstCode));
    });
  }

  /**
   * End the call: the deadline stops, the signal (if anyone asked for it)
   * aborts with `reason`, a pending `untilEnd` rejects with it. Only the first
   * end counts.
   */
  end(reason: unknown = callEnded): void {
    if (this.#ended !== undefined) return;
    this.#ended = { reason };
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.host.running.delete(this);
    this.#abort?.abort(reason);
    if (this.#readsEndWithCall) this.#body?.abort(reason);
    // A handler's answer still awaited is not waited for any more.
    this.#reject(reason);
  }

  /** Why the call ended, if it has. */
  get ended(): Ended | undefined {
    return this.#ended;
  }

  /** Start the deadline, if the client sent one (connect's createDeadlineSignal). */
  startDeadline(timeoutMs: number | undefined): void {
    if (timeoutMs === undefined) return;
    this.#deadlineAt = Date.now() + timeoutMs;
    if (timeoutMs <= 0) this.#expire();
    else this.#timer = setTimeout(() => this.#expire(), timeoutMs);
  }

  #expire(): void {
    this.end(
      new ConnectError("the operation timed out", Code.DeadlineExceeded),
    );
  }

  /** Milliseconds left until the deadline, if there is one. */
  timeoutMs(): number | undefined {
    return this.#deadlineAt === undefined
      ? undefined
      : this.#deadlineAt - Date.now();
  }

  /** The call's signal: aborts when the call ends, with the reason it ended. */
  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      this.#abort = new AbortController();
      if (this.#ended !== undefined) this.#abort.abort(this.#ended.reason);
    }
    return this.#abort.signal;
  }

  /** The request headers as fetch Headers, pseudo-headers dropped. */
  get requestHeader(): Headers {
    this.#requestHeader ??= webHeaders(this.headers);
    return this.#requestHeader;
  }

  /**
   * The handler's `result`, unless the call has ended or ends first: then
   * the reason it ended, thrown or rejected, so a handler that ignores its
   * signal cannot hold the call open (as connect's handlers with the
   * endOnAbort interceptor). A promise only if `result` is one; it is left to
   * settle on its own.
   */
  settle<T>(result: T | Promise<T>): T | Promise<T> {
    const ended = this.#ended;
    if (!(result instanceof Promise)) {
      if (ended !== undefined) throw ended.reason;
      return result;
    }
    if (ended !== undefined) {
      result.catch(ignore);
      return Promise.reject(ended.reason);
    }
    // One deferred per wait, and the two reactions bound once per call: a
    // streaming call settles every message it sends.
    const pending = Promise.withResolvers<T>();
    this.#pending = pending as PromiseWithResolvers<unknown>;
    result.then(this.#fulfil, this.#reject);
    return pending.promise;
  }

  #pending: PromiseWithResolvers<unknown> | undefined = undefined;
  readonly #fulfil = (value: unknown) => {
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.resolve(value);
  };
  readonly #reject = (e: unknown) => {
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(e);
  };

  /** The request body. */
  get body(): RequestBody {
    this.#body ??= new RequestBody(this.stream);
    return this.#body;
  }

  /**
   * From now on, a read of the request body pending when the call ends (or
   * any later one) rejects with the reason it ended: for request messages a
   * handler reads itself, which the endOnAbort interceptor ends likewise on
   * connect's side. A unary request is read before the handler runs, and
   * its read is not cut short, as in connect.
   */
  endReadsWithCall(): void {
    this.#readsEndWithCall = true;
    const ended = this.#ended;
    if (ended !== undefined) this.body.abort(ended.reason);
  }

  /** The stream is gone: nothing more can be sent. */
  get gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  /** The connection the call arrived on, for the call's report. */
  get connection(): Connection {
    const session = this.stream.session;
    return session === undefined
      ? unknownConnection
      : sessionConnection(session);
  }

  /** The context values for the handler, as connectNodeAdapter's `contextValues` makes them. */
  contextValues(): ContextValues {
    const make = this.host.contextValues;
    const session = this.stream.session;
    if (make === undefined || session === undefined) {
      return createContextValues();
    }
    return make({
      httpVersion: "2.0",
      socket: session.socket,
      stream: { session },
    });
  }
}

/**
 * The handler context of a fast call, as connect's createHandlerContext
 * builds it, but each costly part made on first read. Response headers and
 * trailers start from `init` (the protocol's own, such as content-type);
 * the response writer reads them with `FastContext.written`.
 */
export class FastContext implements HandlerContext {
  readonly requestMethod = "POST";
  readonly #call: FastCall;
  readonly #init: ResponseInit;
  #responseHeader: Headers | undefined = undefined;
  #responseTrailer: Headers | undefined = undefined;
  #values: ContextValues | undefined = undefined;

  constructor(
    call: FastCall,
    readonly protocolName: string,
    init: ResponseInit,
  ) {
    this.#call = call;
    this.#init = init;
  }

  get method() {
    return this.#call.route.spec.method;
  }

  get service() {
    return this.#call.route.spec.method.parent;
  }

  get signal(): AbortSignal {
    return this.#call.signal;
  }

  timeoutMs(): number | undefined {
    return this.#call.timeoutMs();
  }

  get requestHeader(): Headers {
    return this.#call.requestHeader;
  }

  get responseHeader(): Headers {
    this.#responseHeader ??= new Headers(this.#init.header);
    return this.#responseHeader;
  }

  get responseTrailer(): Headers {
    this.#responseTrailer ??= new Headers(this.#init.trailer);
    return this.#responseTrailer;
  }

  get values(): ContextValues {
    this.#values ??= this.#call.contextValues();
    return this.#values;
  }

  set values(values: ContextValues) {
    this.#values = values;
  }

  get url(): string {
    const h = this.#call.headers;
    return `${h[":scheme"] ?? "http"}://${h[":authority"] ?? h.host}${h[":path"]}`;
  }

  /** The response headers and trailers as they stand: undefined for one nobody touched, which is still its `init`. */
  static written(ctx: FastContext): {
    header: Headers | undefined;
    trailer: Headers | undefined;
    init: ResponseInit;
  } {
    return {
      header: ctx.#responseHeader,
      trailer: ctx.#responseTrailer,
      init: ctx.#init,
    };
  }
}

/** A protocol's initial response headers and trailers. */
export interface ResponseInit {
  readonly header: Readonly<Record<string, string>>;
  readonly trailer: Readonly<Record<string, string>>;
}

function ignore(): void {}
