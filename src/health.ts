import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../gen/health/v1/health_pb.js";
import type { ServingStatus } from "./serving-status.js";

/** Options of the health service. */
export interface HealthOptions {
  /** Whether the server takes new work: SERVING while true, NOT_SERVING once false. */
  status: ServingStatus;
  /**
   * Fully-qualified names of the services whose health can be asked for, such
   * as "Greeter". The server as a whole, "", is always known.
   * @default []
   */
  services?: readonly string[];
}

/**
 * Create the standard gRPC health service (grpc.health.v1.Health).
 *
 * Every known service shares the server's one serving status: this server
 * has no per-service dependencies that could fail on their own, and what a
 * load balancer needs to know is that it is shutting down.
 */
export function createHealth(
  options: HealthOptions,
): ServiceImpl<typeof Health> {
  const { status } = options;
  const known = new Set(["", ...(options.services ?? [])]);
  const current = () => (status.serving ? Status.SERVING : Status.NOT_SERVING);
  return {
    check(req) {
      if (!known.has(req.service)) {
        throw new ConnectError(
          `unknown service ${JSON.stringify(req.service)}`,
          Code.NotFound,
        );
      }
      return { status: current() };
    },
    async *watch(req, ctx) {
      if (!known.has(req.service)) {
        // The spec keeps the call open in case the service becomes known
        // later; here the set is fixed, so it stays SERVICE_UNKNOWN until the
        // client goes away.
        yield { status: Status.SERVICE_UNKNOWN };
        await aborted(ctx.signal);
        return;
      }
      yield* watchStatus(status, ctx.signal);
    },
    list() {
      const statuses: Record<string, { status: Status }> = {};
      for (const service of known) statuses[service] = { status: current() };
      return { statuses };
    },
  };
}

/**
 * The current status at once, then every change, until `signal` aborts.
 *
 * Changes that happen while the client has not read the previous one yet are
 * coalesced to the latest, as the spec allows, so a slow watcher costs one
 * pending value and never a growing queue.
 */
async function* watchStatus(
  status: ServingStatus,
  signal: AbortSignal,
): AsyncGenerator<{ status: Status }> {
  let wake: (() => void) | undefined;
  const onEvent = () => wake?.();
  const unsubscribe = status.subscribe(onEvent);
  signal.addEventListener("abort", onEvent);
  try {
    let sent = status.serving;
    yield { status: sent ? Status.SERVING : Status.NOT_SERVING };
    while (!signal.aborted) {
      if (status.serving === sent) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      sent = status.serving;
      yield { status: sent ? Status.SERVING : Status.NOT_SERVING };
    }
  } finally {
    unsubscribe();
    signal.removeEventListener("abort", onEvent);
  }
}

/** Resolves when `signal` aborts (at once if it has). */
function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true }),
  );
}
