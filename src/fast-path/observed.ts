/**
 * A fast call's handler run with what every call reports (src/calls/report.ts)
 * and with internal errors hidden, called directly rather than as the
 * interceptors connect's handlers go through (observeCalls,
 * hideInternalErrors, endOnAbort), with the same outcome: the same call log
 * line, metrics and in-flight count, the same error the client sees.
 */
import type { Interceptor } from "@connectrpc/connect";
import type { Call } from "../calls/call.js";
import { hideInternal } from "../calls/hide-internal-errors.js";
import { closedEarly } from "../calls/report.js";
import type { Protocol } from "../http/content-type.js";
import type { FastCall, FastContext } from "./call.js";
import {
  copyHeaders,
  invokeStream,
  invokeUnary,
  normalize,
  type StreamAnswer,
  type StreamSpec,
} from "./invoke.js";

/**
 * Run a unary handler on `input`: its output message, or the error for the
 * client. Synchronous when the handler is.
 */
export function runUnary(
  call: FastCall,
  ctx: FastContext,
  protocol: Protocol,
  input: unknown,
): unknown {
  const { host, route } = call;
  const { report } = host;
  const observed = started(call, protocol);
  if (observed !== undefined) report?.received(observed);
  const succeed = (output: unknown) => {
    if (observed !== undefined) {
      report?.sent(observed);
      report?.finish(observed, undefined, call.ended);
    }
    return output;
  };
  const fail = (e: unknown): never => {
    const error = hideInternal(
      host.logger,
      route.procedure.path,
      e,
      call.ended,
    );
    if (observed !== undefined) report?.finish(observed, error, call.ended);
    throw error;
  };
  if (route.spec.kind !== "unary")
    throw new Error(`${route.spec.kind} is not unary`);
  let output: unknown;
  try {
    output = call.settle(
      invokeUnary(route.spec, ctx, input, host.interceptors as Interceptor[]),
    );
  } catch (e) {
    return fail(e);
  }
  return output instanceof Promise
    ? output.then(succeed, fail)
    : succeed(output);
}

/**
 * Run a streaming handler on the request messages `input`, writing each
 * response message to `output` (false: the client is gone). Resolves once
 * the handler is done; rejects with the error for the client.
 */
export async function runStream(
  call: FastCall,
  ctx: FastContext,
  protocol: Protocol,
  input: AsyncIterable<unknown>,
  output: { write(message: unknown): boolean | Promise<boolean> },
): Promise<void> {
  const { host, route } = call;
  const { report } = host;
  const observed = started(call, protocol);
  let reason: unknown;
  try {
    call.endReadsWithCall();
    const answer = await call.settle(start(call, ctx, input, observed));
    if (answer.header !== undefined) {
      copyHeaders(answer.header, ctx.responseHeader);
    }
    const it = answer.messages;
    const desc = route.spec.method.output;
    let completed = false;
    try {
      for (;;) {
        const r = await call.settle(it.next());
        if (r.done === true) {
          completed = true;
          break;
        }
        if (observed !== undefined) report?.sent(observed);
        const written = output.write(
          answer.normalized ? r.value : normalize(desc, r.value),
        );
        if (!(written instanceof Promise ? await written : written)) break;
      }
    } catch (e) {
      // The call ended, or the handler failed: tell it to stop at its next
      // step, without waiting for a handler that ignores its signal.
      it.return?.().catch(ignore);
      throw e;
    }
    if (!completed) {
      // The client went away: stop the handler, as connect-node's writer
      // does, and report the call once it has stopped.
      await it.return?.().catch(ignore);
      reason = closedEarly;
    } else if (answer.trailer !== undefined) {
      copyHeaders(answer.trailer, ctx.responseTrailer);
    }
  } catch (e) {
    reason = hideInternal(host.logger, route.procedure.path, e, call.ended);
    throw reason;
  } finally {
    if (observed !== undefined) report?.finish(observed, reason, call.ended);
  }
}

/** The call reported as started, if the fast path reports calls. */
function started(call: FastCall, protocol: Protocol): Call | undefined {
  return call.host.report?.start(
    call.route.procedure,
    protocol,
    call.connection,
    call.headers,
  );
}

/**
 * The handler started on its request messages. A function of its own: once
 * it returns, a server stream holds nothing of the request side.
 */
function start(
  call: FastCall,
  ctx: FastContext,
  input: AsyncIterable<unknown>,
  observed: Call | undefined,
): Promise<StreamAnswer> {
  const { host, route } = call;
  const report = host.report;
  return invokeStream(
    route.spec as StreamSpec,
    ctx,
    observed === undefined || report === undefined
      ? input
      : new Counted(input, () => report.received(observed)),
    host.interceptors as Interceptor[],
  );
}

/** The request messages, each one counted as the handler reads it. */
class Counted implements AsyncIterable<unknown>, AsyncIterator<unknown> {
  readonly #it: AsyncIterator<unknown>;
  readonly #onMessage: () => void;

  constructor(source: AsyncIterable<unknown>, onMessage: () => void) {
    this.#it = source[Symbol.asyncIterator]();
    this.#onMessage = onMessage;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<unknown>> {
    const r = await this.#it.next();
    if (r.done !== true) this.#onMessage();
    return r;
  }
}

function ignore(): void {}
