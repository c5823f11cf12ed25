import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/health/v1/health_pb.js";
import { quote } from "./quote.js";
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
          `unknown service ${quote(req.service)}`,
          Code.NotFound,
        );
      }
      return { status: current() };
    },
    async *watch(req, ctx) {
      if (!known.has(req.service)) {
        // The spec keeps the call open in case the service becomes known
        // later; here the set is fixed, so only the client leaving or the
        // server stopping ends it.
        yield { status: Status.SERVICE_UNKNOWN };
        await untilStopped(status, ctx.signal);
        return;
      }
      if (status.serving) {
        yield { status: Status.SERVING };
        await untilStopped(status, ctx.signal);
        if (ctx.signal.aborted) return;
      }
      // NOT_SERVING is the last word: the server is shutting down, and a
      // watch left open would hold graceful shutdown up for its whole grace
      // period (grpc-go#8776; grpc-dotnet ends watches on shutdown since
      // #2582). The spec lets the call end with OK; clients then retry with
      // backoff, on another server.
      yield { status: Status.NOT_SERVING };
    },
    list() {
      const statuses: Record<string, { status: Status }> = {};
      for (const service of known) statuses[service] = { status: current() };
      return { statuses };
    },
  };
}

/**
 * Resolves once the server stops serving or `signal` aborts, whichever comes
 * first, and leaves no listener behind on either.
 */
function untilStopped(
  status: ServingStatus,
  signal: AbortSignal,
): Promise<void> {
  if (!status.serving || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      unsubscribe();
      signal.removeEventListener("abort", done);
      resolve();
    };
    const unsubscribe = status.subscribe((serving) => {
      if (!serving) done();
    });
    signal.addEventListener("abort", done);
  });
}
