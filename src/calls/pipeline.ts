/**
 * What every call gets, whichever path serves it, written once: its report
 * (src/calls/report.ts: in-flight count, metrics, trace span, log line),
 * unexpected errors hidden from the client (src/calls/internal-errors.ts),
 * and its end when it is cut short (client gone, deadline, shutdown) even if
 * the handler ignores its signal.
 *
 * The engine (src/engine/) runs every handler through `unary` and `stream`
 * directly; connect's own handlers (ENGINE=off, or services registered with
 * options of their own) reach the same two functions through one interceptor
 * (src/calls/interceptor.ts). A new behaviour for every call is added here,
 * once, and the parity tests prove it on both paths.
 */
import type { HandlerContext } from "@connectrpc/connect";
import { type Logger, pino } from "pino";
import { principalKey } from "../auth/principal.js";
import type { Protocol } from "../protocol/content-type.js";
import { connectionKey, unknownConnection } from "./connection.js";
import { deadlineChangeKey } from "./deadline-policy.js";
import { hideInternal } from "./internal-errors.js";
import { type Call, procedureOf } from "./observer.js";
import { CallReport, type CallStart, closedEarly } from "./report.js";

/** Why a call ended early: the reason its signal aborts with. */
export interface Ended {
  readonly reason: unknown;
}

/**
 * A call in progress as the pipeline sees it, on either path: what it is
 * (its procedure, protocol, connection, request headers, URL when the path
 * has one made, and principal: src/calls/report.ts CallStart), and how it
 * ends.
 */
export interface CallControl extends CallStart {
  /** Why the call was cut short, if it was. */
  readonly ended: Ended | undefined;
  /**
   * `result`, unless the call ends first: then the reason it ended, thrown or
   * rejected, so that a handler that ignores its signal cannot hold the call
   * open. A promise only if `result` is one.
   */
  settle<T>(result: T | Promise<T>): T | Promise<T>;
  /**
   * The request messages, such that a read still pending when the call ends
   * (or any later one) rejects with the reason it ended.
   */
  readsEndWithCall(messages: AsyncIterable<unknown>): AsyncIterable<unknown>;
}

/** What a streaming handler answered: at least its response messages. */
export interface StreamStart {
  readonly messages: AsyncIterator<unknown>;
}

/** Every call's report, error hiding and end, for both paths. */
export class CallPipeline {
  readonly #report: CallReport;
  readonly #logger: Logger;

  /** By default, for library use: calls reported to no one, hidden failures logged nowhere. */
  constructor(
    report: CallReport = new CallReport([]),
    logger: Logger = pino({ level: "silent" }),
  ) {
    this.#report = report;
    this.#logger = logger;
  }

  /**
   * Run a unary handler (`invoke`) on its request message: its output, or
   * the error for the client, thrown. Synchronous when the handler is.
   */
  unary(ctl: CallControl, invoke: () => unknown): unknown {
    const report = this.#report;
    const call = this.#start(ctl);
    report.received(call);
    let output: unknown;
    try {
      output = ctl.settle(invoke());
    } catch (e) {
      return this.#fail(ctl, call, e);
    }
    if (!(output instanceof Promise)) return this.#succeed(ctl, call, output);
    return output.then(
      (o) => this.#succeed(ctl, call, o),
      (e: unknown) => this.#fail(ctl, call, e),
    );
  }

  /**
   * Start a streaming handler (`start`) on its request messages. Resolves
   * with what it answered, its response messages replaced by an iterator that
   * reports each one and the call's end, hides unexpected errors and settles
   * each step with the call's end; rejects with the error for the client.
   * Whoever consumes the messages ends the call: by reading them to their
   * end or failure, or by `return()` (the client went away).
   */
  async stream<T extends StreamStart>(
    ctl: CallControl,
    input: AsyncIterable<unknown>,
    start: (input: AsyncIterable<unknown>) => Promise<T>,
  ): Promise<T> {
    const call = this.#start(ctl);
    const requests = new Received(
      ctl.readsEndWithCall(input),
      this.#report,
      call,
    );
    let answer: T;
    try {
      answer = await ctl.settle(start(requests));
    } catch (e) {
      return this.#fail(ctl, call, e);
    }
    return {
      ...answer,
      messages: new Sent(answer.messages, ctl, call, this),
    };
  }

  /**
   * A request gate (connect's `requestGate` option, which both paths honour
   * before the body is read) whose refusals are reported as calls: a call
   * the gate refuses starts and ends at once with the gate's error, so the
   * metrics count it by its code and the call log has its line, the same on
   * either path. A call the gate lets through is reported as any other, by
   * `unary` and `stream`.
   */
  gated(
    gate: (ctx: HandlerContext) => void | Promise<void>,
  ): (ctx: HandlerContext) => void | Promise<void> {
    return (ctx) => {
      let passed: void | Promise<void>;
      try {
        passed = gate(ctx);
      } catch (e) {
        this.#refused(ctx, e);
        throw e;
      }
      if (!(passed instanceof Promise)) return;
      return passed.catch((e: unknown) => {
        this.#refused(ctx, e);
        throw e;
      });
    };
  }

  #refused(ctx: HandlerContext, e: unknown): void {
    const values = ctx.values;
    const call = this.#report.start({
      procedure: procedureOf(ctx.method),
      protocol: ctx.protocolName as Protocol,
      connection: values.get(connectionKey) ?? unknownConnection,
      requestHeaders: ctx.requestHeader,
      url: ctx.url,
      principal: values.get(principalKey),
      deadline: values.get(deadlineChangeKey),
    });
    this.#report.finish(call, e);
  }

  #start(ctl: CallControl): Call {
    return this.#report.start(ctl);
  }

  #succeed(ctl: CallControl, call: Call, output: unknown): unknown {
    this.#report.sent(call);
    this.#report.finish(call, undefined, ctl.ended);
    return output;
  }

  #fail(ctl: CallControl, call: Call, e: unknown): never {
    const error = this.hide(ctl, e);
    this.#report.finish(call, error, ctl.ended);
    throw error;
  }

  /** @private What the client is told of `e` (src/calls/internal-errors.ts). */
  hide(ctl: CallControl, e: unknown): unknown {
    return hideInternal(this.#logger, ctl.procedure.path, e, ctl.ended);
  }

  /** @private A response message went out. */
  sent(call: Call): void {
    this.#report.sent(call);
  }

  /** @private The call ended (undefined: it succeeded). */
  finish(ctl: CallControl, call: Call, reason: unknown): void {
    this.#report.finish(call, reason, ctl.ended);
  }
}

/** The request messages, each one reported as the handler reads it. */
class Received implements AsyncIterable<unknown>, AsyncIterator<unknown> {
  readonly #it: AsyncIterator<unknown>;
  readonly #report: CallReport;
  readonly #call: Call;

  constructor(source: AsyncIterable<unknown>, report: CallReport, call: Call) {
    this.#it = source[Symbol.asyncIterator]();
    this.#report = report;
    this.#call = call;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<unknown>> {
    const r = await this.#it.next();
    if (r.done !== true) this.#report.received(this.#call);
    return r;
  }
}

/**
 * The response messages: each step settled with the call's end, each
 * message reported, the end reported once, when the handler has stopped:
 * completed, failed (its error hidden), or closed early by its consumer.
 * A class, not a generator: an open stream holds one small object.
 */
class Sent implements AsyncIterable<unknown>, AsyncIterator<unknown> {
  readonly #it: AsyncIterator<unknown>;
  readonly #ctl: CallControl;
  readonly #call: Call;
  readonly #pipeline: CallPipeline;
  #finished = false;
  readonly #step = (r: IteratorResult<unknown>): IteratorResult<unknown> => {
    if (r.done === true) this.#finish(undefined);
    else this.#pipeline.sent(this.#call);
    return r;
  };
  readonly #failed = (e: unknown): never => {
    // Tell the handler to stop at its next step, without waiting for one
    // that ignores its signal.
    this.#it.return?.().catch(ignore);
    const error = this.#pipeline.hide(this.#ctl, e);
    this.#finish(error);
    throw error;
  };

  constructor(
    it: AsyncIterator<unknown>,
    ctl: CallControl,
    call: Call,
    pipeline: CallPipeline,
  ) {
    this.#it = it;
    this.#ctl = ctl;
    this.#call = call;
    this.#pipeline = pipeline;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<unknown>> {
    let step: IteratorResult<unknown> | Promise<IteratorResult<unknown>>;
    try {
      step = this.#ctl.settle(this.#it.next());
    } catch (e) {
      step = Promise.reject(e);
    }
    return Promise.resolve(step).then(this.#step, this.#failed);
  }

  /**
   * The consumer stops early (the client went away, or a write failed): the
   * handler is told to stop, and the call is reported once it has.
   */
  async return(value?: unknown): Promise<IteratorResult<unknown>> {
    try {
      await this.#it.return?.(value);
    } catch {
      // The handler failed on its way out; nobody will read it.
    }
    this.#finish(closedEarly);
    return { done: true, value: undefined };
  }

  /**
   * A failed write passed down by connect's writer (its pipe's
   * propagateDownStreamError): the response could not be written, as when
   * the client goes away, so the same as an early close.
   */
  async throw(e?: unknown): Promise<IteratorResult<unknown>> {
    await this.return();
    throw e;
  }

  #finish(reason: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#pipeline.finish(this.#ctl, this.#call, reason);
  }
}

function ignore(): void {}
