import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { subjectAltNames } from "../src/auth/peer-certificate.js";
import { parsePolicy, sanPattern } from "../src/auth/policy.js";
import {
  type Config,
  ConfigError,
  defaultConfig,
  helpText,
  loadConfig,
  settings,
} from "../src/config.js";
import { repoRoot } from "./support/child.js";
import { tableCells } from "./support/doc-blocks.js";
import { selfSignedCert } from "./support/tls.js";

// What loadConfig accepts and refuses, setting by setting, in process: the
// messages an operator reads (test/start.test.ts checks a few through
// `npm start`, one line on stderr and a non-zero exit).

/** The ConfigError loadConfig throws for `argv` and `env`; fails if it accepts them. */
function refusal(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    loadConfig(argv, env);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    assert.equal(e.name, "ConfigError");
    assert.doesNotMatch(e.message, /\n/, "one line");
    return e.message;
  }
  assert.fail(`accepted ${JSON.stringify({ argv, env })}`);
}

test("with nothing set, every setting has its documented default", () => {
  const expected: Config = {
    port: 50051,
    host: "",
    tls: undefined,
    tlsReloadMs: 10000,
    auth: undefined,
    streamIntervalMs: 1000,
    shutdownGraceMs: 10000,
    logLevel: "info",
    corsOrigins: [],
    maxMessageBytes: 4194304,
    compressMinBytes: 1024,
    maxConcurrentStreams: 1000,
    maxHeaderBytes: 16384,
    headersTimeoutMs: 10000,
    requestTimeoutMs: 300000,
    idleTimeoutMs: 300000,
    firstCallTimeoutMs: 30000,
    maxConnectionAgeMs: 0,
    maxConnectionAgeGraceMs: 10000,
    keepaliveTimeMs: 7200000,
    keepaliveTimeoutMs: 20000,
    pingMinIntervalMs: 300000,
    pingWithoutCalls: false,
    maxConnections: 10000,
    maxConnectionsPerAddress: 0,
    maxDeadlineMs: 0,
    defaultDeadlineMs: 0,
    shedCallsInFlight: 0,
    shedEventLoopDelayMs: 0,
    workers: 1,
    engine: true,
    adminPort: 9464,
    reflection: true,
    tracing: undefined,
  };
  assert.deepEqual(loadConfig([], {}), expected);
  assert.deepEqual(defaultConfig(), expected);
});

test("every setting is read from its flag and from its environment variable, and the flag wins", () => {
  const flags = [
    ["--port", "1234", "port", 1234],
    ["--host", "127.0.0.1", "host", "127.0.0.1"],
    ["--stream-interval-ms", "5", "streamIntervalMs", 5],
    ["--shutdown-grace-ms", "6", "shutdownGraceMs", 6],
    ["--log-level", "warn", "logLevel", "warn"],
    [
      "--cors-origins",
      "https://a.example",
      "corsOrigins",
      ["https://a.example"],
    ],
    ["--max-message-bytes", "7", "maxMessageBytes", 7],
    ["--compress-min-bytes", "8", "compressMinBytes", 8],
    ["--max-concurrent-streams", "9", "maxConcurrentStreams", 9],
    ["--max-header-bytes", "2048", "maxHeaderBytes", 2048],
    ["--headers-timeout-ms", "11", "headersTimeoutMs", 11],
    ["--request-timeout-ms", "12", "requestTimeoutMs", 12],
    ["--idle-timeout-ms", "13", "idleTimeoutMs", 13],
    ["--first-call-timeout-ms", "14", "firstCallTimeoutMs", 14],
    ["--max-connection-age-ms", "15", "maxConnectionAgeMs", 15],
    ["--max-connection-age-grace-ms", "16", "maxConnectionAgeGraceMs", 16],
    ["--keepalive-time-ms", "1700", "keepaliveTimeMs", 1700],
    ["--keepalive-timeout-ms", "18", "keepaliveTimeoutMs", 18],
    ["--ping-min-interval-ms", "19", "pingMinIntervalMs", 19],
    ["--ping-without-calls", "on", "pingWithoutCalls", true],
    ["--max-connections", "20", "maxConnections", 20],
    ["--max-connections-per-address", "21", "maxConnectionsPerAddress", 21],
    ["--max-deadline-ms", "22", "maxDeadlineMs", 22],
    ["--default-deadline-ms", "23", "defaultDeadlineMs", 23],
    ["--shed-calls-in-flight", "24", "shedCallsInFlight", 24],
    ["--shed-event-loop-delay-ms", "25", "shedEventLoopDelayMs", 25],
    ["--workers", "3", "workers", 3],
    ["--engine", "off", "engine", false],
    ["--admin-port", "9999", "adminPort", 9999],
    ["--reflection", "off", "reflection", false],
  ] as const;
  for (const [flag, value, key, parsed] of flags) {
    const setting = Object.values(settings).find((s) => `--${s.flag}` === flag);
    assert.ok(setting, flag);
    assert.deepEqual(loadConfig([flag, value], {})[key], parsed, flag);
    assert.deepEqual(
      loadConfig([], { [setting.env]: value })[key],
      parsed,
      setting.env,
    );
    assert.deepEqual(
      loadConfig([`${flag}=${value}`], { [setting.env]: setting.default })[key],
      parsed,
      `${flag} over ${setting.env}`,
    );
  }
});

test("a whole number setting takes its smallest and largest value, spaces around it, and refuses one past either end", () => {
  const bounds: [string, keyof Config, number, number][] = [
    ["PORT", "port", 0, 65535],
    ["STREAM_INTERVAL_MS", "streamIntervalMs", 0, 3_600_000],
    ["SHUTDOWN_GRACE_MS", "shutdownGraceMs", 0, 3_600_000],
    ["MAX_MESSAGE_BYTES", "maxMessageBytes", 1, 2 ** 31 - 1],
    ["COMPRESS_MIN_BYTES", "compressMinBytes", 0, 2 ** 31 - 1],
    ["MAX_CONCURRENT_STREAMS", "maxConcurrentStreams", 1, 2 ** 31 - 1],
    ["MAX_HEADER_BYTES", "maxHeaderBytes", 1024, 2 ** 24],
    ["HEADERS_TIMEOUT_MS", "headersTimeoutMs", 1, 3_600_000],
    ["REQUEST_TIMEOUT_MS", "requestTimeoutMs", 0, 3_600_000],
    ["IDLE_TIMEOUT_MS", "idleTimeoutMs", 1, 3_600_000],
    ["FIRST_CALL_TIMEOUT_MS", "firstCallTimeoutMs", 1, 3_600_000],
    ["MAX_CONNECTION_AGE_MS", "maxConnectionAgeMs", 0, 604_800_000],
    ["MAX_CONNECTION_AGE_GRACE_MS", "maxConnectionAgeGraceMs", 0, 604_800_000],
    ["KEEPALIVE_TIMEOUT_MS", "keepaliveTimeoutMs", 1, 604_800_000],
    ["PING_MIN_INTERVAL_MS", "pingMinIntervalMs", 0, 604_800_000],
    ["MAX_CONNECTIONS", "maxConnections", 0, 1_000_000],
    ["MAX_CONNECTIONS_PER_ADDRESS", "maxConnectionsPerAddress", 0, 1_000_000],
    ["MAX_DEADLINE_MS", "maxDeadlineMs", 0, 99_999_999],
    ["DEFAULT_DEADLINE_MS", "defaultDeadlineMs", 0, 99_999_999],
    ["SHED_CALLS_IN_FLIGHT", "shedCallsInFlight", 0, 1_000_000],
    ["SHED_EVENT_LOOP_DELAY_MS", "shedEventLoopDelayMs", 0, 60_000],
    ["WORKERS", "workers", 1, 256],
  ];
  // The admin port must differ from the API port; keep it out of the way.
  const base = { ADMIN_PORT: "off" };
  for (const [env, key, min, max] of bounds) {
    const flag = Object.values(settings).find((s) => s.env === env)?.flag;
    const range = `${env} (--${flag}) must be a whole number from ${min} to ${max}`;
    assert.equal(loadConfig([], { ...base, [env]: String(min) })[key], min);
    assert.equal(loadConfig([], { ...base, [env]: String(max) })[key], max);
    assert.equal(loadConfig([], { ...base, [env]: ` ${min} ` })[key], min);
    if (min > 0) {
      assert.equal(
        refusal([], { ...base, [env]: String(min - 1) }),
        `${range}, got "${min - 1}"`,
      );
    }
    assert.equal(
      refusal([], { ...base, [env]: String(max + 1) }),
      `${range}, got "${max + 1}"`,
    );
  }
});

test("a whole number setting refuses a sign, a fraction, an exponent, words and nothing", () => {
  for (const text of [
    "-1",
    "+5",
    "1.5",
    "1e3",
    "0x10",
    "ten",
    "",
    " ",
    "5 5",
  ]) {
    assert.equal(
      refusal([], { PORT: text }),
      `PORT (--port) must be a whole number from 0 to 65535, got "${text}"`,
      JSON.stringify(text),
    );
  }
  // Beyond the safe integers, digits alone are not enough.
  assert.match(
    refusal([], { MAX_MESSAGE_BYTES: "9".repeat(20) }),
    /^MAX_MESSAGE_BYTES \(--max-message-bytes\) must be a whole number from 1 to 2147483647/,
  );
});

test("KEEPALIVE_TIME_MS is 0 (no PINGs) or at least a second, as gRPC servers keep it", () => {
  assert.equal(loadConfig([], { KEEPALIVE_TIME_MS: "0" }).keepaliveTimeMs, 0);
  assert.equal(
    loadConfig([], { KEEPALIVE_TIME_MS: "1000" }).keepaliveTimeMs,
    1000,
  );
  assert.equal(
    loadConfig([], { KEEPALIVE_TIME_MS: "604800000" }).keepaliveTimeMs,
    604_800_000,
  );
  for (const text of ["999", "1", "604800001", "-1", "1s", ""]) {
    assert.equal(
      refusal([], { KEEPALIVE_TIME_MS: text }),
      `KEEPALIVE_TIME_MS (--keepalive-time-ms) must be 0 (off) or a whole number from 1000 to 604800000, got "${text}"`,
      JSON.stringify(text),
    );
  }
});

test("DEFAULT_DEADLINE_MS may not be longer than MAX_DEADLINE_MS when both are set", () => {
  const both = loadConfig([], {
    MAX_DEADLINE_MS: "5000",
    DEFAULT_DEADLINE_MS: "5000",
  });
  assert.deepEqual([both.maxDeadlineMs, both.defaultDeadlineMs], [5000, 5000]);
  assert.equal(
    loadConfig([], { DEFAULT_DEADLINE_MS: "90000000" }).defaultDeadlineMs,
    90_000_000,
    "no maximum: any default",
  );
  assert.equal(
    refusal(["--max-deadline-ms", "5000", "--default-deadline-ms", "5001"]),
    'DEFAULT_DEADLINE_MS (--default-deadline-ms) must not be longer than MAX_DEADLINE_MS (--max-deadline-ms, 5000), got "5001"',
  );
});

test("LOG_LEVEL takes every level in any case, with spaces, and refuses others naming the levels", () => {
  for (const level of [
    "fatal",
    "error",
    "warn",
    "info",
    "debug",
    "trace",
    "silent",
  ]) {
    assert.equal(loadConfig([], { LOG_LEVEL: level }).logLevel, level);
  }
  assert.equal(loadConfig([], { LOG_LEVEL: " DEBUG " }).logLevel, "debug");
  assert.equal(
    refusal([], { LOG_LEVEL: "verbose" }),
    'LOG_LEVEL (--log-level) must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
  );
});

test("CORS_ORIGINS takes a comma-separated list of origins or *, and refuses a path or a scheme other than http(s)", () => {
  assert.deepEqual(
    loadConfig([], {
      CORS_ORIGINS: " https://a.example , http://b.example:8080,,",
    }).corsOrigins,
    ["https://a.example", "http://b.example:8080"],
  );
  assert.deepEqual(loadConfig([], { CORS_ORIGINS: "*" }).corsOrigins, ["*"]);
  assert.deepEqual(loadConfig([], { CORS_ORIGINS: " , " }).corsOrigins, []);
  for (const bad of [
    "https://a.example/",
    "https://a.example/app",
    "ftp://a.example",
    "a.example",
    "https://",
    "https://a example",
    "xhttps://a.example",
  ]) {
    assert.equal(
      refusal([], { CORS_ORIGINS: `https://ok.example,${bad}` }),
      `CORS_ORIGINS (--cors-origins) must list origins such as https://example.com (scheme and host, no path), got "${bad}"`,
    );
  }
});

test('ADMIN_PORT takes a port or "off" in any case, and refuses other words and the API port itself', () => {
  assert.equal(loadConfig([], { ADMIN_PORT: "off" }).adminPort, undefined);
  assert.equal(loadConfig([], { ADMIN_PORT: " OFF " }).adminPort, undefined);
  assert.equal(loadConfig([], { ADMIN_PORT: "0" }).adminPort, 0);
  assert.equal(loadConfig([], { ADMIN_PORT: " 9465 " }).adminPort, 9465);
  // 0 twice is two different free ports.
  assert.equal(loadConfig([], { PORT: "0", ADMIN_PORT: "0" }).adminPort, 0);
  for (const bad of ["metrics", "on", "-1", "1.5"]) {
    assert.equal(
      refusal([], { ADMIN_PORT: bad }),
      `ADMIN_PORT (--admin-port) must be a port from 0 to 65535 or "off", got "${bad}"`,
    );
  }
  assert.equal(
    refusal([], { ADMIN_PORT: "65536" }),
    'ADMIN_PORT (--admin-port) must be a whole number from 0 to 65535, got "65536"',
  );
  for (const [port, admin] of [
    ["50099", "50099"],
    [" 50099 ", "50099"],
    ["50051", " 50051"],
  ]) {
    assert.equal(
      refusal([], { PORT: port, ADMIN_PORT: admin }),
      `ADMIN_PORT (--admin-port) must differ from PORT (${Number(admin)}): metrics are kept off the API port`,
    );
  }
  // The default admin port against the default API port is fine.
  assert.equal(loadConfig([], { PORT: "9465" }).adminPort, 9464);
  assert.equal(
    refusal(["--port", "9464"]),
    "ADMIN_PORT (--admin-port) must differ from PORT (9464): metrics are kept off the API port",
  );
});

test("ENGINE, REFLECTION and PING_WITHOUT_CALLS take on/true/1/yes and off/false/0/no in any case, and refuse anything else", () => {
  for (const [env, key] of [
    ["ENGINE", "engine"],
    ["REFLECTION", "reflection"],
    ["PING_WITHOUT_CALLS", "pingWithoutCalls"],
  ] as const) {
    for (const on of ["on", "true", "1", "yes", " ON ", "Yes"]) {
      assert.equal(loadConfig([], { [env]: on })[key], true, on);
    }
    for (const off of ["off", "false", "0", "no", " OFF ", "No"]) {
      assert.equal(loadConfig([], { [env]: off })[key], false, off);
    }
    const flag = Object.values(settings).find((s) => s.env === env)?.flag;
    for (const bad of ["maybe", "", "2", "y"]) {
      assert.equal(
        refusal([], { [env]: bad }),
        `${env} (--${flag}) must be on or off, got "${bad}"`,
      );
    }
  }
});

test('WORKERS "auto" is one worker per CPU the process may use', () => {
  assert.equal(
    loadConfig([], { WORKERS: "auto" }).workers,
    availableParallelism(),
  );
  assert.equal(
    loadConfig(["--workers", " auto "], {}).workers,
    availableParallelism(),
  );
  assert.equal(
    refusal([], { WORKERS: "Auto!" }),
    'WORKERS (--workers) must be a whole number from 1 to 256, got "Auto!"',
  );
});

test("TLS needs both files, reads them, and names the setting and the reason when a file cannot be read", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "config-test-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  await writeFile(cert, "CERT");
  await writeFile(key, "KEY");
  const tls = loadConfig(["--tls-cert", cert], { TLS_KEY: key }).tls;
  assert.deepEqual(
    { cert: tls?.cert.toString(), key: tls?.key.toString() },
    { cert: "CERT", key: "KEY" },
  );
  const both =
    "TLS needs both a certificate and a key: set TLS_CERT and TLS_KEY (or --tls-cert and --tls-key)";
  assert.equal(refusal(["--tls-cert", cert]), both);
  assert.equal(refusal([], { TLS_KEY: key }), both);
  const missing = join(dir, "missing.pem");
  assert.equal(
    refusal(["--tls-cert", missing, "--tls-key", key]),
    `TLS_CERT (--tls-cert): cannot read "${missing}" (ENOENT)`,
  );
  assert.equal(
    refusal(["--tls-cert", cert, "--tls-key", dir]),
    `TLS_KEY (--tls-key): cannot read "${dir}" (EISDIR)`,
  );
});

test("a tracing variable that cannot be used is refused like any other setting, in one line", () => {
  assert.equal(
    refusal([], { OTEL_TRACES_EXPORTER: "zipkin" }),
    'OTEL_TRACES_EXPORTER must be otlp or none (console, zipkin and the others are not offered), got "zipkin"',
  );
});

test("an unknown flag, a flag without its value and a stray argument are refused", () => {
  assert.match(refusal(["--prot", "1"]), /Unknown option '--prot'/);
  assert.match(refusal(["--port"]), /Option '--port <value>' argument missing/);
  assert.match(refusal(["serve"]), /Unexpected argument 'serve'/);
});

test("--help shows every setting as docs/configuration.md's table does: flag, variable, meaning and default", async () => {
  const table = (
    await readFile(join(repoRoot, "docs", "configuration.md"), "utf8")
  )
    .split("\n")
    .filter((l) => l.startsWith("| `--"))
    .map(tableCells);
  assert.equal(table.length, Object.keys(settings).length);
  const help = helpText().split("\n");
  assert.deepEqual(help.slice(0, 3), [
    "Usage: connect-greeter [options]",
    "",
    "Options (flag, environment variable):",
  ]);
  const helpLine = 3 + table.length;
  assert.equal(help[helpLine], "  --help");
  // Then the OpenTelemetry variables (src/otel-config.ts has their tests).
  assert.equal(help[helpLine + 1], "");
  assert.match(help[helpLine + 2] ?? "", /^Tracing \(OpenTelemetry/);
  const unquote = (cell: string | undefined) =>
    (cell ?? "").replace(/^`|`$/g, "");
  // The flag and variable columns are as wide as the longest of each.
  const flagWidth = Math.max(...table.map((r) => unquote(r[0]).length));
  const envWidth = Math.max(...table.map((r) => unquote(r[1]).length));
  for (const [i, row] of table.entries()) {
    const [flag, env, dflt, meaning] = row.map(unquote);
    const shown = dflt === "(empty)" ? "" : ` (default ${dflt})`;
    assert.equal(
      help[3 + i],
      `  ${(flag ?? "").padEnd(flagWidth)} ${(env ?? "").padEnd(envWidth)} ${meaning}${shown}`,
    );
  }
});

// Authentication and mutual TLS (src/auth/, docs/security.md).

/** Files of one test's own: a policy, a key set, a certificate and key, a CA; removed after it. */
async function authFiles(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), "greeter-config-auth-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const write = async (name: string, content: unknown) => {
    const path = join(dir, name);
    await writeFile(
      path,
      typeof content === "string" ? content : JSON.stringify(content),
    );
    return path;
  };
  const pair = selfSignedCert();
  return {
    write,
    cert: await write("cert.pem", pair.cert.toString()),
    key: await write("key.pem", pair.key.toString()),
    ca: await write("ca.pem", pair.cert.toString()),
    jwks: await write("jwks.json", {
      keys: [{ kty: "EC", crv: "P-256", x: "x", y: "y", kid: "k" }],
    }),
    tokenPolicy: await write("policy.json", {
      methods: { "/Greeter/SayHello": { token: true } },
    }),
    certPolicy: await write("cert-policy.json", {
      methods: { "/Greeter/*": { certificate: { san: ["spiffe://x/*"] } } },
    }),
  };
}

test("authentication is off by default, and TLS files are checked every 10 s", () => {
  const config = loadConfig([], {});
  assert.equal(config.auth, undefined);
  assert.equal(config.tls, undefined);
  assert.equal(config.tlsReloadMs, 10_000);
});

test("a policy, a key set file, the issuer and audiences: tokens on, with the default algorithms and clock tolerance", async (t) => {
  const f = await authFiles(t);
  const env = {
    AUTH_POLICY: f.tokenPolicy,
    AUTH_JWKS: f.jwks,
    AUTH_ISSUER: "https://issuer.test",
    AUTH_AUDIENCE: " greeter , billing ,",
  };
  const { auth } = loadConfig([], env);
  assert.ok(auth?.tokens);
  assert.deepEqual(auth.tokens.rules, {
    issuer: "https://issuer.test",
    audience: ["greeter", "billing"],
    algorithms: ["RS256", "ES256", "EdDSA"],
    clockToleranceMs: 30_000,
  });
  assert.equal(auth.tokens.keys.kind, "file");
  assert.deepEqual(auth.policy.ruleFor("/Greeter/SayHello"), {
    token: { scopes: [], claims: {} },
    certificate: undefined,
  });
  assert.equal(auth.policy.ruleFor("/Greeter/Chat"), undefined);
  // The same from flags, which win.
  const flags = loadConfig(
    [
      "--auth-policy",
      f.tokenPolicy,
      "--auth-jwks",
      f.jwks,
      "--auth-issuer",
      "https://other.test",
      "--auth-audience",
      "a",
      "--auth-algorithms",
      "PS256,Ed25519",
      "--auth-clock-tolerance-ms",
      "0",
    ],
    env,
  );
  assert.deepEqual(flags.auth?.tokens?.rules, {
    issuer: "https://other.test",
    audience: ["a"],
    algorithms: ["PS256", "Ed25519"],
    clockToleranceMs: 0,
  });
});

test("an https:// key set is fetched with its own CA bundle and timings; mutual TLS takes a CA and a mode", async (t) => {
  const f = await authFiles(t);
  const config = loadConfig([], {
    TLS_CERT: f.cert,
    TLS_KEY: f.key,
    TLS_CLIENT_CA: f.ca,
    TLS_CLIENT_AUTH: "optional",
    TLS_RELOAD_MS: "0",
    AUTH_POLICY: f.tokenPolicy,
    AUTH_JWKS: "https://issuer.test/.well-known/jwks.json",
    AUTH_JWKS_CA: f.ca,
    AUTH_ISSUER: "https://issuer.test",
    AUTH_AUDIENCE: "greeter",
    AUTH_JWKS_TIMEOUT_MS: "500",
    AUTH_JWKS_COOLDOWN_MS: "1000",
    AUTH_JWKS_MAX_AGE_MS: "60000",
  });
  const keys = config.auth?.tokens?.keys;
  assert.equal(keys?.kind, "url");
  assert.ok(keys?.kind === "url");
  assert.equal(keys.url.href, "https://issuer.test/.well-known/jwks.json");
  assert.ok(keys.ca?.toString().startsWith("-----BEGIN CERTIFICATE-----"));
  assert.deepEqual(
    [keys.timeoutMs, keys.cooldownMs, keys.maxAgeMs],
    [500, 1000, 60_000],
  );
  assert.equal(config.tlsReloadMs, 0);
  assert.equal(config.tls?.clients?.mode, "optional");
  assert.deepEqual(config.tls?.files, {
    cert: f.cert,
    key: f.key,
    clientCa: f.ca,
  });
  assert.equal(
    loadConfig([], { TLS_CERT: f.cert, TLS_KEY: f.key, TLS_CLIENT_CA: f.ca })
      .tls?.clients?.mode,
    "require",
    "a client certificate is required unless said otherwise",
  );
});

test("each unusable security setting is refused at start with one line naming it and why", async (t) => {
  const f = await authFiles(t);
  const tokens = {
    AUTH_POLICY: f.tokenPolicy,
    AUTH_JWKS: f.jwks,
    AUTH_ISSUER: "https://issuer.test",
    AUTH_AUDIENCE: "greeter",
  };
  const cases: [string, NodeJS.ProcessEnv, string][] = [
    [
      "a client CA without TLS",
      { TLS_CLIENT_CA: f.ca },
      "TLS_CLIENT_CA (--tls-client-ca) needs TLS: set TLS_CERT and TLS_KEY too",
    ],
    [
      "a mode that is neither",
      { TLS_CLIENT_AUTH: "request" },
      'TLS_CLIENT_AUTH (--tls-client-auth) must be one of require, optional, got "request"',
    ],
    [
      "token settings without a policy",
      { AUTH_JWKS: f.jwks },
      "AUTH_JWKS (--auth-jwks) is set, but no AUTH_POLICY (--auth-policy) says which methods need a token",
    ],
    [
      "a policy that needs tokens without a key set",
      { AUTH_POLICY: f.tokenPolicy },
      "AUTH_POLICY needs a bearer token for some methods: set AUTH_JWKS (--auth-jwks), AUTH_ISSUER and AUTH_AUDIENCE",
    ],
    [
      "a policy that needs certificates without a client CA",
      { AUTH_POLICY: f.certPolicy },
      "AUTH_POLICY needs client certificates for some methods: set TLS_CLIENT_CA (--tls-client-ca), and TLS_CERT and TLS_KEY",
    ],
    [
      "no issuer",
      { ...tokens, AUTH_ISSUER: "" },
      "AUTH_ISSUER (--auth-issuer) must be set with AUTH_JWKS: a token from any issuer, or for any audience, would be accepted",
    ],
    [
      "no audience",
      { ...tokens, AUTH_AUDIENCE: " " },
      "AUTH_AUDIENCE (--auth-audience) must be set with AUTH_JWKS: a token from any issuer, or for any audience, would be accepted",
    ],
    [
      "an HMAC algorithm",
      { ...tokens, AUTH_ALGORITHMS: "ES256,HS256" },
      'AUTH_ALGORITHMS (--auth-algorithms) must list asymmetric algorithms (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519), got "HS256": an HMAC algorithm would take a public key of the key set as its secret',
    ],
    [
      "alg none",
      { ...tokens, AUTH_ALGORITHMS: "none" },
      'AUTH_ALGORITHMS (--auth-algorithms) must list asymmetric algorithms (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519), got "none"',
    ],
    [
      "a key set over plain HTTP",
      { ...tokens, AUTH_JWKS: "http://issuer.test/jwks.json" },
      'AUTH_JWKS (--auth-jwks) must be a file or an https:// URL (keys fetched in the clear could be replaced), got "http://issuer.test/jwks.json"',
    ],
    [
      "a CA for a key set file",
      { ...tokens, AUTH_JWKS_CA: f.ca },
      `AUTH_JWKS_CA (--auth-jwks-ca) is only for an https:// AUTH_JWKS; "${f.jwks}" is a file`,
    ],
    [
      "a policy file that is missing",
      { AUTH_POLICY: "/nonexistent/policy.json" },
      'AUTH_POLICY (--auth-policy): cannot read "/nonexistent/policy.json" (ENOENT)',
    ],
  ];
  for (const [what, env, message] of cases) {
    assert.equal(refusal([], env), message, what);
  }
  const keySets: [string, unknown, string][] = [
    [
      "no keys",
      { keys: [] },
      'not a JSON Web Key Set: expected {"keys": [...]} with at least one key',
    ],
    [
      "a private key",
      { keys: [{ kty: "EC", crv: "P-256", x: "x", y: "y", d: "d" }] },
      "key 0 is a private key: give the public keys only, the signing keys stay with the issuer",
    ],
    [
      "a shared secret",
      { keys: [{ kty: "oct", k: "c2VjcmV0" }] },
      'key 0 is a shared secret (kty "oct"): only public keys verify tokens here',
    ],
  ];
  for (const [what, keys, reason] of keySets) {
    const path = await f.write(`${what}.json`, keys);
    assert.equal(
      refusal([], { ...tokens, AUTH_JWKS: path }),
      `AUTH_JWKS (--auth-jwks) "${path}": ${reason}`,
      what,
    );
  }
  const policies: [string, string, string][] = [
    ["not JSON", "{", "not JSON: "],
    ["no methods", "{}", '"methods" must be a JSON object'],
    [
      "an unknown key",
      JSON.stringify({ methods: {}, default: "public" }),
      'the policy: unknown key "default" (expected "methods")',
    ],
    [
      "a path that names no method",
      JSON.stringify({ methods: { "Greeter/SayHello": "public" } }),
      '"Greeter/SayHello": a method is named "/package.Service/Method", or "/package.Service/*" for all of a service\'s',
    ],
    [
      "a rule that needs nothing",
      JSON.stringify({ methods: { "/Greeter/SayHello": {} } }),
      '"/Greeter/SayHello": a rule needs "token" or "certificate" (say "public" for a method open to all)',
    ],
    [
      "a misspelt requirement",
      JSON.stringify({ methods: { "/Greeter/SayHello": { tokens: true } } }),
      '"/Greeter/SayHello": unknown key "tokens" (expected "token" or "certificate")',
    ],
    [
      "scopes that are not strings",
      JSON.stringify({
        methods: { "/Greeter/SayHello": { token: { scopes: "a b" } } },
      }),
      '"/Greeter/SayHello".token.scopes must be an array of non-empty strings',
    ],
  ];
  for (const [what, text, reason] of policies) {
    const path = await f.write(`${what}.policy`, text);
    const message = refusal([], { AUTH_POLICY: path });
    assert.ok(
      message.startsWith(`AUTH_POLICY (--auth-policy) "${path}": ${reason}`),
      `${what}: ${message}`,
    );
  }
});

test("the policy: an exact method wins over its service's rule, a method not named has none, and a SAN pattern's * stays within one path segment", () => {
  const policy = parsePolicy(
    JSON.stringify({
      methods: {
        "/Greeter/*": { certificate: true },
        "/Greeter/SayHello": "public",
      },
    }),
  );
  assert.equal(policy.ruleFor("/Greeter/SayHello"), "public");
  assert.deepEqual(policy.ruleFor("/Greeter/Chat"), {
    token: undefined,
    certificate: { san: [] },
  });
  assert.equal(policy.ruleFor("/Other/SayHello"), undefined);
  assert.equal(policy.needsCertificates, true);
  assert.equal(policy.needsTokens, false);
  const pattern = sanPattern("spiffe://example.org/ns/*/sa/billing");
  assert.ok(pattern.test("spiffe://example.org/ns/prod/sa/billing"));
  assert.ok(!pattern.test("spiffe://example.org/ns/a/b/sa/billing"));
  assert.ok(!pattern.test("spiffe://example.org/ns/prod/sa/billing-admin"));
  assert.ok(
    !sanPattern("spiffe://example.org/a.b").test("spiffe://example.org/aXb"),
  );
});

test('a certificate\'s SANs are read as Node writes them: a value holding ", " comes quoted as JSON', () => {
  assert.deepEqual(
    subjectAltNames(
      'DNS:a.example, URI:"spiffe://x/y, z", URI:spiffe://x/w, IP Address:127.0.0.1',
    ),
    [
      { type: "DNS", value: "a.example" },
      { type: "URI", value: "spiffe://x/y, z" },
      { type: "URI", value: "spiffe://x/w" },
      { type: "IP Address", value: "127.0.0.1" },
    ],
  );
  assert.deepEqual(subjectAltNames(""), []);
});
