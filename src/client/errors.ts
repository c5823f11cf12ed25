import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The line printed for a failed call: `error: <CODE>: <message>`, with the
 * code's gRPC name (INVALID_ARGUMENT), which Connect spells in lower case.
 */
export function errorLine(e: unknown): string {
  const err = ConnectError.from(e);
  return `error: ${codeName(err.code)}: ${err.rawMessage}`;
}

/** The gRPC name of a code: Code.InvalidArgument → "INVALID_ARGUMENT". */
export function codeName(code: Code): string {
  return Code[code].replace(/(?<=[a-z])(?=[A-Z])/g, "_").toUpperCase();
}
