/**
 * Wait `ms` milliseconds, or reject with the signal's reason as soon as it aborts.
 *
 * The reason is rethrown as is (not wrapped in an AbortError) because Connect
 * puts a ConnectError there: DEADLINE_EXCEEDED when the call's deadline passed,
 * CANCELED when the client went away. Rethrowing it keeps that code.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
