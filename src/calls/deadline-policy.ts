/**
 * The server's deadline policy: a maximum deadline (a longer one, or none
 * with no default, is shortened to it) and a default deadline for calls that
 * send none, both off unless set (MAX_DEADLINE_MS, DEFAULT_DEADLINE_MS).
 *
 * It works by rewriting the request's own timeout header (gRPC's
 * `grpc-timeout`, Connect's `connect-timeout-ms`) before anything reads it,
 * so that everything downstream sees one deadline on either path: the
 * engine's call and connect's handler context start their timer from it,
 * a handler's `timeoutMs()` and signal follow it, and the client gets
 * DEADLINE_EXCEEDED when it passes, exactly as for a deadline it sent. The
 * engine applies it to each call it takes (src/engine/engine.ts); `step`,
 * an HTTP step before connect's adapter, to the rest. What it did is
 * reported with the call (its log line and span).
 */
import type { IncomingHttpHeaders } from "node:http";
import { type ContextValues, createContextKey } from "@connectrpc/connect";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import type { Middleware } from "../http/middleware.js";
import { type Protocol, parseRequestType } from "../protocol/content-type.js";
import { headerValue } from "../protocol/headers.js";

/** What the policy did to a call's deadline. */
export interface DeadlineChange {
  /** The deadline the call got, in milliseconds. */
  readonly deadlineMs: number;
  /** "default": the client sent none; "max": it sent a longer one, or none and there is no default. */
  readonly setBy: "default" | "max";
  /** The deadline the client asked for, if it sent one. */
  readonly requestedMs: number | undefined;
}

/** Where a call of connect's handlers finds what the policy did, among its context values. */
export const deadlineChangeKey = createContextKey<DeadlineChange | undefined>(
  undefined,
  { description: "what the deadline policy did to the call's deadline" },
);

/** No parsed timeout is refused for its length here: that is the policy's job. */
const anyLength = Number.MAX_SAFE_INTEGER;

/** The request headers of a Node request, as the policy reads and rewrites them. */
interface NodeRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
}

export class DeadlinePolicy {
  readonly #maxMs: number;
  readonly #defaultMs: number;
  /** What the step did to each request connect's adapter serves, for its context values. */
  readonly #changes = new WeakMap<object, DeadlineChange>();

  /** `maxMs` and `defaultMs` in milliseconds, 0 for none; a default is at most the maximum. */
  constructor(maxMs: number, defaultMs: number) {
    this.#maxMs = maxMs;
    this.#defaultMs = defaultMs;
  }

  /** The policy for these settings; undefined when both are off, so that no call pays for it. */
  static of(maxMs: number, defaultMs: number): DeadlinePolicy | undefined {
    return maxMs > 0 || defaultMs > 0
      ? new DeadlinePolicy(maxMs, defaultMs)
      : undefined;
  }

  /**
   * Apply the policy to a call in `protocol` with these request headers,
   * rewriting its timeout header when it changes the deadline; returns what
   * it did, or undefined. A timeout header that does not parse is left for
   * the protocol to refuse.
   */
  apply(
    headers: IncomingHttpHeaders,
    protocol: Protocol,
  ): DeadlineChange | undefined {
    const grpc = protocol !== "connect";
    const name = grpc ? "grpc-timeout" : "connect-timeout-ms";
    const value = headerValue(headers, name);
    const parsed = (grpc ? parseGrpcTimeout : parseConnectTimeout)(
      value,
      anyLength,
    );
    if (parsed.error !== undefined) return undefined;
    const requestedMs = parsed.timeoutMs;
    let change: DeadlineChange;
    if (requestedMs === undefined && this.#defaultMs > 0) {
      change = { deadlineMs: this.#defaultMs, setBy: "default", requestedMs };
    } else if (
      this.#maxMs > 0 &&
      (requestedMs === undefined || requestedMs > this.#maxMs)
    ) {
      change = { deadlineMs: this.#maxMs, setBy: "max", requestedMs };
    } else {
      return undefined;
    }
    // gRPC's header takes a unit: milliseconds, at most 8 digits, which
    // src/config.ts holds both settings to.
    headers[name] = grpc ? `${change.deadlineMs}m` : String(change.deadlineMs);
    return change;
  }

  /**
   * The HTTP step for the calls the engine leaves to connect's adapter, put
   * just before it: it applies the policy to each call's headers (a Connect
   * GET call names its protocol by its query, not a content type) and
   * remembers what it did for `contextValues`.
   */
  readonly step: Middleware = (next) => (req, res) => {
    const protocol = protocolOf(req);
    if (protocol !== undefined) {
      const change = this.apply(req.headers, protocol);
      if (change !== undefined) this.#changes.set(req, change);
    }
    next(req, res);
  };

  /**
   * connect's `contextValues` option made of `make`: the values it makes,
   * and what the policy did to the request's deadline (`deadlineChangeKey`).
   */
  contextValues<R extends object>(
    make: (req: R) => ContextValues,
  ): (req: R) => ContextValues {
    return (req) => {
      const values = make(req);
      const change = this.#changes.get(req);
      return change === undefined
        ? values
        : values.set(deadlineChangeKey, change);
    };
  }
}

function protocolOf(req: NodeRequest): Protocol | undefined {
  const type = parseRequestType(req.headers["content-type"]);
  if (type !== undefined) return type.protocol;
  // A Connect unary GET carries its message in the query.
  if (req.method === "GET" && /[?&]message=/.test(req.url ?? "")) {
    return "connect";
  }
  return undefined;
}
