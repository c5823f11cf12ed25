import type { Interceptor } from "@connectrpc/connect";

/**
 * Counts the calls a server is running, from the moment a handler is invoked
 * until its last response message is sent or it fails, so that shutdown can
 * wait for them and tests can see a cancelled handler really stop.
 */
export class InflightCalls {
  #count = 0;
  #waiters: (() => void)[] = [];

  /** Calls running now. */
  get count(): number {
    return this.#count;
  }

  /** Resolves once no call is running (at once if none is). */
  whenIdle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The interceptor that does the counting; put it first so it sees every call. */
  readonly interceptor: Interceptor = (next) => async (req) => {
    this.#count++;
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (e) {
      this.#done();
      throw e;
    }
    if (!res.stream) {
      this.#done();
      return res;
    }
    return { ...res, message: this.#untilDone(res.message) };
  };

  async *#untilDone<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
    try {
      yield* messages;
    } finally {
      this.#done();
    }
  }

  #done(): void {
    this.#count--;
    if (this.#count === 0) {
      for (const wake of this.#waiters.splice(0)) wake();
    }
  }
}
