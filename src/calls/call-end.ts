import type { Ended } from "./pipeline.js";

/**
 * How a call ends early, on either path: once `end` is called (the client
 * went away, the deadline passed, the server shut down), every wait `settle`
 * is holding rejects with the reason, and so does every later one. A handler
 * that ignores its signal therefore cannot hold a call open, as connect's
 * handlers with an end-on-abort interceptor, and the call is answered with
 * the reason it ended.
 *
 * The engine's call (src/engine/call.ts) ends itself; a call of connect's
 * handlers ends when its signal aborts (src/calls/interceptor.ts).
 */
export class CallEnd {
  #ended: Ended | undefined = undefined;
  /**
   * The wait in progress, with its two reactions bound once per call: a
   * streaming call settles every message it sends, one at a time.
   */
  #pending: PromiseWithResolvers<unknown> | undefined = undefined;
  readonly #fulfil = (value: unknown) => {
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.resolve(value);
  };
  readonly #reject = (e: unknown) => {
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(e);
  };
  /** Waits beside the one in progress (a request read while a response step waits); made when first needed. */
  #others: Set<(reason: unknown) => void> | undefined = undefined;

  /** Why the call ended, if it has. */
  get ended(): Ended | undefined {
    return this.#ended;
  }

  /** End the call with `reason`: every wait rejects with it. Only the first end counts; false for a later one. */
  end(reason: unknown): boolean {
    if (this.#ended !== undefined) return false;
    this.#ended = { reason };
    this.#reject(reason);
    if (this.#others !== undefined) {
      for (const reject of this.#others) reject(reason);
      this.#others = undefined;
    }
    return true;
  }

  /**
   * `result`, unless the call has ended or ends first: then the reason it
   * ended, thrown or rejected. A promise only if `result` is one; it is left
   * to settle on its own.
   */
  settle<T>(result: T | Promise<T>): T | Promise<T> {
    const ended = this.#ended;
    if (!(result instanceof Promise)) {
      if (ended !== undefined) throw ended.reason;
      return result;
    }
    if (ended !== undefined) {
      result.catch(ignore);
      return Promise.reject(ended.reason);
    }
    if (this.#pending === undefined) {
      const pending = Promise.withResolvers<T>();
      this.#pending = pending as PromiseWithResolvers<unknown>;
      result.then(this.#fulfil, this.#reject);
      return pending.promise;
    }
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    this.#others ??= new Set();
    const others = this.#others;
    others.add(reject);
    result.then(
      (value) => {
        others.delete(reject);
        resolve(value);
      },
      (e: unknown) => {
        others.delete(reject);
        reject(e);
      },
    );
    return promise;
  }
}

function ignore(): void {}
