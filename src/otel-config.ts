/**
 * Tracing, as the standard OpenTelemetry environment variables configure it
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/),
 * read once and validated like every other setting. SDK 3.x no longer reads
 * its configuration from the environment itself, so this is where it is read;
 * the values are passed to the SDK's constructors explicitly.
 */
export interface TracingConfig {
  /** Where spans are sent: the OTLP/HTTP traces URL. @default "http://localhost:4318/v1/traces" */
  url: string;
  /** OTLP's encoding over HTTP. @default "http/protobuf" */
  protocol: OtlpProtocol;
  /** Headers sent with every export, such as an API key. @default {} */
  headers: Record<string, string>;
  /** How long one export may take, in milliseconds. @default 10000 */
  timeoutMs: number;
  /** Compression of export requests. @default "none" */
  compression: "gzip" | "none";
  /** The `service.name` resource attribute. @default "connect-greeter" */
  serviceName: string;
  /** Further resource attributes, such as deployment.environment.name. @default {} */
  resourceAttributes: Record<string, string>;
  /** Which calls are sampled. @default "parentbased_always_on" */
  sampler: SamplerName;
  /** The share of traces sampled by the traceidratio samplers, from 0 to 1. @default 1 */
  samplerRatio: number;
  /** The batch span processor's settings. */
  batch: {
    /** Longest wait before a batch is exported, in milliseconds. @default 5000 */
    scheduledDelayMs: number;
    /** How long an export may take before it is abandoned, in milliseconds. @default 30000 */
    exportTimeoutMs: number;
    /** Most spans kept waiting for export; more are dropped. @default 2048 */
    maxQueueSize: number;
    /** Most spans in one export request. @default 512 */
    maxExportBatchSize: number;
  };
}

/** The OTLP encodings over HTTP (OTLP/gRPC is not offered). */
export const otlpProtocols = ["http/protobuf", "http/json"] as const;
/** An OTLP encoding over HTTP. */
export type OtlpProtocol = (typeof otlpProtocols)[number];

/** The samplers of the specification that the SDK has built in. */
export const samplerNames = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;
/** A sampler's name, as OTEL_TRACES_SAMPLER names it. */
export type SamplerName = (typeof samplerNames)[number];

/** One OpenTelemetry environment variable the server reads. */
interface OtelSetting {
  readonly env: string;
  /** Default, as the text a user would type; empty when it is unset. */
  readonly default: string;
  /** One line for --help and docs/configuration.md. */
  readonly doc: string;
}

/**
 * The OpenTelemetry environment variables the server reads. They have no
 * command-line flags: they are the same for every service an operator runs.
 */
export const otelSettings = {
  sdkDisabled: {
    env: "OTEL_SDK_DISABLED",
    default: "false",
    doc: "true turns tracing off, whatever else is set",
  },
  tracesExporter: {
    env: "OTEL_TRACES_EXPORTER",
    default: "",
    doc: "otlp turns tracing on, none off; empty: on when an OTLP endpoint is set",
  },
  endpoint: {
    env: "OTEL_EXPORTER_OTLP_ENDPOINT",
    default: "http://localhost:4318",
    doc: "the collector's base URL; spans go to its path v1/traces",
  },
  tracesEndpoint: {
    env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    default: "",
    doc: "the full URL spans go to, used as it is (wins over the base URL)",
  },
  protocol: {
    env: "OTEL_EXPORTER_OTLP_PROTOCOL",
    default: "http/protobuf",
    doc: `OTLP encoding (${otlpProtocols.join(", ")})`,
  },
  tracesProtocol: {
    env: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    default: "",
    doc: "the same, for traces only (wins over OTEL_EXPORTER_OTLP_PROTOCOL)",
  },
  headers: {
    env: "OTEL_EXPORTER_OTLP_HEADERS",
    default: "",
    doc: "headers of every export, as key=value,key2=value2 (percent-encoded)",
  },
  tracesHeaders: {
    env: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    default: "",
    doc: "the same, for traces only (wins key by key)",
  },
  timeout: {
    env: "OTEL_EXPORTER_OTLP_TIMEOUT",
    default: "10000",
    doc: "how long one export may take, in ms",
  },
  tracesTimeout: {
    env: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    default: "",
    doc: "the same, for traces only",
  },
  compression: {
    env: "OTEL_EXPORTER_OTLP_COMPRESSION",
    default: "none",
    doc: "compression of exports (gzip, none)",
  },
  tracesCompression: {
    env: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    default: "",
    doc: "the same, for traces only",
  },
  serviceName: {
    env: "OTEL_SERVICE_NAME",
    default: "connect-greeter",
    doc: "the service.name of every span",
  },
  resourceAttributes: {
    env: "OTEL_RESOURCE_ATTRIBUTES",
    default: "",
    doc: "more resource attributes, as key=value,key2=value2 (percent-encoded)",
  },
  sampler: {
    env: "OTEL_TRACES_SAMPLER",
    default: "parentbased_always_on",
    doc: `which calls are sampled (${samplerNames.join(", ")})`,
  },
  samplerArg: {
    env: "OTEL_TRACES_SAMPLER_ARG",
    default: "1",
    doc: "for the traceidratio samplers: the share sampled, from 0 to 1",
  },
  bspScheduleDelay: {
    env: "OTEL_BSP_SCHEDULE_DELAY",
    default: "5000",
    doc: "longest wait before a batch of spans is exported, in ms",
  },
  bspExportTimeout: {
    env: "OTEL_BSP_EXPORT_TIMEOUT",
    default: "30000",
    doc: "how long a batch export may take before it is abandoned, in ms",
  },
  bspMaxQueueSize: {
    env: "OTEL_BSP_MAX_QUEUE_SIZE",
    default: "2048",
    doc: "most spans waiting for export; more are dropped",
  },
  bspMaxExportBatchSize: {
    env: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    default: "512",
    doc: "most spans in one export (at most OTEL_BSP_MAX_QUEUE_SIZE)",
  },
} as const satisfies Record<string, OtelSetting>;

/** An OpenTelemetry variable that cannot be used; the message is one line for the operator. */
export class OtelConfigError extends Error {
  override name = "OtelConfigError";
}

/**
 * Read tracing's configuration from `env`: undefined when tracing is off.
 *
 * Tracing is off unless asked for: OTEL_TRACES_EXPORTER=otlp, or an OTLP
 * endpoint set (OTEL_EXPORTER_OTLP_ENDPOINT or ..._TRACES_ENDPOINT) with
 * OTEL_TRACES_EXPORTER unset. The specification's default exporter is otlp,
 * which would have every server send spans to localhost:4318 unasked; here an
 * operator turns tracing on by naming the collector. OTEL_SDK_DISABLED=true
 * and OTEL_TRACES_EXPORTER=none turn it off.
 *
 * Every variable is checked whether tracing is on or not, so a typo fails at
 * start rather than when someone turns tracing on. Throws OtelConfigError.
 */
export function loadTracingConfig(
  env: NodeJS.ProcessEnv,
): TracingConfig | undefined {
  const s = otelSettings;
  const get = (setting: OtelSetting): string | undefined => {
    const value = env[setting.env];
    // The specification treats an empty value as unset.
    return value === undefined || value.trim() === "" ? undefined : value;
  };
  const disabled = boolean(get(s.sdkDisabled), s.sdkDisabled);
  const exporter = tracesExporter(get(s.tracesExporter));
  const tracesEndpoint = get(s.tracesEndpoint);
  const endpoint = get(s.endpoint);
  const config: TracingConfig = {
    url:
      tracesEndpoint !== undefined
        ? httpUrl(tracesEndpoint, s.tracesEndpoint)
        : tracesUrl(httpUrl(endpoint ?? s.endpoint.default, s.endpoint)),
    protocol: protocol(get(s.tracesProtocol) ?? get(s.protocol)),
    headers: {
      ...keyValues(get(s.headers), s.headers),
      ...keyValues(get(s.tracesHeaders), s.tracesHeaders),
    },
    timeoutMs:
      get(s.tracesTimeout) !== undefined
        ? integer(get(s.tracesTimeout), s.tracesTimeout, 1)
        : integer(get(s.timeout), s.timeout, 1),
    compression:
      get(s.tracesCompression) !== undefined
        ? compression(get(s.tracesCompression), s.tracesCompression)
        : compression(get(s.compression), s.compression),
    serviceName: get(s.serviceName)?.trim() ?? s.serviceName.default,
    resourceAttributes: resourceAttributes(get(s.resourceAttributes)),
    sampler: sampler(get(s.sampler)),
    samplerRatio: 1,
    batch: {
      scheduledDelayMs: integer(get(s.bspScheduleDelay), s.bspScheduleDelay, 0),
      exportTimeoutMs: integer(get(s.bspExportTimeout), s.bspExportTimeout, 1),
      maxQueueSize: integer(get(s.bspMaxQueueSize), s.bspMaxQueueSize, 1),
      maxExportBatchSize: integer(
        get(s.bspMaxExportBatchSize),
        s.bspMaxExportBatchSize,
        1,
      ),
    },
  };
  if (config.sampler.endsWith("traceidratio")) {
    config.samplerRatio = ratio(get(s.samplerArg));
  }
  if (config.batch.maxExportBatchSize > config.batch.maxQueueSize) {
    throw new OtelConfigError(
      `${s.bspMaxExportBatchSize.env} (${config.batch.maxExportBatchSize}) must not exceed ${s.bspMaxQueueSize.env} (${config.batch.maxQueueSize})`,
    );
  }
  const on =
    !disabled &&
    (exporter === "otlp" ||
      (exporter === undefined &&
        (endpoint !== undefined || tracesEndpoint !== undefined)));
  return on ? config : undefined;
}

/** The lines `--help` adds for the OpenTelemetry variables. */
export function otelHelpText(): string {
  return [
    "Tracing (OpenTelemetry environment variables; off unless OTEL_TRACES_EXPORTER=otlp or an OTLP endpoint is set):",
    ...Object.values(otelSettings).map(
      (s) =>
        `  ${s.env.padEnd(38)} ${s.doc}${s.default === "" ? "" : ` (default ${s.default})`}`,
    ),
  ].join("\n");
}

function boolean(text: string | undefined, s: OtelSetting): boolean {
  if (text === undefined) return false;
  const value = text.trim().toLowerCase();
  if (value === "true") return true;
  if (value === "false") return false;
  throw new OtelConfigError(`${s.env} must be true or false, got "${text}"`);
}

function tracesExporter(text: string | undefined): "otlp" | "none" | undefined {
  if (text === undefined) return undefined;
  const s = otelSettings.tracesExporter;
  const names = [
    ...new Set(text.split(",").map((n) => n.trim().toLowerCase())),
  ];
  if (names.length === 1 && (names[0] === "otlp" || names[0] === "none")) {
    return names[0];
  }
  throw new OtelConfigError(
    `${s.env} must be otlp or none (console, zipkin and the others are not offered), got "${text}"`,
  );
}

function httpUrl(text: string, s: OtelSetting): string {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new OtelConfigError(
      `${s.env} must be an http:// or https:// URL, got "${text}"`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OtelConfigError(
      `${s.env} must be an http:// or https:// URL, got "${text}"`,
    );
  }
  return url.href;
}

/** The traces URL under a base endpoint, as the specification appends it: <base>/v1/traces. */
function tracesUrl(base: string): string {
  return `${base.endsWith("/") ? base : `${base}/`}v1/traces`;
}

function protocol(text: string | undefined): OtlpProtocol {
  if (text === undefined) return "http/protobuf";
  const value = text.trim().toLowerCase();
  if ((otlpProtocols as readonly string[]).includes(value)) {
    return value as OtlpProtocol;
  }
  const s = otelSettings.protocol;
  throw new OtelConfigError(
    `${s.env} (or ${otelSettings.tracesProtocol.env}) must be one of ${otlpProtocols.join(", ")}${value === "grpc" ? " (OTLP/gRPC is not offered: send OTLP/HTTP, port 4318 on a collector)" : ""}, got "${text}"`,
  );
}

function compression(
  text: string | undefined,
  s: OtelSetting,
): "gzip" | "none" {
  if (text === undefined) return "none";
  const value = text.trim().toLowerCase();
  if (value === "gzip" || value === "none") return value;
  throw new OtelConfigError(`${s.env} must be gzip or none, got "${text}"`);
}

/**
 * key=value pairs separated by commas, keys and values percent-encoded (the
 * W3C Baggage format, without properties, that the specification names).
 * Header values may hold a bare "=" (base64 padding), as the exporter's own
 * parser lets them; `strict` refuses it, as the resources package does.
 */
function keyValues(
  text: string | undefined,
  s: OtelSetting,
  { strict = false } = {},
): Record<string, string> {
  const pairs: Record<string, string> = {};
  if (text === undefined) return pairs;
  for (const entry of text.split(",")) {
    if (entry.trim() === "") continue;
    const at = entry.indexOf("=");
    const key = at < 0 ? "" : decode(entry.slice(0, at).trim(), s);
    if (key === "" || (strict && entry.indexOf("=", at + 1) >= 0)) {
      throw new OtelConfigError(
        `${s.env} must be key=value pairs separated by commas (a "," or "=" in a value percent-encoded), got "${entry.trim()}"`,
      );
    }
    pairs[key] = decode(entry.slice(at + 1).trim(), s);
  }
  return pairs;
}

function decode(text: string, s: OtelSetting): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new OtelConfigError(`${s.env}: cannot percent-decode "${text}"`);
  }
}

/**
 * As the resources package parses it, but a bad value stops the start instead
 * of being dropped silently (which the specification allows).
 */
function resourceAttributes(text: string | undefined): Record<string, string> {
  return keyValues(text, otelSettings.resourceAttributes, { strict: true });
}

function sampler(text: string | undefined): SamplerName {
  if (text === undefined) return "parentbased_always_on";
  const value = text.trim().toLowerCase();
  if ((samplerNames as readonly string[]).includes(value)) {
    return value as SamplerName;
  }
  throw new OtelConfigError(
    `${otelSettings.sampler.env} must be one of ${samplerNames.join(", ")}, got "${text}"`,
  );
}

function ratio(text: string | undefined): number {
  if (text === undefined) return 1;
  const value = /^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(text)
    ? Number(text)
    : Number.NaN;
  if (!(value >= 0 && value <= 1)) {
    throw new OtelConfigError(
      `${otelSettings.samplerArg.env} must be a number from 0 to 1 for the traceidratio samplers, got "${text}"`,
    );
  }
  return value;
}

function integer(
  text: string | undefined,
  s: OtelSetting,
  min: number,
): number {
  const raw = text ?? s.default;
  const value = /^\s*\d+\s*$/.test(raw) ? Number(raw) : Number.NaN;
  const max = 2 ** 31 - 1;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new OtelConfigError(
      `${s.env} must be a whole number from ${min} to ${max}, got "${raw}"`,
    );
  }
  return value;
}
