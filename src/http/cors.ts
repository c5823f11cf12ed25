import { cors as connectCors } from "@connectrpc/connect";
import type { Middleware } from "./middleware.js";

/**
 * The request headers a browser may send cross-origin: Connect's protocols'
 * own, and Authorization, which carries a bearer token (src/auth/) and which
 * a browser sends to another origin only when the preflight allows it.
 */
const allowedHeaders = [...connectCors.allowedHeaders, "Authorization"].join(
  ", ",
);

/** How long a browser may cache a preflight answer, in seconds (as connectrpc.com/cors recommends). */
export const corsMaxAgeSeconds = 7200;

/**
 * Which browsers on other origins may call the server with the Connect and
 * gRPC-Web protocols, and the headers that say so: "*" allows any origin, an
 * empty list none. One policy for every answer: the engine's
 * (src/engine/engine.ts) and the HTTP chain's (`cors`, below).
 */
export class CorsPolicy {
  readonly #anyOrigin: boolean;
  readonly #allowed: ReadonlySet<string>;
  readonly #off: boolean;
  /** The headers of an answer to a request without Origin, or from an origin not allowed. */
  readonly #notAllowed: Readonly<Record<string, string>> | undefined;

  constructor(origins: readonly string[]) {
    this.#off = origins.length === 0;
    this.#anyOrigin = origins.includes("*");
    this.#allowed = new Set(origins.map((o) => o.toLowerCase()));
    // The answer depends on Origin unless every origin gets the same one;
    // say so, or a cache could hand one origin's answer to another.
    this.#notAllowed =
      this.#off || this.#anyOrigin ? undefined : { vary: "Origin" };
  }

  #isAllowed(origin: string): boolean {
    return this.#anyOrigin || this.#allowed.has(origin.toLowerCase());
  }

  /**
   * The CORS headers of an answer to a request with this Origin header
   * (undefined: none): Access-Control-Allow-Origin and the headers a browser
   * client must read (grpc-status, grpc-message, ...) for an allowed origin.
   */
  responseHeaders(
    origin: string | undefined,
  ): Readonly<Record<string, string>> | undefined {
    if (this.#off) return undefined;
    if (origin === undefined || !this.#isAllowed(origin)) {
      return this.#notAllowed;
    }
    return {
      ...this.#notAllowed,
      "access-control-allow-origin": this.#anyOrigin ? "*" : origin,
      "access-control-expose-headers": connectCors.exposedHeaders.join(", "),
    };
  }

  /**
   * The answer to a preflight request (OPTIONS with Origin and
   * Access-Control-Request-Method), or undefined for any other request: with
   * the methods and headers Connect's protocols need (`cors` from
   * @connectrpc/connect) for an allowed origin, with no CORS header for any
   * other, which the browser reads as a refusal.
   */
  preflight(
    method: string | undefined,
    origin: string | undefined,
    requestMethod: string | undefined,
  ): Record<string, string> | undefined {
    if (
      this.#off ||
      method !== "OPTIONS" ||
      origin === undefined ||
      requestMethod === undefined
    ) {
      return undefined;
    }
    const headers: Record<string, string> = {
      vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    };
    if (this.#isAllowed(origin)) {
      headers["access-control-allow-origin"] = this.#anyOrigin ? "*" : origin;
      headers["access-control-allow-methods"] =
        connectCors.allowedMethods.join(", ");
      headers["access-control-allow-headers"] = allowedHeaders;
      headers["access-control-max-age"] = String(corsMaxAgeSeconds);
    }
    return headers;
  }
}

/**
 * The HTTP chain's step for CORS (`policy`): preflights answered with 204,
 * and every other answer given the policy's headers.
 */
export function cors(policy: CorsPolicy): Middleware {
  return (next) => (req, res) => {
    const origin = req.headers.origin;
    const preflight = policy.preflight(
      req.method,
      origin,
      req.headers["access-control-request-method"],
    );
    if (preflight !== undefined) {
      res.writeHead(204, preflight);
      res.end();
      return;
    }
    const headers = policy.responseHeaders(origin);
    if (headers !== undefined) {
      for (const [name, value] of Object.entries(headers)) {
        res.setHeader(name, value);
      }
    }
    next(req, res);
  };
}
