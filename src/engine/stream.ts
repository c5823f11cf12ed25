import type { ResponseWriter } from "../protocol/response-writer.js";
import type { EngineCall } from "./call.js";
import type { CallContext } from "./context.js";
import {
  copyHeaders,
  invokeStream,
  normalize,
  type StreamSpec,
} from "./invoke.js";

/**
 * Run a streaming handler (server, client or bidi) on its request messages
 * `input`, through the call pipeline, and write each response message as it
 * is produced, waiting while the client reads slowly. Resolves once the
 * handler is done, or has stopped because the client went away; rejects with
 * the error for the client. The protocol writes the end.
 */
export async function streamResponses(
  call: EngineCall,
  ctx: CallContext,
  input: AsyncIterable<unknown>,
  writer: ResponseWriter,
): Promise<void> {
  const { host, route } = call;
  const answer = await host.pipeline.stream(call, input, (requests) =>
    invokeStream(route.spec as StreamSpec, ctx, requests, host.interceptors),
  );
  if (answer.header !== undefined) {
    copyHeaders(answer.header, ctx.responseHeader);
  }
  const { messages } = answer;
  const desc = route.spec.method.output;
  for (;;) {
    const r = await messages.next();
    if (r.done === true) break;
    const written = writer.write(
      answer.normalized ? r.value : normalize(desc, r.value),
    );
    if (!(written instanceof Promise ? await written : written)) {
      // The client went away: stop the handler, as connect-node's writer
      // does; the call is reported once it has stopped.
      await messages.return?.();
      return;
    }
  }
  if (answer.trailer !== undefined) {
    copyHeaders(answer.trailer, ctx.responseTrailer);
  }
}
