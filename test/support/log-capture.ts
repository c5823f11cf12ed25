import type { DestinationStream } from "pino";

/** One JSON log line, parsed. */
export type LogLine = Record<string, unknown> & { level: number; msg: string };

/**
 * A pino destination that keeps every line, for tests to read what a server
 * logged. Pass `destination` as the server's `logDestination`.
 */
export class LogCapture {
  readonly lines: LogLine[] = [];
  #waiters: {
    match: (l: LogLine) => boolean;
    resolve: (l: LogLine) => void;
  }[] = [];

  readonly destination: DestinationStream = {
    write: (chunk: string) => {
      for (const text of chunk.split("\n")) {
        if (text === "") continue;
        const line = JSON.parse(text) as LogLine;
        this.lines.push(line);
        for (const w of [...this.#waiters]) {
          if (w.match(line)) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
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
    const found = this.lines.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(
          new Error(
            `no matching log line in ${timeoutMs} ms; got:\n${this.lines.map((l) => JSON.stringify(l)).join("\n")}`,
          ),
        );
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }
}
