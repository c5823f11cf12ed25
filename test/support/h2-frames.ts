import assert from "node:assert/strict";
import { once } from "node:events";
import * as net from "node:net";
import { Arrivals } from "./arrivals.js";
import { envelope, grpcHeaders, helloRequest } from "./raw.js";
import { defaultWaitMs } from "./wait.js";

/** HTTP/2 frame types (RFC 9113, 6). */
export const frameType = {
  data: 0,
  headers: 1,
  rstStream: 3,
  settings: 4,
  ping: 6,
  goaway: 7,
  windowUpdate: 8,
  continuation: 9,
} as const;

/** Frame flags (RFC 9113, 6). */
export const endStream = 0x1;
export const ack = 0x1;
export const endHeaders = 0x4;

/** One frame as it came off the wire. */
export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
  /** performance.now() when it was parsed. */
  at: number;
}

/** The last stream id of a GOAWAY frame. */
export function goawayLastStreamId(frame: Frame): number {
  return frame.payload.readUInt32BE(0) & 0x7fffffff;
}

/**
 * The last stream id of the first GOAWAY of a graceful shutdown, 2^31-1: a
 * notice that refuses no stream (RFC 9113, 6.8).
 */
export const goawayNotice = 2 ** 31 - 1;

export const isGoaway = (f: Frame) => f.type === frameType.goaway;
/** The first GOAWAY of a graceful shutdown, which refuses no stream. */
export const isGoawayNotice = (f: Frame) =>
  isGoaway(f) && goawayLastStreamId(f) === goawayNotice;
/** A GOAWAY that names the last stream the server took. */
export const isFinalGoaway = (f: Frame) =>
  isGoaway(f) && goawayLastStreamId(f) !== goawayNotice;
export const isPing = (f: Frame) =>
  f.type === frameType.ping && !(f.flags & ack);
export const isPingAck = (f: Frame) =>
  f.type === frameType.ping && (f.flags & ack) === ack;
/** The frame that ends stream `id`: its RST_STREAM, or HEADERS with END_STREAM (trailers). */
export const endsStream = (id: number) => (f: Frame) =>
  f.streamId === id &&
  (f.type === frameType.rstStream ||
    (f.type === frameType.headers && (f.flags & endStream) === endStream));

/** A frame in the notation of the reports: `GOAWAY last=3 NO_ERROR`, `DATA s=1 END_STREAM`... */
export function showFrame(frame: Frame): string {
  const names = Object.fromEntries(
    Object.entries(frameType).map(([k, v]) => [v, k.toUpperCase()]),
  ) as Record<number, string>;
  const name = names[frame.type] ?? `TYPE${frame.type}`;
  if (frame.type === frameType.goaway) {
    return `GOAWAY last=${goawayLastStreamId(frame)} code=${frame.payload.readUInt32BE(4)}`;
  }
  if (frame.type === frameType.ping || frame.type === frameType.settings) {
    return `${name}${frame.flags & ack ? " ACK" : ""}`;
  }
  if (frame.type === frameType.rstStream) {
    return `RST_STREAM s=${frame.streamId} code=${frame.payload.readUInt32BE(0)}`;
  }
  return `${name} s=${frame.streamId}${frame.flags & endStream ? " END_STREAM" : ""}`;
}

/**
 * An HTTP/2 client that speaks frames by hand over a plain socket, so a test
 * can do what no HTTP/2 library does on purpose: keep opening streams after
 * a GOAWAY, as a balancer does that has not read it yet, and answer PINGs
 * only when it chooses to. SETTINGS are acknowledged at once.
 */
export class RawH2Client {
  readonly #arrivals = new Arrivals<Frame>(showFrame);
  /** Every frame the server sent, oldest first. */
  readonly frames: readonly Frame[] = this.#arrivals.items;
  readonly socket: net.Socket;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  #buffered = Buffer.alloc(0);

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("error", () => {});
    // Not events.once: it rejects on "error", and a broken connection is
    // one that closes, here.
    this.closed = new Promise((resolve) =>
      socket.once("close", () => resolve()),
    );
    void this.closed.then(() => this.#arrivals.end("connection closed"));
    socket.on("data", (chunk: Buffer) => this.#read(chunk));
  }

  /**
   * Connect with prior knowledge (h2c), from `localAddress` if given, and
   * send the preface and a SETTINGS frame (empty unless `settings` lists
   * identifier and value pairs) unless told not to.
   */
  static async connect(
    url: string,
    options: {
      preface?: boolean;
      localAddress?: string;
      settings?: [number, number][];
    } = {},
  ): Promise<RawH2Client> {
    const { hostname, port } = new URL(url);
    const socket = net.connect({
      port: Number(port),
      host: hostname,
      localAddress: options.localAddress,
    });
    await once(socket, "connect");
    const client = new RawH2Client(socket);
    if (options.preface ?? true) client.sendPreface(options.settings);
    return client;
  }

  /** Speak HTTP/2 on a socket already connected (a TLS socket that negotiated h2), sending the preface. */
  static over(socket: net.Socket): RawH2Client {
    const client = new RawH2Client(socket);
    client.sendPreface();
    return client;
  }

  /** The client connection preface and a SETTINGS frame with `settings`, identifier and value pairs (RFC 9113, 3.4). */
  sendPreface(settings: [number, number][] = []): void {
    this.socket.write(
      Buffer.concat([
        Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"),
        frame(frameType.settings, 0, 0, settingsPayload(settings)),
      ]),
    );
  }

  /** Send a POST on `streamId`: HEADERS, then DATA with `body` ending the stream. */
  request(
    streamId: number,
    path: string,
    headers: Record<string, string>,
    body: Buffer,
  ): void {
    this.socket.write(requestFrames(streamId, path, headers, body));
  }

  /** Open a POST on `streamId` and leave its request open: HEADERS alone, then `body` if given, without END_STREAM. */
  open(
    streamId: number,
    path: string,
    headers: Record<string, string>,
    body?: Buffer,
  ): void {
    const frames = [
      frame(
        frameType.headers,
        endHeaders,
        streamId,
        headerBlock(path, headers),
      ),
    ];
    if (body !== undefined)
      frames.push(frame(frameType.data, 0, streamId, body));
    this.socket.write(Buffer.concat(frames));
  }

  /** Send a PING (not an ACK) with `payload` (8 bytes). */
  ping(payload: Buffer = Buffer.alloc(8)): void {
    this.socket.write(frame(frameType.ping, 0, 0, payload));
  }

  /** Acknowledge a PING the server sent. */
  ackPing(ping: Frame): void {
    this.socket.write(frame(frameType.ping, ack, 0, ping.payload));
  }

  /**
   * Resolves with the first frame, already seen or still to come, that
   * `match` accepts; rejects if the socket closes first, or once `ms` have
   * passed without one.
   */
  next(
    match: (f: Frame, index: number) => boolean,
    ms = defaultWaitMs,
  ): Promise<Frame> {
    return this.#arrivals.first(match, ms);
  }

  /** The DATA the server sent on `streamId`, concatenated. */
  data(streamId: number): Buffer {
    return Buffer.concat(
      this.frames
        .filter((f) => f.type === frameType.data && f.streamId === streamId)
        .map((f) => f.payload),
    );
  }

  #read(chunk: Buffer): void {
    this.#buffered = Buffer.concat([this.#buffered, chunk]);
    while (this.#buffered.length >= 9) {
      const length = this.#buffered.readUIntBE(0, 3);
      if (this.#buffered.length < 9 + length) return;
      const f: Frame = {
        type: this.#buffered[3] as number,
        flags: this.#buffered[4] as number,
        streamId: this.#buffered.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(this.#buffered.subarray(9, 9 + length)),
        at: performance.now(),
      };
      this.#buffered = this.#buffered.subarray(9 + length);
      if (f.type === frameType.settings && !(f.flags & ack)) {
        this.socket.write(frame(frameType.settings, ack, 0, Buffer.alloc(0)));
      }
      this.#arrivals.add(f);
    }
  }
}

/** A SETTINGS frame's payload: each identifier (2 bytes) and value (4 bytes). */
export function settingsPayload(settings: [number, number][]): Buffer {
  const payload = Buffer.alloc(6 * settings.length);
  for (const [i, [id, value]] of settings.entries()) {
    payload.writeUInt16BE(id, 6 * i);
    payload.writeUInt32BE(value, 6 * i + 2);
  }
  return payload;
}

/** A whole POST on `streamId`, as bytes: HEADERS, then DATA with `body` ending the stream. */
export function requestFrames(
  streamId: number,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
): Buffer {
  return Buffer.concat([
    frame(frameType.headers, endHeaders, streamId, headerBlock(path, headers)),
    frame(frameType.data, endStream, streamId, body),
  ]);
}

/** A POST's header block: the pseudo-headers for `path`, then `headers`, each a literal. */
export function headerBlock(
  path: string,
  headers: Record<string, string>,
): Buffer {
  return Buffer.concat(
    Object.entries({
      ":method": "POST",
      ":scheme": "http",
      ":path": path,
      ":authority": "localhost",
      ...headers,
    }).map(([name, value]) => literal(name, value)),
  );
}

/** A frame: 9-byte header (length, type, flags, stream id), then the payload. */
export function frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Buffer,
): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK literal header field without indexing, new name, no Huffman coding (RFC 7541, 6.2.2). */
export function literal(name: string, value: string): Buffer {
  return Buffer.concat([
    Buffer.from([0]),
    hpackString(name),
    hpackString(value),
  ]);
}

/** An HPACK string literal, no Huffman coding (RFC 7541, 5.2). */
export function hpackString(s: string): Buffer {
  const bytes = Buffer.from(s, "latin1");
  return Buffer.concat([hpackInteger(bytes.length, 7), bytes]);
}

/** An HPACK integer with an N-bit prefix (RFC 7541, 5.1), the prefix's other bits zero. */
export function hpackInteger(n: number, prefixBits: number): Buffer {
  const max = 2 ** prefixBits - 1;
  if (n < max) return Buffer.from([n]);
  const out = [max];
  let rest = n - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

/** Send SayHello(`name`) in gRPC on `streamId`, ending the stream, without waiting for the answer. */
export function requestHello(
  client: RawH2Client,
  streamId: number,
  name: string,
): void {
  client.request(
    streamId,
    "/Greeter/SayHello",
    grpcHeaders,
    envelope(helloRequest(name)),
  );
}

/** Send SayHello(`name`) on `streamId` and wait for the stream's end; fails unless it was answered in full. */
export async function sayHelloRaw(
  client: RawH2Client,
  streamId: number,
  name: string,
): Promise<void> {
  requestHello(client, streamId, name);
  await answered(client, streamId, name);
}

/** Wait for the end of `streamId`; fails unless it ended with trailers after the reply to `name`. */
export async function answered(
  client: RawH2Client,
  streamId: number,
  name: string,
): Promise<void> {
  const end = await client.next(endsStream(streamId));
  assert.equal(
    end.type,
    frameType.headers,
    `stream ${streamId} was reset: ${showFrame(end)}`,
  );
  assert.match(client.data(streamId).toString("latin1"), new RegExp(name));
}
