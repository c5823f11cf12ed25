import { ConfigError, helpText, loadConfig } from "./config.js";
import { lifecycleLogger } from "./logging.js";
import { startServer } from "./server.js";
import { exitOnSignals } from "./shutdown.js";

/** Wiring only: read the configuration, start the server, stop on a signal. */
async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(helpText());
    return;
  }
  const config = loadConfig(argv, process.env);
  const server = await startServer(config);
  const transport = config.tls
    ? "HTTP/2 and HTTP/1.1 over TLS"
    : "HTTP/2 (h2c) and HTTP/1.1";
  const log = lifecycleLogger(server.logger);
  exitOnSignals(() => server.shutdown(), {
    onSignal: (signal) => log.info({ signal }, "shutting down"),
    onDrained: (result) => log.info(result, "stopped"),
    onForced: (signal) =>
      log.warn({ signal }, "second signal: exiting at once"),
  });
  // Announce readiness only once a signal would be handled: whoever waits
  // for this line may stop the server at once.
  log.info(
    {
      url: server.url,
      port: server.port,
      protocols: ["grpc", "grpc-web", "connect"],
    },
    `connect-greeter listening on ${server.url} (gRPC, gRPC-Web and Connect over ${transport})`,
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
