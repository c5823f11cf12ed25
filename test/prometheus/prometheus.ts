import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { type Child, killGroup, spawnChild } from "../support/child.js";

/** One series of an instant query's answer. */
export interface PromSample {
  readonly metric: Readonly<Record<string, string>>;
  /** The sample's value. */
  readonly value: number;
  /** The evaluation time, in seconds since the epoch. */
  readonly time: number;
}

/** A Prometheus server run for one test. */
export interface Prometheus {
  /** Its HTTP API's base URL, such as http://127.0.0.1:40123. */
  readonly url: string;
  /** Evaluate PromQL now (GET /api/v1/query); an instant vector's samples. */
  query(promql: string): Promise<PromSample[]>;
  /**
   * Resolve once every target has been scraped after `since` (ms since the
   * epoch), so what a query then reads is no older; reject after `timeoutMs`.
   */
  scrapedSince(since: number, timeoutMs?: number): Promise<void>;
}

/**
 * Start Debian's prometheus (test/system-deps.sh installs it) with a config of
 * its own scraping `targets` (host:port, path /metrics) every second, a data
 * directory of its own and a free port; stopped and removed after the test.
 */
export async function startPrometheus(
  t: TestContext,
  targets: readonly string[],
): Promise<Prometheus> {
  const dir = await mkdtemp(join(tmpdir(), "prometheus-"));
  let child: Child | undefined;
  t.after(async () => {
    // Gone before its data directory is removed.
    if (child !== undefined) {
      killGroup(child);
      await child.exited;
    }
    await rm(dir, { recursive: true, force: true });
  });
  const config = join(dir, "prometheus.yml");
  await writeFile(
    config,
    [
      "global:",
      "  scrape_interval: 1s",
      "  scrape_timeout: 1s",
      "scrape_configs:",
      "  - job_name: connect-greeter",
      "    static_configs:",
      `      - targets: [${targets.map((x) => JSON.stringify(x)).join(", ")}]`,
      "",
    ].join("\n"),
  );
  // A free port can be taken by someone else between the check and the
  // start: then Prometheus exits at once, and another port is tried.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const started = spawnChild(
      "prometheus",
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      { input: "" },
    );
    child = started;
    const url = `http://127.0.0.1:${port}`;
    const ready = await waitReady(url, started.process);
    if (ready) return prometheus(url);
    if (attempt === 3) {
      throw new Error(
        `prometheus did not start:\n${started.stdout()}${started.stderr()}`,
      );
    }
  }
}

function prometheus(url: string): Prometheus {
  const query = async (promql: string): Promise<PromSample[]> => {
    const res = await fetch(
      `${url}/api/v1/query?query=${encodeURIComponent(promql)}`,
    );
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: {
        resultType: string;
        result: { metric: Record<string, string>; value: [number, string] }[];
      };
    };
    if (body.status !== "success" || body.data?.resultType !== "vector") {
      throw new Error(`query ${promql}: ${JSON.stringify(body)}`);
    }
    return body.data.result.map((r) => ({
      metric: r.metric,
      value: Number(r.value[1]),
      time: r.value[0],
    }));
  };
  return {
    url,
    query,
    async scrapedSince(since, timeoutMs = 30_000) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        // timestamp() is the time of the scrape that produced `up`.
        const scrapes = await query("timestamp(up)");
        if (
          scrapes.length > 0 &&
          scrapes.every((s) => s.value * 1000 > since)
        ) {
          return;
        }
        if (performance.now() > deadline) {
          throw new Error(
            `no scrape after ${since} within ${timeoutMs} ms: ${JSON.stringify(scrapes)}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
  };
}

/** Poll /-/ready until 200 (true), or until the process exits (false); at most 30 s. */
async function waitReady(url: string, child: ChildProcess): Promise<boolean> {
  const deadline = performance.now() + 30_000;
  while (child.exitCode === null && performance.now() < deadline) {
    try {
      const res = await fetch(`${url}/-/ready`);
      await res.arrayBuffer();
      if (res.status === 200) return true;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (child.exitCode === null) throw new Error("prometheus not ready in 30 s");
  return false;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") {
    throw new Error("no port");
  }
  return address.port;
}
