import cluster from "node:cluster";
import { isClusterWorker, reportReady, runCluster } from "./cluster.js";
import { ConfigError, helpText, loadConfig } from "./config.js";
import { startServer } from "./server.js";

/** Wiring only: read the configuration, start the server, stop on a signal. */
async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(helpText());
    return;
  }
  const config = loadConfig(argv, process.env);
  if (config.workers > 1 && cluster.isPrimary) {
    // No process.exit: the primary ends once its workers have, with its output flushed.
    process.exitCode = await runCluster({ workers: config.workers });
    return;
  }
  const server = await startServer(config);
  const transport = config.tls
    ? "HTTP/2 and HTTP/1.1 over TLS"
    : "HTTP/2 (h2c) and HTTP/1.1";
  const ready = `connect-greeter listening on ${server.url} (gRPC, gRPC-Web and Connect over ${transport})`;
  if (isClusterWorker()) reportReady(ready);
  else console.log(ready);
  const stop = () => {
    void server.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
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
