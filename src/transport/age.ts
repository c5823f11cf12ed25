import type * as net from "node:net";
import type { ConnectionPolicy } from "./connection-policy.js";

/**
 * How far each connection's age is spread around the maximum, as a share of
 * it: gRFC A9 asks for ±10 % jitter, so that connections opened together (a
 * client fleet after a deploy) do not all close, and reconnect, together.
 */
export const ageJitter = 0.1;

/**
 * Close a connection gracefully once it has served for `ageMs` (0: never),
 * give its calls `graceMs` more, then drop it: gRFC A9's
 * MAX_CONNECTION_AGE and MAX_CONNECTION_AGE_GRACE, as grpc-go, grpc-java and
 * grpc-js have them. Behind an L4 balancer (a Kubernetes Service) a client
 * keeps its connection, and so its replica, for as long as the connection
 * lives; closing old connections makes clients reconnect, and new
 * connections spread over every replica, new ones included.
 *
 * HTTP/2: the two-step GOAWAY of the drain, so no call is refused; calls
 * still running when the grace runs out end as cancelled with the
 * connection. HTTP/1.1: the first response once the connection is past its
 * age says `Connection: close`, and Node closes the connection after it; its
 * age counts from its first request, as an HTTP/1.1 connection that never
 * sends one is closed by the headers timeout. `random` is for tests.
 */
export function closeWhenOld(
  ageMs: number,
  graceMs: number,
  random: () => number = Math.random,
): ConnectionPolicy {
  if (ageMs <= 0) return {};
  const jittered = () => ageMs * (1 + ageJitter * (2 * random() - 1));
  /** When each HTTP/1.1 connection reaches its age (performance.now()). */
  const oldAt = new WeakMap<net.Socket, number>();
  return {
    session(session, control) {
      let grace: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => {
        control.goAway("max_age");
        grace = setTimeout(() => control.drop("max_age_grace"), graceMs);
        grace.unref();
      }, jittered());
      timer.unref();
      session.once("close", () => {
        clearTimeout(timer);
        clearTimeout(grace);
      });
    },
    http1Request(req, res, control) {
      const socket = req.socket;
      let at = oldAt.get(socket);
      if (at === undefined) {
        const age = jittered();
        at = performance.now() + age;
        oldAt.set(socket, at);
        const grace = setTimeout(
          () => control.drop("max_age_grace"),
          age + graceMs,
        );
        grace.unref();
        socket.once("close", () => clearTimeout(grace));
      }
      if (performance.now() >= at) res.setHeader("connection", "close");
    },
  };
}
