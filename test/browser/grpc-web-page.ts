/**
 * The page test/browser.test.ts loads to call the Greeter with Google's
 * grpc-web client from another origin: it runs each call as a page of a
 * grpc-web front end would, and stamps each reply with the time it arrived,
 * so the test can tell a stream that arrived reply by reply from one that
 * came at once.
 */
import { type Format, GreeterClient } from "./grpc-web-greeter.js";

/** What a call saw: when it started, each reply with its arrival time, then how it ended. */
export interface Seen {
  startedAt: number;
  replies: { message: string; at: number }[];
  /** The status it ended with (0 and "" when it succeeded). */
  code: number;
  message: string;
  endedAt: number;
}

/** A call starting now, nothing seen yet. */
function starting(): Seen {
  return {
    startedAt: performance.now(),
    replies: [],
    code: 0,
    message: "",
    endedAt: 0,
  };
}

function sayHello(base: string, format: Format, name: string): Promise<Seen> {
  const seen = starting();
  return new Promise((resolve) => {
    new GreeterClient(base, format).sayHello(name, (err, res) => {
      const at = performance.now();
      if (err) {
        seen.code = err.code;
        seen.message = err.message;
      } else {
        seen.replies.push({ message: res.message, at });
      }
      seen.endedAt = at;
      resolve(seen);
    });
  });
}

function streamHello(
  base: string,
  format: Format,
  name: string,
): Promise<Seen> {
  const seen = starting();
  return new Promise((resolve) => {
    const call = new GreeterClient(base, format).streamHello(name);
    call.on("data", (res) => {
      seen.replies.push({ message: res.message, at: performance.now() });
    });
    call.on("error", (err) => {
      seen.code = err.code;
      seen.message = err.message;
      seen.endedAt = performance.now();
      resolve(seen);
    });
    call.on("end", () => {
      seen.endedAt = performance.now();
      resolve(seen);
    });
  });
}

declare global {
  interface Window {
    greeter: { sayHello: typeof sayHello; streamHello: typeof streamHello };
  }
}

window.greeter = { sayHello, streamHello };
