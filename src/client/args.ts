import { parseArgs } from "node:util";
import { parseTraceParent } from "@opentelemetry/core";

/** The commands, one per RPC of the Greeter. */
export const commands = [
  "say-hello",
  "stream-hello",
  "collect-greetings",
  "chat",
] as const;

/** A command of the client. */
export type Command = (typeof commands)[number];

/** The wire protocols the client speaks. */
export const protocols = ["connect", "grpc", "grpc-web"] as const;

/** A wire protocol. */
export type Protocol = (typeof protocols)[number];

/** The HTTP versions the client speaks. */
export const httpVersions = ["1.1", "2"] as const;

/** An HTTP version. */
export type HttpVersion = (typeof httpVersions)[number];

/** Where the names to greet come from. */
export type Names =
  | { readonly from: "args"; readonly names: readonly string[] }
  | { readonly from: "stdin" };

/** What the command line asks for. */
export interface Invocation {
  /** The command to run. */
  readonly command: Command;
  /** The names to greet: the arguments, or one per line of standard input for "-". */
  readonly names: Names;
  /** The server's base URL. @default "http://localhost:50051" */
  readonly url: string;
  /** The wire protocol. @default "connect" */
  readonly protocol: Protocol;
  /** The HTTP version. @default "2" */
  readonly httpVersion: HttpVersion;
  /** Deadline of the call, in milliseconds; undefined for none. @default undefined */
  readonly timeoutMs: number | undefined;
  /**
   * A W3C `traceparent` sent with the call, so that the server's span is the
   * child of the given one and its trace can be found. @default undefined
   */
  readonly traceparent: string | undefined;
  /**
   * A bearer token sent as `Authorization: Bearer <token>`, from --token or
   * the GREETER_TOKEN environment variable (which keeps it out of the
   * process list). @default undefined
   */
  readonly token: string | undefined;
  /** PEM files for TLS: the CA the server's certificate must chain to, and a client certificate and key (mutual TLS). */
  readonly tls: TlsFiles;
}

/** The TLS files the command line names; each undefined when not given. */
export interface TlsFiles {
  readonly ca: string | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
}

/** The environment variable the token is read from when --token is not given. */
export const tokenEnv = "GREETER_TOKEN";

/** The command line cannot be run as given; the message is one line for the user. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The client's URL when none is given: the server's default port on this machine. */
export const defaultUrl = "http://localhost:50051";

/** The text of `--help`. */
export function helpText(): string {
  return `Usage: npm run client -- <command> [args] [options]

Calls the Greeter and prints each reply's message on its own line as it arrives.

Commands:
  say-hello NAME               SayHello (unary): one greeting
  stream-hello NAME            StreamHello (server stream): five greetings
  collect-greetings NAME...    CollectGreetings (client stream): one greeting for all names
  chat NAME...                 Chat (bidi stream): one greeting per name, as each arrives
  For collect-greetings and chat, a single "-" reads one name per line from
  standard input and sends each as it is read: "chat -" is a live conversation.

Options:
  --url URL                    server base URL (default ${defaultUrl})
  --protocol PROTOCOL          ${protocols.join(", ")} (default connect)
  --http-version VERSION       ${httpVersions.join(" or ")} (default 2; grpc and chat need 2)
  --timeout-ms MS              deadline of the call in milliseconds (default none)
  --traceparent VALUE          send this W3C traceparent (00-<trace id>-<span id>-<flags>),
                               so the server's span joins your trace (default none)
  --token TOKEN                send "Authorization: Bearer TOKEN" (default: $${tokenEnv}, or none)
  --ca FILE                    PEM CA the server's certificate must chain to (https:// URLs)
  --cert FILE, --key FILE      PEM client certificate and key, for mutual TLS
  -h, --help                   show this help

Exit status: 0 on success, 1 when the call fails (stderr: "error: CODE: message"),
2 on bad usage. Use "npm run --silent client -- ..." to get nothing but the replies.`;
}

/** Parse the command line (and GREETER_TOKEN from `env`); undefined means help was asked for. Throws UsageError. */
export function parseInvocation(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Invocation | undefined {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const { values, positionals } = parsed;
  if (values.help) return undefined;
  const [command, ...names] = positionals;
  if (command === undefined) {
    throw new UsageError(`a command is required: ${commands.join(", ")}`);
  }
  if (!isOneOf(command, commands)) {
    throw new UsageError(
      `unknown command "${command}"; the commands are ${commands.join(", ")}`,
    );
  }
  const protocol = oneOf("--protocol", values.protocol ?? "connect", protocols);
  const httpVersion = oneOf(
    "--http-version",
    values["http-version"] ?? "2",
    httpVersions,
  );
  if (protocol === "grpc" && httpVersion !== "2") {
    throw new UsageError("--protocol grpc needs --http-version 2");
  }
  if (command === "chat" && httpVersion !== "2") {
    // Full duplex needs HTTP/2; over HTTP/1.1 the server answers 505.
    throw new UsageError("chat (bidi streaming) needs --http-version 2");
  }
  const target = url(values.url ?? defaultUrl);
  const tls: TlsFiles = {
    ca: values.ca,
    cert: values.cert,
    key: values.key,
  };
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new UsageError("--cert and --key go together");
  }
  const tlsFlag = (["ca", "cert", "key"] as const).find(
    (k) => tls[k] !== undefined,
  );
  if (tlsFlag !== undefined && !target.startsWith("https:")) {
    throw new UsageError(`--${tlsFlag} needs an https:// --url`);
  }
  const token = values.token ?? env[tokenEnv];
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) {
    throw new UsageError(
      `--token (or ${tokenEnv}) must be the token alone: printable characters, no spaces`,
    );
  }
  return {
    command,
    names: namesOf(command, names),
    url: target,
    protocol,
    httpVersion,
    timeoutMs:
      values["timeout-ms"] === undefined
        ? undefined
        : timeout(values["timeout-ms"]),
    traceparent:
      values.traceparent === undefined
        ? undefined
        : traceparent(values.traceparent),
    token,
    tls,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    options: {
      url: { type: "string" },
      protocol: { type: "string" },
      "http-version": { type: "string" },
      "timeout-ms": { type: "string" },
      traceparent: { type: "string" },
      token: { type: "string" },
      ca: { type: "string" },
      cert: { type: "string" },
      key: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: true,
  });
}

function namesOf(command: Command, names: string[]): Names {
  const streaming = command === "collect-greetings" || command === "chat";
  if (streaming && names.length === 1 && names[0] === "-") {
    return { from: "stdin" };
  }
  if (names.includes("-")) {
    throw new UsageError(
      streaming
        ? `"-" (names from standard input) must be the only name of ${command}`
        : `${command} takes its name as an argument, not from standard input`,
    );
  }
  if (streaming) {
    if (names.length === 0) {
      throw new UsageError(`${command} needs at least one NAME, or "-"`);
    }
  } else if (names.length !== 1) {
    throw new UsageError(
      `${command} needs exactly one NAME, got ${names.length}`,
    );
  }
  return { from: "args", names };
}

function url(text: string): string {
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw new UsageError(`--url must be an absolute URL, got "${text}"`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UsageError(`--url must be http:// or https://, got "${text}"`);
  }
  return text;
}

function timeout(text: string): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(
      `--timeout-ms must be a whole number of milliseconds above 0, got "${text}"`,
    );
  }
  return value;
}

/** A traceparent the server would take: checked by the SDK's own parser, since the server ignores a malformed one silently. */
function traceparent(text: string): string {
  if (parseTraceParent(text) === null) {
    throw new UsageError(
      `--traceparent must be a W3C traceparent such as 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01, got "${text}"`,
    );
  }
  return text;
}

function oneOf<T extends string>(
  flag: string,
  text: string,
  allowed: readonly T[],
): T {
  if (!isOneOf(text, allowed)) {
    throw new UsageError(
      `${flag} must be one of ${allowed.join(", ")}, got "${text}"`,
    );
  }
  return text;
}

function isOneOf<T extends string>(
  text: string,
  allowed: readonly T[],
): text is T {
  return (allowed as readonly string[]).includes(text);
}
