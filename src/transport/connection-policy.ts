import type * as http from "node:http";
import type * as http2 from "node:http2";

/** Why a connection policy closed a connection, for the log and the metrics. */
export type ClosedBy =
  /** No call for the idle timeout (src/transport/idle.ts). */
  | "idle"
  /** No call at all since it opened, for the first-call timeout (src/transport/idle.ts). */
  | "first_call"
  /** Its maximum age (src/transport/age.ts). */
  | "max_age"
  /** Calls still running when the grace after its maximum age ran out (src/transport/age.ts). */
  | "max_age_grace"
  /** A keepalive PING not acknowledged in time (src/transport/keepalive.ts). */
  | "keepalive_timeout"
  /** A client that PINGs too often (src/transport/ping-policy.ts). */
  | "too_many_pings";

/** What a policy may do to an HTTP/2 session it watches. */
export interface SessionControl {
  /**
   * Close it gracefully, in two steps (src/transport/goaway.ts): calls open
   * now, or sent before the client reads the first GOAWAY, run on. Calling
   * it again, or once the session is closing, does nothing.
   */
  goAway(why: ClosedBy): void;
  /**
   * Close it with a GOAWAY that carries an error `code` and `debugData`
   * (RFC 9113, 6.8), naming the last stream taken: calls open now run on, no
   * new one is taken.
   */
  goAwayWithError(why: ClosedBy, code: number, debugData: string): void;
  /**
   * Drop the connection at once, as if the peer had vanished: its socket is
   * destroyed, every call on it ends as cancelled (as when a client's
   * connection breaks), and nothing more is sent.
   */
  drop(why: ClosedBy): void;
}

/** What a policy may do to an HTTP/1.1 connection it watches. */
export interface Http1Control {
  /** Destroy the request's connection at once, whatever it is doing. */
  drop(why: ClosedBy): void;
}

/**
 * A connection policy: a rule each connection is put under as it opens,
 * which closes it when the rule says so. Each policy is a file of its own,
 * such as the idle close (src/transport/idle.ts), listed in createListener
 * (src/transport/listener.ts).
 */
export interface ConnectionPolicy {
  /** Put a new HTTP/2 session under the rule. */
  session?(session: http2.ServerHttp2Session, control: SessionControl): void;
  /**
   * See an HTTP/1.1 request before anything answers it: what an HTTP/1.1
   * connection has in place of a GOAWAY is the `Connection: close` of a
   * response (RFC 9112, 9.6).
   */
  http1Request?(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    control: Http1Control,
  ): void;
}
