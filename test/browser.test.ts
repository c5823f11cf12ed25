import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { Browser, Page } from "playwright-core";
import type { RunningServer } from "../src/server.js";
import { streamHelloCount } from "../src/services/greeter.js";
import type { Seen as GrpcWebSeen } from "./browser/grpc-web-page.js";
import { authSettings } from "./support/auth.js";
import { launchChromium, withBrowserPage } from "./support/browser.js";
import { oddGreeter, oddMessage } from "./support/error-message.js";
import { LogCapture } from "./support/log-capture.js";
import { startTestServer } from "./support/server.js";
import { jwksOf, TestIssuer } from "./support/tokens.js";

// These tests need the built page (npm test runs `npm run build:web` first).

/** What the watcher saw happen on the page, stamped with performance.now(). */
type Seen =
  | { at: number; kind: "reply"; text: string; cancelEnabled: boolean }
  | { at: number; kind: "state"; state: string };

declare global {
  interface Window {
    watch: { seen: Seen[]; reset(): void };
  }
}

/**
 * Runs in the page before its own script: a MutationObserver that stamps
 * each reply as it is added to the list, and each change of the form's
 * state, so a test can tell replies that streamed from replies that came at once.
 */
function installWatcher(): void {
  const watch = {
    seen: [] as Seen[],
    reset() {
      watch.seen = [];
    },
  };
  window.watch = watch;
  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("call") as HTMLFormElement;
    const cancel = document.getElementById("cancel") as HTMLButtonElement;
    new MutationObserver((records) => {
      const at = performance.now();
      for (const record of records) {
        if (record.type === "attributes") {
          watch.seen.push({
            at,
            kind: "state",
            state: form.dataset.state ?? "",
          });
        }
        for (const node of record.addedNodes) {
          if (!(node instanceof HTMLLIElement)) continue;
          const text = node.querySelector(".message")?.textContent ?? "";
          watch.seen.push({
            at,
            kind: "reply",
            text,
            cancelEnabled: !cancel.disabled,
          });
        }
      }
    }).observe(document.body, {
      subtree: true,
      childList: true,
      attributeFilter: ["data-state"],
    });
  });
}

const protocols = [
  {
    name: "Connect",
    unary: /^application\/json/,
    stream: /^application\/connect\+json/,
  },
  {
    name: "gRPC-Web",
    unary: /^application\/grpc-web\+proto/,
    stream: /^application\/grpc-web\+proto/,
  },
] as const;

let browser: Browser;
before(async () => {
  browser = await launchChromium();
});
after(() => browser?.close());

/** Open the page a server serves, with the watcher installed. */
async function open(page: Page, url: string): Promise<void> {
  await page.addInitScript(installWatcher);
  const res = await page.goto(`${url}/`);
  assert.equal(
    res?.status(),
    200,
    "GET / must serve the page (run `npm run build:web`)",
  );
}

/**
 * Fill in the form, press a button, and wait until the call has ended;
 * returns what the watcher saw and the content type the browser sent.
 */
async function call(
  page: Page,
  form: { name: string; protocol: string; method: "SayHello" | "StreamHello" },
): Promise<{ seen: Seen[]; state: string; contentType: string }> {
  await page.getByLabel("Name").fill(form.name);
  await page.getByRole("radio", { name: form.protocol }).check();
  await page.evaluate(() => window.watch.reset());
  const request = page.waitForRequest((r) =>
    r.url().endsWith(`/Greeter/${form.method}`),
  );
  await page.getByRole("button", { name: form.method, exact: true }).click();
  const contentType =
    (await (await request).allHeaders())["content-type"] ?? "";
  await page.waitForFunction(() =>
    window.watch.seen.some((s) => s.kind === "state" && s.state !== "running"),
  );
  const seen = await page.evaluate(() => window.watch.seen);
  const state = [...seen].reverse().find((s) => s.kind === "state");
  return {
    seen,
    state: state?.kind === "state" ? state.state : "",
    contentType,
  };
}

/**
 * Resolve once the server has no call running, or fail after `boundMs`:
 * shorter than the stream interval, so a handler that slept on would fail it.
 */
function stopsWithin(server: RunningServer, boundMs: number): Promise<void> {
  return Promise.race([
    server.inflight.whenIdle(),
    new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error("the stream's handler kept running")),
        boundMs,
      ).unref(),
    ),
  ]);
}

function replies(seen: Seen[]) {
  return seen.filter((s) => s.kind === "reply");
}

test("SayHello from the page greets over Connect and over gRPC-Web, on HTTP/1.1", async (t) => {
  const server = await startTestServer(t);
  await withBrowserPage(t, browser, async (page) => {
    await open(page, server.url);
    for (const protocol of protocols) {
      const { seen, state, contentType } = await call(page, {
        name: "Ada",
        protocol: protocol.name,
        method: "SayHello",
      });
      assert.equal(state, "done");
      assert.match(contentType, protocol.unary, `${protocol.name} request`);
      assert.deepEqual(
        replies(seen).map((r) => r.text),
        ["Hello, Ada!"],
      );
      assert.deepEqual(
        await page.locator("#replies .message").allTextContents(),
        ["Hello, Ada!"],
      );
      assert.match(
        (await page.getByRole("status").textContent()) ?? "",
        new RegExp(`^SayHello over ${protocol.name}: 1 reply in `),
      );
      assert.equal(await page.getByRole("alert").isVisible(), false);
    }
    const protocolsUsed = await page.evaluate(() =>
      performance
        .getEntriesByType("resource")
        .filter((e) => e.name.includes("/Greeter/"))
        .map((e) => (e as PerformanceResourceTiming).nextHopProtocol),
    );
    assert.deepEqual(protocolsUsed, ["http/1.1", "http/1.1"]);
  });
});

test("StreamHello replies appear on the page one at a time, paced by the server, over Connect and gRPC-Web", async (t) => {
  const intervalMs = 300;
  const server = await startTestServer(t, { streamIntervalMs: intervalMs });
  await withBrowserPage(t, browser, async (page) => {
    await open(page, server.url);
    for (const protocol of protocols) {
      const { seen, state, contentType } = await call(page, {
        name: "Ada",
        protocol: protocol.name,
        method: "StreamHello",
      });
      assert.equal(state, "done");
      assert.match(contentType, protocol.stream, `${protocol.name} request`);
      const shown = replies(seen);
      assert.deepEqual(
        shown.map((r) => r.text),
        Array.from(
          { length: streamHelloCount },
          (_, i) => `Hello Ada, message ${i}`,
        ),
      );
      // Shown while the call was still running, not all at its end...
      assert.equal(
        shown[0]?.cancelEnabled,
        true,
        "the first reply is shown while the stream runs",
      );
      // ...and spread out as the server paced them. Replies buffered until
      // the end would land within a few milliseconds of each other.
      const times = shown.map((r) => r.at);
      const gaps = times.slice(1).map((at, i) => at - (times[i] ?? at));
      for (const gap of gaps) {
        assert.ok(
          gap >= intervalMs / 3,
          `replies ${gaps.map(Math.round).join(", ")} ms apart`,
        );
      }
      const span = (times.at(-1) ?? 0) - (times[0] ?? 0);
      assert.ok(
        span >= 2 * intervalMs,
        `first to last reply took ${Math.round(span)} ms`,
      );
      assert.match(
        (await page.getByRole("status").textContent()) ?? "",
        new RegExp(`^StreamHello over ${protocol.name}: 5 replies in `),
      );
    }
  });
});

test("an empty name shows the server's INVALID_ARGUMENT error with its code", async (t) => {
  const server = await startTestServer(t);
  await withBrowserPage(t, browser, async (page) => {
    await open(page, server.url);
    for (const [protocol, method] of [
      ["Connect", "SayHello"],
      ["gRPC-Web", "StreamHello"],
    ] as const) {
      const { seen, state } = await call(page, { name: "", protocol, method });
      assert.equal(state, "error");
      assert.deepEqual(replies(seen), []);
      assert.equal(
        (await page.getByRole("alert").textContent()) ?? "",
        "Error INVALID_ARGUMENT (3): name is required",
        `${method} over ${protocol}`,
      );
    }
    // The next good call clears the error.
    await call(page, { name: "Ada", protocol: "Connect", method: "SayHello" });
    assert.equal(await page.getByRole("alert").isVisible(), false);
  });
});

test("Cancel stops a running StreamHello, on the page and on the server", async (t) => {
  // Long enough that an uncancelled handler would still be asleep when the test looks.
  const intervalMs = 10_000;
  const server = await startTestServer(t, { streamIntervalMs: intervalMs });
  await withBrowserPage(t, browser, async (page) => {
    await open(page, server.url);
    await page.getByLabel("Name").fill("Ada");
    const cancel = page.getByRole("button", { name: "Cancel" });
    assert.equal(await cancel.isDisabled(), true, "nothing to cancel yet");
    await page.getByRole("button", { name: "StreamHello" }).click();
    await page.locator("#replies li").first().waitFor();
    assert.equal(server.inflight.count, 1);
    await cancel.click();
    await page.locator("#call[data-state=cancelled]").waitFor();
    assert.match(
      (await page.getByRole("status").textContent()) ?? "",
      /cancelled after 1 reply\.$/,
    );
    assert.equal(await page.locator("#replies li").count(), 1);
    assert.equal(await cancel.isDisabled(), true);
    // Keyboard focus is not lost with the disabled button.
    assert.equal(
      await page.evaluate(() => document.activeElement?.id),
      "stream-hello",
    );
    // The browser closes the HTTP/1.1 connection; the handler must stop at once,
    // not sleep on until its next reply.
    await stopsWithin(server, intervalMs / 2);
  });
});

test("a new call while a stream runs cancels the stream, and only the new call is shown", async (t) => {
  const intervalMs = 10_000;
  const server = await startTestServer(t, { streamIntervalMs: intervalMs });
  await withBrowserPage(t, browser, async (page) => {
    await open(page, server.url);
    await page.getByLabel("Name").fill("Ada");
    await page.getByRole("button", { name: "StreamHello" }).click();
    await page.locator("#replies li").first().waitFor();
    const { seen, state } = await call(page, {
      name: "Bo",
      protocol: "gRPC-Web",
      method: "SayHello",
    });
    assert.equal(state, "done");
    assert.deepEqual(
      replies(seen).map((r) => r.text),
      ["Hello, Bo!"],
    );
    await stopsWithin(server, intervalMs / 2);
    // The stream's end must not overwrite what the newer call shows.
    assert.deepEqual(
      await page.locator("#replies .message").allTextContents(),
      ["Hello, Bo!"],
    );
    assert.match(
      (await page.getByRole("status").textContent()) ?? "",
      /^SayHello over gRPC-Web: 1 reply in /,
    );
    assert.equal(
      await page.getByRole("button", { name: "Cancel" }).isDisabled(),
      true,
    );
  });
});

test("after the server stops, a call from the page shows an error instead of hanging", async (t) => {
  const server = await startTestServer(t);
  await withBrowserPage(t, browser, async (page) => {
    await open(page, server.url);
    await server.close();
    for (const method of ["SayHello", "StreamHello"] as const) {
      const { state } = await call(page, {
        name: "Ada",
        protocol: "Connect",
        method,
      });
      assert.equal(state, "error");
      const text = (await page.getByRole("alert").textContent()) ?? "";
      assert.match(text, /^Error [A-Z_]+ \(\d+\): /);
      assert.match(text, /is it running\?/);
    }
  });
});

test("the page fits a 320-pixel screen and works from the keyboard", async (t) => {
  const server = await startTestServer(t);
  await withBrowserPage(t, browser, async (page) => {
    await page.setViewportSize({ width: 320, height: 640 });
    await open(page, server.url);
    const overflow = await page.evaluate(
      () =>
        document.documentElement.scrollWidth -
        document.documentElement.clientWidth,
    );
    assert.equal(overflow, 0, "no horizontal scrolling");
    // Enter in the name field submits with the first button, SayHello.
    await page.getByLabel("Name").focus();
    await page.keyboard.press("Control+A");
    await page.keyboard.type("Kim");
    await page.keyboard.press("Enter");
    await page.locator("#call[data-state=done]").waitFor();
    assert.deepEqual(
      await page.locator("#replies .message").allTextContents(),
      ["Hello, Kim!"],
    );
    // Tab order: name, token, protocol, SayHello, StreamHello.
    const order: (string | undefined)[] = [];
    for (let i = 0; i < 4; i++) {
      await page.keyboard.press("Tab");
      order.push(
        await page.evaluate(
          () =>
            document.activeElement?.id ||
            (document.activeElement as HTMLInputElement | null)?.value,
        ),
      );
    }
    assert.deepEqual(order, ["token", "connect", "say-hello", "stream-hello"]);
  });
});

// Google's grpc-web client (the npm package grpc-web), as a grpc-web front end
// uses it: a page on its own origin calling the server cross-origin, in the
// client's two modes, grpcwebtext (its default: application/grpc-web-text,
// the body in base64) and grpcweb (application/grpc-web+proto).

/** The page of test/browser/grpc-web-page.ts, bundled, served from an origin of its own. */
async function serveGrpcWebPage(t: TestContext): Promise<string> {
  const bundle = await build({
    entryPoints: [
      fileURLToPath(new URL("browser/grpc-web-page.ts", import.meta.url)),
    ],
    bundle: true,
    format: "iife",
    platform: "browser",
    write: false,
    logLevel: "warning",
  });
  const script = bundle.outputFiles[0]?.contents ?? new Uint8Array();
  const html =
    '<!doctype html><meta charset="utf-8"><title>grpc-web</title><script src="/page.js"></script>';
  const server = createServer((req, res) => {
    if (req.url === "/page.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(script);
    } else {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(html);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const grpcWebFormats = [
  {
    format: "text",
    mode: "grpcwebtext",
    contentType: "application/grpc-web-text",
  },
  {
    format: "binary",
    mode: "grpcweb",
    contentType: "application/grpc-web+proto",
  },
] as const;

/** Call the Greeter from the grpc-web page: `method` on `base` in `format`, with `name`. */
function grpcWebCall(
  page: Page,
  base: string,
  method: "sayHello" | "streamHello",
  format: "text" | "binary",
  name: string,
): Promise<GrpcWebSeen> {
  return page.evaluate(([m, b, f, n]) => window.greeter[m](b, f, n), [
    method,
    base,
    format,
    name,
  ] as const);
}

test("Google's grpc-web client, in grpcwebtext and grpcweb mode, calls SayHello and StreamHello from a page on another origin, over CORS; grpcwebtext shows each reply as it comes", async (t) => {
  const intervalMs = 300;
  const origin = await serveGrpcWebPage(t);
  const server = await startTestServer(t, {
    streamIntervalMs: intervalMs,
    corsOrigins: [origin],
  });
  await withBrowserPage(t, browser, async (page) => {
    const sent: string[] = [];
    page.on("request", (r) => {
      if (r.url().startsWith(`${server.url}/Greeter/`)) {
        sent.push(`${r.method()} ${r.headers()["content-type"]}`);
      }
    });
    await page.goto(`${origin}/`);
    for (const { format, mode, contentType } of grpcWebFormats) {
      const unary = await grpcWebCall(
        page,
        server.url,
        "sayHello",
        format,
        "Ada",
      );
      assert.deepEqual(
        [unary.replies.map((r) => r.message), unary.code],
        [["Hello, Ada!"], 0],
        mode,
      );
      const stream = await grpcWebCall(
        page,
        server.url,
        "streamHello",
        format,
        "Ada",
      );
      assert.deepEqual(
        [stream.replies.map((r) => r.message), stream.code],
        [
          Array.from(
            { length: streamHelloCount },
            (_, i) => `Hello Ada, message ${i}`,
          ),
          0,
        ],
        mode,
      );
      const times = stream.replies.map((r) => r.at);
      const gaps = times.slice(1).map((at, i) => at - (times[i] ?? at));
      const ms = gaps.map(Math.round).join(", ");
      if (format === "text") {
        // Each reply as the server sent it: the first well before the
        // stream ends, then one per interval.
        assert.ok(
          (times[0] ?? 0) - stream.startedAt < intervalMs * 2,
          `the first reply came ${Math.round((times[0] ?? 0) - stream.startedAt)} ms in`,
        );
        for (const gap of gaps) {
          assert.ok(gap >= intervalMs / 3, `${mode}: replies ${ms} ms apart`);
        }
      } else {
        // grpcweb reads the response as an ArrayBuffer, which XMLHttpRequest
        // gives only once it is complete: every reply at the stream's end.
        assert.ok(
          (times[0] ?? 0) - stream.startedAt >= (intervalMs * 4 * 2) / 3,
          `${mode}: the first reply came ${Math.round((times[0] ?? 0) - stream.startedAt)} ms in`,
        );
        for (const gap of gaps) {
          assert.ok(gap < intervalMs / 3, `${mode}: replies ${ms} ms apart`);
        }
      }
      assert.deepEqual(sent.splice(0), [
        `POST ${contentType}`,
        `POST ${contentType}`,
      ]);
    }
    assert.equal(server.engine.calls, 4);
  });
});

test("Google's grpc-web client reads the server's errors in both modes, messages with ':', ',', '/', '%' and text beyond ASCII too, and is refused from an origin the server does not allow", async (t) => {
  const origin = await serveGrpcWebPage(t);
  const server = await startTestServer(t, { corsOrigins: [origin] });
  const odd = await startTestServer(t, {
    corsOrigins: [origin],
    routes: oddGreeter,
  });
  const closed = await startTestServer(t);
  await withBrowserPage(t, browser, async (page) => {
    await page.goto(`${origin}/`);
    for (const { format, mode } of grpcWebFormats) {
      for (const method of ["sayHello", "streamHello"] as const) {
        const empty = await grpcWebCall(page, server.url, method, format, "");
        assert.deepEqual(
          [empty.code, empty.message],
          [3, "name is required"],
          `${method} in ${mode}`,
        );
      }
      const failed = await grpcWebCall(page, odd.url, "sayHello", format, "A");
      assert.deepEqual([failed.code, failed.message], [10, oddMessage], mode);
      const refused = await grpcWebCall(
        page,
        closed.url,
        "sayHello",
        format,
        "Ada",
      );
      assert.deepEqual(refused.replies, [], mode);
      assert.notEqual(refused.code, 0, mode);
    }
    // The browser asked, and was told no: nothing reached the Greeter.
    assert.equal(closed.engine.calls, 0);
  });
});

test("a browser keeps a SayHello fetched by Connect GET, by the reply's Cache-Control, and answers the same GET again without the server", async (t) => {
  const server = await startTestServer(t);
  await withBrowserPage(t, browser, async (page) => {
    await open(page, server.url);
    const query = new URLSearchParams({
      encoding: "json",
      message: '{"name":"Ada"}',
    });
    const url = `${server.url}/Greeter/SayHello?${query}`;
    const fetched = await page.evaluate(async (u) => {
      const replies = [];
      for (let i = 0; i < 2; i++) {
        const res = await fetch(u);
        replies.push({ status: res.status, body: await res.text() });
      }
      const timing = performance.getEntriesByName(
        u,
      ) as PerformanceResourceTiming[];
      return { replies, transferred: timing.map((e) => e.transferSize) };
    }, url);
    assert.deepEqual(fetched.replies, [
      { status: 200, body: '{"message":"Hello, Ada!"}' },
      { status: 200, body: '{"message":"Hello, Ada!"}' },
    ]);
    // The second came from the browser's cache: nothing went over the wire,
    // and the server served one call.
    assert.equal(fetched.transferred.length, 2);
    assert.ok((fetched.transferred[0] ?? 0) > 0);
    assert.equal(fetched.transferred[1], 0);
    assert.equal(server.engine.calls, 1);
  });
});

test("with authentication on, the page sends the token field as a bearer token: without one it shows UNAUTHENTICATED, with one the greeting and the principal in the server's log", async (t) => {
  const issuer = await TestIssuer.create("key-1");
  const log = new LogCapture();
  const server = await startTestServer(t, {
    ...(await authSettings(t, {
      methods: {
        "/Greeter/SayHello": { token: true },
        "/Greeter/StreamHello": { token: true },
      },
      jwks: jwksOf(issuer),
    })),
    logLevel: "info",
    logDestination: log.destination,
  });
  const token = await issuer.mint({ sub: "page-user" });
  await withBrowserPage(t, browser, async (page) => {
    await open(page, server.url);
    for (const protocol of ["Connect", "gRPC-Web"]) {
      await page.getByLabel("Token").fill("");
      const refused = await call(page, {
        name: "Ada",
        protocol,
        method: "SayHello",
      });
      assert.equal(refused.state, "error");
      assert.equal(
        (await page.getByRole("alert").textContent()) ?? "",
        "Error UNAUTHENTICATED (16): this method needs a bearer token",
        protocol,
      );
      await page.getByLabel("Token").fill(token);
      const sent = page.waitForRequest((r) =>
        r.url().endsWith("/Greeter/StreamHello"),
      );
      const served = await call(page, {
        name: "Ada",
        protocol,
        method: "StreamHello",
      });
      assert.equal(
        (await (await sent).allHeaders()).authorization,
        `Bearer ${token}`,
      );
      assert.equal(served.state, "done", protocol);
      assert.equal(replies(served.seen).length, streamHelloCount);
    }
  });
  const served = log.calls().filter((l) => l.code === "ok");
  assert.deepEqual(
    served.map((l) => [l.procedure, l.principal]),
    [
      ["/Greeter/StreamHello", "page-user"],
      ["/Greeter/StreamHello", "page-user"],
    ],
  );
});
