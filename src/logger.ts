import { EventEmitter } from "node:events";
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
 * rare. Lines gather in a list joined once per batch (`LineBatch`), since
 * sonic-boom appends each line to its pending string and measures that
 * string's byte length, a copy of the batch so far for every line. Start and
 * stop lines are written at once (`lifecycleLogger`), and what is left is
 * written synchronously when the process exits.
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

/**
 * The process's one stdout destination: servers in one process (tests, a
 * program embedding several) share stdout, so they share its batch, which
 * keeps their lines in order and registers one exit hook, not one per server.
 */
let stdout: LineBatch | undefined;

function stdoutDestination(): DestinationStream {
  stdout ??= openStdout();
  return stdout;
}

function openStdout(): LineBatch {
  // Lines come in batches (LineBatch): each is written as it comes, or
  // appended to what waits while a write is in progress. In bytes: a pipe
  // that takes part of a write (a log collector that reads slowly) gets the
  // rest as a slice, where sonic-boom would encode the rest of a string
  // again after every partial write.
  const out = pino.destination({
    dest: 1,
    sync: false,
    maxLength: maxQueuedLogBytes,
    contentMode: "buffer",
  });
  out.once("drop", () =>
    process.stderr.write(
      `connect-greeter: stdout is not keeping up with the log; dropping lines beyond ${maxQueuedLogBytes} queued bytes\n`,
    ),
  );
  return new LineBatch(out);
}

/** What LineBatch needs of sonic-boom. */
type SonicBoom = ReturnType<typeof pino.destination>;

/**
 * Lines gathered in a list and handed to `out` joined, one string per
 * `logBatchBytes` (or per `logFlushMs`, whichever comes first): every line in
 * order, pino's and the call log's alike. At exit, what is left goes to `out`
 * before sonic-boom writes out its own rest synchronously (pino's exit hook).
 */
export class LineBatch extends EventEmitter implements DestinationStream {
  readonly #out: SonicBoom;
  readonly #lines: string[] = [];
  #length = 0;
  #timer: NodeJS.Timeout | undefined = undefined;
  /** At exit: what has gathered, written synchronously (sonic-boom's own exit hook may have run already). */
  readonly #flushOnExit = () => {
    this.#hand();
    try {
      this.#out.flushSync();
    } catch {
      // Ended or destroyed: nothing more can be written.
    }
  };

  constructor(out: SonicBoom) {
    super();
    this.#out = out;
    process.on("exit", this.#flushOnExit);
  }

  write(line: string): boolean {
    this.#lines.push(line);
    this.#length += line.length;
    if (this.#length >= logBatchBytes) this.#hand();
    else this.#timer ??= setTimeout(() => this.#hand(), logFlushMs).unref();
    return true;
  }

  /** Hand what has gathered to sonic-boom, which writes it. */
  #hand(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lines.length === 0) return;
    const batch = Buffer.from(
      this.#lines.length === 1
        ? (this.#lines[0] as string)
        : this.#lines.join(""),
    );
    this.#lines.length = 0;
    this.#length = 0;
    this.#out.write(batch as never);
  }

  /** pino's flush(): everything gathered goes out now. */
  flush(cb?: (err?: Error) => void): void {
    this.#hand();
    this.#out.flush(cb);
  }

  /** pino's flushSync, at exit. */
  flushSync(): void {
    this.#hand();
    this.#out.flushSync();
  }

  /** The end of the log: what has gathered, then sonic-boom's end; "close" once every line is written. */
  end(): void {
    this.#hand();
    process.off("exit", this.#flushOnExit);
    if (stdout === this) stdout = undefined;
    this.#out.once("close", () => this.emit("close"));
    this.#out.end();
  }
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
