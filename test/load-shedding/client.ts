/**
 * The client of test/load-shedding.test.ts's event loop case, on a worker
 * thread so that it runs while the server's loop is held: SayHello("busy"),
 * then, `holdMs` / 4 later and in one write on the same connection, two
 * more SayHello calls and a health Check. Posts what each call got.
 */
import * as http2 from "node:http2";
import { parentPort, workerData } from "node:worker_threads";
import { envelope, grpcCall, helloRequest } from "../support/raw.js";

const { url, holdMs } = workerData as { url: string; holdMs: number };
const session = http2.connect(url);
session.on("error", () => {});

const call = (path: string, body: Buffer) => grpcCall(session, path, body);

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
