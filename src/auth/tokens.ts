/**
 * Bearer tokens: JWTs (RFC 7519) verified with jose against the key set, the
 * expected issuer and audience, the accepted algorithms and a clock
 * tolerance, and remembered once verified, so that the calls of a client
 * that sends the same token again (every call on its connection, usually)
 * cost a lookup instead of a signature check.
 *
 * A remembered token is forgotten when it expires, or after `rememberMs`,
 * whichever comes first: never later than the token itself, and a key
 * removed from the issuer's set stops being trusted within minutes.
 */
import type { ConnectError } from "@connectrpc/connect";
import {
  errors,
  type JWTPayload,
  type JWTVerifyOptions,
  jwtVerify,
} from "jose";
import type { Logger } from "pino";
import {
  type AuthFailureReason,
  authFailure,
  authFailureReason,
} from "./failure.js";
import type { KeyResolver } from "./key-set.js";
import type { VerifiedToken } from "./principal.js";

/** What a token must be, as the configuration says (src/config.ts). */
export interface TokenRules {
  /** The issuer a token must name (`iss`). */
  readonly issuer: string;
  /** The audiences a token may name (`aud`): any one of them. */
  readonly audience: readonly string[];
  /** The algorithms accepted; asymmetric only, so never `none` nor HMAC (config.ts refuses them). */
  readonly algorithms: readonly string[];
  /** How far the clocks of the issuer and this server may disagree, in milliseconds. */
  readonly clockToleranceMs: number;
}

/** How long a verified token is remembered at most, in milliseconds. */
const rememberMs = 5 * 60_000;

/**
 * How many verified tokens are remembered at most: a bound on memory a
 * client with many valid tokens cannot exceed. Longer tokens are verified
 * every time rather than remembered (about 16 MB at most, then).
 */
const rememberedTokens = 4096;
const rememberedLength = 4096;

/** Verifies bearer tokens, remembering those that passed until they expire. */
export class TokenVerifier {
  readonly #keys: KeyResolver;
  readonly #options: JWTVerifyOptions;
  readonly #logger: Logger;
  readonly #verified = new Map<
    string,
    { token: VerifiedToken; until: number }
  >();
  /** Verifications in progress, by token: at most one per token. */
  readonly #verifying = new Map<string, Promise<VerifiedToken>>();

  constructor(rules: TokenRules, keys: KeyResolver, logger: Logger) {
    this.#keys = keys;
    this.#logger = logger;
    this.#options = {
      issuer: rules.issuer,
      audience: [...rules.audience],
      algorithms: [...rules.algorithms],
      // jose counts in seconds.
      clockTolerance: rules.clockToleranceMs / 1000,
      // An access token has both (RFC 9068 section 2.2): a token that never
      // expires, or names no one, is not accepted.
      requiredClaims: ["exp", "sub"],
    };
  }

  /**
   * The verified token, at once when it was verified before; a promise
   * otherwise. Fails with an auth failure (src/auth/failure.ts).
   */
  verify(jwt: string): VerifiedToken | Promise<VerifiedToken> {
    const known = this.#verified.get(jwt);
    if (known !== undefined) {
      if (Date.now() < known.until) return known.token;
      this.#verified.delete(jwt);
    }
    // The calls a client starts at once with a new token (a connection's
    // first burst) share one verification.
    let pending = this.#verifying.get(jwt);
    if (pending === undefined) {
      pending = jwtVerify(jwt, this.#keys, this.#options)
        .then(
          ({ payload }) => this.#remember(jwt, payload),
          (e: unknown) => {
            throw this.#failure(e);
          },
        )
        .finally(() => this.#verifying.delete(jwt));
      this.#verifying.set(jwt, pending);
    }
    return pending;
  }

  #remember(jwt: string, payload: JWTPayload): VerifiedToken {
    const expiresAt = (payload.exp ?? 0) * 1000;
    const token: VerifiedToken = {
      subject: payload.sub ?? "",
      scopes: scopesOf(payload),
      claims: payload,
      expiresAt,
    };
    const until = Math.min(expiresAt, Date.now() + rememberMs);
    if (jwt.length <= rememberedLength && until > Date.now()) {
      if (this.#verified.size >= rememberedTokens) this.#forgetOldest();
      this.#verified.set(jwt, { token, until });
    }
    return token;
  }

  /** Drop what has expired; if nothing has, the token remembered first. */
  #forgetOldest(): void {
    const now = Date.now();
    for (const [jwt, entry] of this.#verified) {
      if (entry.until <= now) this.#verified.delete(jwt);
    }
    if (this.#verified.size >= rememberedTokens) {
      const first = this.#verified.keys().next();
      if (first.done !== true) this.#verified.delete(first.value);
    }
  }

  #failure(e: unknown) {
    const known = failureOf(e);
    if (known !== undefined) return known;
    // Not a verdict on the token: something of the server's own (a key it
    // cannot import, say). Logged without the token.
    this.#logger.warn(
      { err: { message: (e as Error).message } },
      "a bearer token could not be verified",
    );
    return authFailure("malformed", "the bearer token cannot be verified");
  }
}

/** The failure a verification error of jose's stands for; undefined for an error of another kind. */
function failureOf(e: unknown) {
  const fail = (reason: AuthFailureReason, message: string) =>
    authFailure(reason, message);
  if (e instanceof errors.JWTExpired) {
    return fail("expired", "the bearer token has expired");
  }
  if (e instanceof errors.JWTClaimValidationFailed) {
    switch (e.claim) {
      case "nbf":
        return fail("not_yet_valid", "the bearer token is not valid yet");
      case "iss":
        return fail("wrong_issuer", "the bearer token is from another issuer");
      case "aud":
        return fail(
          "wrong_audience",
          "the bearer token is meant for another audience",
        );
      default:
        return fail(
          "malformed",
          `the bearer token lacks a valid "${e.claim}" claim`,
        );
    }
  }
  if (
    e instanceof errors.JOSEAlgNotAllowed ||
    e instanceof errors.JOSENotSupported
  ) {
    return fail(
      "bad_signature",
      "the bearer token's signing algorithm is not accepted",
    );
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return fail("bad_signature", "the bearer token's signature is not valid");
  }
  if (
    e instanceof errors.JWKSNoMatchingKey ||
    e instanceof errors.JWKSMultipleMatchingKeys
  ) {
    return fail(
      "unknown_key",
      "the bearer token is signed with a key the issuer does not list",
    );
  }
  if (e instanceof errors.JWSInvalid || e instanceof errors.JWTInvalid) {
    return fail("malformed", "the bearer token is not a valid JWT");
  }
  // Already a verdict: the key set is out of reach (src/auth/key-set.ts).
  if (authFailureReason(e) !== undefined) return e as ConnectError;
  return undefined;
}

/** A token's scopes: `scope`, space-separated (RFC 8693 section 4.2), or an `scp` array, as some issuers send. */
function scopesOf(payload: JWTPayload): ReadonlySet<string> {
  const { scope, scp } = payload as { scope?: unknown; scp?: unknown };
  if (typeof scope === "string") {
    return new Set(scope.split(" ").filter((s) => s !== ""));
  }
  if (Array.isArray(scp)) {
    return new Set(scp.filter((s): s is string => typeof s === "string"));
  }
  return new Set();
}
