/**
 * Connect's GET requests: a unary call to a method marked side-effect free
 * (`idempotency_level = NO_SIDE_EFFECTS`) with its message in the query
 * string instead of a body, so that browsers and caches may keep the reply
 * (the Connect protocol's Unary-Get-Request: `message`, `encoding`
 * proto|json, `base64=1`, `compression`, `connect=v1`). As connect's
 * protocol-connect/handler-factory.js reads them (readUnaryMessageFromQuery).
 */
import { base64Decode } from "@bufbuild/protobuf/wire";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import type { Compression } from "@connectrpc/connect/protocol";
import type { Route } from "../engine/route.js";

/** A GET's query: its message's format, and the parameters. */
export interface GetQuery {
  /** Protobuf (true) or JSON (false). */
  readonly binary: boolean;
  readonly params: URLSearchParams;
}

/**
 * The query of a GET to `route` (`query`: the request target after "?"), or
 * undefined when it is no Connect GET the route takes: a method with side
 * effects, a stream, or an encoding other than proto and json (connect
 * answers those, 405 or 415).
 */
export function getQuery(route: Route, query: string): GetQuery | undefined {
  const { method } = route.spec;
  if (
    method.methodKind !== "unary" ||
    method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS
  ) {
    return undefined;
  }
  const params = new URLSearchParams(query);
  switch (params.get("encoding")) {
    case "proto":
      return { binary: true, params };
    case "json":
      return { binary: false, params };
    default:
      return undefined;
  }
}

/** The compression a GET's message is in (`compression`), or null. */
export function getCompression(query: GetQuery): string | null {
  return query.params.get("compression");
}

/**
 * A GET's message bytes: `message` as it is (UTF-8), or base64 (standard or
 * URL alphabet) with `base64=1`, decompressed (within `readMaxBytes`) if it
 * names a compression.
 */
export async function getMessage(
  query: GetQuery,
  compression: Compression | null,
  readMaxBytes: number,
): Promise<Uint8Array> {
  const { params } = query;
  const message = params.get("message") ?? "";
  const bytes =
    params.get("base64") === "1"
      ? base64Decode(message)
      : new TextEncoder().encode(message);
  return compression === null
    ? bytes
    : compression.decompress(bytes, readMaxBytes);
}
