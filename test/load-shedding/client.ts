/**
 * The client of test/load-shedding.test.ts's event loop case, on a worker
 * thread so that it runs while the server's loop is held: SayHello("busy"),
 * then, `holdMs` / 4 later and in one write on the same connection, two
 * more SayHello calls and a health Check. Posts what each call got.
 */
import * as http2 from "node:http2";
import { parentPort, workerData } from "node:worker_threads";
import { envelope, helloRequest } from "../support/raw.js";

const { url, holdMs } = workerData as { url: string; holdMs: number };
const session = http2.connect(url);
session.on("error", () => {});

function call(path: string, body: Buffer) {
  return new Promise<{ status: string; message: string; data: string }>(
    (resolve) => {
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
      });
      const chunks: Buffer[] = [];
      let status = "none";
      let message = "";
      const read = (h: http2.IncomingHttpHeaders) => {
        if (h["grpc-status"] === undefined) return;
        status = String(h["grpc-status"]);
        message = decodeURIComponent(String(h["grpc-message"] ?? ""));
      };
      stream.on("response", read);
      stream.on("trailers", read);
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", () => {});
      stream.on("close", () =>
        resolve({
          status,
          message,
          data: Buffer.concat(chunks).toString("latin1"),
        }),
      );
      stream.end(body);
    },
  );
}

const hello = (name: string) =>
  call("/Greeter/SayHello", envelope(helloRequest(name)));
await new Promise((resolve) => session.once("remoteSettings", resolve));
const busy = hello("busy");
await new Promise((resolve) => setTimeout(resolve, holdMs / 4));
const [after, later, health] = await Promise.all([
  hello("after"),
  hello("later"),
  call("/grpc.health.v1.Health/Check", envelope(new Uint8Array(0))),
]);
parentPort?.postMessage({ busy: await busy, after, later, health });
session.close();
