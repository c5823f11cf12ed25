import { constants } from "node:http2";
import type { ConnectionPolicy } from "./connection-policy.js";

/** Strikes a client may have; the next one closes its connection (grpc-go's maxPingStrikes). */
export const maxPingStrikes = 2;

/**
 * Without calls, and unless allowed, a client is expected to PING no more
 * often than this: grpc-go's defaultPingTimeout, two hours, which a
 * keepalive PING of a connection with no call would come after.
 */
const withoutCallsMs = 2 * 3_600_000;

/**
 * The most the server writes between a PING's ACK and the next PING when it
 * sends no response: one control frame, its own keepalive PING (17 bytes)
 * or a SETTINGS ACK. More means it sent HEADERS or DATA, after which grpc-go
 * forgives the client's strikes: grpc-go's BDP estimator PINGs with the
 * DATA it reads.
 */
const quietBytes = 17;

/**
 * Hold clients to the keepalive enforcement of gRFC A8, as grpc-go's server
 * does (keepalive.EnforcementPolicy; grpc-js's clients obey it): a PING
 * sooner than `minIntervalMs` after the previous one, or, with no call open
 * and `withoutCalls` false, one sooner than two hours after it, is a strike,
 * unless the server sent a response since; the third strike gets a GOAWAY
 * ENHANCE_YOUR_CALM with debug data "too_many_pings", after which the calls
 * open run on and no new one is taken. A gRPC client that reads it doubles
 * its keepalive time. Every PING is still answered: PING floods
 * are nghttp2's to refuse, which it does with its own limit on unanswered
 * ACKs.
 */
export function limitPings(
  minIntervalMs: number,
  withoutCalls: boolean,
): ConnectionPolicy {
  return {
    session(session, control) {
      let open = 0;
      if (!withoutCalls) {
        session.on("stream", (stream) => {
          open++;
          stream.on("close", () => open--);
        });
      }
      let last: number | undefined;
      // What nghttp2 had written (the session's socket counts it, before
      // TLS) once it answered the last PING.
      let writtenAtLast = 0;
      const written = () => session.socket?.bytesWritten ?? 0;
      const afterAck = () => {
        writtenAtLast = written();
      };
      let strikes = 0;
      session.on("ping", () => {
        const now = performance.now();
        const previous = last;
        const sent = written() - writtenAtLast;
        last = now;
        writtenAtLast = written();
        // nghttp2 writes the ACK (and, on a new connection, the server's
        // SETTINGS) once this event's turn is over.
        setImmediate(afterAck);
        if (previous === undefined) return;
        if (sent > quietBytes) {
          strikes = 0;
          return;
        }
        const allowed =
          open === 0 && !withoutCalls ? withoutCallsMs : minIntervalMs;
        if (now - previous < allowed && ++strikes > maxPingStrikes) {
          control.goAwayWithError(
            "too_many_pings",
            constants.NGHTTP2_ENHANCE_YOUR_CALM,
            "too_many_pings",
          );
        }
      });
    },
  };
}
