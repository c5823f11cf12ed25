import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from "jose";

/** The issuer and audience the tests' servers expect. */
export const testIssuer = "https://issuer.test";
export const testAudience = "greeter";

/**
 * A token issuer of a test's own, with jose: a key pair (the private half
 * stays here), its public key as a JWKS entry, and tokens it signs.
 */
export class TestIssuer {
  private constructor(
    readonly kid: string,
    readonly alg: string,
    private readonly privateKey: CryptoKey,
    readonly publicKey: CryptoKey,
    readonly jwk: JWK,
  ) {}

  static async create(kid: string, alg = "ES256"): Promise<TestIssuer> {
    const { publicKey, privateKey } = await generateKeyPair(alg, {
      extractable: true,
    });
    const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
    return new TestIssuer(kid, alg, privateKey, publicKey, jwk);
  }

  /** The public key in PEM (SPKI), as a key-confusion attacker would take it. */
  publicPem(): Promise<string> {
    return exportSPKI(this.publicKey);
  }

  /**
   * A token for `sub`, valid for five minutes from now unless `claims` say
   * otherwise (exp, nbf, iss, aud: undefined drops the claim).
   */
  async mint(
    claims: JWTPayload & { sub?: string } = {},
    header: { kid?: string } = {},
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const payload: JWTPayload = {
      iss: testIssuer,
      aud: testAudience,
      sub: "alice",
      iat: now,
      exp: now + 300,
      ...claims,
    };
    for (const key of Object.keys(payload)) {
      if (payload[key] === undefined) delete payload[key];
    }
    return new SignJWT(payload)
      .setProtectedHeader({ alg: this.alg, kid: header.kid ?? this.kid })
      .sign(this.privateKey);
  }
}

/** A JSON Web Key Set of these issuers' public keys. */
export function jwksOf(...issuers: TestIssuer[]): { keys: JWK[] } {
  return { keys: issuers.map((i) => i.jwk) };
}

/** A compact JWT of `header` and `payload` and the signature bytes given: for tokens no library would sign. */
export function rawJwt(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  signature = "",
): string {
  const part = (o: unknown) =>
    Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part(header)}.${part(payload)}.${signature}`;
}
