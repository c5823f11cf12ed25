import cluster from "node:cluster";
import {
  ClusterMetrics,
  shareMetricsWithPrimary,
} from "./admin/cluster-metrics.js";
import { startAdminServer } from "./admin/server.js";
import { type Config, ConfigError, helpText, loadConfig } from "./config.js";
import {
  isClusterWorker,
  reportReady,
  runCluster,
} from "./lifecycle/cluster.js";
import { exitOnSignals } from "./lifecycle/signals.js";
import {
  createLogger,
  endLog,
  type LifecycleLog,
  lifecycleLogger,
} from "./logger.js";
import { startServer, urlOf } from "./server.js";
import { ServingStatus } from "./services/serving-status.js";

/** Wiring only: read the configuration, start the server, stop on a signal. */
async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(helpText());
    return;
  }
  const config = loadConfig(argv, process.env);
  if (config.workers > 1 && cluster.isPrimary) {
    // The primary serves the metrics of every worker, summed, on the admin
    // port, and /readyz once every worker serves.
    const readiness = new ServingStatus();
    const admin =
      config.adminPort === undefined
        ? undefined
        : await startAdminServer(
            new ClusterMetrics(),
            config.adminPort,
            config.host === "" ? undefined : config.host,
            readiness,
          );
    const metricsUrl =
      admin === undefined
        ? undefined
        : `${urlOf({ ...config, tls: undefined }, admin.port)}/metrics`;
    // No process.exit: the primary ends once its workers have, with its output flushed.
    const log = lifecycleLogger(createLogger({ level: config.logLevel }));
    logTracing(log, config.tracing);
    process.exitCode = await runCluster({
      workers: config.workers,
      out: (line) => log.info({ workers: config.workers, metricsUrl }, line),
      err: (line) => log.warn({}, line),
      readiness,
    });
    await admin?.close();
    return;
  }
  const worker = isClusterWorker();
  const server = await startServer(
    // A worker's metrics go to the primary, which serves them all.
    worker ? { ...config, adminPort: undefined } : config,
  );
  if (worker) shareMetricsWithPrimary(server.metrics.registry);
  const transport = config.tls
    ? "HTTP/2 and HTTP/1.1 over TLS"
    : "HTTP/2 (h2c) and HTTP/1.1";
  const log = lifecycleLogger(server.logger);
  exitOnSignals(() => server.shutdown(), {
    onSignal: (signal) => log.info({ signal }, "shutting down"),
    onDrained: (result) => {
      log.info(result, "stopped");
      return endLog(server.logger);
    },
    onForced: (signal) =>
      log.warn({ signal }, "second signal: exiting at once"),
  });
  // In cluster mode the primary says it, once for every worker.
  if (!isClusterWorker()) logTracing(log, config.tracing);
  // Announce readiness only once a signal would be handled: whoever waits
  // for this line may stop the server at once. In cluster mode the primary
  // announces it, once every worker serves.
  const ready = `connect-greeter listening on ${server.url} (gRPC, gRPC-Web and Connect over ${transport})`;
  if (worker) reportReady(ready);
  else {
    const protocols = ["grpc", "grpc-web", "connect"];
    log.info(
      {
        url: server.url,
        port: server.port,
        protocols,
        metricsUrl: server.metricsUrl,
      },
      ready,
    );
  }
}

/** Where spans go, when tracing is on: an operator's first check. */
function logTracing(log: LifecycleLog, tracing: Config["tracing"]): void {
  if (tracing === undefined) return;
  const { url, protocol, sampler, samplerRatio } = tracing;
  log.info(
    { tracesUrl: url, protocol, sampler, samplerRatio },
    `tracing on: spans go to ${url}`,
  );
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof ConfigError) {
    console.error(`connect-greeter: ${e.message}`);
  } else {
    const err = e as NodeJS.ErrnoException;
    console.error(
      `connect-greeter: cannot start: ${err.code === "EADDRINUSE" ? "the port is already in use" : err.message}`,
    );
  }
  process.exit(2);
});
