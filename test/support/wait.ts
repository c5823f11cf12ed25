/**
 * Waiting in tests without sleeping as synchronisation: poll a condition, or
 * race a promise, and fail as soon as a bound passes (not by the test's own
 * timeout), saying what did not happen.
 */
import assert from "node:assert/strict";

/**
 * How long `until` waits when its caller names no bound: TEST_WAIT_MS, or
 * 10 s. A condition on a local socket comes true in milliseconds; the
 * mutation runner sets a shorter bound, so that a mutant which keeps one from
 * coming true fails its test in a few seconds instead of ten.
 */
export const defaultWaitMs = waitMs(process.env.TEST_WAIT_MS);

function waitMs(value: string | undefined): number {
  if (value === undefined || value === "") return 10_000;
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms <= 0) {
    throw new Error(
      `TEST_WAIT_MS must be a positive whole number of ms, not "${value}"`,
    );
  }
  return ms;
}

/**
 * Resolves with `check()`'s first value that is neither `undefined` nor
 * `false`, polled every `everyMs` (0: on every turn of the event loop);
 * fails once `ms` have passed without one.
 */
export async function until<T>(
  what: string,
  check: () => T | undefined | false,
  ms = defaultWaitMs,
  everyMs = 5,
): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    assert.ok(
      performance.now() < deadline,
      `timed out after ${ms} ms waiting for ${what}`,
    );
    await new Promise((resolve) =>
      everyMs === 0 ? setImmediate(resolve) : setTimeout(resolve, everyMs),
    );
  }
}

/** What `promise` resolves to; fails as soon as `ms` have passed without it. */
export async function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} took more than ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * How much sooner than its delay a timer may fire, measured with
 * `performance.now()`. Node arms timers on libuv's loop clock, which counts
 * whole milliseconds (`uv_now`, truncated), so each timer may end up to 1 ms
 * early; a drain's steps chain a few timers.
 */
export const timerEarlyMs = 5;

/**
 * Asserts that `tookMs` is no shorter than the time limit `fromMs` allows
 * (less `timerEarlyMs`) and no longer than `toMs`.
 */
export function assertTook(
  tookMs: number,
  fromMs: number,
  toMs: number,
  what: string,
): void {
  assert.ok(
    tookMs >= fromMs - timerEarlyMs && tookMs <= toMs,
    `${what} took ${tookMs} ms, not within ${fromMs}-${toMs} ms`,
  );
}
