import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { Greeter } from "../../gen/helloworld_pb.js";
import { createGreeter } from "../../src/services/greeter.js";

/**
 * An error message with what gRPC's spec leaves as it is in grpc-message
 * (":", ",", "/", spaces) and what it percent-encodes ("%", a line break,
 * text beyond ASCII): every gRPC client must read it back as it is.
 */
export const oddMessage = "no: a,b/c 100% ü\n你好";

/** How grpc-message carries `oddMessage` (PROTOCOL-HTTP2.md, Percent-Encoded). */
export const oddOnTheWire = "no: a,b/c 100%25 %C3%BC%0A%E4%BD%A0%E5%A5%BD";

/** A Greeter whose SayHello fails with `oddMessage` (ABORTED), through the routes seam. */
export function oddGreeter(router: ConnectRouter): void {
  router.service(Greeter, {
    ...createGreeter({ streamIntervalMs: 0 }),
    sayHello() {
      throw new ConnectError(oddMessage, Code.Aborted);
    },
  });
}
