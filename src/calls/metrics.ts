import { Code } from "@connectrpc/connect";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { type AuthFailureReason, authFailureReason } from "../auth/failure.js";
import type { Protocol } from "../protocol/content-type.js";
import { Latencies, LatencyHistogram } from "./latency-histogram.js";
import type { Call, CallObserver, Outcome, Procedure } from "./observer.js";

const callLabels = [
  "grpc_type",
  "grpc_service",
  "grpc_method",
  "protocol",
] as const;
type CallLabel = (typeof callLabels)[number];

/**
 * Prometheus metrics of one server, named as go-grpc-prometheus names them so
 * existing gRPC dashboards work, plus a `protocol` label (grpc, grpc-web,
 * connect). Each server has its own registry, with Node's process metrics,
 * so several servers in one process (tests) do not share counters; the
 * admin port serves it (src/admin/).
 */
export class Metrics implements CallObserver {
  /** The registry every metric of this server is in. */
  readonly registry = new Registry();

  /**
   * Each procedure's and protocol's counts, as plain numbers that each metric
   * copies in when scraped (its `collect`): prom-client hashes a labels object
   * on every update, a cost paid per message otherwise. Bounded: only
   * registered procedures are observed, in at most three protocols.
   */
  readonly #series = new Map<Procedure, Partial<Record<Protocol, Series>>>();

  /** Calls refused by the access policy, by procedure and reason (src/auth/failure.ts: a fixed set). */
  readonly #authFailures = new Map<Procedure, Map<AuthFailureReason, number>>();

  readonly #authFailed: Counter<string> = new Counter({
    name: "connect_greeter_auth_failures_total",
    help: "Calls refused by the access policy: UNAUTHENTICATED, PERMISSION_DENIED or UNAVAILABLE, by reason.",
    labelNames: ["grpc_service", "grpc_method", "reason"],
    registers: [this.registry],
    collect: () => {
      this.#authFailed.reset();
      for (const [procedure, byReason] of this.#authFailures) {
        for (const [reason, n] of byReason) {
          this.#authFailed.inc(
            {
              grpc_service: procedure.service,
              grpc_method: procedure.method,
              reason,
            },
            n,
          );
        }
      }
    },
  });

  constructor() {
    const counts = (
      type: typeof Counter | typeof Gauge,
      name: string,
      help: string,
      pick: (s: Series) => [Record<string, string>, number][],
      extraLabels: readonly string[] = [],
    ) => {
      const metric: Counter<string> | Gauge<string> = new type({
        name,
        help,
        labelNames: [...callLabels, ...extraLabels],
        registers: [this.registry],
        collect: () => publish(metric, this.#series, pick),
      });
    };
    counts(
      Counter,
      "grpc_server_started_total",
      "Total number of RPCs started on the server.",
      (s) => [[{}, s.started]],
    );
    counts(
      Counter,
      "grpc_server_handled_total",
      "Total number of RPCs completed on the server, regardless of success or failure.",
      (s) => [...s.handled].map(([code, n]) => [{ grpc_code: code }, n]),
      ["grpc_code"],
    );
    counts(
      Gauge,
      "grpc_server_streams_in_flight",
      "Calls (HTTP/2 streams, or HTTP/1.1 requests) being handled now, unary and streaming.",
      (s) => [[{}, s.inFlight]],
    );
    counts(
      Counter,
      "grpc_server_msg_received_total",
      "Total number of RPC stream messages received on the server.",
      (s) => [[{}, s.received]],
    );
    counts(
      Counter,
      "grpc_server_msg_sent_total",
      "Total number of gRPC stream messages sent by the server.",
      (s) => [[{}, s.sent]],
    );
    new LatencyHistogram(
      "grpc_server_handling_seconds",
      "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
      this.registry,
      () => this.#latencies(),
    );
    collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Publish how many calls the protocol engine has served, read from `calls`
   * when scraped: the share of the traffic it takes, and what ENGINE=off would
   * move to connect's handlers.
   */
  countEngineCalls(calls: () => number): void {
    const counter: Counter = new Counter({
      name: "connect_greeter_engine_calls_total",
      help: "Calls served by the protocol engine instead of connect's generic handlers.",
      registers: [this.registry],
      collect: () => {
        counter.reset();
        counter.inc(calls());
      },
    });
  }

  /**
   * Publish the connections: how many are open now (`open`, read when
   * scraped), and how many a connection policy closed (idle, age, keepalive,
   * PINGs) or a cap refused, by reason. Returns what counts the latter two.
   */
  countConnections(open: () => number): {
    closed(reason: string): void;
    refused(reason: string): void;
  } {
    const gauge: Gauge = new Gauge({
      name: "connect_greeter_connections_open",
      help: "Connections open on the API port, HTTP/1.1 and HTTP/2.",
      registers: [this.registry],
      collect: () => gauge.set(open()),
    });
    const closed = byReason(
      this.registry,
      "connect_greeter_connections_closed_total",
      "Connections the server closed by a connection policy: idle, first_call, max_age, max_age_grace, keepalive_timeout, too_many_pings.",
    );
    const refused = byReason(
      this.registry,
      "connect_greeter_connections_refused_total",
      "Connections refused as they were accepted: max_connections, max_connections_per_address.",
    );
    return { closed, refused };
  }

  /**
   * Count calls refused by load shedding, by reason (calls_in_flight,
   * event_loop_delay): they are refused before their handler runs, so the
   * call metrics above do not see them.
   */
  countShedding(): (reason: string) => void {
    return byReason(
      this.registry,
      "connect_greeter_calls_shed_total",
      "Calls refused with UNAVAILABLE by load shedding, before their handler ran: calls_in_flight, event_loop_delay.",
    );
  }

  /** @private Called by the call observer. */
  callStarted(call: Call): void {
    const s = this.#of(call);
    s.started++;
    s.inFlight++;
  }

  /** @private Called by the call observer. */
  messageReceived(call: Call): void {
    this.#of(call).received++;
  }

  /** @private Called by the call observer. */
  messageSent(call: Call): void {
    this.#of(call).sent++;
  }

  /** @private Called by the call observer. */
  callFinished(call: Call, outcome: Outcome): void {
    const s = this.#of(call);
    s.inFlight--;
    const code = grpcCodeName(outcome.error?.code);
    s.handled.set(code, (s.handled.get(code) ?? 0) + 1);
    s.handling.observe(outcome.durationMs / 1000);
    if (outcome.error !== undefined) this.#countAuthFailure(call, outcome);
  }

  #countAuthFailure(call: Call, outcome: Outcome): void {
    const reason = authFailureReason(outcome.error);
    if (reason === undefined) return;
    let byReason = this.#authFailures.get(call.procedure);
    if (byReason === undefined) {
      byReason = new Map();
      this.#authFailures.set(call.procedure, byReason);
    }
    byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
  }

  *#latencies(): Iterable<Latencies> {
    for (const byProtocol of this.#series.values()) {
      for (const s of Object.values(byProtocol)) yield s.handling;
    }
  }

  #of(call: Call): Series {
    let byProtocol = this.#series.get(call.procedure);
    if (byProtocol === undefined) {
      byProtocol = {};
      this.#series.set(call.procedure, byProtocol);
    }
    let series = byProtocol[call.protocol];
    if (series === undefined) {
      const labels = labelsOf(call);
      series = {
        labels,
        started: 0,
        inFlight: 0,
        received: 0,
        sent: 0,
        handled: new Map(),
        handling: new Latencies(labels),
      };
      byProtocol[call.protocol] = series;
    }
    return series;
  }
}

/** A counter with a `reason` label, counted by the function returned. */
function byReason(
  registry: Registry,
  name: string,
  help: string,
): (reason: string) => void {
  const counter = new Counter({
    name,
    help,
    labelNames: ["reason"],
    registers: [registry],
  });
  return (reason) => counter.inc({ reason });
}

/** One procedure's and protocol's counts, and its latency histogram. */
interface Series {
  readonly labels: Record<CallLabel, string>;
  started: number;
  inFlight: number;
  received: number;
  sent: number;
  /** By code, as codes come. */
  readonly handled: Map<string, number>;
  readonly handling: Latencies;
}

/** Set `metric` to the counts `pick` reads from each series, with any extra labels it names. */
function publish(
  metric: Counter<string> | Gauge<string>,
  series: ReadonlyMap<Procedure, Partial<Record<Protocol, Series>>>,
  pick: (s: Series) => [Record<string, string>, number][],
): void {
  metric.reset();
  for (const byProtocol of series.values()) {
    for (const s of Object.values(byProtocol)) {
      for (const [extra, value] of pick(s)) {
        const labels = { ...s.labels, ...extra };
        if (metric instanceof Gauge) metric.set(labels, value);
        else metric.inc(labels, value);
      }
    }
  }
}

function labelsOf(call: Call): Record<CallLabel, string> {
  return {
    grpc_type: call.procedure.type,
    grpc_service: call.procedure.service,
    grpc_method: call.procedure.method,
    protocol: call.protocol,
  };
}

/** A code as gRPC's Go code names it (OK, InvalidArgument, ...), which go-grpc-prometheus reports. */
function grpcCodeName(code: Code | undefined): string {
  if (code === undefined) return "OK";
  return Code[code] ?? String(code);
}
