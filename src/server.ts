import { setMaxListeners } from "node:events";
import type { AddressInfo } from "node:net";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type Interceptor,
} from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  connectNodeAdapter,
} from "@connectrpc/connect-node";
import type { DestinationStream, Logger } from "pino";
import { startAdminServer } from "./admin/server.js";
import { authGate, withAuthorization } from "./auth/gate.js";
import { keySet } from "./auth/key-set.js";
import { TokenVerifier } from "./auth/tokens.js";
import { callLog } from "./calls/call-log.js";
import { connectionValues, peerName } from "./calls/connection.js";
import { DeadlinePolicy } from "./calls/deadline-policy.js";
import { gates } from "./calls/gates.js";
import { InflightCalls } from "./calls/inflight.js";
import { throughPipeline } from "./calls/interceptor.js";
import { LoadShedder } from "./calls/load-shedding.js";
import { Metrics } from "./calls/metrics.js";
import { CallPipeline } from "./calls/pipeline.js";
import { CallReport } from "./calls/report.js";
import { type Config, defaultConfig } from "./config.js";
import { Engine } from "./engine/engine.js";
import { CorsPolicy, cors } from "./http/cors.js";
import { grpcAcceptEncoding } from "./http/grpc-accept-encoding.js";
import { chain } from "./http/middleware.js";
import { notFound } from "./http/not-found.js";
import { page } from "./http/page.js";
import { releaseWritesOnClose } from "./http/release-writes-on-close.js";
import { drain, type ShutdownResult } from "./lifecycle/shutdown.js";
import { createLogger } from "./logger.js";
import { compressionDeflate, compressionZstd } from "./protocol/compression.js";
import { routes } from "./services/routes.js";
import { ServingStatus } from "./services/serving-status.js";
import { reloadCertificates } from "./transport/certificate-reload.js";
import type { ClosedBy } from "./transport/connection-policy.js";
import {
  type ConnectionEvent,
  createListener,
  type Listener,
} from "./transport/listener.js";

/** What a server needs to start: any part of the configuration (the rest takes its defaults), and the seams below. */
export type ServerOptions = Partial<Config> & ServerSeams;

/** What tests and embedders may swap; not settings, so not in Config. */
export interface ServerSeams {
  /** Where the JSON log lines go; tests pass a stream to read them. @default process.stdout */
  logDestination?: DestinationStream;
  /** What the router serves instead of the Greeter, for tests that need a misbehaving handler. @default routes(config) */
  routes?: (router: ConnectRouter) => void;
  /**
   * The application's own interceptors, run around every handler on both
   * paths (the engine's and connect's), inside what every call gets
   * (src/calls/pipeline.ts: they see the handler's own errors; the log and
   * metrics see what the client sees).
   * @default []
   */
  interceptors?: Interceptor[];
}

/** A running server. */
export interface RunningServer {
  /** The configuration it runs with, defaults filled in. */
  readonly config: Config;
  /** The port it listens on (the real one when 0 was asked for). */
  readonly port: number;
  /** A URL clients on this machine can use, such as http://localhost:50051. */
  readonly url: string;
  /** Calls in flight. */
  readonly inflight: InflightCalls;
  /** Whether the server takes new work; health checks report it. */
  readonly status: ServingStatus;
  /** The server's logger (JSON lines at the configured level). */
  readonly logger: Logger;
  /** The server's Prometheus metrics, served on the admin port's GET /metrics. */
  readonly metrics: Metrics;
  /** Where the metrics are served, such as http://localhost:9464/metrics; undefined with the admin port off. */
  readonly metricsUrl: string | undefined;
  /** The protocol engine (src/engine/engine.ts); its `calls` tells how many calls it served. */
  readonly engine: Engine;
  /** The listener, with its HTTP servers and sockets. */
  readonly listener: Listener;
  /** Stop accepting, end every connection, and resolve once the port is closed. */
  close(): Promise<void>;
  /**
   * Stop gracefully: calls in flight get `graceMs` to finish, the rest end with
   * UNAVAILABLE (see src/lifecycle/shutdown.ts). Calling it again returns the same result.
   * @default graceMs config.shutdownGraceMs
   */
  shutdown(graceMs?: number): Promise<ShutdownResult>;
}

/** Start serving the Greeter on one port, for gRPC, gRPC-Web and Connect. */
export async function startServer(
  options: ServerOptions = {},
): Promise<RunningServer> {
  const {
    logDestination,
    routes: customRoutes,
    interceptors = [],
    ...settings
  } = options;
  const config: Config = { ...defaultConfig(), ...settings };
  const logger = createLogger({
    level: config.logLevel,
    destination: logDestination,
  });
  const metrics = new Metrics();
  const inflight = new InflightCalls();
  const status = new ServingStatus();
  const shutdownSignal = new AbortController();
  // connect links every call's signal to it, one listener per call in flight:
  // not a leak, so not worth Node's MaxListenersExceededWarning.
  setMaxListeners(0, shutdownSignal.signal);
  // The encodings every protocol reads and writes, for the engine, connect's
  // handlers and the grpc-accept-encoding they advertise, in this order.
  const compressions = [
    compressionGzip,
    compressionBrotli,
    compressionZstd,
    compressionDeflate,
  ];
  // Only with tracing on: off, no call pays for it, and the OpenTelemetry
  // SDK and its exporters are not even loaded (about 10 MB of memory).
  const tracing =
    config.tracing === undefined
      ? undefined
      : new (await import("./calls/tracing.js")).Tracing(
          config.tracing,
          logger,
        );
  // What every call reports, on either path. Tracing before the log, whose
  // line names the call's span.
  const report = new CallReport(
    tracing === undefined
      ? [inflight, metrics, callLog(logger)]
      : [
          inflight,
          metrics,
          tracing,
          callLog(logger, (call) => tracing.spanContextOf(call)),
        ],
  );
  // What every call gets, on either path.
  const pipeline = new CallPipeline(report, logger);
  const corsPolicy = new CorsPolicy(config.corsOrigins);
  // Who may call which method (src/auth/), checked before a request's body
  // is read; a refused call is reported like any failed one. Off, no call
  // pays for it: no gate, and no context values made for one.
  const auth = config.auth;
  const tokens =
    auth?.tokens === undefined
      ? undefined
      : new TokenVerifier(
          auth.tokens.rules,
          keySet(auth.tokens.keys, logger),
          logger,
        );
  const authorization =
    auth === undefined
      ? undefined
      : pipeline.gated(authGate(auth.policy, tokens));
  // Off (undefined) unless set: then no call pays for it.
  const deadlines = DeadlinePolicy.of(
    config.maxDeadlineMs,
    config.defaultDeadlineMs,
  );
  // Off (undefined) unless a limit is set: then no call pays for it.
  const shedder = LoadShedder.of(
    {
      callsInFlight: config.shedCallsInFlight,
      eventLoopDelayMs: config.shedEventLoopDelayMs,
    },
    inflight,
    metrics.countShedding(),
  );
  // What a call must pass before its request is read, in order: the
  // cheapest first, so an overloaded server refuses before it does more.
  // Shed calls are counted (connect_greeter_calls_shed_total), not logged
  // one by one: under overload a line per refusal would add to the load.
  const gate = gates(shedder?.gate, authorization);
  // One set of options for connect's handler and the engine, so the two
  // serve calls alike (src/engine/engine.ts).
  const shared = {
    contextValues:
      authorization === undefined
        ? connectionValues
        : withAuthorization(connectionValues),
    requestGate: gate,
    readMaxBytes: config.maxMessageBytes,
    acceptCompression: compressions,
    compressMinBytes: config.compressMinBytes,
    shutdownSignal: shutdownSignal.signal,
  };
  const engine = new Engine({
    ...shared,
    interceptors,
    pipeline,
    logger,
    cors: corsPolicy,
    enabled: config.engine,
    deadlines,
  });
  metrics.countEngineCalls(() => engine.calls);
  const services = engine.record(
    customRoutes ??
      routes({
        greeter: { streamIntervalMs: config.streamIntervalMs },
        status,
        reflection: config.reflection,
      }),
  );
  // A request's way through the HTTP handlers, in order. The engine takes
  // HTTP/2 streams before any of these (claimStream, below), and HTTP/1.1
  // requests first among them; the rest serve what it leaves.
  const handler = chain(
    [
      // the engine's calls over HTTP/1.1
      engine.http1,
      // browsers from other origins: preflights answered, CORS headers added
      cors(corsPolicy),
      // gRPC answers name the encodings the server reads
      grpcAcceptEncoding(compressions),
      // a client gone while connect waits to write does not hold its call
      releaseWritesOnClose(),
      // the deadline policy, for the calls connect's handlers serve
      ...(deadlines === undefined ? [] : [deadlines.step]),
      // the services, by connect's generic handlers: what the engine leaves
      (next) =>
        connectNodeAdapter({
          ...shared,
          contextValues:
            deadlines === undefined
              ? shared.contextValues
              : deadlines.contextValues(shared.contextValues),
          // What every call gets first, so it sees every call and the error
          // the client sees; the application's interceptors inside it.
          interceptors: [throughPipeline(pipeline), ...interceptors],
          routes: services,
          fallback: next,
        }),
      // GET / and /assets/: the browser page
      page(),
    ],
    // anything else: UNIMPLEMENTED in the caller's protocol, or 404
    notFound,
  );
  const connectionCounts = metrics.countConnections(
    () => listener.sockets.size,
  );
  const onConnectionEvent = (event: ConnectionEvent) => {
    if ("refused" in event) {
      // Counted, not logged: a flood of refusals would flood the log too.
      connectionCounts.refused(event.refused);
      return;
    }
    connectionCounts.closed(event.closed);
    logger[closeLevels[event.closed]](
      { peer: peerName(event.peer), reason: event.closed },
      "closed connection",
    );
  };
  const tls = config.tls;
  const listener = createListener(handler, {
    tls:
      tls === undefined
        ? undefined
        : {
            cert: tls.cert,
            key: tls.key,
            // Mutual TLS: client certificates asked for, checked against
            // the client CA, and required unless optional (then the policy
            // decides per method, src/auth/gate.ts).
            ...(tls.clients === undefined
              ? {}
              : {
                  ca: tls.clients.ca,
                  requestCert: true,
                  rejectUnauthorized: tls.clients.mode === "require",
                }),
          },
    firstBytesTimeoutMs: config.headersTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    firstCallTimeoutMs: config.firstCallTimeoutMs,
    maxConnectionAgeMs: config.maxConnectionAgeMs,
    maxConnectionAgeGraceMs: config.maxConnectionAgeGraceMs,
    keepaliveTimeMs: config.keepaliveTimeMs,
    keepaliveTimeoutMs: config.keepaliveTimeoutMs,
    pingMinIntervalMs: config.pingMinIntervalMs,
    pingWithoutCalls: config.pingWithoutCalls,
    maxConnections: config.maxConnections,
    maxConnectionsPerAddress: config.maxConnectionsPerAddress,
    onConnectionEvent,
    claimStream: engine.claimStream,
    http1: {
      maxHeaderSize: config.maxHeaderBytes,
      // Node refuses a headers timeout longer than the request timeout.
      headersTimeout:
        config.requestTimeoutMs === 0
          ? config.headersTimeoutMs
          : Math.min(config.headersTimeoutMs, config.requestTimeoutMs),
      requestTimeout: config.requestTimeoutMs,
      keepAliveTimeout: config.idleTimeoutMs,
      // Node checks both timeouts only this often (30 s unless told).
      connectionsCheckingInterval: Math.min(
        1000,
        config.headersTimeoutMs,
        // Its mutants make Node check every millisecond, or a request timeout
        // under 1 s up to 1 s late, within what test/limits.test.ts allows a
        // loaded machine.
        // Stryker disable next-line ConditionalExpression,LogicalOperator: timing-only, how often Node checks the timeouts
        config.requestTimeoutMs || Number.POSITIVE_INFINITY,
      ),
    },
    http2: {
      settings: {
        maxConcurrentStreams: config.maxConcurrentStreams,
        maxHeaderListSize: config.maxHeaderBytes,
      },
    },
  });
  const { server } = listener;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(
      config.port,
      config.host === "" ? undefined : config.host,
      () => {
        server.off("error", reject);
        resolve();
      },
    );
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.host === "" ? undefined : config.host;
  const admin =
    config.adminPort === undefined
      ? undefined
      : await startAdminServer(
          metrics.registry,
          config.adminPort,
          host,
          status,
        ).catch(async (e: unknown) => {
          await new Promise((resolve) => server.close(resolve));
          throw e;
        });
  // A renewed certificate serves new connections without a restart.
  const stopReloading =
    tls?.files === undefined || config.tlsReloadMs === 0
      ? undefined
      : reloadCertificates(
          listener.http2Server as import("node:tls").Server,
          tls.files,
          config.tlsReloadMs,
          logger,
        );
  let shuttingDown: Promise<ShutdownResult> | undefined;
  return {
    config,
    port,
    url: urlOf(config, port),
    metricsUrl:
      admin === undefined
        ? undefined
        : `${urlOf({ ...config, tls: undefined }, admin.port)}/metrics`,
    inflight,
    status,
    logger,
    metrics,
    engine,
    listener,
    async close() {
      stopReloading?.();
      await Promise.all([
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const socket of listener.sockets) socket.destroy();
        }),
        admin?.close(),
        tracing?.shutdown(),
      ]);
      shedder?.close();
    },
    shutdown(graceMs = config.shutdownGraceMs) {
      stopReloading?.();
      shuttingDown ??= drain(
        {
          status,
          listener,
          inflight,
          endCalls: () =>
            shutdownSignal.abort(
              new ConnectError("the server is shutting down", Code.Unavailable),
            ),
        },
        graceMs,
      ).then(async (result) => {
        // Metrics stay scrapable while the server drains. The last spans,
        // those of the calls the drain ended too, are exported now, within
        // a bound of their own (flushTracesMs).
        await Promise.all([admin?.close(), tracing?.shutdown()]);
        shedder?.close();
        return result;
      });
      return shuttingDown;
    },
  };
}

/**
 * The level of the line for a connection a policy closed: the routine ones
 * (idle, never used, old) at debug; a peer that stopped answering PINGs or
 * held calls past its connection's age at info; one that PINGs too often,
 * a misbehaving client, at warn.
 */
const closeLevels = {
  idle: "debug",
  first_call: "debug",
  max_age: "debug",
  max_age_grace: "info",
  keepalive_timeout: "info",
  too_many_pings: "warn",
} as const satisfies Record<ClosedBy, "debug" | "info" | "warn">;

/** The URL a client on this machine would use: a wildcard address becomes localhost. */
export function urlOf(
  config: Pick<Config, "host" | "tls">,
  port: number,
): string {
  const wildcard =
    config.host === "" || config.host === "::" || config.host === "0.0.0.0";
  const host = wildcard ? "localhost" : config.host;
  return `${config.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
}
