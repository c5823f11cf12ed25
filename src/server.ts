import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Config } from "./config.js";
import { notFound } from "./fallback.js";
import { InflightCalls } from "./inflight.js";
import { createListener, type Listener } from "./listener.js";
import { routes } from "./routes.js";

/** What a server needs to start: the configuration, or the part of it that tests set. */
export type ServerOptions = Partial<Config>;

/** A running server. */
export interface RunningServer {
  /** The port it listens on (the real one when 0 was asked for). */
  readonly port: number;
  /** A URL clients on this machine can use, such as http://localhost:50051. */
  readonly url: string;
  /** Calls in flight. */
  readonly inflight: InflightCalls;
  /** The listener, with its HTTP servers and sockets. */
  readonly listener: Listener;
  /** Stop accepting, end every connection, and resolve once the port is closed. */
  close(): Promise<void>;
}

/** Start serving the Greeter on one port, for gRPC, gRPC-Web and Connect. */
export async function startServer(
  options: ServerOptions = {},
): Promise<RunningServer> {
  const inflight = new InflightCalls();
  const handler = connectNodeAdapter({
    routes: routes({
      greeter: { streamIntervalMs: options.streamIntervalMs ?? 1000 },
    }),
    interceptors: [inflight.interceptor],
    fallback: notFound,
  });
  const listener = createListener(handler, { tls: options.tls });
  const { server } = listener;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const host = options.host ? options.host : undefined;
    server.listen(options.port ?? 50051, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const scheme = options.tls ? "https" : "http";
  const hostForUrl =
    !options.host || options.host === "::" || options.host === "0.0.0.0"
      ? "localhost"
      : options.host;
  return {
    port,
    url: `${scheme}://${hostForUrl.includes(":") ? `[${hostForUrl}]` : hostForUrl}:${port}`,
    inflight,
    listener,
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of listener.sockets) socket.destroy();
      });
    },
  };
}
