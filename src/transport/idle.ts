import type { ConnectionPolicy } from "./connection-policy.js";

/**
 * Close an HTTP/2 session with the two-step GOAWAY once it has had no stream
 * open for `idleMs` (0: never), or, before its first stream, for
 * `firstCallMs` if that is shorter: a connection that never starts a call
 * (thousands of them, each some 20 KB of the server's memory) is not kept
 * for the whole idle timeout. Unlike a socket timeout, a long call that
 * sends nothing for a while (a quiet Chat) does not count as idle. A
 * balancer may reuse an idle connection at the very moment it is closed, so
 * it is closed in two steps like a draining one. (HTTP/1.1 has Node's own
 * timeouts: the keep-alive timeout, and the headers timeout for a
 * connection's first request.)
 */
export function closeWhenIdle(
  idleMs: number,
  firstCallMs = idleMs,
): ConnectionPolicy {
  return {
    session(session, control) {
      if (idleMs <= 0) return;
      let open = 0;
      let called = false;
      let timer: NodeJS.Timeout | undefined;
      const arm = (ms: number) => {
        timer = setTimeout(
          () => control.goAway(called ? "idle" : "first_call"),
          ms,
        );
        // Stryker disable next-line CallExpression: equivalent, the listening socket keeps the process alive anyway
        timer.unref();
      };
      session.on("stream", (stream) => {
        open++;
        called = true;
        clearTimeout(timer);
        stream.on("close", () => {
          if (--open === 0 && !session.closed) arm(idleMs);
        });
      });
      // A timer left on a closed session fires into a goAway that does nothing.
      // Stryker disable next-line StringLiteral,ArrowFunction,CallExpression: memory-only, a timer until it fires
      session.once("close", () => clearTimeout(timer));
      arm(firstCallMs > 0 ? Math.min(firstCallMs, idleMs) : idleMs);
    },
  };
}
