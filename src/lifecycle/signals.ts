import { constants } from "node:os";
import type { ShutdownResult } from "./shutdown.js";

/** What `exitOnSignals` reports, for logging. */
export interface SignalHooks {
  /** A first signal arrived; draining begins. */
  onSignal?(signal: NodeJS.Signals): void;
  /** Draining finished; the process exits 0 once what this returns settles (a log flushed). */
  onDrained?(result: ShutdownResult): void | Promise<void>;
  /** A second signal arrived; the process exits at once with 128 + its number. */
  onForced?(signal: NodeJS.Signals): void;
}

/**
 * A repeat of the first signal within this many milliseconds is the same
 * request, not a second one: Ctrl-C signals the whole process group of
 * `npm start`, and npm (and tsx) forward it to the server once more.
 */
const echoWindowMs = 500;

/**
 * On SIGTERM or SIGINT, drain the server with `shutdown` and exit 0; on a
 * second signal, exit at once with 128 + the signal's number, as a shell does.
 */
export function exitOnSignals(
  shutdown: () => Promise<ShutdownResult>,
  hooks: SignalHooks = {},
): void {
  let first: { signal: NodeJS.Signals; at: number } | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (first !== undefined) {
      const echo =
        signal === first.signal && performance.now() - first.at < echoWindowMs;
      if (echo) return;
      hooks.onForced?.(signal);
      process.exit(128 + constants.signals[signal]);
    }
    first = { signal, at: performance.now() };
    hooks.onSignal?.(signal);
    shutdown().then(
      async (result) => {
        await hooks.onDrained?.(result);
        process.exit(0);
      },
      (e: unknown) => {
        console.error("connect-greeter: shutdown failed:", e);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}
