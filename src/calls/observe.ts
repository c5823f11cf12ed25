import { performance } from "node:perf_hooks";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { type Protocol, parseRequestType } from "../http/content-type.js";
import { connectionKey } from "./connection.js";

/** The kind of a call, named as gRPC's Prometheus metrics name it. */
export type CallType =
  | "unary"
  | "client_stream"
  | "server_stream"
  | "bidi_stream";

/** What is known about a call when its handler is invoked. */
export interface Call {
  /** The path of the procedure, such as /Greeter/SayHello. */
  readonly procedure: string;
  /** The service's fully qualified name, such as Greeter. */
  readonly service: string;
  /** The method's name, such as SayHello. */
  readonly method: string;
  readonly type: CallType;
  readonly protocol: Protocol;
  /** "1.1" or "2.0"; empty when the adapter did not hand over the connection. */
  readonly httpVersion: string;
  /** The client's address and port; empty when the adapter did not hand over the connection. */
  readonly peer: string;
}

/** How a call ended. */
export interface Outcome {
  /** Why the call failed, or undefined when it succeeded. */
  readonly error: ConnectError | undefined;
  /** From the handler's invocation to its last message or failure, in milliseconds. */
  readonly durationMs: number;
  /** Request messages the handler read. */
  readonly received: number;
  /** Response messages the handler produced. */
  readonly sent: number;
}

/** Something that wants to hear about calls: counters, logs, shutdown. */
export interface CallObserver {
  /** A call's handler is about to be invoked. */
  callStarted?(call: Call): void;
  /** The handler read a request message. */
  messageReceived?(call: Call): void;
  /** The handler produced a response message. */
  messageSent?(call: Call): void;
  /** The call ended: its last response message was produced, or it failed. Called exactly once. */
  callFinished?(call: Call, outcome: Outcome): void;
}

const callTypes = {
  unary: "unary",
  server_streaming: "server_stream",
  client_streaming: "client_stream",
  bidi_streaming: "bidi_stream",
} as const;

/**
 * One interceptor that watches every call, its messages and its end, and
 * tells each observer. Put it first, so it sees what the client will see
 * (after the inner interceptors have mapped errors) and every call is counted.
 *
 * A streaming call ends when its response stream ends: completed, failed, or
 * closed early because the client went away. Until then it is in flight.
 */
export function observeCalls(observers: readonly CallObserver[]): Interceptor {
  return (next) => async (req) => {
    const connection = req.contextValues.get(connectionKey);
    const call: Call = {
      procedure: `/${req.service.typeName}/${req.method.name}`,
      service: req.service.typeName,
      method: req.method.name,
      type: callTypes[req.method.methodKind],
      protocol: protocolOf(req.header.get("content-type")),
      httpVersion: connection?.httpVersion ?? "",
      peer: connection?.peer ?? "",
    };
    const startedAt = performance.now();
    let received = 0;
    let sent = 0;
    let finished = false;
    const onReceived = () => {
      received++;
      for (const o of observers) o.messageReceived?.(call);
    };
    const onSent = () => {
      sent++;
      for (const o of observers) o.messageSent?.(call);
    };
    const finish = (reason: unknown) => {
      if (finished) return;
      finished = true;
      // A handler may run to its end after the client went away (a request
      // stream that simply stops): the client still saw no success.
      if (
        (reason === undefined || reason === closedEarly) &&
        req.signal.aborted
      ) {
        reason = abortReason(req.signal);
      }
      const outcome: Outcome = {
        error: reason === undefined ? undefined : ConnectError.from(reason),
        durationMs: performance.now() - startedAt,
        received,
        sent,
      };
      for (const o of observers) o.callFinished?.(call, outcome);
    };
    for (const o of observers) o.callStarted?.(call);
    let res: Awaited<ReturnType<typeof next>>;
    try {
      if (req.stream) {
        res = await next({ ...req, message: tap(req.message, onReceived) });
      } else {
        onReceived();
        res = await next(req);
      }
    } catch (e) {
      finish(e);
      throw e;
    }
    if (!res.stream) {
      onSent();
      finish(undefined);
      return res;
    }
    return { ...res, message: watch(res.message, onSent, finish) };
  };
}

/** How a stream closed early by its consumer ends, unless the call's signal tells more. */
const closedEarly = new ConnectError(
  "response stream closed early",
  Code.Canceled,
);

/** Why a call was aborted, as the code a client would see: canceled unless the reason says otherwise (deadline_exceeded). */
function abortReason(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason, Code.Canceled);
}

/** The protocol of a call connect serves: a Connect GET request has no content type. */
function protocolOf(contentType: string | null): Protocol {
  return parseRequestType(contentType)?.protocol ?? "connect";
}

async function* tap<T>(
  messages: AsyncIterable<T>,
  onMessage: () => void,
): AsyncIterable<T> {
  for await (const m of messages) {
    onMessage();
    yield m;
  }
}

/**
 * Pass the response messages on and report the end. A generator, not a bare
 * iterator, so that an early close is reported only once the handler has
 * really stopped (its pending step settled), which shutdown relies on.
 */
async function* watch<T>(
  messages: AsyncIterable<T>,
  onMessage: () => void,
  finish: (reason: unknown) => void,
): AsyncIterable<T> {
  let outcome: { reason: unknown } | undefined;
  try {
    for await (const m of messages) {
      onMessage();
      yield m;
    }
    outcome = { reason: undefined };
  } catch (e) {
    outcome = { reason: e };
    throw e;
  } finally {
    // Neither completed nor failed: the consumer closed the stream early,
    // because the client went away or the response could not be written.
    finish(outcome ? outcome.reason : closedEarly);
  }
}

/** A code's name in the Connect protocol (snake case), such as invalid_argument; "ok" for success. */
export function codeName(code: Code | undefined): string {
  if (code === undefined) return "ok";
  const name = Code[code];
  if (name === undefined) return String(code);
  return name.replace(/[A-Z]/g, (c, i: number) =>
    i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`,
  );
}
