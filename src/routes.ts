import type { ConnectRouter } from "@connectrpc/connect";
import { Greeter } from "../gen/helloworld_pb.js";
import { createGreeter, type GreeterOptions } from "./greeter.js";

/** Options of everything the router serves. */
export interface RoutesOptions {
  /** Options of the Greeter service. @default {} */
  greeter?: GreeterOptions;
}

/** Register every service this server offers on a Connect router. */
export function routes(
  options: RoutesOptions = {},
): (router: ConnectRouter) => void {
  return (router) => {
    router.service(Greeter, createGreeter(options.greeter));
  };
}
