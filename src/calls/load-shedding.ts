import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";

/** Why a call was shed. */
export type ShedReason = "calls_in_flight" | "event_loop_delay";

/**
 * Services never shed: health checks must keep telling the truth (the
 * server serves, slowly or not) while it sheds, or an orchestrator would
 * take an overloaded replica out, or restart it, and load the others more.
 */
const neverShed = new Set(["grpc.health.v1.Health"]);

/**
 * How often a timer marks the event loop's progress, in milliseconds: a mark
 * that comes later than this after the last finds the loop that much late.
 */
export const tickMs = 5;

/** The share of calls admitted that a mark on time adds back, up to all. */
const recovery = 0.05;

/** The least share of calls admitted while the loop is late: some calls still get through, and show when it is not. */
const leastShare = 0.01;

/**
 * Load shedding: a request gate (src/calls/gates.ts) that refuses new calls
 * at once, before their request is read, while the server is past a limit:
 * `callsInFlight` calls running (0: none), or an event loop `eventLoopDelayMs`
 * late or more (0: none). A Node server past its capacity does not
 * slow down gracefully: every call queues behind every other on the one
 * event loop, latency grows for all until clients time out, and nothing
 * tells a client to go elsewhere. Refused at once, a call costs little and
 * its client can try another replica, while the calls admitted keep their
 * latency.
 *
 * The refusal is UNAVAILABLE, the code gRPC names for a transient
 * condition a client may retry with backoff, which gRPC retry policies
 * retry (and gRPC's retry throttling keeps from becoming a storm); it maps
 * to HTTP 503 in Connect. RESOURCE_EXHAUSTED would tell the client that it
 * ran out of something of its own (a quota), which no retry elsewhere cures,
 * and retry policies leave it alone. One error object per reason, made
 * once: a refusal costs no stack trace.
 *
 * Which limit: calls in flight counts the calls that wait (on a database, a
 * slow client, a timer), and bounds what they hold; a call that only
 * computes is over before the next one starts, so a server saturated by
 * such calls has few in flight. The event loop's delay measures that
 * saturation where it hurts: a timer marks the loop's progress every
 * `tickMs`. A mark `eventLoopDelayMs` late or more cuts the share of new
 * calls admitted in proportion (twice as late, half as many), down to 1 %;
 * each mark on time gives back 5 % of all calls, so the share settles where
 * the loop keeps its time: the shedding adds and cuts like TCP's congestion
 * window (AIMD). The admitted share is spread evenly over the calls, by a
 * running credit, not by chance. Refusing costs work too (about what the
 * Greeter's own SayHello costs): past the load at which refusing alone fills
 * the loop, no shedding helps. docs/operations.md has the measurements.
 */
export class LoadShedder {
  readonly #callsInFlight: number;
  readonly #inflight: { readonly count: number };
  readonly #counted: (reason: ShedReason) => void;
  readonly #delayMs: number;
  readonly #timer: NodeJS.Timeout | undefined;
  /** When the loop's next mark is due (performance.now()). */
  #due = performance.now() + tickMs;
  /** The share of new calls admitted, from `leastShare` to 1. */
  #share = 1;
  /** The admission owed to the calls refused so far at the current share. */
  #credit = 0;
  readonly #refusals: Record<ShedReason, ConnectError> = {
    calls_in_flight: new ConnectError(
      "the server is overloaded: too many calls in flight",
      Code.Unavailable,
    ),
    event_loop_delay: new ConnectError(
      "the server is overloaded: its event loop is late",
      Code.Unavailable,
    ),
  };

  constructor(
    limits: { callsInFlight: number; eventLoopDelayMs: number },
    inflight: { readonly count: number },
    counted: (reason: ShedReason) => void,
  ) {
    this.#callsInFlight = limits.callsInFlight;
    this.#inflight = inflight;
    this.#counted = counted;
    this.#delayMs = limits.eventLoopDelayMs;
    if (this.#delayMs > 0) {
      this.#timer = setInterval(() => {
        const now = performance.now();
        const late = now - this.#due;
        this.#due = now + tickMs;
        this.#share =
          late >= this.#delayMs
            ? Math.max(leastShare, (this.#share * this.#delayMs) / late)
            : Math.min(1, this.#share + recovery);
      }, tickMs);
      this.#timer.unref();
    }
  }

  /** A shedder for these limits; undefined when both are off, so that no call pays for it. */
  static of(
    limits: { callsInFlight: number; eventLoopDelayMs: number },
    inflight: { readonly count: number },
    counted: (reason: ShedReason) => void,
  ): LoadShedder | undefined {
    return limits.callsInFlight > 0 || limits.eventLoopDelayMs > 0
      ? new LoadShedder(limits, inflight, counted)
      : undefined;
  }

  /** The request gate: throws UNAVAILABLE while the server is past a limit. */
  readonly gate = (context: HandlerContext): void => {
    const max = this.#callsInFlight;
    if (max > 0 && this.#inflight.count >= max) {
      this.#shed(context, "calls_in_flight");
    } else if (this.#share < 1) {
      this.#credit += this.#share;
      if (this.#credit >= 1) this.#credit -= 1;
      else this.#shed(context, "event_loop_delay");
    }
  };

  #shed(context: HandlerContext, reason: ShedReason): void {
    if (neverShed.has(context.service.typeName)) return;
    this.#counted(reason);
    throw this.#refusals[reason];
  }

  /** Stop marking the event loop's progress. */
  close(): void {
    clearInterval(this.#timer);
  }
}
