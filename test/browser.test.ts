import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import type { RunningServer } from "../src/server.js";
import { streamHelloCount } from "../src/services/greeter.js";
import { authSettings } from "./support/auth.js";
import { launchChromium, withBrowserPage } from "./support/browser.js";
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
