/**
 * The keys that verify bearer tokens: a JSON Web Key Set (RFC 7517) read
 * from a file at start, or fetched from an https:// URL by jose's remote key
 * set, cached, and fetched again when it grows old or a token names a key
 * it does not have (the issuer rotated its keys).
 *
 * A fetch happens at most once per `cooldownMs`, whatever the calls do: a
 * stream of tokens with made-up key ids (`kid`) cannot make the server
 * hammer the issuer, and while the issuer is down or slow, calls that need a
 * fetch fail at once with UNAVAILABLE instead of each waiting for its own
 * timeout. jose's own cooldown counts only from a successful fetch, so it is
 * set to never, and this class keeps the one clock for both.
 */
import * as https from "node:https";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  type FetchImplementation,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
} from "jose";
import type { Logger } from "pino";
import { authFailure } from "./failure.js";

/** Where the keys come from, as the configuration says (src/config.ts). */
export type KeySource =
  | {
      readonly kind: "file";
      readonly path: string;
      readonly keys: JSONWebKeySet;
    }
  | {
      readonly kind: "url";
      readonly url: URL;
      /** PEM CA bundle the server's certificate must chain to; undefined: Node's own CAs. */
      readonly ca: Buffer | undefined;
      /** Longest a fetch may take, in milliseconds. */
      readonly timeoutMs: number;
      /** Least time between two fetches, in milliseconds. */
      readonly cooldownMs: number;
      /** How long fetched keys are used before they are fetched again, in milliseconds. */
      readonly maxAgeMs: number;
    };

/** What jose's jwtVerify takes as its key: a function of the token's header. */
export type KeyResolver = (
  header: JWSHeaderParameters,
  token: FlattenedJWSInput,
) => Promise<CryptoKey>;

/** The largest key set accepted from the URL, in bytes: a few dozen keys take a few kilobytes. */
const maxKeySetBytes = 1 << 20;

/** A key set's resolver for jose, and for a URL its first fetch, started at once. */
export function keySet(source: KeySource, logger: Logger): KeyResolver {
  if (source.kind === "file") return createLocalJWKSet(source.keys);
  return new RemoteKeys(source, logger).resolve;
}

class RemoteKeys {
  readonly #remote: ReturnType<typeof createRemoteJWKSet>;
  readonly #source: Extract<KeySource, { kind: "url" }>;
  readonly #logger: Logger;
  /** When the last fetch started (performance.now() clock), and whether it failed. */
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #failed = false;

  constructor(source: Extract<KeySource, { kind: "url" }>, logger: Logger) {
    this.#source = source;
    this.#logger = logger;
    this.#remote = createRemoteJWKSet(source.url, {
      timeoutDuration: source.timeoutMs,
      // Never on jose's own: this class decides when a missing key refetches.
      cooldownDuration: Number.POSITIVE_INFINITY,
      cacheMaxAge: source.maxAgeMs,
      [customFetch]: fetchWithCa(source.ca),
    });
    // The first fetch at start, so the first call does not wait for it.
    this.#fetch().catch(() => {});
  }

  readonly resolve: KeyResolver = async (header, token) => {
    if (!this.#remote.fresh) await this.#fetch();
    try {
      return await this.#remote(header, token);
    } catch (e) {
      if (!(e instanceof errors.JWKSNoMatchingKey) || this.#coolingDown())
        throw e;
      // A key the set lacks: the issuer may have added it since.
      await this.#fetch();
      return await this.#remote(header, token);
    }
  };

  #coolingDown(): boolean {
    return performance.now() < this.#fetchedAt + this.#source.cooldownMs;
  }

  /** Fetch the set now, unless the last fetch failed within the cooldown: then fail at once. */
  async #fetch(): Promise<void> {
    if (this.#failed && this.#coolingDown()) throw unavailable();
    // A fetch in progress is shared (jose's reload); it started the clock.
    if (!this.#remote.reloading) this.#fetchedAt = performance.now();
    try {
      await this.#remote.reload();
      this.#failed = false;
    } catch (e) {
      if (!this.#failed || !this.#coolingDown()) {
        this.#logger.error(
          { jwks: this.#source.url.href, err: { message: reasonOf(e) } },
          "cannot fetch the keys that verify bearer tokens; calls that need a token fail with UNAVAILABLE until a fetch succeeds",
        );
      }
      this.#failed = true;
      throw unavailable();
    }
  }
}

function unavailable() {
  return authFailure(
    "unavailable",
    "the keys that verify bearer tokens are unavailable; try again later",
  );
}

function reasonOf(e: unknown): string {
  const error = e as Error & { cause?: Error };
  return error.cause?.message
    ? `${error.message}: ${error.cause.message}`
    : String(error.message ?? e);
}

/**
 * fetch() for jose, over node:https: with the CA bundle given (an issuer
 * behind a private CA), a bounded body, no redirects (jose asks for none),
 * and jose's timeout signal.
 */
function fetchWithCa(ca: Buffer | undefined): FetchImplementation {
  return (url, options) =>
    new Promise<Response>((resolve, reject) => {
      const req = https.get(
        url,
        {
          ca,
          signal: options.signal,
          headers: Object.fromEntries(options.headers),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.byteLength;
            if (size > maxKeySetBytes) {
              res.destroy(
                new Error(`the key set is larger than ${maxKeySetBytes} bytes`),
              );
              return;
            }
            chunks.push(chunk);
          });
          res.on("error", reject);
          res.on("end", () => {
            // jose wants a 200 with a body; anything else is its "Expected
            // 200 OK". A Response cannot carry a body with 204 or 304.
            const status = res.statusCode === 200 ? 200 : 502;
            resolve(new Response(Buffer.concat(chunks), { status }));
          });
        },
      );
      req.on("error", (e) =>
        // jose tells a timeout by its name.
        reject(options.signal.aborted ? options.signal.reason : e),
      );
    });
}
