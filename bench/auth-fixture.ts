import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";

/** What a server with token verification on is started with, and what its load sends. */
export interface AuthFixture {
  /** The server's settings (src/config.ts): the policy and key set files, the issuer and audience. */
  readonly env: Record<string, string>;
  /** Headers of every call: one token, so that after the first call each is a cache hit. */
  readonly headers: Record<string, string>;
}

/**
 * A key pair made for this run, its public half as a JWKS file, a policy
 * that needs a token with a scope for every Greeter method, and one token
 * valid for an hour: what "token verification on, one key, cached"
 * measures.
 */
export async function authFixture(): Promise<AuthFixture> {
  const dir = mkdtempSync(join(tmpdir(), "bench-auth-"));
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "bench", use: "sig" };
  writeFileSync(join(dir, "jwks.json"), JSON.stringify({ keys: [jwk] }));
  writeFileSync(
    join(dir, "policy.json"),
    JSON.stringify({
      methods: {
        "/grpc.health.v1.Health/*": "public",
        "/Greeter/*": { token: { scopes: ["greeter.hello"] } },
      },
    }),
  );
  const issuer = "https://issuer.bench.invalid";
  const token = await new SignJWT({ scope: "greeter.hello" })
    .setProtectedHeader({ alg: "ES256", kid: "bench" })
    .setIssuer(issuer)
    .setAudience("greeter")
    .setSubject("bench")
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(privateKey);
  return {
    env: {
      AUTH_POLICY: join(dir, "policy.json"),
      AUTH_JWKS: join(dir, "jwks.json"),
      AUTH_ISSUER: issuer,
      AUTH_AUDIENCE: "greeter",
    },
    headers: { authorization: `Bearer ${token}` },
  };
}
