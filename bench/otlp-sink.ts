/**
 * An OTLP/HTTP collector that accepts every export and discards it, for the
 * benchmark's tracing servers: their export cost (serialising, the HTTP
 * request) is real, the collector's is next to nothing. Answers 200 with an
 * empty ExportTraceServiceResponse to POST /v1/traces, 404 to anything else.
 * GET /stats answers {"requests":N,"bytes":N}, what it took so far. Prints
 * "listening on http://127.0.0.1:<port>" once it serves.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

let requests = 0;
let bytes = 0;
const server = createServer((req, res) => {
  req.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
  });
  req.on("end", () => {
    if (req.method === "GET" && req.url === "/stats") {
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ requests, bytes }));
      return;
    }
    if (req.method !== "POST" || req.url !== "/v1/traces") {
      res.writeHead(404).end();
      return;
    }
    requests++;
    res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
  });
});
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  console.log(`listening on http://127.0.0.1:${port}`);
});
process.on("SIGTERM", () => process.exit(0));
