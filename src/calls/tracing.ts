import { format } from "node:util";
import { Code } from "@connectrpc/connect";
import {
  type Attributes,
  type DiagLogger,
  DiagLogLevel,
  diag,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter as OTLPJsonTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as OTLPProtoTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import {
  defaultResource,
  resourceFromAttributes,
} from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import {
  ATTR_ERROR_TYPE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_PROTOCOL_NAME,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_RPC_METHOD,
  ATTR_RPC_STATUS_CODE,
  ATTR_RPC_SYSTEM_NAME,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  RPC_SYSTEM_NAME_VALUE_GRPC,
} from "@opentelemetry/semantic-conventions";
import type { Logger } from "pino";
import type { TracingConfig } from "../otel-config.js";
import { headerValue } from "../protocol/headers.js";
import type { Connection } from "./connection.js";
import {
  type Call,
  type CallObserver,
  codeName,
  type Outcome,
  type Procedure,
  requestHeader,
} from "./observer.js";

/**
 * `rpc.system.name` of the Connect protocol. The value is still in
 * development in the semantic conventions, so it lives in the package's
 * "incubating" entry point, which may change in any minor release; its README
 * asks instrumentations to copy such values rather than import them. The
 * attribute names used here are all in the stable entry point.
 */
const RPC_SYSTEM_NAME_VALUE_CONNECTRPC = "connectrpc";

/**
 * Who made the call (src/auth/principal.ts: a token's subject, or a client
 * certificate's SAN or subject), in the registry's `user.id`: "Unique
 * identifier of the user". The conventions moved `enduser.id`, the older
 * name, to their client-side repository and deprecated it. In development
 * too, so copied rather than imported, as above.
 */
const ATTR_USER_ID = "user.id";

/**
 * What the deadline policy did (src/calls/deadline-policy.ts): attributes
 * of this server's own, which no semantic convention names, in its own
 * namespace as the conventions ask.
 */
export const deadlineAttributes = {
  ms: "connect_greeter.deadline_ms",
  setBy: "connect_greeter.deadline_set_by",
  requestedMs: "connect_greeter.requested_deadline_ms",
} as const;

type ExporterOptions = NonNullable<
  ConstructorParameters<typeof OTLPProtoTraceExporter>[0]
>;

/** How long a graceful shutdown waits for the last spans to be exported, in milliseconds. */
export const flushTracesMs = 2000;

/**
 * One server span per call, with the OpenTelemetry SDK: a child of the
 * caller's span when the request carries a W3C `traceparent`, named and
 * described as the RPC semantic conventions say
 * (https://opentelemetry.io/docs/specs/semconv/rpc/rpc-spans/, and its gRPC and
 * Connect pages), ended with the call's outcome, exported over OTLP/HTTP in
 * batches. Made only when tracing is on: with it off, no call pays for it.
 */
export class Tracing implements CallObserver {
  readonly #provider: TracerProvider;
  readonly #tracer: Tracer;
  readonly #propagator = new W3CTraceContextPropagator();
  /** The span of each call in flight, dropped as the call ends. */
  readonly #spans = new Map<Call, Span>();
  /**
   * The call that ended last and its span's context: the call log, told of
   * the end right after this observer, reads them.
   */
  #endedCall: Call | undefined;
  #endedContext: SpanContext | undefined;
  readonly #peers = new WeakMap<Connection, Attributes>();
  readonly #authorities = new Map<string, Attributes>();
  readonly #names = new WeakMap<Procedure, string>();

  constructor(config: TracingConfig, logger: Logger) {
    logDiagnostics(logger);
    const exporterOptions: ExporterOptions = {
      url: config.url,
      headers: config.headers,
      timeoutMillis: config.timeoutMs,
      // The exporter's CompressionAlgorithm enum, whose values are these names.
      compression: config.compression as ExporterOptions["compression"],
    };
    const exporter =
      config.protocol === "http/json"
        ? new OTLPJsonTraceExporter(exporterOptions)
        : new OTLPProtoTraceExporter(exporterOptions);
    this.#provider = new TracerProvider({
      resource: defaultResource().merge(
        resourceFromAttributes({
          ...config.resourceAttributes,
          // OTEL_SERVICE_NAME wins over a service.name in OTEL_RESOURCE_ATTRIBUTES, as the specification says.
          [ATTR_SERVICE_NAME]: config.serviceName,
        }),
      ),
      sampler: samplerOf(config),
      spanProcessors: [
        new BatchSpanProcessor({
          exporter,
          scheduledDelayMillis: config.batch.scheduledDelayMs,
          exportTimeoutMillis: config.batch.exportTimeoutMs,
          maxQueueSize: config.batch.maxQueueSize,
          maxExportBatchSize: config.batch.maxExportBatchSize,
        }),
      ],
    });
    this.#tracer = this.#provider.getTracer("connect-greeter");
  }

  /** @private Called by the call report: the span starts. */
  callStarted(call: Call): void {
    const parent = this.#propagator.extract(ROOT_CONTEXT, call, headers);
    const name = this.#name(call.procedure);
    const span = this.#tracer.startSpan(
      name,
      { kind: SpanKind.SERVER },
      parent,
    );
    this.#spans.set(call, span);
    // The conventions ask for these at creation, for samplers that read
    // attributes. The SDK's own samplers, the only ones OTEL_TRACES_SAMPLER
    // names, do not, and the SDK checks attributes given at creation value by
    // value (a WeakSet each) even for a span it then does not sample: so they
    // are set just after, on a span that records.
    if (!span.isRecording()) return;
    span.setAttribute(
      ATTR_RPC_SYSTEM_NAME,
      isGrpc(call)
        ? RPC_SYSTEM_NAME_VALUE_GRPC
        : RPC_SYSTEM_NAME_VALUE_CONNECTRPC,
    );
    span.setAttribute(ATTR_RPC_METHOD, name);
    const server = this.#server(call);
    if (server !== undefined) span.setAttributes(server);
    if (call.principal !== undefined) {
      span.setAttribute(ATTR_USER_ID, call.principal.id);
    }
  }

  /** @private Called by the call report: the span ends with the call's outcome. */
  callFinished(call: Call, outcome: Outcome): void {
    const span = this.#spans.get(call);
    if (span === undefined) return;
    this.#spans.delete(call);
    this.#endedCall = call;
    this.#endedContext = span.spanContext();
    // Not sampled: nothing is recorded, so nothing more to describe.
    if (!span.isRecording()) return;
    const code = outcome.error?.code;
    const grpc = isGrpc(call);
    // gRPC has a status for success; Connect's protocol has codes for errors only.
    const status = grpc ? grpcStatusName(code) : codeName(code);
    if (grpc || code !== undefined) {
      span.setAttribute(ATTR_RPC_STATUS_CODE, status);
    }
    if (code !== undefined && serverErrors.has(code)) {
      span.setAttribute(ATTR_ERROR_TYPE, status);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: outcome.error?.rawMessage,
      });
    }
    span.setAttributes(this.#peer(call.connection));
    const deadline = call.deadline;
    if (deadline !== undefined) {
      span.setAttribute(deadlineAttributes.ms, deadline.deadlineMs);
      span.setAttribute(deadlineAttributes.setBy, deadline.setBy);
      if (deadline.requestedMs !== undefined) {
        span.setAttribute(deadlineAttributes.requestedMs, deadline.requestedMs);
      }
    }
    span.end();
  }

  /** The span context of a call in flight, or of the call that ended last; undefined for others. */
  spanContextOf(call: Call): SpanContext | undefined {
    if (call === this.#endedCall) return this.#endedContext;
    return this.#spans.get(call)?.spanContext();
  }

  /**
   * Export what is left and stop, within `timeoutMs`: spans still unexported
   * then are lost rather than hold the process up.
   */
  async shutdown(timeoutMs: number = flushTracesMs): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    try {
      await Promise.race([
        // A failed export is already logged by the SDK (logDiagnostics).
        this.#provider.shutdown().catch(() => undefined),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The span name and rpc.method: the fully-qualified method, such as Greeter/SayHello. */
  #name(procedure: Procedure): string {
    let name = this.#names.get(procedure);
    if (name === undefined) {
      name = procedure.path.slice(1);
      this.#names.set(procedure, name);
    }
    return name;
  }

  /**
   * server.address and server.port: the host and port the client asked for
   * (HTTP/2 :authority, HTTP/1.1 Host), not the socket's, as the conventions
   * say. Few distinct values, so each is parsed once.
   */
  #server(call: Call): Attributes | undefined {
    const authority = authorityOf(call);
    if (authority === undefined) return undefined;
    let attributes = this.#authorities.get(authority);
    if (attributes === undefined) {
      attributes = hostAndPort(
        authority,
        ATTR_SERVER_ADDRESS,
        ATTR_SERVER_PORT,
      );
      // A client can send any authority: remember a bounded number.
      if (this.#authorities.size < 64) {
        this.#authorities.set(authority, attributes);
      }
    }
    return attributes;
  }

  /** network.peer.* and network.protocol.*, once per connection. */
  #peer(connection: Connection): Attributes {
    let attributes = this.#peers.get(connection);
    if (attributes === undefined) {
      attributes = {
        ...hostAndPort(
          connection.peer,
          ATTR_NETWORK_PEER_ADDRESS,
          ATTR_NETWORK_PEER_PORT,
        ),
        [ATTR_NETWORK_PROTOCOL_NAME]: "http",
        // "2", not "2.0": the conventions' examples are 1.1 and 2.
        [ATTR_NETWORK_PROTOCOL_VERSION]:
          connection.httpVersion === "2.0" ? "2" : connection.httpVersion,
      };
      this.#peers.set(connection, attributes);
    }
    return attributes;
  }
}

/**
 * The codes the gRPC and Connect semantic conventions count as errors of the
 * server: its span gets status ERROR and an error.type. The others
 * (INVALID_ARGUMENT, NOT_FOUND, CANCELED by the client ...) are the caller's
 * doing, and stay in rpc.status_code only.
 */
const serverErrors: ReadonlySet<Code> = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

/** gRPC and gRPC-Web calls are gRPC's; Connect's are connectrpc's. */
function isGrpc(call: Call): boolean {
  return call.protocol !== "connect";
}

/**
 * A code as gRPC's status code list names it (OK, CANCELLED, DEADLINE_EXCEEDED
 * ...; https://github.com/grpc/grpc/blob/master/doc/statuscodes.md): the
 * Connect name in upper case, but for gRPC's British spelling of CANCELLED.
 */
function grpcStatusName(code: Code | undefined): string {
  if (code === undefined) return "OK";
  if (code === Code.Canceled) return "CANCELLED";
  return codeName(code).toUpperCase();
}

/** Reads the W3C trace context headers of a call, on either path. */
const headers: TextMapGetter<Call> = {
  get: (call, key) => requestHeader(call, key) ?? undefined,
  keys: () => [],
};

/** The authority the client used: from connect's request URL, or the fast path's :authority header. */
function authorityOf(call: Call): string | undefined {
  if (call.url !== undefined) {
    const start = call.url.indexOf("//") + 2;
    const end = call.url.indexOf("/", start);
    return call.url.slice(start, end < 0 ? undefined : end);
  }
  const headers = call.requestHeaders;
  // fetch Headers refuse a pseudo-header's name; Node's hold HTTP/2's.
  const authority =
    headers instanceof Headers
      ? headers.get("host")
      : (headerValue(headers, ":authority") ?? headerValue(headers, "host"));
  return authority ?? undefined;
}

/** Split host:port, [v6]:port or host into the two attributes named. */
function hostAndPort(
  text: string,
  addressKey: string,
  portKey: string,
): Attributes {
  const m = /^(?:\[([^\]]*)\]|([^:]*))(?::(\d+))?$/.exec(text);
  if (m === null) return { [addressKey]: text };
  const attributes: Attributes = { [addressKey]: m[1] ?? m[2] ?? text };
  if (m[3] !== undefined) attributes[portKey] = Number(m[3]);
  return attributes;
}

function samplerOf(config: TracingConfig): Sampler {
  switch (config.sampler) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(config.samplerRatio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({
        root: new TraceIdRatioBasedSampler(config.samplerRatio),
      });
  }
}

/**
 * The SDK reports its own trouble (an export that failed, spans dropped from
 * a full queue) through the API's diag logger, which writes nowhere until one
 * is set: send its warnings and errors to the server's log. One logger per
 * process, as the API has it: the last server started in a process owns it.
 */
function logDiagnostics(logger: Logger): void {
  const log = logger.child({ component: "opentelemetry" });
  const line =
    (level: "error" | "warn" | "info" | "debug" | "trace") =>
    (message: string, ...args: unknown[]) =>
      log[level](format(message, ...args));
  const diagLogger: DiagLogger = {
    error: line("error"),
    warn: line("warn"),
    info: line("info"),
    debug: line("debug"),
    verbose: line("trace"),
  };
  diag.setLogger(diagLogger, {
    logLevel: DiagLogLevel.WARN,
    suppressOverrideMessage: true,
  });
}
