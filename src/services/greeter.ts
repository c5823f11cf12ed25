import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Greeter } from "../../gen/helloworld_pb.js";
import { sleep } from "./sleep.js";

/** Options of the Greeter service implementation. */
export interface GreeterOptions {
  /**
   * Pause between two StreamHello replies, in milliseconds. The tutorial sleeps
   * one second; tests pass 0.
   * @default 1000
   */
  streamIntervalMs?: number;
}

/**
 * How long a SayHello reply fetched with GET may be reused, by browsers and
 * caches: a name's greeting never changes, so a day. The Connect protocol
 * leaves caching to the handler ("Get Requests and Caching" in Connect's
 * docs); a POST, which nothing caches, gets no such header.
 */
export const sayHelloCacheControl = "max-age=86400";

/** How many replies StreamHello sends, as in the tutorial. */
export const streamHelloCount = 5;

/** The longest name accepted, in characters; longer ones are a client error, not a greeting. */
export const maxNameLength = 256;

/**
 * The most names one CollectGreetings call may send. The reply holds them all,
 * so without a cap a long client stream would grow the server's memory without
 * bound; at 256 characters each, 1000 names keep the reply far below the 4 MiB
 * every gRPC client accepts by default.
 */
export const maxCollectedNames = 1000;

/**
 * Create the Greeter implementation: plain async functions and generators,
 * no transport, so it runs the same in memory and behind any protocol.
 */
export function createGreeter(
  options: GreeterOptions = {},
): ServiceImpl<typeof Greeter> {
  const interval = options.streamIntervalMs ?? 1000;
  return {
    sayHello(req, ctx) {
      const message = greeting(validName(req.name));
      // Not when the call has already failed (its deadline passed): an error
      // must not be cached for a day in place of the greeting.
      if (ctx.requestMethod === "GET" && !ctx.signal.aborted) {
        ctx.responseHeader.set("cache-control", sayHelloCacheControl);
      }
      return { message };
    },
    async *streamHello(req, ctx) {
      const name = validName(req.name);
      for (let i = 0; i < streamHelloCount; i++) {
        if (i > 0 && interval > 0) await sleep(interval, ctx.signal);
        yield { message: `Hello ${name}, message ${i}` };
      }
    },
    async collectGreetings(reqs) {
      const names: string[] = [];
      for await (const req of reqs) {
        if (names.length === maxCollectedNames) {
          throw new ConnectError(
            `at most ${maxCollectedNames} names can be greeted at once`,
            Code.ResourceExhausted,
          );
        }
        names.push(validName(req.name));
      }
      if (names.length === 0) {
        throw new ConnectError(
          "at least one name is required",
          Code.InvalidArgument,
        );
      }
      return { message: greeting(names.join(", ")) };
    },
    async *chat(reqs) {
      for await (const req of reqs)
        yield { message: greeting(validName(req.name)) };
    },
  };
}

function greeting(who: string): string {
  return `Hello, ${who}!`;
}

/** A name must be given, and short enough to be a name; otherwise the call fails with INVALID_ARGUMENT. */
function validName(name: string): string {
  if (name.length === 0) {
    throw new ConnectError("name is required", Code.InvalidArgument);
  }
  // Count code points, not UTF-16 units, so the limit means the same in every language.
  if (name.length > maxNameLength && [...name].length > maxNameLength) {
    throw new ConnectError(
      `name is longer than ${maxNameLength} characters`,
      Code.InvalidArgument,
    );
  }
  return name;
}
