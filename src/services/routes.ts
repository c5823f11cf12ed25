import type { ConnectRouter } from "@connectrpc/connect";
import { Health } from "../../gen/health/v1/health_pb.js";
import { Greeter } from "../../gen/helloworld_pb.js";
import { createGreeter, type GreeterOptions } from "./greeter.js";
import { createHealth } from "./health.js";
import { registerReflection } from "./reflection.js";
import { ServingStatus } from "./serving-status.js";

/** Options of everything the router serves. */
export interface RoutesOptions {
  /** Options of the Greeter service. @default {} */
  greeter?: GreeterOptions;
  /** Whether the server takes new work, as health checks report it. @default always serving */
  status?: ServingStatus;
  /** Serve gRPC server reflection (v1 and v1alpha). @default true */
  reflection?: boolean;
}

/** Register every service this server offers on a Connect router. */
export function routes(
  options: RoutesOptions = {},
): (router: ConnectRouter) => void {
  return (router) => {
    // The application's services: register yours here, one line each
    // (docs/adding-a-service.md). Everything below knows them from the router.
    router.service(Greeter, createGreeter(options.greeter));

    // Health answers for every service registered above it, and for "".
    router.service(
      Health,
      createHealth({
        status: options.status ?? new ServingStatus(),
        services: router.handlers.map((h) => h.service.typeName),
      }),
    );
    // Reflection describes whatever this router serves, itself included.
    if (options.reflection ?? true) registerReflection(router);
  };
}
