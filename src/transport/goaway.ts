import { writeSync } from "node:fs";
import type * as http2 from "node:http2";
import type * as net from "node:net";

/**
 * How long each step of closing an HTTP/2 session gracefully waits at most
 * for the peer, in milliseconds: for the PING ack after the shutdown notice
 * before the final GOAWAY, for the SETTINGS ack of a session too new to have
 * had one before the notice, and for room on a socket that a peer is slow
 * to read. One round trip is what it takes (RFC 9113, 6.8); the bound is for
 * a peer that does not answer.
 */
export const goAwayNoticeMs = 1000;

/**
 * A GOAWAY frame with last stream id 2^31-1 and NO_ERROR: "this connection
 * will close, open no new streams on it", refusing none (RFC 9113, 6.8).
 */
export const shutdownNotice = Buffer.from([
  0, 0, 8, 7, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0,
]);

/** Sessions already being closed by `goAwayInTwoSteps`. */
const closing = new WeakSet<http2.ServerHttp2Session>();

/**
 * Close an HTTP/2 session the way RFC 9113, 6.8 advises and grpc-go's
 * GracefulStop does: first a GOAWAY with the last stream id 2^31-1, which
 * refuses nothing; then, once a PING sent after it is answered (so every
 * stream the peer opened before it read the notice has arrived; TCP keeps
 * order) or `goAwayNoticeMs` passed, the final GOAWAY naming the last stream
 * taken (`session.close()`); the session closes when those streams are done.
 * A balancer that put a request on the connection just before it learned of
 * the shutdown gets it served, not refused.
 *
 * Node has no shutdown notice: `session.goaway(0, 2 ** 31 - 1)` goes through
 * nghttp2_submit_goaway, and once any such GOAWAY is sent nghttp2 silently
 * ignores every new stream, whatever last stream id it announced (only
 * nghttp2_submit_shutdown_notice does not, and Node does not expose it); the
 * final GOAWAY then refuses those streams after all. So the notice is written
 * as raw bytes on `socket`, the session's TCP socket, and nghttp2 never
 * learns of it. Without `socket` (a TLS session, whose bytes only nghttp2's
 * TLS stream may write) there is no notice, only the PING round trip before
 * the final GOAWAY.
 */
export function goAwayInTwoSteps(
  session: http2.ServerHttp2Session,
  socket: net.Socket | undefined,
): void {
  // Without its first two checks (the third, one close per session, is
  // tested) a closed session returns at the same check in the next step.
  // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent, the next step checks again
  if (session.closed || session.destroyed || closing.has(session)) return;
  closing.add(session);
  // Node's close() does nothing on a session already closed or destroyed.
  const final = () => session.close();
  const pingThenFinal = () => {
    const timer = setTimeout(final, goAwayNoticeMs);
    // Stryker disable next-line CallExpression: equivalent, cleared or fired within goAwayNoticeMs, which the drain waits
    timer.unref();
    const done = () => {
      // Stryker disable next-line CallExpression: equivalent, the timer's final() on a closing session does nothing
      clearTimeout(timer);
      final();
    };
    // ping() throws only on a destroyed session (checked just before) and
    // returns false only while maxOutstandingPings (10) PINGs await their
    // acks; the server sends one per session. The fallbacks are never taken.
    try {
      // Stryker disable next-line CallExpression: unreachable, ping() does not fail here
      if (!session.ping(done)) done();
    } /* Stryker disable next-line BlockStatement: unreachable, ping() does not throw here */ catch {
      // Stryker disable next-line CallExpression: unreachable, ping() does not throw here
      done();
    }
  };
  // The notice must not overtake the server's SETTINGS, the first frame it
  // sends (RFC 9113, 3.4): Node writes them a moment after it makes a
  // session, so a session whose SETTINGS the peer has not yet acknowledged
  // may not have sent them. Its streams are all taken meanwhile.
  whenSettingsAcknowledged(session, () => {
    // Only saves work: writeNotice finds the socket gone, close() does
    // nothing on a closed session, and ping() throws into final().
    // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent, the steps after it do nothing
    if (session.closed || session.destroyed) return;
    if (socket === undefined) {
      pingThenFinal();
      return;
    }
    writeNotice(socket, (written) => {
      // A notice not written in goAwayNoticeMs belongs to a peer that reads
      // nothing: a final GOAWAY it does not read, now or later (the mutant),
      // or none, and the drain's last step destroys the connection anyway.
      // Stryker disable next-line ConditionalExpression: equivalent, the peer reads neither
      if (written) pingThenFinal();
      else final();
    });
  });
}

function whenSettingsAcknowledged(
  session: http2.ServerHttp2Session,
  then: () => void,
): void {
  if (!session.pendingSettingsAck) {
    then();
    return;
  }
  // A timer or listener left behind calls then() once more, which returns on
  // the closed session; or, for a peer that acknowledged the SETTINGS late
  // and answers no PING, repeats the notice, which RFC 9113, 6.8 allows.
  const go = () => {
    // Stryker disable next-line CallExpression: equivalent, go() once more returns on the closed session
    clearTimeout(timer);
    // Stryker disable next-line StringLiteral,CallExpression: equivalent, once() has removed it, or a repeat notice
    session.off("localSettings", go);
    then();
  };
  const timer = setTimeout(go, goAwayNoticeMs);
  // Stryker disable next-line CallExpression: equivalent, cleared or fired within goAwayNoticeMs, which the drain waits
  timer.unref();
  session.once("localSettings", go);
}

/** What a TCP socket's handle offers (Node's TCPWrap; not part of its documented API). */
interface TcpHandle {
  fd?: number;
  /** Bytes libuv has queued for the socket and not yet handed to the kernel. */
  writeQueueSize?: number;
}

/**
 * Write the shutdown notice on `socket` between two of nghttp2's writes,
 * then call `done(true)`; `done(false)` if it cannot within `goAwayNoticeMs`
 * (exported for its test, which also replaces `write`, the one system call,
 * to make the kernel take part of the notice or none of it).
 *
 * The bytes go straight to the file descriptor, synchronously, and only
 * when libuv has nothing of nghttp2's queued, so they land between whole
 * frames. Not through `socket.write()`: the HTTP/2 session owns the
 * socket's stream, and a write of someone else's that completes later
 * reaches the session as if it were its own (Node aborts on that).
 */
export function writeNotice(
  socket: net.Socket,
  done: (written: boolean) => void,
  write: (fd: number, offset: number) => number = writeSome,
): void {
  const handle = (socket as unknown as { _handle?: TcpHandle })._handle;
  const deadline = performance.now() + goAwayNoticeMs;
  const attempt = () => {
    const fd = handle?.fd;
    // A descriptor of -1 (closed) makes writeSome fail, so it needs no check.
    if (socket.destroyed || fd === undefined) return done(false);
    // Stryker disable next-line OptionalChaining: equivalent, reached only with a descriptor read from the handle
    if (handle?.writeQueueSize === 0) {
      const written = write(fd, 0);
      // Stryker disable next-line ConditionalExpression: equivalent, the partial-write path ends in done(true) too
      if (written === shutdownNotice.length) return done(true);
      // The connection is broken; the session learns it on its own.
      if (written < 0) return done(false);
      if (written > 0) {
        // Part of a frame is out: the rest must follow before any other
        // byte. A peer with so little room left is hardly reading; wait
        // for it a moment, holding everything else back, or give up on it.
        const until = performance.now() + 50;
        let sent = written;
        while (
          sent < shutdownNotice.length &&
          // Stryker disable next-line EqualityOperator: timing-only, the 50 ms bound off by under a millisecond
          performance.now() < until
        ) {
          const more = write(fd, sent);
          if (more < 0) break;
          sent += more;
        }
        if (sent < shutdownNotice.length) socket.destroy();
        return done(sent === shutdownNotice.length);
      }
    }
    // Stryker disable next-line EqualityOperator: timing-only, the goAwayNoticeMs bound off by under a millisecond
    if (performance.now() > deadline) return done(false);
    setTimeout(attempt, 5).unref();
  };
  attempt();
}

/**
 * Write the notice from `offset` on to the non-blocking file descriptor `fd`:
 * how many bytes the kernel took, 0 when its buffer is full, -1 when the
 * connection is broken (EPIPE, ECONNRESET...) or `fd` is not open. Exported
 * for its test.
 */
export function writeSome(fd: number, offset: number): number {
  try {
    return writeSync(fd, shutdownNotice, offset);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EAGAIN" ? 0 : -1;
  }
}
