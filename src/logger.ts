import { Code } from "@connectrpc/connect";
import { type DestinationStream, type Level, type Logger, pino } from "pino";
import { type Call, type CallObserver, codeName } from "./calls/observe.js";
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
 * Lines go to stdout asynchronously (sonic-boom writes from libuv's thread
 * pool, joining the lines that pile up meanwhile): a synchronous write per call
 * cost ~15 µs of a ~105 µs fast call (bench/PROFILE.md). pino flushes what is
 * left synchronously when the process exits, so the shutdown lines still
 * arrive. sonic-boom measures the joined lines' byte length at every line,
 * which copies them all: at its default 16 KiB batch that allocated 7.9 KiB
 * per logged call, a fifth of the call's garbage; 1 KiB batches cut it ~16x.
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

function stdoutDestination(): DestinationStream {
  const destination = pino.destination({
    dest: 1,
    sync: false,
    maxWrite: 1024,
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

/**
 * The logger for the few start and stop lines: they are written at info even
 * when the level is warn or error, since whoever runs the server waits for the
 * ready line and wants to see it stop; only "silent" silences them.
 */
export function lifecycleLogger(logger: Logger): Logger {
  return logger.isLevelEnabled("info") || logger.level === "silent"
    ? logger
    : logger.child({}, { level: "info" });
}

/**
 * Log one line per finished call, as go-grpc-middleware's logging does: its
 * procedure, protocol, HTTP version, code, duration, peer and, for streams,
 * the messages each way. The level follows the code, so a server at "warn"
 * still logs calls that failed on its side. At debug, every message too (its
 * direction, never its content).
 */
export function callLog(logger: Logger): CallObserver {
  return {
    messageReceived(call) {
      if (logger.isLevelEnabled("debug")) {
        logger.debug(
          { procedure: call.procedure, peer: call.peer },
          "received message",
        );
      }
    },
    messageSent(call) {
      if (logger.isLevelEnabled("debug")) {
        logger.debug(
          { procedure: call.procedure, peer: call.peer },
          "sent message",
        );
      }
    },
    callFinished(call, outcome) {
      const code = outcome.error?.code;
      logger[levelOf(code)](
        {
          procedure: call.procedure,
          protocol: call.protocol,
          httpVersion: call.httpVersion,
          code: codeName(code),
          durationMs: Math.round(outcome.durationMs * 1000) / 1000,
          peer: call.peer,
          ...(isStreaming(call)
            ? { received: outcome.received, sent: outcome.sent }
            : {}),
          ...(outcome.error ? { error: outcome.error.rawMessage } : {}),
        },
        "finished call",
      );
    },
  };
}

function isStreaming(call: Call): boolean {
  return call.type !== "unary";
}

/** The level of a finished call's line, by its code (go-grpc-middleware's DefaultServerCodeToLevel). */
function levelOf(code: Code | undefined): Level {
  switch (code) {
    case undefined:
    case Code.Canceled:
    case Code.InvalidArgument:
    case Code.NotFound:
    case Code.AlreadyExists:
    case Code.Unauthenticated:
      return "info";
    case Code.DeadlineExceeded:
    case Code.PermissionDenied:
    case Code.ResourceExhausted:
    case Code.FailedPrecondition:
    case Code.Aborted:
    case Code.OutOfRange:
    case Code.Unavailable:
      return "warn";
    default:
      return "error";
  }
}
