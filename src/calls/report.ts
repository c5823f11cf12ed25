import { performance } from "node:perf_hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Call, CallObserver } from "./observer.js";

/** What a call is when it starts, as the path that serves it knows it. */
export type CallStart = Pick<
  Call,
  | "procedure"
  | "protocol"
  | "connection"
  | "requestHeaders"
  | "url"
  | "principal"
  | "deadline"
>;

/**
 * What every call reports, defined once: the server's observers (in-flight
 * count, metrics, call log) hear of each call's start, messages and end in
 * the same way whichever path served it. Connect's handlers reach it through
 * the pipeline's interceptor (src/calls/interceptor.ts), the engine calls it
 * directly (src/calls/pipeline.ts).
 */
export class CallReport {
  constructor(private readonly observers: readonly CallObserver[]) {}

  /** A call's handler is about to be invoked (or the call was refused before, src/calls/pipeline.ts `gated`). */
  start(from: CallStart): Call {
    const call: Call = {
      procedure: from.procedure,
      protocol: from.protocol,
      connection: from.connection,
      requestHeaders: from.requestHeaders,
      url: from.url,
      principal: from.principal,
      deadline: from.deadline,
      startedAt: performance.now(),
      received: 0,
      sent: 0,
    };
    for (const o of this.observers) o.callStarted?.(call);
    return call;
  }

  /** The handler read a request message. */
  received(call: Call): void {
    call.received++;
    for (const o of this.observers) o.messageReceived?.(call);
  }

  /** The handler produced a response message. */
  sent(call: Call): void {
    call.sent++;
    for (const o of this.observers) o.messageSent?.(call);
  }

  /**
   * The call ended with `reason` (undefined: it succeeded). `aborted` is why
   * the call was cut short (client gone, deadline, shutdown), if it was: a
   * handler may run to its end after the client went away, and the client
   * still saw no success, so that reason wins over a success or an early close.
   */
  finish(call: Call, reason: unknown, aborted?: { reason: unknown }): void {
    if ((reason === undefined || reason === closedEarly) && aborted) {
      reason = ConnectError.from(aborted.reason, Code.Canceled);
    }
    const outcome = {
      error: reason === undefined ? undefined : ConnectError.from(reason),
      durationMs: performance.now() - call.startedAt,
      received: call.received,
      sent: call.sent,
    };
    for (const o of this.observers) o.callFinished?.(call, outcome);
  }
}

/** How a response stream closed early by its consumer ends, unless the call's abort tells more. */
export const closedEarly = new ConnectError(
  "response stream closed early",
  Code.Canceled,
);
