/**
 * Who may call which method: the policy file (AUTH_POLICY), read and checked
 * once at start. Each method, or each method of a service ("/Service/*"), is
 * public or needs a token and/or a client certificate, with the scopes,
 * claims or SAN patterns named. A method the policy does not name is denied
 * to everyone: a method added to the server stays closed until the policy
 * opens it.
 *
 * ```json
 * {
 *   "methods": {
 *     "/grpc.health.v1.Health/*": "public",
 *     "/Greeter/SayHello": { "token": { "scopes": ["greeter.hello"] } },
 *     "/Greeter/*": { "certificate": { "san": ["spiffe://example.org/ns/*\/sa/greeter"] } }
 *   }
 * }
 * ```
 */
import type { PeerCertificate, VerifiedToken } from "./principal.js";

/** A claim's wanted value: the claim equals it, or is an array that holds it. */
export type ClaimValue = string | number | boolean;

/** What a method that is not public needs. */
export interface Requirement {
  /** A verified bearer token, with these scopes and claims; undefined: no token needed. */
  readonly token:
    | {
        readonly scopes: readonly string[];
        readonly claims: Readonly<Record<string, ClaimValue>>;
      }
    | undefined;
  /** A verified client certificate, with a URI SAN matching one of `san` (if any); undefined: none needed. */
  readonly certificate: { readonly san: readonly RegExp[] } | undefined;
}

/** A method's rule: open to all, or a requirement. */
export type Rule = "public" | Requirement;

/** The whole policy, by method path and by service. */
export interface Policy {
  /** The rule of `/Service/Method`, exact first, then its service's; undefined: the method is denied. */
  ruleFor(path: string): Rule | undefined;
  /** Whether any rule needs a token (then AUTH_JWKS must be set). */
  readonly needsTokens: boolean;
  /** Whether any rule needs a client certificate (then TLS_CLIENT_CA must be set). */
  readonly needsCertificates: boolean;
}

/** A policy file that cannot be used; the message says where and why, in one line. */
export class PolicyError extends Error {
  override name = "PolicyError";
}

/** Parse a policy file's text. Throws PolicyError. */
export function parsePolicy(text: string): Policy {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new PolicyError(`not JSON: ${(e as Error).message}`);
  }
  const top = object(doc, "the policy");
  onlyKeys(top, ["methods"], "the policy");
  const methods = object(top.methods, '"methods"');
  const rules = new Map<string, Rule>();
  for (const [path, value] of Object.entries(methods)) {
    if (!/^\/[^/*\s]+\/([^/*\s]+|\*)$/.test(path)) {
      throw new PolicyError(
        `"${path}": a method is named "/package.Service/Method", or "/package.Service/*" for all of a service's`,
      );
    }
    rules.set(path, rule(value, `"${path}"`));
  }
  const all = [...rules.values()].filter((r) => r !== "public");
  return {
    ruleFor(path) {
      const exact = rules.get(path);
      if (exact !== undefined) return exact;
      const slash = path.lastIndexOf("/");
      return slash <= 0 ? undefined : rules.get(`${path.slice(0, slash)}/*`);
    },
    needsTokens: all.some((r) => r.token !== undefined),
    needsCertificates: all.some((r) => r.certificate !== undefined),
  };
}

/** The scopes or claims `token` lacks for `need`, as a phrase for the client; undefined when it has them all. */
export function tokenLacks(
  token: VerifiedToken,
  need: NonNullable<Requirement["token"]>,
): string | undefined {
  for (const scope of need.scopes) {
    if (!token.scopes.has(scope)) return `scope ${scope}`;
  }
  for (const [name, wanted] of Object.entries(need.claims)) {
    const value = token.claims[name];
    const holds = Array.isArray(value)
      ? value.includes(wanted)
      : value === wanted;
    if (!holds) return `claim ${name}`;
  }
  return undefined;
}

/** Whether `certificate` has a URI SAN that one of `patterns` matches (any certificate, with no patterns). */
export function certificateFits(
  certificate: PeerCertificate,
  patterns: readonly RegExp[],
): boolean {
  if (patterns.length === 0) return true;
  return certificate.uris.some((uri) => patterns.some((p) => p.test(uri)));
}

/**
 * A SAN pattern as a regular expression: `*` stands for any run of
 * characters within one path segment (no "/"), everything else for itself.
 */
export function sanPattern(pattern: string): RegExp {
  const body = pattern
    .split("*")
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    .join("[^/]*");
  return new RegExp(`^${body}$`);
}

function rule(value: unknown, where: string): Rule {
  if (value === "public") return "public";
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new PolicyError(
      `${where}: a rule is "public" or an object with "token" and/or "certificate"`,
    );
  }
  const r = value as Record<string, unknown>;
  onlyKeys(r, ["token", "certificate"], where);
  const token = tokenNeed(r.token, `${where}.token`);
  const certificate = certificateNeed(r.certificate, `${where}.certificate`);
  if (token === undefined && certificate === undefined) {
    throw new PolicyError(
      `${where}: a rule needs "token" or "certificate" (say "public" for a method open to all)`,
    );
  }
  return { token, certificate };
}

function tokenNeed(value: unknown, where: string): Requirement["token"] {
  if (value === undefined || value === false) return undefined;
  if (value === true) return { scopes: [], claims: {} };
  const t = object(value, where);
  onlyKeys(t, ["scopes", "claims"], where);
  const scopes = strings(t.scopes ?? [], `${where}.scopes`);
  const claims: Record<string, ClaimValue> = {};
  for (const [name, wanted] of Object.entries(
    object(t.claims ?? {}, `${where}.claims`),
  )) {
    if (!["string", "number", "boolean"].includes(typeof wanted)) {
      throw new PolicyError(
        `${where}.claims.${name}: a claim's value is a string, a number or a boolean`,
      );
    }
    claims[name] = wanted as ClaimValue;
  }
  return { scopes, claims };
}

function certificateNeed(
  value: unknown,
  where: string,
): Requirement["certificate"] {
  if (value === undefined || value === false) return undefined;
  if (value === true) return { san: [] };
  const c = object(value, where);
  onlyKeys(c, ["san"], where);
  return { san: strings(c.san ?? [], `${where}.san`).map(sanPattern) };
}

function object(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new PolicyError(`${where} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

function strings(value: unknown, where: string): string[] {
  if (
    !Array.isArray(value) ||
    value.some((s) => typeof s !== "string" || s === "")
  ) {
    throw new PolicyError(`${where} must be an array of non-empty strings`);
  }
  return value as string[];
}

function onlyKeys(
  value: Record<string, unknown>,
  allowed: readonly string[],
  where: string,
): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new PolicyError(
        `${where}: unknown key "${key}" (expected ${allowed.map((k) => `"${k}"`).join(" or ")})`,
      );
    }
  }
}
