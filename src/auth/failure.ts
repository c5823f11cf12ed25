import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Why a call was refused: the fixed set of values of the auth failures
 * metric's `reason` label. Never anything the client sent, so the label has
 * no more values than these.
 */
export const authFailureReasons = [
  /** No credential where the method needs one: no token, or no client certificate. */
  "missing",
  /** A credential that cannot be read: not `Bearer`, two Authorization fields, not a JWT, a required claim absent. */
  "malformed",
  /** A token past its `exp`, or a client certificate past its validity. */
  "expired",
  /** A token before its `nbf`, or a client certificate not valid yet. */
  "not_yet_valid",
  /** A signature that does not verify, or an algorithm not accepted (`none`, HMAC). */
  "bad_signature",
  /** A token from another issuer. */
  "wrong_issuer",
  /** A token for another audience. */
  "wrong_audience",
  /** A token signed by a key the key set does not have (its `kid`). */
  "unknown_key",
  /** A client certificate that does not chain to the client CA (TLS_CLIENT_AUTH=optional). */
  "untrusted",
  /** Valid credentials without the right: a scope, a claim, a SAN, or a method the policy does not name. */
  "forbidden",
  /** The token's keys could not be fetched: the call may succeed later. */
  "unavailable",
] as const;

/** A reason a call was refused. */
export type AuthFailureReason = (typeof authFailureReasons)[number];

/**
 * A refusal: the error the client gets, remembered with the reason it is
 * counted under. UNAUTHENTICATED (Connect: HTTP 401) for a missing or bad
 * credential, PERMISSION_DENIED (403) for a good one without the right,
 * UNAVAILABLE (503) when the keys to check it are out of reach.
 *
 * A plain ConnectError, not a subclass: connect recognises its errors by
 * name (ConnectError's Symbol.hasInstance), and would answer a subclass's
 * as an internal error.
 */
export function authFailure(
  reason: AuthFailureReason,
  message: string,
): ConnectError {
  const error = new ConnectError(message, codeOf(reason));
  reasons.set(error, reason);
  return error;
}

/** The reason `error` was made for by authFailure; undefined for any other error. */
export function authFailureReason(
  error: unknown,
): AuthFailureReason | undefined {
  return typeof error === "object" && error !== null
    ? reasons.get(error)
    : undefined;
}

const reasons = new WeakMap<object, AuthFailureReason>();

function codeOf(reason: AuthFailureReason): Code {
  switch (reason) {
    case "forbidden":
      return Code.PermissionDenied;
    case "unavailable":
      return Code.Unavailable;
    default:
      return Code.Unauthenticated;
  }
}
