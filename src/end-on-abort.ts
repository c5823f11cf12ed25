import type { Interceptor } from "@connectrpc/connect";

/**
 * An interceptor that ends a call with its signal's reason as soon as the
 * signal aborts, even while the handler waits for the client's next message
 * or ignores the signal.
 *
 * Connect aborts a handler's `signal` on shutdown (`shutdownSignal`), on a
 * deadline and when the client goes away, but a handler blocked in
 * `for await (const req of requests)` never looks at it, so a quiet Chat would
 * outlive the shutdown grace period and be torn down without a status. Here the
 * pending read (and the pending response) rejects with the signal's reason, a
 * ConnectError such as UNAVAILABLE, which Connect sends as the call's status.
 */
export const endOnAbort: Interceptor = (next) => async (req) => {
  const signal = req.signal;
  const res = await raceAbort(
    next(
      req.stream ? { ...req, message: abortable(req.message, signal) } : req,
    ),
    signal,
  );
  if (!res.stream) return res;
  return { ...res, message: abortable(res.message, signal) };
};

/**
 * The same messages, but a read pending when `signal` aborts rejects with its
 * reason. One abort listener serves the whole stream, rather than one per
 * message: adding and removing an EventTarget listener costs more than
 * passing a message on.
 */
function abortable<T>(
  messages: AsyncIterable<T>,
  signal: AbortSignal,
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = messages[Symbol.asyncIterator]();
      let pending: ((reason: unknown) => void) | undefined;
      let listening = false;
      const onAbort = () => {
        listening = false;
        const reject = pending;
        pending = undefined;
        reject?.(signal.reason);
      };
      const stop = () => {
        if (!listening) return;
        listening = false;
        signal.removeEventListener("abort", onAbort);
      };
      return {
        next() {
          if (signal.aborted) return Promise.reject(signal.reason);
          if (!listening) {
            listening = true;
            signal.addEventListener("abort", onAbort, { once: true });
          }
          return new Promise<IteratorResult<T>>((resolve, reject) => {
            pending = reject;
            // Settles after an abort too; nobody waits for it then.
            it.next().then(
              (r) => {
                pending = undefined;
                if (r.done === true) stop();
                resolve(r);
              },
              (e: unknown) => {
                pending = undefined;
                stop();
                reject(e);
              },
            );
          });
        },
        return: (value?: unknown) => {
          stop();
          return (
            it.return?.(value) ??
            Promise.resolve({ done: true as const, value: undefined })
          );
        },
        throw: (e?: unknown) => {
          stop();
          return it.throw?.(e) ?? Promise.reject(e);
        },
      };
    },
  };
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    // The promise still settles later; nobody waits for it any more.
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
