import type { Interceptor } from "@connectrpc/connect";
import { parseRequestType } from "../http/content-type.js";
import { procedureOf } from "./call.js";
import { connectionKey, unknownConnection } from "./connection.js";
import { type CallReport, closedEarly } from "./report.js";

/**
 * The interceptor through which connect's handlers report every call, its
 * messages and its end (src/calls/report.ts). Put it first, so it sees what
 * the client will see (after the inner interceptors have mapped errors) and
 * every call is counted.
 *
 * A streaming call ends when its response stream ends: completed, failed, or
 * closed early because the client went away. Until then it is in flight.
 */
export function observeCalls(report: CallReport): Interceptor {
  return (next) => async (req) => {
    const call = report.start(
      procedureOf(req.method),
      // A Connect GET request has no content type.
      parseRequestType(req.header.get("content-type"))?.protocol ?? "connect",
      req.contextValues.get(connectionKey) ?? unknownConnection,
      req.header,
      req.url,
    );
    let finished = false;
    const finish = (reason: unknown) => {
      if (finished) return;
      finished = true;
      report.finish(
        call,
        reason,
        req.signal.aborted ? { reason: req.signal.reason } : undefined,
      );
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      if (req.stream) {
        res = await next({
          ...req,
          message: tap(req.message, () => report.received(call)),
        });
      } else {
        report.received(call);
        res = await next(req);
      }
    } catch (e) {
      finish(e);
      throw e;
    }
    if (!res.stream) {
      report.sent(call);
      finish(undefined);
      return res;
    }
    return {
      ...res,
      message: watch(res.message, () => report.sent(call), finish),
    };
  };
}

async function* tap<T>(
  messages: AsyncIterable<T>,
  onMessage: () => void,
): AsyncIterable<T> {
  for await (const m of messages) {
    onMessage();
    yield m;
  }
}

/**
 * Pass the response messages on and report the end. A generator, not a bare
 * iterator, so that an early close is reported only once the handler has
 * really stopped (its pending step settled), which shutdown relies on.
 */
async function* watch<T>(
  messages: AsyncIterable<T>,
  onMessage: () => void,
  finish: (reason: unknown) => void,
): AsyncIterable<T> {
  let outcome: { reason: unknown } | undefined;
  try {
    for await (const m of messages) {
      onMessage();
      try {
        yield m;
      } catch (e) {
        // Thrown in by the consumer: connect's writer passes a failed write
        // down the response stream (pipe's propagateDownStreamError), so the
        // response could not be written, as when the client goes away.
        outcome = { reason: closedEarly };
        throw e;
      }
    }
    outcome = { reason: undefined };
  } catch (e) {
    outcome ??= { reason: e };
    throw e;
  } finally {
    // Neither completed nor failed: the consumer closed the stream early,
    // because the client went away or the response could not be written.
    finish(outcome ? outcome.reason : closedEarly);
  }
}
