import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

/** Every setting of the server, typed and validated. */
export interface Config {
  /** TCP port to listen on; 0 picks a free one. @default 50051 */
  port: number;
  /** Interface to listen on; empty means every interface (IPv6 and IPv4). @default "" */
  host: string;
  /** PEM certificate and key; when set, the port serves TLS only. @default undefined */
  tls: { cert: Buffer; key: Buffer } | undefined;
  /** Pause between two StreamHello replies, in milliseconds. @default 1000 */
  streamIntervalMs: number;
}

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
  /** One line for --help and the README. */
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
  streamIntervalMs: {
    flag: "stream-interval-ms",
    env: "STREAM_INTERVAL_MS",
    default: "1000",
    doc: "pause between StreamHello replies in ms (0 allowed)",
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
  const tlsCert = raw.tlsCert;
  const tlsKey = raw.tlsKey;
  if ((tlsCert === "") !== (tlsKey === "")) {
    throw new ConfigError(
      "TLS needs both a certificate and a key: set TLS_CERT and TLS_KEY (or --tls-cert and --tls-key)",
    );
  }
  return {
    port: integer(raw.port, settings.port, 0, 65535),
    host: raw.host,
    tls:
      tlsCert === ""
        ? undefined
        : {
            cert: readPem(tlsCert, settings.tlsCert),
            key: readPem(tlsKey, settings.tlsKey),
          },
    streamIntervalMs: integer(
      raw.streamIntervalMs,
      settings.streamIntervalMs,
      0,
      3_600_000,
    ),
  };
}

/** The text of `--help`: every flag, its variable and its default. */
export function helpText(): string {
  const rows = Object.values(settings).map(
    (s) =>
      `  --${s.flag.padEnd(20)} ${s.env.padEnd(20)} ${s.doc}${s.default === "" ? "" : ` (default ${s.default})`}`,
  );
  return [
    "Usage: connect-greeter [options]",
    "",
    "Options (flag, environment variable):",
    ...rows,
    "  --help",
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

function integer(text: string, s: Setting, min: number, max: number): number {
  const value = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(
      `${s.env} (--${s.flag}) must be a whole number from ${min} to ${max}, got "${text}"`,
    );
  }
  return value;
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
