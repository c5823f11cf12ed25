import { Code } from "@connectrpc/connect";
import type { Level, Logger } from "pino";
import { type Call, type CallObserver, codeName } from "./observe.js";

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
