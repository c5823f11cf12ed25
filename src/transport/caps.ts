import type * as net from "node:net";

/** Why a connection was refused as it was accepted. */
export type RefusedBy = "max_connections" | "max_connections_per_address";

/**
 * Caps on the connections `server` keeps open: `max` in all (0: none; Node's
 * own `maxConnections`, which closes a connection past it as it is
 * accepted) and `perAddress` from one client address (0: none). Returns the
 * check for each new socket: false, the socket destroyed, when it is over
 * the cap for its address. A refused client sees its connection closed
 * before a byte is read or sent, which gRPC clients report as UNAVAILABLE
 * and retry with backoff; `refused` is told of each.
 */
export function capConnections(
  server: net.Server,
  max: number,
  perAddress: number,
  refused: (
    why: RefusedBy,
    peer: { remoteAddress?: string; remotePort?: number },
  ) => void,
): (socket: net.Socket) => boolean {
  if (max > 0) {
    server.maxConnections = max;
    // Node tells of each connection it closed for maxConnections.
    server.on(
      "drop",
      (data?: { remoteAddress?: string; remotePort?: number }) =>
        refused("max_connections", data ?? {}),
    );
  }
  if (perAddress <= 0) return () => true;
  const open = new Map<string, number>();
  return (socket) => {
    const address = socket.remoteAddress ?? "";
    const count = open.get(address) ?? 0;
    if (count >= perAddress) {
      socket.destroy();
      refused("max_connections_per_address", socket);
      return false;
    }
    open.set(address, count + 1);
    socket.once("close", () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left === 0) open.delete(address);
      else open.set(address, left);
    });
    return true;
  };
}
