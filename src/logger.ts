import { type DestinationStream, type Logger, pino } from "pino";
import type { LogLevel } from "./config.js";

/** Options of the server's logger. */
export interface LoggerOptions {
  /** Least severe level written. @default "info" */
  level?: LogLevel;
  /** Where the JSON lines go; tests pass a stream to read them. @default process.stdout */
  destination?: DestinationStream;
}

/**
 * Create the server's logger: one JSON object per line (pino).
 *
 * Lines go to stdout asynchronously, in batches: sonic-boom writes from
 * libuv's thread pool once `logBatchBytes` have gathered (or every
 * `logFlushMs`), not with a write system call per line. Each write is a round
 * trip to a thread-pool thread, which on a server pinned to one core (a
 * container's CPU limit) costs more than the line itself; batches make it
 * rare. Start and stop lines are written at once (`lifecycleLogger`), and pino
 * flushes what is left synchronously when the process exits.
 *
 * If stdout stops taking lines (a stalled log collector), lines wait in memory
 * up to `maxQueuedLogBytes`, then are dropped, with one note on stderr: the
 * server keeps serving rather than block on its log or grow without bound.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    { level: options.level ?? "info" },
    options.destination ?? stdoutDestination(),
  );
}

/** How many bytes of log lines may wait for stdout before lines are dropped. */
export const maxQueuedLogBytes = 16 * 1024 * 1024;

/** How many bytes of lines gather before they are written. */
const logBatchBytes = 4096;

/** How long lines may wait for a batch to fill, in milliseconds. */
const logFlushMs = 100;

function stdoutDestination(): DestinationStream {
  const destination = pino.destination({
    dest: 1,
    sync: false,
    minLength: logBatchBytes,
    // sonic-boom appends each line to its last pending chunk and measures that
    // chunk's byte length, which flattens (copies) it: chunks barely longer
    // than a batch keep that copy small.
    maxWrite: logBatchBytes + 512,
    periodicFlush: logFlushMs,
    maxLength: maxQueuedLogBytes,
  });
  destination.once("drop", () =>
    process.stderr.write(
      `connect-greeter: stdout is not keeping up with the log; dropping lines beyond ${maxQueuedLogBytes} queued bytes\n`,
    ),
  );
  return destination;
}

/**
 * End the logger's output and resolve once every line is written, in order:
 * for just before process.exit. pino's flush() does not wait for a write
 * already in progress, and the synchronous flush at exit can then overtake it.
 */
export function endLog(logger: Logger): Promise<void> {
  const stream = (logger as unknown as Record<symbol, unknown>)[
    pino.symbols.streamSym
  ] as NodeJS.WritableStream | undefined;
  if (stream === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once("close", () => resolve());
    stream.end();
  });
}

/** Where the few start and stop lines go. */
export interface LifecycleLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/**
 * The logger for the few start and stop lines: they are written at info even
 * when the level is warn or error, since whoever runs the server waits for the
 * ready line and wants to see it stop (only "silent" silences them), and at
 * once rather than with the next batch.
 */
export function lifecycleLogger(logger: Logger): LifecycleLog {
  const log =
    logger.isLevelEnabled("info") || logger.level === "silent"
      ? logger
      : logger.child({}, { level: "info" });
  return {
    info(fields, message) {
      log.info(fields, message);
      logger.flush();
    },
    warn(fields, message) {
      log.warn(fields, message);
      logger.flush();
    },
  };
}
