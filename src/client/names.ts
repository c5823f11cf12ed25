import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import type { Names } from "./args.js";

/**
 * The names to send, in order: the arguments, or one per line of `input` for "-",
 * each yielded as soon as its line is read so a stream sends it right away.
 */
export async function* namesFrom(
  names: Names,
  input: Readable,
): AsyncGenerator<string> {
  if (names.from === "args") {
    yield* names.names;
    return;
  }
  // crlfDelay: a "\r\n" split across two reads is still one line break.
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    yield* lines;
  } finally {
    lines.close();
  }
}
