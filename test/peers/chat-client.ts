/**
 * A Chat client for test/peers.test.ts, run in a network namespace of its
 * own (a host of its own): grpc-js, no keepalive of its own, one Chat to the
 * server at argv[2] (host:port). It says "replied" once its first name was
 * answered, then waits, the call open, until it is killed.
 */
import { grpcJsGreeter, type HelloReply } from "../support/grpc-js.js";

const client = grpcJsGreeter(process.argv[2] as string);
const chat = client.chat();
chat.on("data", (reply: HelloReply) =>
  console.log(`replied: ${reply.message}`),
);
chat.on("error", (e: Error) => console.log(`error: ${e.message}`));
chat.write({ name: "Dora" });
