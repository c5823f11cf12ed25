/**
 * A small bidi Chat load generator on bare node:http2, cheap enough per message
 * that the server stays the bottleneck: pre-encoded gRPC frames, no decoding
 * (replies are only counted), several messages in flight per stream, and the
 * replacements for k replies written as one buffer.
 *
 * Usage: chat-client.ts <url> [seconds] [connections] [streams per connection] [messages in flight per stream] [warm-up seconds] [messages to measure instead of seconds]
 * Prints one JSON line: { messages, seconds, msgPerSec, p50Ms, p99Ms, errors }.
 */
import * as http2 from "node:http2";
import { pathToFileURL } from "node:url";
import { percentile } from "./stats.js";
import { FrameCounter, grpcFrame, requestBytes } from "./wire.js";

/** Result of one Chat load run. */
export interface ChatResult {
  /** Replies received inside the measured window. */
  messages: number;
  /** Length of the measured window, in seconds. */
  seconds: number;
  msgPerSec: number;
  /** Median time from sending a message to its reply, in milliseconds. */
  p50Ms: number;
  p99Ms: number;
  /** Streams that failed (reset, non-OK status, connection error). */
  errors: number;
}

/** Options of one Chat load run. */
export interface ChatOptions {
  url: string;
  /** Measured seconds. @default 5 */
  seconds?: number;
  /** HTTP/2 connections. @default 8 */
  connections?: number;
  /** Chat calls per connection. @default 8 */
  streams?: number;
  /** Messages in flight per call. @default 16 */
  window?: number;
  /** Seconds run before measuring. @default 1 */
  warmUpSeconds?: number;
  /**
   * Measure until this many replies instead of for `seconds` (then at most 60 s),
   * so that a smoke test gets a result however slow the machine is. @default 0 (use seconds)
   */
  messages?: number;
}

/** Run Chat calls against `url` and measure replies per second. */
export async function runChat(options: ChatOptions): Promise<ChatResult> {
  const seconds = options.seconds ?? 5;
  const connections = options.connections ?? 8;
  const streamsPerConnection = options.streams ?? 8;
  const window = options.window ?? 16;
  const warmUpMs = (options.warmUpSeconds ?? 1) * 1000;
  const frame = grpcFrame(requestBytes());
  const batches = Array.from({ length: window + 1 }, (_, k) =>
    Buffer.concat(Array.from({ length: k }, () => frame)),
  );
  const start = performance.now();
  const target = options.messages ?? 0;
  const measureFrom = start + warmUpMs;
  let measureTo = measureFrom + (target > 0 ? 60 : seconds) * 1000;
  let reachedTarget: () => void = () => {};
  const targetReached = new Promise<void>((resolve) => {
    reachedTarget = resolve;
  });
  let sending = true;
  let messages = 0;
  let errors = 0;
  const latencies: number[] = [];
  const maxSamples = 200_000;

  const sessions = Array.from({ length: connections }, () =>
    http2.connect(options.url),
  );
  const calls: Promise<void>[] = [];
  for (const session of sessions) {
    session.on("error", () => errors++);
    for (let s = 0; s < streamsPerConnection; s++) {
      calls.push(
        new Promise<void>((resolve) => {
          const stream = session.request({
            ":method": "POST",
            ":path": "/Greeter/Chat",
            "content-type": "application/grpc",
            te: "trailers",
          });
          const counter = new FrameCounter();
          const sentAt: number[] = [];
          let head = 0;
          const send = (k: number) => {
            const now = performance.now();
            for (let i = 0; i < k; i++) sentAt.push(now);
            stream.write(batches[k]);
          };
          stream.on("data", (chunk: Buffer) => {
            const k = counter.push(chunk);
            if (k === 0) return;
            const now = performance.now();
            const inWindow = now >= measureFrom && now <= measureTo;
            for (let i = 0; i < k; i++) {
              const t = sentAt[head++] ?? now;
              if (inWindow) {
                messages++;
                if (messages === target) {
                  measureTo = now;
                  reachedTarget();
                }
                if (latencies.length < maxSamples) latencies.push(now - t);
                else
                  latencies[Math.floor(Math.random() * maxSamples)] = now - t;
              }
            }
            if (head > 4096) {
              sentAt.splice(0, head);
              head = 0;
            }
            if (sending) send(k);
            else if (head === sentAt.length) stream.end();
          });
          stream.on("trailers", (trailers) => {
            if (trailers["grpc-status"] !== "0") errors++;
          });
          stream.on("error", () => errors++);
          stream.on("close", () => resolve());
          send(window);
        }),
      );
    }
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    targetReached,
    new Promise((r) => {
      timer = setTimeout(r, measureTo - performance.now());
    }),
  ]);
  clearTimeout(timer);
  sending = false;
  const measuredSeconds = (measureTo - measureFrom) / 1000;
  const drained = Promise.all(calls);
  const bound = new Promise((r) => setTimeout(r, 5000).unref());
  await Promise.race([drained, bound]);
  for (const session of sessions) session.destroy();
  latencies.sort((a, b) => a - b);
  return {
    messages,
    seconds: measuredSeconds,
    msgPerSec: messages / measuredSeconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    errors,
  };
}

if (
  process.argv[1] &&
  import.meta.url === pathToFileURL(process.argv[1]).href
) {
  const [url, seconds, connections, streams, window, warmUp, messages] =
    process.argv.slice(2);
  if (!url) {
    console.error(
      "usage: chat-client.ts <url> [seconds] [connections] [streams] [window] [warm-up seconds]",
    );
    process.exit(2);
  }
  const result = await runChat({
    url,
    seconds: seconds ? Number(seconds) : undefined,
    connections: connections ? Number(connections) : undefined,
    streams: streams ? Number(streams) : undefined,
    window: window ? Number(window) : undefined,
    warmUpSeconds: warmUp ? Number(warmUp) : undefined,
    messages: messages ? Number(messages) : undefined,
  });
  console.log(JSON.stringify(result));
}
