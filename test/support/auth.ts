import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { type Config, loadConfig } from "../../src/config.js";
import { testAudience, testIssuer } from "./tokens.js";

/** A test's temporary directory, removed after it. */
export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "greeter-auth-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** What an authenticated test server is configured with, beyond the defaults. */
export interface AuthFiles {
  /** The policy file's content (its "methods"). */
  readonly methods: Record<string, unknown>;
  /** The key set file's content, or an https:// URL; undefined: no tokens. */
  readonly jwks?: unknown;
  /** More flags, such as --auth-clock-tolerance-ms 0. */
  readonly flags?: readonly string[];
  /** TLS on the API port: the server's certificate and key, and for mutual TLS the client CA and mode. */
  readonly tls?: {
    readonly cert: Buffer;
    readonly key: Buffer;
    readonly clientCa?: Buffer;
    readonly clientAuth?: "require" | "optional";
  };
}

/**
 * The server settings of `files`, as the server reads them from its flags
 * (src/config.ts): the policy and key set written to files of the test's
 * own, the test issuer and audience expected.
 */
export async function authSettings(
  t: TestContext,
  files: AuthFiles,
): Promise<Pick<Config, "auth" | "tls" | "tlsReloadMs">> {
  const dir = await tempDir(t);
  const policy = join(dir, "policy.json");
  await writeFile(policy, JSON.stringify({ methods: files.methods }));
  const flags = ["--auth-policy", policy, ...(files.flags ?? [])];
  if (files.tls !== undefined) {
    const { cert, key, clientCa, clientAuth } = files.tls;
    await writeFile(join(dir, "tls.crt"), cert);
    await writeFile(join(dir, "tls.key"), key);
    flags.push(
      "--tls-cert",
      join(dir, "tls.crt"),
      "--tls-key",
      join(dir, "tls.key"),
    );
    if (clientCa !== undefined) {
      await writeFile(join(dir, "ca.crt"), clientCa);
      flags.push("--tls-client-ca", join(dir, "ca.crt"));
    }
    if (clientAuth !== undefined) flags.push("--tls-client-auth", clientAuth);
  }
  if (files.jwks !== undefined) {
    let jwks: string;
    if (typeof files.jwks === "string") jwks = files.jwks;
    else {
      jwks = join(dir, "jwks.json");
      await writeFile(jwks, JSON.stringify(files.jwks));
    }
    flags.push(
      "--auth-jwks",
      jwks,
      "--auth-issuer",
      testIssuer,
      "--auth-audience",
      testAudience,
    );
  }
  const { auth, tls, tlsReloadMs } = loadConfig(flags, {});
  return { auth, tls, tlsReloadMs };
}
