import type { DestinationStream } from "pino";
import { Arrivals } from "./arrivals.js";

/** One JSON log line, parsed. */
export type LogLine = Record<string, unknown> & { level: number; msg: string };

/**
 * A pino destination that keeps every line, for tests to read what a server
 * logged. Pass `destination` as the server's `logDestination`.
 */
export class LogCapture {
  readonly #arrivals = new Arrivals<LogLine>((l) => JSON.stringify(l));
  /** Every line logged, oldest first. */
  readonly lines: readonly LogLine[] = this.#arrivals.items;

  readonly destination: DestinationStream = {
    write: (chunk: string) => {
      for (const text of chunk.split("\n")) {
        if (text === "") continue;
        this.#arrivals.add(JSON.parse(text) as LogLine);
      }
    },
  };

  /** The "finished call" lines, optionally of one procedure. */
  calls(procedure?: string): LogLine[] {
    return this.lines.filter(
      (l) =>
        l.msg === "finished call" &&
        (procedure === undefined || l.procedure === procedure),
    );
  }

  /** Resolve with the first line, logged or to come, that matches; reject after `timeoutMs` (a failure bound, not a wait). */
  waitFor(match: (l: LogLine) => boolean, timeoutMs = 5000): Promise<LogLine> {
    return this.#arrivals.first(match, timeoutMs);
  }
}
