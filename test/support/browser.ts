import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";

/** Debian's Chromium (test/system-deps.sh installs it); no browser is downloaded. */
export const chromiumPath = "/usr/bin/chromium";

/**
 * Flags for a quiet, offline, headless Chromium: no GPU, no sandbox (tests
 * may run as root in a container), and no traffic of its own (updates, sync,
 * QUIC probes) besides what the page does.
 */
export const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
  "--no-first-run",
];

/** Launch Chromium with a fresh temporary profile. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    args: chromiumArgs,
    headless: true,
  });
}

/**
 * Run `body` with a new page in its own browser context, closed after the test.
 *
 * If `body` fails, a screenshot of the page and everything it logged are kept
 * in a new temporary folder whose path is printed, so a failure in CI can be
 * looked at. Errors the page threw and did not catch fail the test too.
 */
export async function withBrowserPage(
  t: TestContext,
  browser: Browser,
  body: (page: Page) => Promise<void>,
): Promise<void> {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  // A bound on every wait, so a broken page fails the test instead of hanging it.
  page.setDefaultTimeout(15_000);
  const log: string[] = [];
  const uncaught: Error[] = [];
  page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => {
    log.push(`uncaught: ${e.stack ?? e.message}`);
    uncaught.push(e);
  });
  try {
    await body(page);
    if (uncaught.length > 0) {
      throw new Error(
        `the page threw: ${uncaught.map((e) => e.message).join("; ")}`,
      );
    }
  } catch (e) {
    const dir = await mkdtemp(join(tmpdir(), "greeter-browser-"));
    const shot = join(dir, "page.png");
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.error(
      `browser test "${t.name}" failed; screenshot: ${shot}\n${log.join("\n")}`,
    );
    throw e;
  }
}
