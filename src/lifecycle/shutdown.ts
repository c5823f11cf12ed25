import * as net from "node:net";
import type { InflightCalls } from "../calls/inflight.js";
import type { ServingStatus } from "../services/serving-status.js";
import type { Response } from "../transport/connections.js";
import { goAwayNoticeMs } from "../transport/goaway.js";
import type { Listener } from "../transport/listener.js";

/** How long calls ended at the end of the grace period get to send their status, in milliseconds. */
const endCallsMs = 1000;
/**
 * How long connections get to close on their own once no call runs
 * (trailers to flush, GOAWAY to read), in milliseconds: longer than the
 * wait for the final GOAWAY of a peer that does not answer its PING.
 */
const lingerMs = goAwayNoticeMs + 1000;

/** What a server hands to `drain`. */
export interface Drainable {
  /** Flipped to not serving first, so health checks fail before connections close. */
  readonly status: ServingStatus;
  /** The listener whose port, sessions and connections are closed. */
  readonly listener: Listener;
  /** The calls waited for. */
  readonly inflight: InflightCalls;
  /** End every call still running with a status (the server's `shutdownSignal`). */
  endCalls(): void;
}

/** What happened during a shutdown, for a log line or a metric. */
export interface ShutdownResult {
  /** Calls in flight when shutdown began. */
  callsAtStart: number;
  /** Calls still running when the grace period ended, ended with UNAVAILABLE. */
  callsEnded: number;
  /** Connections still open at the very end, destroyed. */
  connectionsDestroyed: number;
  /** From the start of shutdown until the port and every connection were closed, in milliseconds. */
  durationMs: number;
}

/**
 * Stop a server gracefully: report not serving, stop accepting connections,
 * close every HTTP/2 session with a two-step GOAWAY (`Listener.goAway`) and
 * answer on HTTP/1.1 with `Connection: close`,
 * let the calls in flight finish within `graceMs`, end the rest with
 * UNAVAILABLE, then close every connection. Resolves once the port and every
 * connection are closed.
 */
export async function drain(
  server: Drainable,
  graceMs: number,
): Promise<ShutdownResult> {
  const started = performance.now();
  const { status, listener, inflight } = server;
  const callsAtStart = inflight.count;
  status.set(false);
  // Stop listening only: Http2SecureServer's own close() would also close
  // every HTTP/2 session at once with a one-step GOAWAY.
  const closed = new Promise<void>((resolve) =>
    net.Server.prototype.close.call(listener.server, () => resolve()),
  );

  // HTTP/2: GOAWAY in two steps (a notice, then the final one a round trip
  // later), now and on any session that a connection accepted just before
  // the port closed opens later. Streams open now, and any the peer sends
  // before it reads the notice, run on.
  for (const session of listener.sessions) listener.goAway(session);
  listener.http2Server.on("session", (session) => listener.goAway(session));

  // HTTP/1.1: busy connections close after their current response, which
  // says `Connection: close` if not yet started; so does any request that
  // comes on an idle keep-alive connection. Idle ones close a moment later:
  // HTTP/1.1 has no GOAWAY, and a balancer that reuses an idle connection
  // just as it closes gets its request reset, which it cannot retry once
  // sent. By then a balancer has used or dropped them, or stopped sending
  // here because new connections are refused.
  const h1 = listener.http1Server;
  // Under TLS there is no HTTP/1.1 server of its own: the HTTP/2 server's
  // HTTP/1.1 fallback (Http2SecureServer, a tls.Server with allowHTTP1) has
  // the same method, missing from its type.
  const idleCloser =
    h1 ?? (listener.http2Server as unknown as { closeIdleConnections(): void });
  const timers = new Set<NodeJS.Timeout>();
  const closeIdleLater = () => {
    const timer = setTimeout(() => {
      // Stryker disable next-line CallExpression: equivalent, clearing a timer that fired does nothing
      timers.delete(timer);
      idleCloser.closeIdleConnections();
    }, goAwayNoticeMs);
    timers.add(timer);
  };
  closeIdleLater();
  const lastResponse = (res: Response) => {
    if (!("req" in res) || res.req.httpVersionMajor !== 1) return;
    if (!res.headersSent) {
      res.setHeader("connection", "close");
    } else {
      // Its headers promised keep-alive: idle after it, then closed.
      res.once("finish", closeIdleLater);
    }
  };
  for (const res of listener.responses) lastResponse(res);
  (h1 ?? listener.http2Server).on("request", (_req: unknown, res: Response) =>
    lastResponse(res),
  );

  // A call is done when its handler is and its response has been sent; a
  // request still arriving has a response pending but no handler yet.
  const idle = () =>
    Promise.all([inflight.whenIdle(), sent(listener.responses)]).then(
      () => undefined,
    );
  const graceOver = await race(idle(), graceMs);
  const callsEnded = inflight.count;
  if (graceOver) {
    server.endCalls();
    await race(idle(), endCallsMs);
  }
  await race(closed, lingerMs);
  for (const timer of timers) clearTimeout(timer);
  // A destroyed socket leaves the set only on its "close" event, a moment later.
  const open = [...listener.sockets].filter((socket) => !socket.destroyed);
  for (const socket of open) socket.destroy();
  await closed;
  // Stops the HTTP/1.1 server's timeout checks; it has no port of its own.
  h1?.close();
  return {
    callsAtStart,
    callsEnded,
    connectionsDestroyed: open.length,
    durationMs: Math.round(performance.now() - started),
  };
}

/** Resolves once every response in `responses`, including any added meanwhile, is sent or abandoned. */
async function sent(responses: ReadonlySet<Response>): Promise<void> {
  // The listener removes a response on the same events, before these run.
  while (responses.size > 0) {
    await Promise.all(
      [...responses].map(
        (res) =>
          new Promise<void>((resolve) => {
            // Stryker disable next-line StringLiteral,CallExpression: equivalent, close follows finish and ends the wait too
            res.once("finish", resolve);
            res.once("close", resolve);
          }),
      ),
    );
  }
}

/** Wait for `promise` at most `ms` milliseconds; true if the time ran out first. */
async function race(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  try {
    // Stryker disable next-line ArrowFunction: equivalent, the callers test the result with if or ignore it
    return await Promise.race([promise.then(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
