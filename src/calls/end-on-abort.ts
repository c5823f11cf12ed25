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
  return new Abortable(messages, signal);
}

/** A class, not closures: an open stream holds one small object. */
class Abortable<T> implements AsyncIterable<T>, AsyncIterator<T> {
  private it: AsyncIterator<T> | undefined;
  private pending: ((reason: unknown) => void) | undefined;
  private listening = false;
  private readonly onAbort = () => {
    this.listening = false;
    const reject = this.pending;
    this.pending = undefined;
    reject?.(this.signal.reason);
  };

  constructor(
    private readonly messages: AsyncIterable<T>,
    private readonly signal: AbortSignal,
  ) {}

  [Symbol.asyncIterator](): this {
    this.it = this.messages[Symbol.asyncIterator]();
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    const { signal } = this;
    if (signal.aborted) return Promise.reject(signal.reason);
    if (!this.listening) {
      this.listening = true;
      signal.addEventListener("abort", this.onAbort, { once: true });
    }
    return new Promise<IteratorResult<T>>((resolve, reject) => {
      this.pending = reject;
      // Settles after an abort too; nobody waits for it then.
      (this.it as AsyncIterator<T>).next().then(
        (r) => {
          this.pending = undefined;
          if (r.done === true) this.stop();
          resolve(r);
        },
        (e: unknown) => {
          this.pending = undefined;
          this.stop();
          reject(e);
        },
      );
    });
  }

  return(value?: unknown): Promise<IteratorResult<T>> {
    this.stop();
    return (
      this.it?.return?.(value) ??
      Promise.resolve({ done: true as const, value: undefined })
    );
  }

  throw(e?: unknown): Promise<IteratorResult<T>> {
    this.stop();
    return this.it?.throw?.(e) ?? Promise.reject(e);
  }

  private stop(): void {
    if (!this.listening) return;
    this.listening = false;
    this.signal.removeEventListener("abort", this.onAbort);
  }
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
