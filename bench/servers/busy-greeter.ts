/**
 * connect-greeter as it serves, every setting from the environment, with
 * one change: SayHello computes for BUSY_US microseconds (default 250)
 * before it answers, as a real service's call costs more than the protocol
 * around it. The Greeter's own SayHello costs about as little as a refusal,
 * so no server can shed load by refusing it; bench/overload.ts loads this
 * one too. Prints the server's ready line once it serves.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import { Health } from "../../gen/health/v1/health_pb.js";
import { Greeter } from "../../gen/helloworld_pb.js";
import { loadConfig } from "../../src/config.js";
import { startServer } from "../../src/server.js";
import { createGreeter } from "../../src/services/greeter.js";
import { createHealth } from "../../src/services/health.js";
import { ServingStatus } from "../../src/services/serving-status.js";

const busyUs = Number(process.env.BUSY_US ?? "250");
const config = loadConfig(process.argv.slice(2), process.env);
const greeter = createGreeter({ streamIntervalMs: config.streamIntervalMs });
const status = new ServingStatus();
const server = await startServer({
  ...config,
  routes: (router: ConnectRouter) => {
    router.service(Greeter, {
      ...greeter,
      sayHello(req, ctx) {
        const end = performance.now() + busyUs / 1000;
        while (performance.now() < end);
        return greeter.sayHello(req, ctx);
      },
    });
    router.service(
      Health,
      createHealth({ status, services: [Greeter.typeName] }),
    );
  },
});
console.log(`listening on ${server.url} metrics ${server.metricsUrl}`);
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(
    signal,
    () => void server.shutdown().then(() => process.exit(0)),
  );
}
