import { Code } from "@connectrpc/connect";
import type { SpanContext } from "@opentelemetry/api";
import { type Level, type Logger, pino } from "pino";
import type { Principal } from "../auth/principal.js";
import type { Connection } from "./connection.js";
import {
  type Call,
  type CallObserver,
  codeName,
  type Outcome,
  type Procedure,
} from "./observer.js";

/**
 * Log one line per finished call, as go-grpc-middleware's logging does: its
 * procedure, protocol, HTTP version, code, duration, peer and, for streams,
 * the messages each way; when the deadline policy set the call's deadline
 * (src/calls/deadline-policy.ts), the deadline, why, and what the client
 * asked for. The level follows the code, so a server at "warn"
 * still logs calls that failed on its side. At debug, every message too (its
 * direction, never its content).
 *
 * With tracing on (`spanContextOf` given), the line names the call's span:
 * `trace_id`, `span_id` and `trace_flags` (01: sampled), as OpenTelemetry's
 * pino instrumentation names them, so a log search finds the trace and a
 * trace view finds the line. Every call with a span has them, sampled or not:
 * the trace id also links the lines of one request across services.
 *
 * With authentication on, the line names who called (`principal`: a token's
 * subject, or a client certificate's SAN or subject; src/auth/principal.ts),
 * never a credential. A call the access policy refused has its line too,
 * with its code (unauthenticated, permission_denied) and why.
 *
 * The call line is the JSON pino would write for
 * `logger[level]({procedure, protocol, httpVersion, peer, code, durationMs,
 * principal?, received?, sent?, deadlineMs?, deadlineSetBy?,
 * requestedDeadlineMs?, error?, trace_id?, span_id?, trace_flags?},
 * "finished call")`, key for key, but built from
 * pieces made once per procedure and per connection and handed to pino's own
 * destination: every call pays for it, and pino's general serialiser walks
 * and escapes every field of every line.
 */
export function callLog(
  logger: Logger,
  spanContextOf?: (call: Call) => SpanContext | undefined,
): CallObserver {
  const out = logger as unknown as Record<symbol, unknown>;
  const stream = out[pino.symbols.streamSym] as { write(line: string): void };
  /** The base fields, such as ,"pid":1,"hostname":"h" (pino's chindings). */
  const base = out[pino.symbols.chindingsSym] as string;
  const debug = logger.isLevelEnabled("debug");
  /** `,"procedure":"/Greeter/SayHello"`, once per procedure. */
  const procedureField = madeOnce(
    (procedure: Procedure) => `,"procedure":${JSON.stringify(procedure.path)}`,
  );
  /** `,"principal":"alice"`, once per principal (a verified token's is shared by its calls). */
  const principalField = madeOnce(
    (principal: Principal) => `,"principal":${JSON.stringify(principal.id)}`,
  );
  /** `,"httpVersion":"2.0","peer":"127.0.0.1:5555"`, once per connection. */
  const connectionFields = madeOnce(
    (connection: Connection) =>
      `,"httpVersion":${JSON.stringify(connection.httpVersion)},"peer":${JSON.stringify(connection.peer)}`,
  );
  const message = (call: Call, msg: string) => {
    logger.debug(
      { procedure: call.procedure.path, peer: call.connection.peer },
      msg,
    );
  };
  /** The line's fields up to the message, or undefined when its level is not logged. */
  const fields = (call: Call, outcome: Outcome): string | undefined => {
    const code = outcome.error?.code;
    const level = levelOf(code);
    if (!logger.isLevelEnabled(level)) return undefined;
    let line = `{"level":${logger.levels.values[level]},"time":${Date.now()}${base}${procedureField(call.procedure)},"protocol":"${call.protocol}"${connectionFields(call.connection)},"code":"${codeName(code)}","durationMs":${Math.round(outcome.durationMs * 1000) / 1000}`;
    if (call.principal !== undefined) line += principalField(call.principal);
    if (call.procedure.type !== "unary") {
      line += `,"received":${outcome.received},"sent":${outcome.sent}`;
    }
    const deadline = call.deadline;
    if (deadline !== undefined) {
      line += `,"deadlineMs":${deadline.deadlineMs},"deadlineSetBy":"${deadline.setBy}"`;
      if (deadline.requestedMs !== undefined) {
        line += `,"requestedDeadlineMs":${deadline.requestedMs}`;
      }
    }
    if (outcome.error !== undefined) {
      line += `,"error":${JSON.stringify(outcome.error.rawMessage)}`;
    }
    return line;
  };
  /** Without tracing: no span looked for. */
  const finished = (call: Call, outcome: Outcome) => {
    const line = fields(call, outcome);
    if (line !== undefined) stream.write(`${line},"msg":"finished call"}\n`);
  };
  /** With tracing: the span's ids too. */
  const finishedTraced = (
    call: Call,
    outcome: Outcome,
    spanContext: SpanContext | undefined,
  ) => {
    const line = fields(call, outcome);
    if (line === undefined) return;
    // Hex digits only: nothing to escape.
    const ids =
      spanContext === undefined
        ? ""
        : `,"trace_id":"${spanContext.traceId}","span_id":"${spanContext.spanId}","trace_flags":"${spanContext.traceFlags.toString(16).padStart(2, "0")}"`;
    stream.write(`${line}${ids},"msg":"finished call"}\n`);
  };
  return {
    messageReceived: debug
      ? (call) => message(call, "received message")
      : undefined,
    messageSent: debug ? (call) => message(call, "sent message") : undefined,
    callFinished:
      spanContextOf === undefined
        ? finished
        : (call, outcome) => finishedTraced(call, outcome, spanContextOf(call)),
  };
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

/** `make`, each key's text made once and kept while the key lives. */
function madeOnce<K extends object>(
  make: (key: K) => string,
): (key: K) => string {
  const made = new WeakMap<K, string>();
  return (key) => {
    let text = made.get(key);
    if (text === undefined) {
      text = make(key);
      made.set(key, text);
    }
    return text;
  };
}
