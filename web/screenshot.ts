// Regenerates docs/page.png, docs/browser.md's picture of the page after a
// StreamHello: `npm run build:web && npx tsx web/screenshot.ts`.
import { fileURLToPath } from "node:url";
import { startServer } from "../src/server.js";
import { launchChromium } from "../test/support/browser.js";

const out = fileURLToPath(new URL("../docs/page.png", import.meta.url));
// The tutorial's own pacing, so the picture shows replies a second apart.
const server = await startServer({
  port: 0,
  host: "127.0.0.1",
  streamIntervalMs: 1000,
});
const browser = await launchChromium();
try {
  const page = await browser.newPage({
    viewport: { width: 720, height: 900 },
    colorScheme: "light",
  });
  await page.goto(`${server.url}/`);
  await page.getByLabel("Name").fill("Ada");
  await page.getByRole("button", { name: "StreamHello" }).click();
  await page.locator("#call[data-state=done]").waitFor({ timeout: 15_000 });
  // The port is a free one picked for this run; show the default instead.
  await page.evaluate(() => {
    for (const span of document.querySelectorAll(".origin")) {
      span.textContent = "http://localhost:50051";
    }
  });
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.close();
}
