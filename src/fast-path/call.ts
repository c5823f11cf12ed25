/**
 * One fast-path call's set-up, shared by both protocols (src/fast-path.ts):
 * the request headers, the handler context, and one AbortController for
 * request close, deadline, shutdown and end of call.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import {
  Code,
  ConnectError,
  type ContextValues,
  type HandlerContext,
  type MethodImplSpec,
} from "@connectrpc/connect";
import type { validateUniversalHandlerOptions } from "@connectrpc/connect/protocol";
import { webHeaders } from "./headers.js";
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

/**
 * One call's set-up, shared by both protocols: the request headers as fetch
 * Headers, and one AbortController for request close, deadline, shutdown and
 * end of call (connect links three).
 */
export class FastCall {
  readonly requestHeader: Headers;
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private deadlineAt: number | undefined;
  /** Ends the call: bound once, since it is also the shutdown hook. */
  readonly end = (reason: unknown = callEnded): void => {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.running.delete(this.end);
    if (!this.abort.signal.aborted) this.abort.abort(reason);
  };

  constructor(
    readonly opt: Options,
    readonly route: Route,
    readonly stream: ServerHttp2Stream,
    private readonly headers: IncomingHttpHeaders,
    private readonly values: ContextValues,
    private readonly running: Set<(reason: unknown) => void>,
  ) {
    this.requestHeader = webHeaders(headers);
    if (opt.shutdownSignal?.aborted) this.end(opt.shutdownSignal.reason);
    else running.add(this.end);
    // As connect-node: a reset tells why (CANCEL → canceled); a plain close
    // ends the call. on(), not once(), for events a stream emits once: once()
    // allocates a wrapper per listener, and these live as long as the call.
    stream.on("close", () => this.end(resetError(stream.rstCode)));
  }

  /** Start the deadline, if the client sent one (connect's createDeadlineSignal). */
  startDeadline(timeoutMs: number | undefined): void {
    if (timeoutMs === undefined) return;
    this.deadlineAt = Date.now() + timeoutMs;
    const expire = () =>
      this.end(
        new ConnectError("the operation timed out", Code.DeadlineExceeded),
      );
    if (timeoutMs <= 0) expire();
    else this.timer = setTimeout(expire, timeoutMs);
  }

  /** The handler context, as connect's createHandlerContext builds it. */
  handlerContext(
    protocolName: string,
    responseHeader: Headers,
    responseTrailer: Headers,
  ): HandlerContext {
    const { method } = this.route.spec;
    const deadlineAt = this.deadlineAt;
    const h = this.headers;
    return {
      method,
      service: method.parent,
      signal: this.abort.signal,
      timeoutMs:
        deadlineAt === undefined
          ? () => undefined
          : () => deadlineAt - Date.now(),
      requestMethod: "POST",
      requestHeader: this.requestHeader,
      responseHeader,
      responseTrailer,
      protocolName,
      values: this.values,
      url: `${h[":scheme"] ?? "http"}://${h[":authority"] ?? h.host}${h[":path"]}`,
    };
  }

  /** The stream is gone: nothing more can be sent. */
  get gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }
}
