/**
 * Iterate `source` until `signal` aborts, then reject with the signal's reason,
 * also while waiting for the next item.
 *
 * Connect aborts a handler's signal when the call's deadline passes, but does
 * not end the request stream then: a handler reading client messages would wait
 * past its deadline for a client that sends nothing. Reading through this ends
 * the call on time, with the signal's reason (DEADLINE_EXCEEDED) as its status.
 */
export async function* untilAborted<T>(
  source: AsyncIterable<T>,
  signal: AbortSignal,
): AsyncGenerator<T, void, undefined> {
  if (signal.aborted) throw signal.reason;
  const it = source[Symbol.asyncIterator]();
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
  });
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const next = await Promise.race([it.next(), aborted]);
      if (next.done === true) return;
      yield next.value;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    // Let the source release what it holds, without waiting on a read that may never end.
    it.return?.().catch(() => {});
  }
}
