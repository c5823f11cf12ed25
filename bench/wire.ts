import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { HelloReplySchema, HelloRequestSchema } from "../gen/helloworld_pb.js";

/** The name every benchmark request carries. */
export const benchName = "bench";

/** The one reply of a unary call (and of each Chat message). */
export const unaryReplyText = `Hello, ${benchName}!`;

/** The five replies of a StreamHello call. */
export const streamReplyTexts = [0, 1, 2, 3, 4].map(
  (i) => `Hello ${benchName}, message ${i}`,
);

/** A HelloRequest as protobuf bytes. */
export function requestBytes(name = benchName): Uint8Array {
  return toBinary(HelloRequestSchema, create(HelloRequestSchema, { name }));
}

/** A HelloRequest in protobuf's JSON mapping, as bytes: `{"name":"bench"}`. */
export function requestJson(name = benchName): Uint8Array {
  return Buffer.from(
    toJsonString(HelloRequestSchema, create(HelloRequestSchema, { name })),
  );
}

/** A HelloReply as protobuf bytes. */
export function replyBytes(message: string): Uint8Array {
  return toBinary(HelloReplySchema, create(HelloReplySchema, { message }));
}

/** A HelloReply in protobuf's JSON mapping, as bytes. */
export function replyJson(message: string): Uint8Array {
  return Buffer.from(
    toJsonString(HelloReplySchema, create(HelloReplySchema, { message })),
  );
}

/**
 * One length-prefixed message: a flags byte, a 4-byte big-endian length, the
 * bytes. gRPC, gRPC-Web and Connect's streaming protocol frame messages the
 * same way; flags 0 is an uncompressed message.
 */
export function grpcFrame(message: Uint8Array, flags = 0): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame[0] = flags;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** gRPC-Web's flag for the frame that carries the trailers, as HTTP/1.1-style header lines (gRPC's PROTOCOL-WEB.md). */
export const grpcWebTrailersFlag = 0x80;

/** Connect's flag for the end-of-stream message, a JSON object with the error (if any) and trailers (connectrpc.com/docs/protocol). */
export const connectEndStreamFlag = 0x02;

/** The trailer frame of a gRPC-Web answer with `grpc-status: <status>`. */
export function grpcWebTrailers(status = 0): Buffer {
  return grpcFrame(
    Buffer.from(`grpc-status: ${status}\r\n`, "latin1"),
    grpcWebTrailersFlag,
  );
}

/** The end-of-stream message of a successful Connect stream: `{}`. */
export function connectEndStream(): Buffer {
  return grpcFrame(Buffer.from("{}"), connectEndStreamFlag);
}

/** A length-prefixed message split off a byte string. */
export interface Frame {
  flags: number;
  data: Buffer;
}

/** Split a whole body of length-prefixed messages; throws when it ends inside one. */
export function splitFrames(body: Buffer): Frame[] {
  const frames: Frame[] = [];
  for (let i = 0; i < body.length; ) {
    if (i + 5 > body.length) throw new Error("body ends inside a frame prefix");
    const end = i + 5 + body.readUInt32BE(i + 1);
    if (end > body.length) throw new Error("body ends inside a frame");
    frames.push({ flags: body[i] as number, data: body.subarray(i + 5, end) });
    i = end;
  }
  return frames;
}

/**
 * Counts the gRPC messages in a byte stream that arrives in arbitrary chunks,
 * without copying: only the 5-byte prefixes are read.
 */
export class FrameCounter {
  /** Bytes still to skip of the message being read. */
  #skip = 0;
  /** Prefix bytes of the next message seen so far (a prefix may straddle chunks). */
  #prefix = Buffer.alloc(5);
  #prefixLen = 0;

  /** Feed a chunk; returns how many messages it completed. */
  push(chunk: Buffer): number {
    let done = 0;
    let i = 0;
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        if (this.#skip === 0) done++;
        continue;
      }
      const n = Math.min(5 - this.#prefixLen, chunk.length - i);
      chunk.copy(this.#prefix, this.#prefixLen, i, i + n);
      this.#prefixLen += n;
      i += n;
      if (this.#prefixLen === 5) {
        this.#prefixLen = 0;
        this.#skip = this.#prefix.readUInt32BE(1);
        if (this.#skip === 0) done++;
      }
    }
    return done;
  }
}
