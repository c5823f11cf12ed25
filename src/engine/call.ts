/**
 * One call the engine serves, on any protocol and HTTP version: its
 * deadline, its signal, and its end, for whatever reason it comes (the call
 * finished, the client reset the stream or left, the deadline passed, the
 * server shut down). It is what the call pipeline (src/calls/pipeline.ts)
 * knows of it.
 *
 * Connect builds three fetch Headers, an AbortController and a URL for every
 * call before the handler runs, and aborts the signal at the end; a handler
 * that reads none of them (the Greeter's SayHello) pays for none here: each
 * is made the first time someone reads it (src/engine/context.ts).
 */
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import { principalKey } from "../auth/principal.js";
import { CallEnd } from "../calls/call-end.js";
import type { ConnectionSource } from "../calls/connection.js";
import type { DeadlineChange } from "../calls/deadline-policy.js";
import type { CallControl, CallPipeline } from "../calls/pipeline.js";
import type { Protocol } from "../protocol/content-type.js";
import { webHeaders } from "../protocol/headers.js";
import type { Exchange } from "./exchange.js";
import type { Options, Route } from "./route.js";

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

/** What a call needs of the engine that took it (src/engine/engine.ts). */
export interface CallHost {
  readonly opt: Options;
  /** The calls in flight, which shutdown ends. */
  readonly running: Set<EngineCall>;
  /** connectNodeAdapter's `contextValues` option, if given. */
  readonly contextValues:
    | ((req: ConnectionSource) => ContextValues)
    | undefined;
  /** The application's interceptors. */
  readonly interceptors: Interceptor[];
  /** What every call gets: its report, error hiding, its end. */
  readonly pipeline: CallPipeline;
}

/** One call on one exchange. */
export class EngineCall extends CallEnd implements CallControl {
  readonly route: Route;
  readonly exchange: Exchange;
  readonly host: CallHost;
  readonly protocol: Protocol;
  readonly url = undefined;
  /** What the deadline policy did to the call's deadline, if anything: set by the engine. */
  deadline: DeadlineChange | undefined = undefined;
  #abort: AbortController | undefined = undefined;
  #requestHeader: Headers | undefined = undefined;
  #timer: NodeJS.Timeout | undefined = undefined;
  #deadlineAt: number | undefined = undefined;
  #readsEndWithCall = false;
  #values: ContextValues | undefined = undefined;

  constructor(
    host: CallHost,
    route: Route,
    exchange: Exchange,
    protocol: Protocol,
  ) {
    super();
    this.host = host;
    this.route = route;
    this.exchange = exchange;
    this.protocol = protocol;
    const shutdown = host.opt.shutdownSignal;
    if (shutdown?.aborted) this.end(shutdown.reason);
    else host.running.add(this);
    exchange.onClose((reason) => this.end(reason));
  }

  get procedure() {
    return this.route.procedure;
  }

  get connection() {
    return this.exchange.connection;
  }

  get requestHeaders() {
    return this.exchange.headers;
  }

  /** Who made the call, if a request gate said (src/auth/gate.ts); the context values are not made for it. */
  get principal() {
    return this.#values?.get(principalKey);
  }

  /**
   * End the call: the deadline stops, the signal (if anyone asked for it)
   * aborts with `reason`, every wait the pipeline holds rejects with it.
   * Only the first end counts.
   */
  override end(reason: unknown = callEnded): boolean {
    if (!super.end(reason)) return false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.host.running.delete(this);
    this.#abort?.abort(reason);
    if (this.#readsEndWithCall) this.exchange.body.abort(reason);
    return true;
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
      const ended = this.ended;
      if (ended !== undefined) this.#abort.abort(ended.reason);
    }
    return this.#abort.signal;
  }

  /** The request headers as fetch Headers, pseudo-headers dropped. */
  get requestHeader(): Headers {
    this.#requestHeader ??= webHeaders(this.exchange.headers);
    return this.#requestHeader;
  }

  /**
   * From now on, a read of the request body pending when the call ends (or
   * any later one) rejects with the reason it ended: for request messages a
   * handler reads itself. A unary request is read before the handler runs,
   * and its read is not cut short, as in connect.
   */
  readsEndWithCall(messages: AsyncIterable<unknown>): AsyncIterable<unknown> {
    this.#readsEndWithCall = true;
    const ended = this.ended;
    if (ended !== undefined) this.exchange.body.abort(ended.reason);
    return messages;
  }

  /**
   * The context values of the call's handler, as connectNodeAdapter's
   * `contextValues` makes them, made when first read: by the handler, or by
   * a request gate that sets the principal.
   */
  get values(): ContextValues {
    if (this.#values === undefined) {
      const make = this.host.contextValues;
      this.#values =
        make === undefined
          ? createContextValues()
          : this.exchange.contextValues(make);
    }
    return this.#values;
  }

  set values(values: ContextValues) {
    this.#values = values;
  }
}
