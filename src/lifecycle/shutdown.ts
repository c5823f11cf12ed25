import type { InflightCalls } from "../calls/inflight.js";
import type { ServingStatus } from "../services/serving-status.js";
import type { Listener, Response } from "../transport/listener.js";

/** How long calls ended at the end of the grace period get to send their status, in milliseconds. */
const endCallsMs = 1000;
/** How long connections get to close on their own once no call runs (trailers to flush, GOAWAY to read), in milliseconds. */
const lingerMs = 1000;

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
 * send GOAWAY on every HTTP/2 session and `Connection: close` on HTTP/1.1,
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
  const closed = new Promise<void>((resolve) =>
    listener.server.close(() => resolve()),
  );

  // HTTP/2: GOAWAY now, and on any session that a connection accepted just
  // before the port closed opens later. Streams open now run on.
  for (const session of listener.sessions) session.close();
  listener.http2Server.on("session", (session) => session.close());

  // HTTP/1.1: idle keep-alive connections close now; busy ones after their
  // current response, which says `Connection: close` if not yet started.
  const h1 = listener.http1Server;
  h1?.closeIdleConnections();
  const lastResponse = (res: Response) => {
    if (!("req" in res) || res.req.httpVersionMajor !== 1) return;
    const socket = res.socket;
    if (!res.headersSent) {
      res.setHeader("connection", "close");
    } else {
      res.once("finish", () => socket?.end());
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
    return await Promise.race([promise.then(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
