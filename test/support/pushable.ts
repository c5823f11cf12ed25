/**
 * An async iterable a test feeds one item at a time, so a client stream sends
 * a request only when the test says so (for example after the previous reply
 * arrived), and ends when the test closes it.
 */
export interface Pushable<T> extends AsyncIterable<T> {
  /** Send one more item to whoever iterates. */
  push(item: T): void;
  /** End the iteration once the queued items are taken. */
  close(): void;
}

/** Create an empty Pushable. */
export function pushable<T>(): Pushable<T> {
  const queue: T[] = [];
  let closed = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  return {
    push(item) {
      if (closed) throw new Error("push after close");
      queue.push(item);
      notify();
    },
    close() {
      closed = true;
      notify();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const item = queue.shift();
        if (item !== undefined) {
          yield item;
          continue;
        }
        if (closed) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
  };
}
