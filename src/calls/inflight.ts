import type { CallObserver } from "./observer.js";

/**
 * Counts the calls a server is running, from the moment a handler is invoked
 * until its last response message is sent or it fails, so that shutdown can
 * wait for them and tests can see a cancelled handler really stop.
 */
export class InflightCalls implements CallObserver {
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

  /** @private Called by the call observer. */
  callStarted(): void {
    this.#count++;
  }

  /** @private Called by the call observer. */
  callFinished(): void {
    this.#count--;
    if (this.#count === 0) {
      for (const wake of this.#waiters.splice(0)) wake();
    }
  }
}
