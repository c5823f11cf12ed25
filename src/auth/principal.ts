import { createContextKey } from "@connectrpc/connect";

/** A client certificate the server verified against its client CA (mutual TLS). */
export interface PeerCertificate {
  /** The certificate's subject, such as "CN=billing, O=Example" (Node's X509Certificate.subject, one line). */
  readonly subject: string;
  /** Its URI subject alternative names, such as SPIFFE IDs (spiffe://example.org/ns/prod/sa/billing). */
  readonly uris: readonly string[];
}

/** A bearer token the server verified (signature, issuer, audience, time). */
export interface VerifiedToken {
  /** Its subject (`sub`), which every accepted token has. */
  readonly subject: string;
  /** Its scopes: the `scope` claim split at spaces (RFC 9068 section 2.2.3), or an `scp` array. */
  readonly scopes: ReadonlySet<string>;
  /** Every claim of its payload, for rules and handlers that need more. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** When it expires, in milliseconds since the epoch (its `exp`). */
  readonly expiresAt: number;
}

/**
 * Who made a call, as far as the server verified it: a token, a client
 * certificate, or both. Handlers read it with `ctx.values.get(principalKey)`.
 */
export interface Principal {
  /**
   * The one name logs and spans carry: the token's subject, else the
   * certificate's first URI (a SPIFFE ID), else its subject. Never a secret.
   */
  readonly id: string;
  readonly token: VerifiedToken | undefined;
  readonly certificate: PeerCertificate | undefined;
}

/**
 * Where a call finds its principal among its context values: undefined for a
 * public method, and for every call when authentication is off.
 */
export const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "who made the call, as the server verified it",
});

/** A principal of a verified token and/or certificate; at least one of them. */
export function principalOf(
  token: VerifiedToken | undefined,
  certificate: PeerCertificate | undefined,
): Principal {
  const id =
    token?.subject ?? certificate?.uris[0] ?? certificate?.subject ?? "";
  return { id, token, certificate };
}
