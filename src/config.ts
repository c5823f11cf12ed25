import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import type { JSONWebKeySet } from "jose";
import type { KeySource } from "./auth/key-set.js";
import { type Policy, PolicyError, parsePolicy } from "./auth/policy.js";
import type { TokenRules } from "./auth/tokens.js";
import {
  loadTracingConfig,
  OtelConfigError,
  otelHelpText,
  type TracingConfig,
} from "./otel-config.js";

/** Every setting of the server, typed and validated. */
export interface Config {
  /** TCP port to listen on; 0 picks a free one. @default 50051 */
  port: number;
  /** Interface to listen on; empty means every interface (IPv6 and IPv4). @default "" */
  host: string;
  /** PEM certificate and key, and client certificates if asked for; when set, the port serves TLS only. @default undefined */
  tls: TlsConfig | undefined;
  /**
   * How often the TLS files are checked for a change, in milliseconds; a
   * changed certificate and key serve new connections from then on (0: never
   * checked). @default 10000
   */
  tlsReloadMs: number;
  /**
   * Who may call which method (src/auth/): the policy, and how tokens are
   * verified; undefined turns authentication off, and every caller may call
   * every method. @default undefined
   */
  auth: AuthConfig | undefined;
  /** Pause between two StreamHello replies, in milliseconds. @default 1000 */
  streamIntervalMs: number;
  /** How long calls in flight may run on after a shutdown signal, in milliseconds. @default 10000 */
  shutdownGraceMs: number;
  /** Least severe log level written: fatal, error, warn, info, debug, trace or silent. @default "info" */
  logLevel: LogLevel;
  /** Origins allowed to call cross-origin from a browser; empty allows none, "*" any. @default [] */
  corsOrigins: string[];
  /** Largest message read, in bytes (after decompression); larger ones fail with RESOURCE_EXHAUSTED. @default 4194304 */
  maxMessageBytes: number;
  /** Smallest response message that is compressed when the client accepts it, in bytes. @default 1024 */
  compressMinBytes: number;
  /** Most HTTP/2 streams (calls) a client may have open at once on one connection. @default 1000 */
  maxConcurrentStreams: number;
  /** Largest request header block accepted, in bytes, on HTTP/2 and HTTP/1.1. @default 16384 */
  maxHeaderBytes: number;
  /** How long a client may take to send a connection's first bytes or a request's headers, in milliseconds. @default 10000 */
  headersTimeoutMs: number;
  /** How long an HTTP/1.1 request may take to arrive in full, in milliseconds (0: no limit). @default 300000 */
  requestTimeoutMs: number;
  /** How long a connection with no call in flight stays open, in milliseconds. @default 300000 */
  idleTimeoutMs: number;
  /**
   * How long a new connection may stay open without starting a call, in
   * milliseconds (whichever of this and `idleTimeoutMs` is shorter). @default 30000
   */
  firstCallTimeoutMs: number;
  /**
   * How long a connection may serve before it is closed gracefully (gRFC A9's
   * MAX_CONNECTION_AGE), each connection's age jittered by ±10 %, in
   * milliseconds; 0: no limit. @default 0
   */
  maxConnectionAgeMs: number;
  /** How long calls on a connection past its age may run on before it is closed (A9's MAX_CONNECTION_AGE_GRACE), in milliseconds. @default 10000 */
  maxConnectionAgeGraceMs: number;
  /** PING a connection that has been quiet this long, in milliseconds; 0: never. @default 7200000 */
  keepaliveTimeMs: number;
  /** Close a connection whose keepalive PING gets no ACK within this, in milliseconds. @default 20000 */
  keepaliveTimeoutMs: number;
  /**
   * The shortest interval between a client's PINGs that is not a strike; the
   * third strike closes the connection with GOAWAY ENHANCE_YOUR_CALM
   * "too_many_pings" (grpc-go's keepalive EnforcementPolicy.MinTime), in
   * milliseconds. @default 300000
   */
  pingMinIntervalMs: number;
  /** Whether clients may PING a connection with no call open (EnforcementPolicy.PermitWithoutStream). @default false */
  pingWithoutCalls: boolean;
  /** Most connections open at once; a connection past it is closed as it is accepted (0: no limit). @default 10000 */
  maxConnections: number;
  /** Most connections open at once from one client address (0: no limit). @default 0 */
  maxConnectionsPerAddress: number;
  /** The longest deadline a call gets: a longer one, or none with no default, is shortened to it (0: no limit). @default 0 */
  maxDeadlineMs: number;
  /** The deadline of a call that sends none (0: none). @default 0 */
  defaultDeadlineMs: number;
  /** Refuse new calls with UNAVAILABLE while this many are in flight (0: never). @default 0 */
  shedCallsInFlight: number;
  /** Refuse new calls with UNAVAILABLE while the event loop is this late, in milliseconds (0: never). @default 0 */
  shedEventLoopDelayMs: number;
  /** Worker processes sharing the port (node:cluster); 1 runs no cluster. @default 1 */
  workers: number;
  /**
   * Serve calls by the protocol engine (src/engine/engine.ts), every
   * protocol on both HTTP versions; off leaves every call to connect's
   * generic handlers, the reference the engine is tested against. @default true
   */
  engine: boolean;
  /**
   * TCP port of the admin listener, which serves `GET /metrics` apart from the
   * API port, so that exposing the API does not expose internals; 0 picks a
   * free one, undefined ("off") serves no metrics. @default 9464
   */
  adminPort: number | undefined;
  /** Serve gRPC server reflection (v1 and v1alpha); off hides the schema from clients. @default true */
  reflection: boolean;
  /**
   * OpenTelemetry tracing, from the standard OTEL_* environment variables
   * (src/otel-config.ts); undefined turns it off, and then no call pays for
   * it. @default undefined
   */
  tracing: TracingConfig | undefined;
}

/** The server's certificate and key, and what it asks of clients. */
export interface TlsConfig {
  cert: Buffer;
  key: Buffer;
  /** The files they were read from, watched for changes (`tlsReloadMs`); undefined: given in memory, never reloaded. */
  files?: { cert: string; key: string; clientCa?: string };
  /**
   * Client certificates (mutual TLS): the PEM CA bundle they must chain to,
   * and whether a client must present one (`require`: the handshake fails
   * without it) or may (`optional`: calls without one reach the policy,
   * which decides per method). Undefined: none is asked for.
   */
  clients?: { ca: Buffer; mode: ClientAuthMode };
}

/** Whether a client certificate is required or only asked for. */
export const clientAuthModes = ["require", "optional"] as const;
export type ClientAuthMode = (typeof clientAuthModes)[number];

/** Authentication: the policy, and the token settings if any rule needs a token. */
export interface AuthConfig {
  /** Which methods are public, which need a token or a client certificate (src/auth/policy.ts). */
  policy: Policy;
  /** How bearer tokens are verified; undefined when no token is configured. */
  tokens: { rules: TokenRules; keys: KeySource } | undefined;
}

/**
 * The token signing algorithms accepted: asymmetric ones only. `none` signs
 * nothing, and an HMAC algorithm would take a public key of the key set as
 * its shared secret, so that anyone could sign (key confusion).
 */
export const tokenAlgorithms = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
] as const;

/** The log levels, most severe first. */
export const logLevels = [
  "fatal",
  "error",
  "warn",
  "info",
  "debug",
  "trace",
  "silent",
] as const;

/** A log level. */
export type LogLevel = (typeof logLevels)[number];

/** A configuration value that cannot be used; its message is one line for the operator. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

interface Setting {
  /** Command-line flag, without the leading dashes. */
  flag: string;
  /** Environment variable. */
  env: string;
  /** Default, as the text a user would type. */
  default: string;
  /** One line for --help and docs/configuration.md. */
  doc: string;
}

/** The settings, each with its flag, environment variable and default. The flag wins over the environment. */
export const settings = {
  port: {
    flag: "port",
    env: "PORT",
    default: "50051",
    doc: "TCP port to listen on (0 picks a free one)",
  },
  host: {
    flag: "host",
    env: "HOST",
    default: "",
    doc: "interface to listen on (empty: all interfaces)",
  },
  tlsCert: {
    flag: "tls-cert",
    env: "TLS_CERT",
    default: "",
    doc: "PEM certificate file; with --tls-key, serve TLS only",
  },
  tlsKey: {
    flag: "tls-key",
    env: "TLS_KEY",
    default: "",
    doc: "PEM private key file; with --tls-cert, serve TLS only",
  },
  tlsClientCa: {
    flag: "tls-client-ca",
    env: "TLS_CLIENT_CA",
    default: "",
    doc: "PEM CA bundle that client certificates must chain to (mutual TLS)",
  },
  tlsClientAuth: {
    flag: "tls-client-auth",
    env: "TLS_CLIENT_AUTH",
    default: "require",
    doc: "with --tls-client-ca: a client certificate is required, or optional (require, optional)",
  },
  tlsReloadMs: {
    flag: "tls-reload-ms",
    env: "TLS_RELOAD_MS",
    default: "10000",
    doc: "how often the TLS files are checked for a new certificate, in ms (0: never)",
  },
  authPolicy: {
    flag: "auth-policy",
    env: "AUTH_POLICY",
    default: "",
    doc: "JSON file of who may call each method; set, every call is checked",
  },
  authJwks: {
    flag: "auth-jwks",
    env: "AUTH_JWKS",
    default: "",
    doc: "the keys that verify bearer tokens: a JWKS file, or an https:// URL",
  },
  authJwksCa: {
    flag: "auth-jwks-ca",
    env: "AUTH_JWKS_CA",
    default: "",
    doc: "PEM CA bundle for an https:// AUTH_JWKS (empty: Node's CAs)",
  },
  authIssuer: {
    flag: "auth-issuer",
    env: "AUTH_ISSUER",
    default: "",
    doc: "the issuer (iss) a bearer token must name",
  },
  authAudience: {
    flag: "auth-audience",
    env: "AUTH_AUDIENCE",
    default: "",
    doc: "comma-separated audiences (aud), one of which a token must name",
  },
  authAlgorithms: {
    flag: "auth-algorithms",
    env: "AUTH_ALGORITHMS",
    default: "RS256,ES256,EdDSA",
    doc: "comma-separated token signing algorithms accepted (asymmetric only)",
  },
  authClockToleranceMs: {
    flag: "auth-clock-tolerance-ms",
    env: "AUTH_CLOCK_TOLERANCE_MS",
    default: "30000",
    doc: "how far a token's exp and nbf may be off this server's clock, in ms",
  },
  authJwksTimeoutMs: {
    flag: "auth-jwks-timeout-ms",
    env: "AUTH_JWKS_TIMEOUT_MS",
    default: "2000",
    doc: "longest a fetch of an https:// AUTH_JWKS may take, in ms",
  },
  authJwksCooldownMs: {
    flag: "auth-jwks-cooldown-ms",
    env: "AUTH_JWKS_COOLDOWN_MS",
    default: "30000",
    doc: "least time between two fetches of an https:// AUTH_JWKS, in ms",
  },
  authJwksMaxAgeMs: {
    flag: "auth-jwks-max-age-ms",
    env: "AUTH_JWKS_MAX_AGE_MS",
    default: "600000",
    doc: "how long fetched keys are used before they are fetched again, in ms",
  },
  streamIntervalMs: {
    flag: "stream-interval-ms",
    env: "STREAM_INTERVAL_MS",
    default: "1000",
    doc: "pause between StreamHello replies in ms (0 allowed)",
  },
  shutdownGraceMs: {
    flag: "shutdown-grace-ms",
    env: "SHUTDOWN_GRACE_MS",
    default: "10000",
    doc: "how long calls in flight may finish after SIGTERM/SIGINT, in ms",
  },
  logLevel: {
    flag: "log-level",
    env: "LOG_LEVEL",
    default: "info",
    doc: `least severe log level written (${logLevels.join(", ")})`,
  },
  corsOrigins: {
    flag: "cors-origins",
    env: "CORS_ORIGINS",
    default: "",
    doc: 'comma-separated origins allowed cross-origin from browsers ("*": any)',
  },
  maxMessageBytes: {
    flag: "max-message-bytes",
    env: "MAX_MESSAGE_BYTES",
    default: "4194304",
    doc: "largest message read, in bytes (larger: RESOURCE_EXHAUSTED)",
  },
  compressMinBytes: {
    flag: "compress-min-bytes",
    env: "COMPRESS_MIN_BYTES",
    default: "1024",
    doc: "smallest response message compressed, in bytes",
  },
  maxConcurrentStreams: {
    flag: "max-concurrent-streams",
    env: "MAX_CONCURRENT_STREAMS",
    default: "1000",
    doc: "most calls open at once on one HTTP/2 connection",
  },
  maxHeaderBytes: {
    flag: "max-header-bytes",
    env: "MAX_HEADER_BYTES",
    default: "16384",
    doc: "largest request header block, in bytes",
  },
  headersTimeoutMs: {
    flag: "headers-timeout-ms",
    env: "HEADERS_TIMEOUT_MS",
    default: "10000",
    doc: "time for a new connection's first bytes and a request's headers, in ms",
  },
  requestTimeoutMs: {
    flag: "request-timeout-ms",
    env: "REQUEST_TIMEOUT_MS",
    default: "300000",
    doc: "time for a whole HTTP/1.1 request to arrive, in ms (0: no limit)",
  },
  idleTimeoutMs: {
    flag: "idle-timeout-ms",
    env: "IDLE_TIMEOUT_MS",
    default: "300000",
    doc: "how long a connection with no call in flight stays open, in ms",
  },
  firstCallTimeoutMs: {
    flag: "first-call-timeout-ms",
    env: "FIRST_CALL_TIMEOUT_MS",
    default: "30000",
    doc: "how long a new connection may stay open without starting a call, in ms",
  },
  maxConnectionAgeMs: {
    flag: "max-connection-age-ms",
    env: "MAX_CONNECTION_AGE_MS",
    default: "0",
    doc: "close a connection gracefully after this long (±10 % jitter), in ms (0: never)",
  },
  maxConnectionAgeGraceMs: {
    flag: "max-connection-age-grace-ms",
    env: "MAX_CONNECTION_AGE_GRACE_MS",
    default: "10000",
    doc: "how long calls on a connection past its age may still run, in ms",
  },
  keepaliveTimeMs: {
    flag: "keepalive-time-ms",
    env: "KEEPALIVE_TIME_MS",
    default: "7200000",
    doc: "PING a connection quiet for this long, in ms (0: never)",
  },
  keepaliveTimeoutMs: {
    flag: "keepalive-timeout-ms",
    env: "KEEPALIVE_TIMEOUT_MS",
    default: "20000",
    doc: "close a connection whose PING is not acknowledged within this, in ms",
  },
  pingMinIntervalMs: {
    flag: "ping-min-interval-ms",
    env: "PING_MIN_INTERVAL_MS",
    default: "300000",
    doc: "shortest interval between a client's PINGs; the third shorter one gets GOAWAY too_many_pings, in ms",
  },
  pingWithoutCalls: {
    flag: "ping-without-calls",
    env: "PING_WITHOUT_CALLS",
    default: "off",
    doc: "let clients PING a connection with no call open (on, off)",
  },
  maxConnections: {
    flag: "max-connections",
    env: "MAX_CONNECTIONS",
    default: "10000",
    doc: "most connections open at once; more are closed when accepted (0: no limit)",
  },
  maxConnectionsPerAddress: {
    flag: "max-connections-per-address",
    env: "MAX_CONNECTIONS_PER_ADDRESS",
    default: "0",
    doc: "most connections open at once from one client address (0: no limit)",
  },
  maxDeadlineMs: {
    flag: "max-deadline-ms",
    env: "MAX_DEADLINE_MS",
    default: "0",
    doc: "longest deadline a call gets; longer ones are shortened, in ms (0: no limit)",
  },
  defaultDeadlineMs: {
    flag: "default-deadline-ms",
    env: "DEFAULT_DEADLINE_MS",
    default: "0",
    doc: "deadline of a call that sends none, in ms (0: none)",
  },
  shedCallsInFlight: {
    flag: "shed-calls-in-flight",
    env: "SHED_CALLS_IN_FLIGHT",
    default: "0",
    doc: "refuse new calls with UNAVAILABLE while this many are in flight (0: never)",
  },
  shedEventLoopDelayMs: {
    flag: "shed-event-loop-delay-ms",
    env: "SHED_EVENT_LOOP_DELAY_MS",
    default: "0",
    doc: "refuse new calls with UNAVAILABLE while the event loop is this late, in ms (0: never)",
  },
  workers: {
    flag: "workers",
    env: "WORKERS",
    default: "1",
    doc: 'worker processes sharing the port ("auto": one per CPU)',
  },
  engine: {
    flag: "engine",
    env: "ENGINE",
    default: "on",
    doc: "serve calls by the protocol engine; off: by connect's generic handlers (on, off)",
  },
  adminPort: {
    flag: "admin-port",
    env: "ADMIN_PORT",
    default: "9464",
    doc: 'port of GET /metrics, apart from the API ("off": none; 0 picks one)',
  },
  reflection: {
    flag: "reflection",
    env: "REFLECTION",
    default: "on",
    doc: "serve gRPC server reflection (on, off)",
  },
} as const satisfies Record<string, Setting>;

type Raw = Record<keyof typeof settings, string>;

/**
 * Read the configuration once, from flags first and then the environment.
 * Throws ConfigError with a one-line reason for a value that cannot be used.
 */
export function loadConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Config {
  const raw = readRaw(argv, env);
  const tls = tlsConfig(raw);
  return {
    port: integer(raw.port, settings.port, 0, 65535),
    host: raw.host,
    tls,
    tlsReloadMs: integer(raw.tlsReloadMs, settings.tlsReloadMs, 0, hour),
    auth: authConfig(raw, tls),
    streamIntervalMs: integer(
      raw.streamIntervalMs,
      settings.streamIntervalMs,
      0,
      hour,
    ),
    shutdownGraceMs: integer(
      raw.shutdownGraceMs,
      settings.shutdownGraceMs,
      0,
      hour,
    ),
    logLevel: oneOf(raw.logLevel, settings.logLevel, logLevels),
    corsOrigins: origins(raw.corsOrigins, settings.corsOrigins),
    maxMessageBytes: integer(
      raw.maxMessageBytes,
      settings.maxMessageBytes,
      1,
      2 ** 31 - 1,
    ),
    compressMinBytes: integer(
      raw.compressMinBytes,
      settings.compressMinBytes,
      0,
      2 ** 31 - 1,
    ),
    maxConcurrentStreams: integer(
      raw.maxConcurrentStreams,
      settings.maxConcurrentStreams,
      1,
      2 ** 31 - 1,
    ),
    maxHeaderBytes: integer(
      raw.maxHeaderBytes,
      settings.maxHeaderBytes,
      1024,
      2 ** 24,
    ),
    headersTimeoutMs: integer(
      raw.headersTimeoutMs,
      settings.headersTimeoutMs,
      1,
      hour,
    ),
    requestTimeoutMs: integer(
      raw.requestTimeoutMs,
      settings.requestTimeoutMs,
      0,
      hour,
    ),
    idleTimeoutMs: integer(raw.idleTimeoutMs, settings.idleTimeoutMs, 1, hour),
    firstCallTimeoutMs: integer(
      raw.firstCallTimeoutMs,
      settings.firstCallTimeoutMs,
      1,
      hour,
    ),
    maxConnectionAgeMs: integer(
      raw.maxConnectionAgeMs,
      settings.maxConnectionAgeMs,
      0,
      week,
    ),
    maxConnectionAgeGraceMs: integer(
      raw.maxConnectionAgeGraceMs,
      settings.maxConnectionAgeGraceMs,
      0,
      week,
    ),
    keepaliveTimeMs: offOrAtLeast(
      raw.keepaliveTimeMs,
      settings.keepaliveTimeMs,
      1000,
      week,
    ),
    keepaliveTimeoutMs: integer(
      raw.keepaliveTimeoutMs,
      settings.keepaliveTimeoutMs,
      1,
      week,
    ),
    pingMinIntervalMs: integer(
      raw.pingMinIntervalMs,
      settings.pingMinIntervalMs,
      0,
      week,
    ),
    pingWithoutCalls: onOff(raw.pingWithoutCalls, settings.pingWithoutCalls),
    maxConnections: integer(
      raw.maxConnections,
      settings.maxConnections,
      0,
      maxCount,
    ),
    maxConnectionsPerAddress: integer(
      raw.maxConnectionsPerAddress,
      settings.maxConnectionsPerAddress,
      0,
      maxCount,
    ),
    ...deadlines(raw),
    shedCallsInFlight: integer(
      raw.shedCallsInFlight,
      settings.shedCallsInFlight,
      0,
      maxCount,
    ),
    shedEventLoopDelayMs: integer(
      raw.shedEventLoopDelayMs,
      settings.shedEventLoopDelayMs,
      0,
      minute,
    ),
    workers:
      raw.workers.trim() === "auto"
        ? availableParallelism()
        : integer(raw.workers, settings.workers, 1, 256),
    engine: onOff(raw.engine, settings.engine),
    adminPort: adminPort(raw),
    reflection: onOff(raw.reflection, settings.reflection),
    tracing: tracing(env),
  };
}

/** The configuration a server gets when nothing is set: every setting's default. */
export function defaultConfig(): Config {
  return loadConfig([], {});
}

/** The text of `--help`: every flag, its variable and its default. */
export function helpText(): string {
  const all: readonly Setting[] = Object.values(settings);
  const flagWidth = Math.max(...all.map((s) => s.flag.length));
  const envWidth = Math.max(...all.map((s) => s.env.length));
  const rows = all.map(
    (s) =>
      `  --${s.flag.padEnd(flagWidth)} ${s.env.padEnd(envWidth)} ${s.doc}${s.default === "" ? "" : ` (default ${s.default})`}`,
  );
  return [
    "Usage: connect-greeter [options]",
    "",
    "Options (flag, environment variable):",
    ...rows,
    "  --help",
    "",
    otelHelpText(),
  ].join("\n");
}

function readRaw(argv: readonly string[], env: NodeJS.ProcessEnv): Raw {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: Object.fromEntries(
        Object.values(settings).map((s) => [
          s.flag,
          { type: "string" as const },
        ]),
      ),
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new ConfigError(e instanceof Error ? e.message : String(e));
  }
  const raw = {} as Raw;
  for (const [key, s] of Object.entries(settings) as [keyof Raw, Setting][]) {
    const flag = values[s.flag];
    raw[key] = (typeof flag === "string" ? flag : env[s.env]) ?? s.default;
  }
  return raw;
}

const minute = 60_000;
const hour = 3_600_000;
/**
 * The longest a connection timer may be set to: a week, well inside what
 * setTimeout takes (2^31-1 ms; Node fires a longer one after 1 ms), age
 * jitter included.
 */
const week = 7 * 24 * hour;
/** The most connections or calls a count may name. */
const maxCount = 1_000_000;
/**
 * The longest deadline, in milliseconds: gRPC's grpc-timeout header holds at
 * most 8 digits (99999999m, about 27.8 hours), and a shortened deadline is
 * written back in it.
 */
const maxDeadline = 99_999_999;

/** MAX_DEADLINE_MS and DEFAULT_DEADLINE_MS, of which the default cannot be the longer. */
function deadlines(
  raw: Raw,
): Pick<Config, "maxDeadlineMs" | "defaultDeadlineMs"> {
  const max = integer(
    raw.maxDeadlineMs,
    settings.maxDeadlineMs,
    0,
    maxDeadline,
  );
  const dflt = integer(
    raw.defaultDeadlineMs,
    settings.defaultDeadlineMs,
    0,
    maxDeadline,
  );
  if (max > 0 && dflt > max) {
    const m = settings.maxDeadlineMs;
    const d = settings.defaultDeadlineMs;
    throw new ConfigError(
      `${d.env} (--${d.flag}) must not be longer than ${m.env} (--${m.flag}, ${max}), got "${raw.defaultDeadlineMs}"`,
    );
  }
  return { maxDeadlineMs: max, defaultDeadlineMs: dflt };
}

function oneOf<T extends string>(
  text: string,
  s: Setting,
  allowed: readonly T[],
): T {
  const value = text.trim().toLowerCase();
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigError(
      `${s.env} (--${s.flag}) must be one of ${allowed.join(", ")}, got "${text}"`,
    );
  }
  return value as T;
}

function origins(text: string, s: Setting): string[] {
  const list = text
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o !== "");
  for (const origin of list) {
    if (origin !== "*" && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError(
        `${s.env} (--${s.flag}) must list origins such as https://example.com (scheme and host, no path), got "${origin}"`,
      );
    }
  }
  return list;
}

function adminPort(raw: Raw): number | undefined {
  const s = settings.adminPort;
  if (raw.adminPort.trim().toLowerCase() === "off") return undefined;
  if (!/^\s*\d+\s*$/.test(raw.adminPort)) {
    throw new ConfigError(
      `${s.env} (--${s.flag}) must be a port from 0 to 65535 or "off", got "${raw.adminPort}"`,
    );
  }
  const port = integer(raw.adminPort, s, 0, 65535);
  if (port !== 0 && String(port) === raw.port.trim()) {
    throw new ConfigError(
      `${s.env} (--${s.flag}) must differ from ${settings.port.env} (${port}): metrics are kept off the API port`,
    );
  }
  return port;
}

function tracing(env: NodeJS.ProcessEnv): TracingConfig | undefined {
  try {
    return loadTracingConfig(env);
  } catch (e) {
    // Stryker disable next-line ConditionalExpression: equivalent, loadTracingConfig throws nothing but OtelConfigError
    if (e instanceof OtelConfigError) throw new ConfigError(e.message);
    throw e;
  }
}

function onOff(text: string, s: Setting): boolean {
  const value = text.trim().toLowerCase();
  if (["on", "true", "1", "yes"].includes(value)) return true;
  if (["off", "false", "0", "no"].includes(value)) return false;
  throw new ConfigError(
    `${s.env} (--${s.flag}) must be on or off, got "${text}"`,
  );
}

/** 0 (off), or a whole number from `min` to `max`. */
function offOrAtLeast(
  text: string,
  s: Setting,
  min: number,
  max: number,
): number {
  const value = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (value === 0) return 0;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(
      `${s.env} (--${s.flag}) must be 0 (off) or a whole number from ${min} to ${max}, got "${text}"`,
    );
  }
  return value;
}

function integer(text: string, s: Setting, min: number, max: number): number {
  const value = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(
      `${s.env} (--${s.flag}) must be a whole number from ${min} to ${max}, got "${text}"`,
    );
  }
  return value;
}

function tlsConfig(raw: Raw): TlsConfig | undefined {
  const { tlsCert, tlsKey, tlsClientCa } = raw;
  if ((tlsCert === "") !== (tlsKey === "")) {
    throw new ConfigError(
      "TLS needs both a certificate and a key: set TLS_CERT and TLS_KEY (or --tls-cert and --tls-key)",
    );
  }
  const mode = oneOf(
    raw.tlsClientAuth,
    settings.tlsClientAuth,
    clientAuthModes,
  );
  if (tlsCert === "") {
    if (tlsClientCa !== "") {
      throw new ConfigError(
        "TLS_CLIENT_CA (--tls-client-ca) needs TLS: set TLS_CERT and TLS_KEY too",
      );
    }
    return undefined;
  }
  return {
    cert: readPem(tlsCert, settings.tlsCert),
    key: readPem(tlsKey, settings.tlsKey),
    files: {
      cert: tlsCert,
      key: tlsKey,
      ...(tlsClientCa === "" ? {} : { clientCa: tlsClientCa }),
    },
    ...(tlsClientCa === ""
      ? {}
      : { clients: { ca: readPem(tlsClientCa, settings.tlsClientCa), mode } }),
  };
}

function authConfig(
  raw: Raw,
  tls: TlsConfig | undefined,
): AuthConfig | undefined {
  const jwks = raw.authJwks.trim();
  if (raw.authPolicy === "") {
    const key = (
      ["authJwks", "authJwksCa", "authIssuer", "authAudience"] as const
    ).find((k) => raw[k] !== "");
    if (key !== undefined) {
      const set = settings[key];
      throw new ConfigError(
        `${set.env} (--${set.flag}) is set, but no AUTH_POLICY (--auth-policy) says which methods need a token`,
      );
    }
    return undefined;
  }
  const policy = readPolicy(raw.authPolicy);
  if (policy.needsCertificates && tls?.clients === undefined) {
    throw new ConfigError(
      "AUTH_POLICY needs client certificates for some methods: set TLS_CLIENT_CA (--tls-client-ca), and TLS_CERT and TLS_KEY",
    );
  }
  if (jwks === "") {
    if (policy.needsTokens) {
      throw new ConfigError(
        "AUTH_POLICY needs a bearer token for some methods: set AUTH_JWKS (--auth-jwks), AUTH_ISSUER and AUTH_AUDIENCE",
      );
    }
    return { policy, tokens: undefined };
  }
  for (const key of ["authIssuer", "authAudience"] as const) {
    const s = settings[key];
    if (raw[key].trim() === "") {
      throw new ConfigError(
        `${s.env} (--${s.flag}) must be set with AUTH_JWKS: a token from any issuer, or for any audience, would be accepted`,
      );
    }
  }
  return {
    policy,
    tokens: {
      rules: {
        issuer: raw.authIssuer.trim(),
        audience: list(raw.authAudience),
        algorithms: algorithms(raw.authAlgorithms),
        clockToleranceMs: integer(
          raw.authClockToleranceMs,
          settings.authClockToleranceMs,
          0,
          hour,
        ),
      },
      keys: keySource(raw, jwks),
    },
  };
}

function list(text: string): string[] {
  return text
    .split(",")
    .map((v) => v.trim())
    .filter((v) => v !== "");
}

function readPolicy(path: string): Policy {
  const s = settings.authPolicy;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new ConfigError(
      `${s.env} (--${s.flag}): cannot read "${path}" (${reason})`,
    );
  }
  try {
    return parsePolicy(text);
  } catch (e) {
    if (e instanceof PolicyError) {
      throw new ConfigError(`${s.env} (--${s.flag}) "${path}": ${e.message}`);
    }
    throw e;
  }
}

function algorithms(text: string): string[] {
  const s = settings.authAlgorithms;
  const given = list(text);
  if (given.length === 0) {
    throw new ConfigError(`${s.env} (--${s.flag}) must name an algorithm`);
  }
  for (const alg of given) {
    if (!(tokenAlgorithms as readonly string[]).includes(alg)) {
      throw new ConfigError(
        `${s.env} (--${s.flag}) must list asymmetric algorithms (${tokenAlgorithms.join(", ")}), got "${alg}"${/^HS/i.test(alg) ? ": an HMAC algorithm would take a public key of the key set as its secret" : ""}`,
      );
    }
  }
  return given;
}

function keySource(raw: Raw, jwks: string): KeySource {
  const s = settings.authJwks;
  if (/^https:\/\//i.test(jwks)) {
    let url: URL;
    try {
      url = new URL(jwks);
    } catch {
      throw new ConfigError(`${s.env} (--${s.flag}) is not a URL: "${jwks}"`);
    }
    return {
      kind: "url",
      url,
      ca:
        raw.authJwksCa === ""
          ? undefined
          : readPem(raw.authJwksCa, settings.authJwksCa),
      timeoutMs: integer(
        raw.authJwksTimeoutMs,
        settings.authJwksTimeoutMs,
        1,
        hour,
      ),
      cooldownMs: integer(
        raw.authJwksCooldownMs,
        settings.authJwksCooldownMs,
        0,
        hour,
      ),
      maxAgeMs: integer(
        raw.authJwksMaxAgeMs,
        settings.authJwksMaxAgeMs,
        1000,
        24 * hour,
      ),
    };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(jwks)) {
    throw new ConfigError(
      `${s.env} (--${s.flag}) must be a file or an https:// URL (keys fetched in the clear could be replaced), got "${jwks}"`,
    );
  }
  if (raw.authJwksCa !== "") {
    throw new ConfigError(
      `AUTH_JWKS_CA (--auth-jwks-ca) is only for an https:// AUTH_JWKS; "${jwks}" is a file`,
    );
  }
  let keys: JSONWebKeySet;
  try {
    keys = JSON.parse(readFileSync(jwks, "utf8")) as JSONWebKeySet;
  } catch (e) {
    const reason =
      (e as NodeJS.ErrnoException).code ?? (e as Error).message ?? String(e);
    throw new ConfigError(
      `${s.env} (--${s.flag}): cannot read "${jwks}" (${reason})`,
    );
  }
  const problem = keySetProblem(keys);
  if (problem !== undefined) {
    throw new ConfigError(`${s.env} (--${s.flag}) "${jwks}": ${problem}`);
  }
  return { kind: "file", path: jwks, keys };
}

/** What makes a key set unfit to verify tokens, if anything. */
function keySetProblem(keys: unknown): string | undefined {
  const list = (keys as { keys?: unknown })?.keys;
  if (!Array.isArray(list) || list.length === 0) {
    return 'not a JSON Web Key Set: expected {"keys": [...]} with at least one key';
  }
  for (const [i, key] of list.entries()) {
    const k = key as Record<string, unknown>;
    if (typeof k !== "object" || k === null || typeof k.kty !== "string") {
      return `key ${i} is not a JSON Web Key`;
    }
    if (k.kty === "oct") {
      return `key ${i} is a shared secret (kty "oct"): only public keys verify tokens here`;
    }
    if ("d" in k) {
      return `key ${i} is a private key: give the public keys only, the signing keys stay with the issuer`;
    }
  }
  return undefined;
}

function readPem(path: string, s: Setting): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new ConfigError(
      `${s.env} (--${s.flag}): cannot read "${path}" (${reason})`,
    );
  }
}
