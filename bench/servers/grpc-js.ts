/**
 * The Greeter on @grpc/grpc-js, the reference the issue compares against:
 * same contract, same replies, same StreamHello pacing (STREAM_INTERVAL_MS).
 * Prints "listening on http://127.0.0.1:<port>" once it serves.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

interface HelloRequest {
  name: string;
}
interface HelloReply {
  message: string;
}

const intervalMs = Number(process.env.STREAM_INTERVAL_MS ?? "1000");
// Found from src (bench/servers) or from the build (dist/bench/servers).
const protoPath = ["../../proto/", "../../../proto/"]
  .map((dir) =>
    fileURLToPath(new URL(`${dir}helloworld.proto`, import.meta.url)),
  )
  .find((path) => existsSync(path)) as string;
const definition = protoLoader.loadSync(protoPath, {
  keepCase: true,
  defaults: true,
});
const proto = grpc.loadPackageDefinition(definition) as unknown as {
  Greeter: { service: grpc.ServiceDefinition };
};

const server = new grpc.Server();
server.addService(proto.Greeter.service, {
  sayHello(
    call: grpc.ServerUnaryCall<HelloRequest, HelloReply>,
    callback: grpc.sendUnaryData<HelloReply>,
  ) {
    callback(null, { message: `Hello, ${call.request.name}!` });
  },
  streamHello(call: grpc.ServerWritableStream<HelloRequest, HelloReply>) {
    const name = call.request.name;
    let i = 0;
    let timer: NodeJS.Timeout | undefined;
    call.on("cancelled", () => clearTimeout(timer));
    const next = () => {
      call.write({ message: `Hello ${name}, message ${i}` });
      i++;
      if (i === 5) {
        call.end();
      } else if (intervalMs === 0) {
        next();
      } else {
        timer = setTimeout(next, intervalMs);
      }
    };
    next();
  },
  collectGreetings(
    call: grpc.ServerReadableStream<HelloRequest, HelloReply>,
    callback: grpc.sendUnaryData<HelloReply>,
  ) {
    const names: string[] = [];
    call.on("data", (req: HelloRequest) => names.push(req.name));
    call.on("end", () =>
      callback(null, { message: `Hello, ${names.join(", ")}!` }),
    );
  },
  chat(call: grpc.ServerDuplexStream<HelloRequest, HelloReply>) {
    call.on("data", (req: HelloRequest) =>
      call.write({ message: `Hello, ${req.name}!` }),
    );
    call.on("end", () => call.end());
  },
});

server.bindAsync(
  "127.0.0.1:0",
  grpc.ServerCredentials.createInsecure(),
  (err, port) => {
    if (err) throw err;
    console.log(`listening on http://127.0.0.1:${port}`);
  },
);
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => server.tryShutdown(() => process.exit(0)));
}
