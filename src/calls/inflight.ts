import type { Interceptor } from "@connectrpc/connect";
import { type CallObserver, observeCalls } from "./observe.js";

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

  /**
   * An interceptor that does the counting on its own. The server instead
   * passes this object to its one call observer (src/observe.ts), which feeds
   * logs and metrics too; put either first so it sees every call.
   */
  readonly interceptor: Interceptor = observeCalls([this]);

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
