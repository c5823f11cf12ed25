import type { IncomingHttpHeaders } from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import type { Principal } from "../auth/principal.js";
import type { Protocol } from "../protocol/content-type.js";
import { headerValue } from "../protocol/headers.js";
import type { Connection } from "./connection.js";
import type { DeadlineChange } from "./deadline-policy.js";

/** The kind of a call, named as gRPC's Prometheus metrics name it. */
export type CallType =
  | "unary"
  | "client_stream"
  | "server_stream"
  | "bidi_stream";

/** A procedure as the observers name it; made once per method. */
export interface Procedure {
  /** The path, such as /Greeter/SayHello. */
  readonly path: string;
  /** The service's fully qualified name, such as Greeter. */
  readonly service: string;
  /** The method's name, such as SayHello. */
  readonly method: string;
  readonly type: CallType;
}

/** One call, from its handler's invocation to its end: what observers are told about. */
export interface Call {
  readonly procedure: Procedure;
  readonly protocol: Protocol;
  /** The connection it arrived on (peer, HTTP version). */
  readonly connection: Connection;
  /** The request's headers, as the path that serves it has them; read them with `requestHeader`. */
  readonly requestHeaders: Headers | IncomingHttpHeaders;
  /**
   * The request's URL as connect's handlers have it (scheme, authority, path);
   * undefined on the fast path, whose headers hold HTTP/2's :authority.
   */
  readonly url: string | undefined;
  /** Who made the call, as the server verified it (src/auth/); undefined for public methods and with authentication off. */
  readonly principal: Principal | undefined;
  /** What the deadline policy did to the call's deadline, if anything (src/calls/deadline-policy.ts). */
  readonly deadline: DeadlineChange | undefined;
  /** When the handler was invoked (performance.now()). */
  readonly startedAt: number;
  /** Request messages the handler read so far. */
  received: number;
  /** Response messages the handler produced so far. */
  sent: number;
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

const procedures = new WeakMap<DescMethod, Procedure>();

/** The procedure of a method, made once and shared by all its calls. */
export function procedureOf(method: DescMethod): Procedure {
  let procedure = procedures.get(method);
  if (procedure === undefined) {
    procedure = {
      path: `/${method.parent.typeName}/${method.name}`,
      service: method.parent.typeName,
      method: method.name,
      type: callTypes[method.methodKind],
    };
    procedures.set(method, procedure);
  }
  return procedure;
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

/** A request header of a call (`name` in lower case), null when absent; repeated values joined as fetch Headers joins them. */
export function requestHeader(call: Call, name: string): string | null {
  const headers = call.requestHeaders;
  return headers instanceof Headers
    ? headers.get(name)
    : headerValue(headers, name);
}
