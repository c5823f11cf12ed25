import type { SessionPolicy } from "./session-policy.js";

/**
 * Close an HTTP/2 session with `goAway` once it has had no stream open for
 * `idleMs` (0: never). Unlike a socket timeout, a long call that sends
 * nothing for a while (a quiet Chat) does not count as idle. A balancer may
 * reuse an idle connection at the very moment it is closed, so it is closed
 * in two steps like a draining one.
 */
export function closeWhenIdle(idleMs: number): SessionPolicy {
  return (session, goAway) => {
    if (idleMs <= 0) return;
    let open = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      timer = setTimeout(goAway, idleMs);
      // Stryker disable next-line CallExpression: equivalent, the listening socket keeps the process alive anyway
      timer.unref();
    };
    session.on("stream", (stream) => {
      open++;
      clearTimeout(timer);
      stream.on("close", () => {
        if (--open === 0 && !session.closed) arm();
      });
    });
    // A timer left on a closed session fires into a goAway that does nothing.
    // Stryker disable next-line StringLiteral,ArrowFunction,CallExpression: memory-only, a timer until it fires
    session.once("close", () => clearTimeout(timer));
    arm();
  };
}
