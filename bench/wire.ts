import { create, toBinary } from "@bufbuild/protobuf";
import { HelloReplySchema, HelloRequestSchema } from "../gen/helloworld_pb.js";

/** The name every benchmark request carries. */
export const benchName = "bench";

/** A HelloRequest as protobuf bytes. */
export function requestBytes(name = benchName): Uint8Array {
  return toBinary(HelloRequestSchema, create(HelloRequestSchema, { name }));
}

/**
 * The target of a Connect GET of SayHello for `name`: the request in the
 * query, protobuf in URL-safe base64 (the Connect protocol's
 * Unary-Get-Request, as connect-web sends it).
 */
export function getTarget(name = benchName): string {
  const message = Buffer.from(requestBytes(name)).toString("base64url");
  return `/Greeter/SayHello?encoding=proto&base64=1&message=${message}`;
}

/** A HelloReply as protobuf bytes. */
export function replyBytes(message: string): Uint8Array {
  return toBinary(HelloReplySchema, create(HelloReplySchema, { message }));
}

/** One gRPC length-prefixed message: flags byte 0 (not compressed), 4-byte big-endian length, bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
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
