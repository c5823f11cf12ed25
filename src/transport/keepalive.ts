import type { ConnectionPolicy } from "./connection-policy.js";

/**
 * Keepalive (gRFC A9, as gRPC servers do it): PING every HTTP/2 connection
 * `timeMs` after it opened and after each PING's ACK (0: never), and drop
 * it when an ACK does not come within `timeoutMs`. A peer whose machine lost
 * power, or whose NAT forgot the mapping, sends no FIN: without a PING its
 * connection, and the calls on it (a Chat, a health Watch), would stay until
 * the process restarts. A dropped connection's calls end as cancelled, as
 * when a client's connection breaks.
 *
 * The PING goes out every `timeMs` whether or not the connection carried
 * traffic meanwhile, as grpc-js's server sends it: it is 17 bytes, and
 * the time from a peer's vanishing to its connection's end is then at most
 * `timeMs` + `timeoutMs`.
 */
export function keepAlive(timeMs: number, timeoutMs: number): ConnectionPolicy {
  if (timeMs <= 0) return {};
  return {
    session(session, control) {
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        timer = setTimeout(ping, timeMs);
        timer.unref();
      };
      const acked = (err: Error | null) => {
        clearTimeout(timer);
        // An error: the session closed before the ACK; nothing to watch.
        if (err === null) arm();
      };
      const ping = () => {
        if (session.destroyed) return;
        timer = setTimeout(() => control.drop("keepalive_timeout"), timeoutMs);
        timer.unref();
        // False: as many PINGs as Node allows wait for their ACK already.
        if (!session.ping(acked)) control.drop("keepalive_timeout");
      };
      session.once("close", () => clearTimeout(timer));
      arm();
    },
  };
}
