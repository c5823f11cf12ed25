import type { ContextValues, HandlerContext } from "@connectrpc/connect";
import type { EngineCall } from "./call.js";

/** A protocol's initial response headers and trailers. */
export interface ResponseInit {
  readonly header: Readonly<Record<string, string>>;
  readonly trailer: Readonly<Record<string, string>>;
}

/**
 * The handler context of an engine call, as connect's createHandlerContext
 * builds it, but each costly part made on first read. Response headers and
 * trailers start from `init` (the protocol's own, such as content-type);
 * the protocols read them back with `CallContext.headerSet` and `trailerSet`.
 */
export class CallContext implements HandlerContext {
  readonly #call: EngineCall;
  readonly #init: ResponseInit;
  #responseHeader: Headers | undefined = undefined;
  #responseTrailer: Headers | undefined = undefined;

  constructor(
    call: EngineCall,
    readonly protocolName: string,
    init: ResponseInit,
  ) {
    this.#call = call;
    this.#init = init;
  }

  get requestMethod(): string {
    return this.#call.exchange.method;
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
    return this.#call.values;
  }

  set values(values: ContextValues) {
    this.#call.values = values;
  }

  get url(): string {
    return this.#call.exchange.url;
  }

  /** The response headers as they stand: undefined while nobody touched them, and they are still the protocol's `init`. */
  static headerSet(ctx: CallContext): Headers | undefined {
    return ctx.#responseHeader;
  }

  /** The response trailers as they stand: undefined while nobody touched them, and they are still the protocol's `init`. */
  static trailerSet(ctx: CallContext): Headers | undefined {
    return ctx.#responseTrailer;
  }

  /** The protocol's initial response headers and trailers. */
  static init(ctx: CallContext): ResponseInit {
    return ctx.#init;
  }
}
