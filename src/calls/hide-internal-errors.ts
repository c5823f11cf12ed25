import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";

/** The only thing a client learns about a failure the handler did not mean to report. */
export const internalErrorMessage = "internal error";

/**
 * Keep unexpected failures to the server: anything a handler throws that is
 * not a ConnectError (a bug, a failed dependency) reaches the client as
 * `internal` with a generic message, and the server logs it with its stack at
 * error level. ConnectErrors are what a handler means to say and pass unchanged.
 *
 * It watches the response stream too, so an error thrown by a streaming
 * handler after its first message is covered. Put it after the call observer,
 * so logs and metrics see the code the client sees.
 */
export function hideInternalErrors(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const hide = (e: unknown): ConnectError => {
      if (e instanceof ConnectError) return e;
      const procedure = `/${req.service.typeName}/${req.method.name}`;
      if (req.signal.aborted) {
        // The call was already cancelled (client gone, deadline, shutdown) and
        // the handler failed on its way out; nobody will read this error.
        logger.debug(
          { err: e, procedure },
          "handler failed after the call ended",
        );
        return ConnectError.from(req.signal.reason, Code.Canceled);
      }
      logger.error({ err: e, procedure }, "handler failed");
      return new ConnectError(internalErrorMessage, Code.Internal);
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (e) {
      throw hide(e);
    }
    if (!res.stream) return res;
    return { ...res, message: rethrowHidden(res.message, hide) };
  };
}

async function* rethrowHidden<T>(
  messages: AsyncIterable<T>,
  hide: (e: unknown) => ConnectError,
): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (e) {
    throw hide(e);
  }
}
