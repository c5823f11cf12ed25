import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, type TestContext, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Greeter } from "../gen/helloworld_pb.js";
import { page } from "../src/http/page.js";
import { buildWeb } from "../web/build.js";
import { startTestServer } from "./support/server.js";

/** A page built into a folder of its own, so these tests do not depend on dist/web. */
let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), "greeter-page-"));
  await buildWeb(root);
});
after(() => rm(root, { recursive: true, force: true }));

/** Serve the page from `pageRoot` on a real socket; whatever it passes on gets 418 "next". */
async function servePage(t: TestContext, pageRoot = root): Promise<string> {
  const server = http.createServer(
    page({ root: pageRoot })((_req, res) => {
      res.writeHead(418, { "content-type": "text/plain" });
      res.end("next");
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP/1.1 request, with the path sent exactly as given (fetch would normalise it). */
function request(
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, {
      method: options.method ?? "GET",
      headers: options.headers,
      path,
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
        }),
      );
    });
    req.end();
  });
}

/** The hashed asset paths index.html refers to. */
async function assetPaths(): Promise<{ js: string; css: string }> {
  const html = await readFile(join(root, "index.html"), "utf8");
  const js = /src="(\/assets\/main-[\w-]+\.js)"/.exec(html)?.[1];
  const css = /href="(\/assets\/style-[\w-]+\.css)"/.exec(html)?.[1];
  assert.ok(js && css, "index.html refers to the hashed script and style");
  return { js, css };
}

test("GET / serves index.html as HTML that is revalidated, with nosniff and a content security policy", async (t) => {
  const base = await servePage(t);
  const res = await request(base, "/?from=bookmark");
  assert.equal(res.status, 200);
  assert.equal(res.headers["content-type"], "text/html; charset=utf-8");
  assert.equal(res.headers["cache-control"], "no-cache");
  assert.equal(res.headers["x-content-type-options"], "nosniff");
  assert.match(
    String(res.headers["content-security-policy"]),
    /default-src 'none'/,
  );
  assert.match(res.headers.etag ?? "", /^W\/"[\w-]+"$/);
  assert.deepEqual(res.body, await readFile(join(root, "index.html")));
  assert.equal(res.headers["content-length"], String(res.body.length));
});

test("the page's script, style and source maps have their content types and are cached for a year", async (t) => {
  const base = await servePage(t);
  const { js, css } = await assetPaths();
  for (const [path, type] of [
    [js, "text/javascript; charset=utf-8"],
    [css, "text/css; charset=utf-8"],
    [`${js}.map`, "application/json; charset=utf-8"],
  ] as const) {
    const res = await request(base, path);
    assert.equal(res.status, 200, path);
    assert.equal(res.headers["content-type"], type, path);
    assert.equal(
      res.headers["cache-control"],
      "public, max-age=31536000, immutable",
      path,
    );
    assert.equal(res.headers["x-content-type-options"], "nosniff", path);
    assert.deepEqual(res.body, await readFile(join(root, path)), path);
  }
});

test("assets are gzipped for clients that accept gzip, and only for them", async (t) => {
  const base = await servePage(t);
  const { js } = await assetPaths();
  const file = await readFile(join(root, js));
  const gzipped = await request(base, js, {
    headers: { "accept-encoding": "br, gzip;q=0.8" },
  });
  assert.equal(gzipped.headers["content-encoding"], "gzip");
  assert.equal(gzipped.headers.vary, "accept-encoding");
  assert.ok(gzipped.body.length < file.length);
  assert.deepEqual(gunzipSync(gzipped.body), file);
  for (const acceptEncoding of [undefined, "gzip;q=0", "br"]) {
    const plain = await request(base, js, {
      headers: acceptEncoding ? { "accept-encoding": acceptEncoding } : {},
    });
    assert.equal(plain.headers["content-encoding"], undefined, acceptEncoding);
    assert.deepEqual(plain.body, file, acceptEncoding);
  }
});

test("HEAD answers with the headers of GET and no body", async (t) => {
  const base = await servePage(t);
  const { css } = await assetPaths();
  for (const path of ["/", css, "/assets/missing.js"]) {
    const get = await request(base, path);
    const head = await request(base, path, { method: "HEAD" });
    assert.equal(head.status, get.status, path);
    for (const name of ["content-type", "content-length", "etag"]) {
      assert.equal(head.headers[name], get.headers[name], `${path} ${name}`);
    }
    assert.equal(head.body.length, 0, path);
  }
});

test("a request with a matching If-None-Match gets 304 Not Modified and no body", async (t) => {
  const base = await servePage(t);
  const first = await request(base, "/");
  const etag = first.headers.etag ?? "";
  const again = await request(base, "/", {
    headers: { "if-none-match": `W/"other", ${etag}` },
  });
  assert.equal(again.status, 304);
  assert.equal(again.headers.etag, etag);
  assert.equal(again.headers["cache-control"], "no-cache");
  assert.equal(again.body.length, 0);
  const changed = await request(base, "/", {
    headers: { "if-none-match": 'W/"other"' },
  });
  assert.equal(changed.status, 200);
});

test("unknown assets and paths that climb out of the page's folder are 404", async (t) => {
  const base = await servePage(t);
  for (const path of [
    "/assets/missing.js",
    "/assets/",
    "/assets/../index.html",
    "/assets/../../package.json",
    "/assets/%2e%2e/index.html",
  ]) {
    const res = await request(base, path);
    assert.equal(res.status, 404, path);
    assert.equal(res.headers["x-content-type-options"], "nosniff", path);
    assert.equal(res.body.toString(), "404 Not Found\n", path);
  }
});

test("other methods and other paths go on to the next handler", async (t) => {
  const base = await servePage(t);
  const { js } = await assetPaths();
  for (const [method, path] of [
    ["POST", "/"],
    ["PUT", js],
    ["OPTIONS", "/"],
    ["GET", "/index.html"],
    ["GET", "/Greeter/SayHello"],
    ["GET", "/favicon.ico"],
  ] as const) {
    const res = await request(base, path, { method });
    assert.equal(res.status, 418, `${method} ${path}`);
    assert.equal(res.body.toString(), "next", `${method} ${path}`);
  }
});

test("before the page is built, GET / answers 503 with the command that builds it, and serves it once built", async (t) => {
  const empty = await mkdtemp(join(tmpdir(), "greeter-page-unbuilt-"));
  t.after(() => rm(empty, { recursive: true, force: true }));
  const base = await servePage(t, empty);
  const res = await request(base, "/");
  assert.equal(res.status, 503);
  assert.equal(res.headers["content-type"], "text/plain; charset=utf-8");
  assert.equal(res.headers["cache-control"], "no-store");
  assert.equal(
    res.body.toString(),
    "The browser page has not been built: run `npm run build:web`, then reload.\n",
  );
  assert.equal((await request(base, "/assets/main.js")).status, 404);
  // No restart needed: the next request after a build finds the page.
  await buildWeb(empty);
  const built = await request(base, "/");
  assert.equal(built.status, 200);
  assert.deepEqual(built.body, await readFile(join(empty, "index.html")));
});

test("the server serves the page before its RPC fallback and leaves Connect and gRPC routes alone", async (t) => {
  const server = await startTestServer(t);
  const page = await request(server.url, "/");
  assert.equal(
    page.status,
    200,
    "GET / on the server serves dist/web (run `npm run build:web`)",
  );
  assert.equal(page.headers["content-type"], "text/html; charset=utf-8");

  // Connect over HTTP/1.1, to a route and to no route.
  const json = { "content-type": "application/json" };
  const hello = await fetch(`${server.url}/Greeter/SayHello`, {
    method: "POST",
    headers: json,
    body: JSON.stringify({ name: "Ada" }),
  });
  assert.deepEqual(await hello.json(), { message: "Hello, Ada!" });
  for (const path of ["/", "/Greeter/Nope", "/assets/x.js"]) {
    const res = await fetch(`${server.url}${path}`, {
      method: "POST",
      headers: json,
      body: "{}",
    });
    assert.equal(res.status, 404, path);
    assert.equal(
      ((await res.json()) as { code: string }).code,
      "unimplemented",
    );
  }
  // A GET of a method path is the router's to answer, not the page's: a
  // method with side effects refuses it, and a side-effect-free one needs
  // the Connect GET's query.
  assert.equal((await request(server.url, "/Greeter/StreamHello")).status, 405);
  assert.equal((await request(server.url, "/Greeter/SayHello")).status, 415);

  // gRPC over HTTP/2, and the page over HTTP/2 too.
  const client = createClient(
    Greeter,
    createGrpcTransport({ baseUrl: server.url }),
  );
  assert.equal((await client.sayHello({ name: "Ada" })).message, "Hello, Ada!");
  const session = http2.connect(server.url);
  t.after(() => session.close());
  const h2 = (headers: http2.OutgoingHttpHeaders) =>
    new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const stream = session.request(headers);
      stream.on("response", resolve);
      stream.on("error", reject);
      stream.resume();
      stream.end();
    });
  const unknown = await h2({
    ":method": "POST",
    ":path": "/",
    "content-type": "application/grpc",
    te: "trailers",
  });
  assert.equal(unknown[":status"], 200);
  assert.equal(unknown["grpc-status"], "12");
  const overH2 = await h2({ ":method": "GET", ":path": "/" });
  assert.equal(overH2[":status"], 200);
  assert.equal(overH2["content-type"], "text/html; charset=utf-8");
});
