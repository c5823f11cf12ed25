import type {
  Interceptor,
  StreamRequest,
  StreamResponse,
  UnaryRequest,
  UnaryResponse,
} from "@connectrpc/connect";
import { principalKey } from "../auth/principal.js";
import { parseRequestType } from "../protocol/content-type.js";
import { CallEnd } from "./call-end.js";
import { connectionKey, unknownConnection } from "./connection.js";
import { deadlineChangeKey } from "./deadline-policy.js";
import { procedureOf } from "./observer.js";
import type { CallControl, CallPipeline } from "./pipeline.js";

/**
 * The one interceptor through which connect's own handlers get what every
 * call gets (src/calls/pipeline.ts), as the engine's calls get it directly.
 * Put it first, so that it sees every call and the error the client sees,
 * and the application's interceptors run inside it, as on the engine.
 */
export function throughPipeline(pipeline: CallPipeline): Interceptor {
  return (next) => async (req) => {
    const ctl = new SignalledCall(req);
    if (!req.stream) {
      return (await pipeline.unary(ctl, () => next(req))) as UnaryResponse;
    }
    const answer = await pipeline.stream(ctl, req.message, async (input) => {
      const res = (await next({
        ...req,
        message: input as StreamRequest["message"],
      })) as StreamResponse;
      return { res, messages: res.message[Symbol.asyncIterator]() };
    });
    const { messages } = answer;
    return {
      ...answer.res,
      message: { [Symbol.asyncIterator]: () => messages },
    };
  };
}

/**
 * A call of connect's handlers, as the pipeline sees it: it ends when its
 * signal aborts, which connect does on a deadline, when the client goes away
 * and on shutdown (`shutdownSignal`).
 */
class SignalledCall extends CallEnd implements CallControl {
  readonly procedure;
  readonly protocol;
  readonly connection;
  readonly requestHeaders;
  readonly url;
  readonly principal;
  readonly deadline;

  constructor(req: UnaryRequest | StreamRequest) {
    super();
    this.procedure = procedureOf(req.method);
    // A Connect GET request has no content type.
    this.protocol =
      parseRequestType(req.header.get("content-type"))?.protocol ?? "connect";
    this.connection = req.contextValues.get(connectionKey) ?? unknownConnection;
    this.requestHeaders = req.header;
    this.url = req.url;
    this.principal = req.contextValues.get(principalKey);
    this.deadline = req.contextValues.get(deadlineChangeKey);
    const signal = req.signal;
    if (signal.aborted) this.end(signal.reason);
    else
      signal.addEventListener("abort", () => this.end(signal.reason), {
        once: true,
      });
  }

  readsEndWithCall(messages: AsyncIterable<unknown>): AsyncIterable<unknown> {
    const it = messages[Symbol.asyncIterator]();
    const reads: AsyncIterator<unknown> & AsyncIterable<unknown> = {
      next: () => Promise.resolve(this.settle(it.next())),
      return: (value?: unknown) =>
        it.return?.(value) ?? Promise.resolve({ done: true, value }),
      [Symbol.asyncIterator]: () => reads,
    };
    return reads;
  }
}
