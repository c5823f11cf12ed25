/**
 * Who may call which method, checked for every call before its request body
 * is read: connect's `requestGate`, which connect's handlers and the
 * protocol engine both run (src/server.ts gives it to both), on every
 * protocol and HTTP version, and for streaming calls at their start.
 *
 * The method's rule (src/auth/policy.ts) says what the call needs: nothing
 * (public), a bearer token (src/auth/tokens.ts), a client certificate
 * (src/auth/peer-certificate.ts), or both, with scopes, claims or SAN
 * patterns. A call that has it gets its principal among its context values
 * (`principalKey`), where handlers, the call log and the span find it; a
 * call that does not is refused with an auth failure (src/auth/failure.ts),
 * which the call pipeline reports like any failed call (CallPipeline.gated).
 */
import type { DescMethod } from "@bufbuild/protobuf";
import {
  type ContextValues,
  createContextKey,
  type HandlerContext,
} from "@connectrpc/connect";
import {
  type Connection,
  type ConnectionSource,
  connectionKey,
} from "../calls/connection.js";
import { procedureOf } from "../calls/observer.js";
import { authFailure } from "./failure.js";
import {
  certificateFits,
  type Policy,
  type Requirement,
  tokenLacks,
} from "./policy.js";
import {
  type PeerCertificate,
  type Principal,
  principalKey,
  principalOf,
  type VerifiedToken,
} from "./principal.js";
import type { TokenVerifier } from "./tokens.js";

/**
 * The request's Authorization field values, each as sent: usually one, none
 * when absent, two or more from a client (or a proxy) that added its own.
 */
export const authorizationKey = createContextKey<readonly string[]>([], {
  description: "the request's Authorization field values",
});

/**
 * A `contextValues` function for connect's adapter and the engine: what
 * `make` gives, with the request's Authorization fields read from its raw
 * header list, where Node's header objects would have kept only the first.
 */
export function withAuthorization(
  make: (req: ConnectionSource) => ContextValues,
): (req: ConnectionSource) => ContextValues {
  return (req) => make(req).set(authorizationKey, authorizationOf(req));
}

const noFields: readonly string[] = [];

function authorizationOf(req: ConnectionSource): readonly string[] {
  const raw = req.rawHeaders;
  if (raw === undefined) return noFields;
  let fields: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    // HTTP/2 names come in lower case; HTTP/1.1's in any.
    if (name.length === 13 && name.toLowerCase() === "authorization") {
      if (fields === undefined) fields = [];
      fields.push(raw[i + 1] as string);
    }
  }
  return fields ?? noFields;
}

/** The request gate of a policy, with the verifier of its tokens (needed when a rule asks for one). */
export function authGate(
  policy: Policy,
  tokens: TokenVerifier | undefined,
): (ctx: HandlerContext) => void | Promise<void> {
  // Each method's rule, looked up once; null: the policy names it not.
  const rules = new WeakMap<DescMethod, Requirement | "public" | null>();
  const ruleOf = (method: DescMethod) => {
    let rule = rules.get(method);
    if (rule === undefined) {
      rule = policy.ruleFor(procedureOf(method).path) ?? null;
      rules.set(method, rule);
    }
    return rule;
  };
  // A token's principal, made once per verified token (without a certificate).
  const principals = new WeakMap<VerifiedToken, Principal>();
  const admit = (
    values: ContextValues,
    rule: Requirement,
    token: VerifiedToken | undefined,
    certificate: PeerCertificate | undefined,
  ): void => {
    let principal: Principal | undefined;
    if (certificate === undefined && token !== undefined) {
      principal = principals.get(token);
      if (principal === undefined) {
        principal = principalOf(token, undefined);
        principals.set(token, principal);
      }
    } else {
      principal = principalOf(token, certificate);
    }
    // Known before the rights are checked, so that a refusal's log line
    // names who was refused.
    values.set(principalKey, principal);
    if (rule.token !== undefined && token !== undefined) {
      const lacks = tokenLacks(token, rule.token);
      if (lacks !== undefined) {
        throw authFailure("forbidden", `the bearer token lacks ${lacks}`);
      }
    }
    if (
      rule.certificate !== undefined &&
      certificate !== undefined &&
      !certificateFits(certificate, rule.certificate.san)
    ) {
      throw authFailure(
        "forbidden",
        "the client certificate names no identity this method allows",
      );
    }
  };
  return (ctx) => {
    const rule = ruleOf(ctx.method);
    if (rule === "public") return;
    if (rule === null) {
      throw authFailure(
        "forbidden",
        "the access policy allows no one to call this method",
      );
    }
    const values = ctx.values;
    const certificate =
      rule.certificate === undefined
        ? undefined
        : verifiedCertificate(values.get(connectionKey));
    if (rule.token === undefined) {
      admit(values, rule, undefined, certificate);
      return;
    }
    if (tokens === undefined) {
      throw new Error("a rule needs a token, and no key set is configured");
    }
    const verified = tokens.verify(bearerToken(values.get(authorizationKey)));
    if (verified instanceof Promise) {
      return verified.then((token) => admit(values, rule, token, certificate));
    }
    admit(values, rule, verified, certificate);
    return;
  };
}

/** The certificate the connection's TLS handshake verified, or the failure of its absence. */
function verifiedCertificate(
  connection: Connection | undefined,
): PeerCertificate {
  const client = connection?.clientCertificate;
  if (client?.certificate !== undefined) return client.certificate;
  const problem = client?.problem ?? "missing";
  throw authFailure(
    problem,
    problem === "missing"
      ? "this method needs a client certificate"
      : problem === "untrusted"
        ? "the client certificate is not issued by a trusted CA"
        : problem === "expired"
          ? "the client certificate has expired"
          : "the client certificate is not valid yet",
  );
}

/** The token of the one Authorization field, `Bearer <token>` (RFC 6750 section 2.1; the scheme in any case). */
function bearerToken(fields: readonly string[]): string {
  if (fields.length === 0) {
    throw authFailure("missing", "this method needs a bearer token");
  }
  if (fields.length > 1) {
    throw authFailure(
      "malformed",
      "the request has more than one Authorization header",
    );
  }
  const field = (fields[0] as string).trim();
  const space = field.indexOf(" ");
  const token = space < 0 ? "" : field.slice(space + 1).trim();
  if (
    space < 0 ||
    field.slice(0, space).toLowerCase() !== "bearer" ||
    token === ""
  ) {
    throw authFailure(
      "malformed",
      'the Authorization header must be "Bearer <token>"',
    );
  }
  return token;
}
