import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";

/** The only thing a client learns about a failure the handler did not mean to report. */
export const internalErrorMessage = "internal error";

/**
 * A failure as the client sees it: a ConnectError as it is; anything else
 * `internal` with the generic message, the original kept as its cause.
 */
export function asClientError(e: unknown): ConnectError {
  return e instanceof ConnectError
    ? e
    : new ConnectError(
        internalErrorMessage,
        Code.Internal,
        undefined,
        undefined,
        e,
      );
}

/**
 * What the client is told of a handler's failure `e`: a ConnectError is what
 * a handler means to say and passes unchanged; anything else (a bug, a failed
 * dependency) becomes `internal` with a generic message, and is logged with
 * its stack at error level. A failure after the call was cut short
 * (`aborted`: client gone, deadline, shutdown) is what the handler hit on its
 * way out; nobody will read it, so it is logged at debug and the call ends
 * with the reason it was cut short.
 */
export function hideInternal(
  logger: Logger,
  procedure: string,
  e: unknown,
  aborted: { reason: unknown } | undefined,
): ConnectError {
  if (e instanceof ConnectError) return e;
  if (aborted !== undefined) {
    logger.debug({ err: e, procedure }, "handler failed after the call ended");
    return ConnectError.from(aborted.reason, Code.Canceled);
  }
  logger.error({ err: e, procedure }, "handler failed");
  return new ConnectError(internalErrorMessage, Code.Internal);
}
