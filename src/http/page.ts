import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { RequestHandler } from "../transport/listener.js";
import type { Middleware } from "./middleware.js";

type Request = Parameters<RequestHandler>[0];
type Response = Parameters<RequestHandler>[1];

/** Options of the browser page handler. */
export interface PageOptions {
  /**
   * Folder of the built page (`npm run build:web`): `index.html` and `assets/`.
   * @default the package's dist/web
   */
  root?: string;
}

/** One file of the page, ready to send. */
interface Asset {
  readonly body: Buffer;
  readonly gzip: Buffer | undefined;
  readonly headers: Record<string, string>;
}

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

/** The page loads only its own script and style and calls only its own origin. */
const contentSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const notBuilt =
  "The browser page has not been built: run `npm run build:web`, then reload.\n";

/**
 * Serve the browser page: GET and HEAD of `/` and of `/assets/...`; every
 * other request goes on to `next`, so RPC routes and their fallback are untouched.
 *
 * Files are read once, on the first request after the page is built, and kept
 * in memory: the page is a few files, and a map lookup cannot escape `root`.
 * Assets have content-hashed names, so they are cached for a year; index.html
 * is revalidated every time, by ETag.
 */
export function page(options: PageOptions = {}): Middleware {
  const root = options.root ?? join(packageRoot(), "dist", "web");
  let assets: Map<string, Asset> | undefined;
  return (next) => (req, res) => {
    const path = (req.url ?? "").split("?")[0] ?? "";
    const isPage = path === "/" || path.startsWith("/assets/");
    if (!isPage || (req.method !== "GET" && req.method !== "HEAD")) {
      next(req, res);
      return;
    }
    assets ??= load(root);
    const asset = assets?.get(path);
    if (asset === undefined) {
      const unbuilt = assets === undefined && path === "/";
      const text = Buffer.from(unbuilt ? notBuilt : "404 Not Found\n");
      res.writeHead(unbuilt ? 503 : 404, {
        "content-type": "text/plain; charset=utf-8",
        "content-length": String(text.length),
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      });
      end(req, res, text);
      return;
    }
    send(req, res, asset);
  };
}

/**
 * The folder of the package's package.json: src/ when run from TypeScript,
 * dist/src/ once compiled, so the page is found from either.
 */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) {
    dir = dirname(dir);
  }
  return dir;
}

function send(req: Request, res: Response, asset: Asset): void {
  const { etag, "cache-control": cacheControl } = asset.headers;
  if (etag !== undefined && matches(req.headers["if-none-match"], etag)) {
    res.writeHead(304, {
      etag,
      "cache-control": cacheControl ?? "no-cache",
      "x-content-type-options": "nosniff",
    });
    res.end();
    return;
  }
  const gzip = accepts(req.headers["accept-encoding"], "gzip")
    ? asset.gzip
    : undefined;
  const body = gzip ?? asset.body;
  res.writeHead(200, {
    ...asset.headers,
    ...(gzip ? { "content-encoding": "gzip" } : {}),
    "content-length": String(body.length),
  });
  end(req, res, body);
}

/** End a response, with its body unless the request was HEAD. */
function end(req: Request, res: Response, body: Buffer): void {
  if (req.method === "HEAD") res.end();
  else res.end(body);
}

/**
 * Read the built page, or undefined while it has not been built. The build
 * writes index.html last, so once it is there the assets are complete; any
 * read error (such as a build running now) means "not built yet", never a crash.
 */
function load(root: string): Map<string, Asset> | undefined {
  try {
    const assets = new Map<string, Asset>();
    assets.set(
      "/",
      asset(readFileSync(join(root, "index.html")), ".html", "no-cache"),
    );
    for (const name of readdirSync(join(root, "assets"))) {
      const type = extname(name);
      if (!(type in contentTypes)) continue;
      const body = readFileSync(join(root, "assets", name));
      assets.set(
        `/assets/${name}`,
        asset(body, type, "public, max-age=31536000, immutable"),
      );
    }
    return assets;
  } catch {
    return undefined;
  }
}

function asset(body: Buffer, type: string, cacheControl: string): Asset {
  // Source maps are for developers with the page open; not worth compressing.
  const compress = type !== ".map" && body.length >= 1024;
  const hash = createHash("sha256").update(body).digest("base64url");
  return {
    body,
    gzip: compress ? gzipSync(body, { level: 9 }) : undefined,
    headers: {
      "content-type": contentTypes[type] ?? "application/octet-stream",
      "cache-control": cacheControl,
      // Weak, because the gzip and identity encodings share it.
      etag: `W/"${hash.slice(0, 22)}"`,
      "x-content-type-options": "nosniff",
      ...(compress ? { vary: "accept-encoding" } : {}),
      ...(type === ".html"
        ? {
            "content-security-policy": contentSecurityPolicy,
            "referrer-policy": "no-referrer",
          }
        : {}),
    },
  };
}

/** Whether an If-None-Match header names `etag` (weak comparison, RFC 9110 13.1.2). */
function matches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, "");
  return (
    header.trim() === "*" ||
    header.split(",").some((tag) => opaque(tag) === opaque(etag))
  );
}

/** Whether an Accept-Encoding header allows `coding` (present, and not with q=0). */
function accepts(header: string | undefined, coding: string): boolean {
  for (const part of (header ?? "").split(",")) {
    const [name, ...params] = part.split(";").map((s) => s.trim());
    if (name?.toLowerCase() !== coding) continue;
    return !params.some((p) => /^q=0(\.0*)?$/i.test(p));
  }
  return false;
}
