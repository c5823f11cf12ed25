/**
 * Connect's streaming calls (server, client and bidi), in protobuf or JSON,
 * on either HTTP version (bidi on HTTP/2 only): createStreamHandler in
 * connect's protocol-connect/handler-factory.js, with connect-node's response
 * writing, without their generator pipeline. The status and trailers go in
 * the body's last message, the end-of-stream message.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import {
  contentTypeStreamJson,
  contentTypeStreamProto,
  createEndStreamSerialization,
  endStreamFlag,
  headerContentType,
  headerStreamAcceptEncoding,
  headerStreamEncoding,
  headerTimeout,
  parseTimeout,
} from "@connectrpc/connect/protocol-connect";
import type { EngineCall } from "../engine/call.js";
import { streamResponses } from "../engine/stream.js";
import {
  type EnvelopedProtocol,
  envelopedCall,
  type Shape,
} from "../protocol/enveloped-call.js";

// Node's header objects have lower-case names; connect's constants are capitalised.
const connectStream: EnvelopedProtocol = {
  name: "connect",
  timeoutHeader: headerTimeout.toLowerCase(),
  parseTimeout,
  encodingHeader: headerStreamEncoding.toLowerCase(),
  acceptEncodingHeader: headerStreamAcceptEncoding.toLowerCase(),
  acceptEncodingName: headerStreamAcceptEncoding,
  skipFlag: endStreamFlag,
};

/** The responses' initial headers, by binary (1) or JSON (0), then by response encoding ("" for none); made as first needed. */
const shapes = [new Map<string, Shape>(), new Map<string, Shape>()];

function shapeOf(binary: boolean, encoding: string | undefined): Shape {
  const byEncoding = shapes[binary ? 1 : 0] as Map<string, Shape>;
  let shape = byEncoding.get(encoding ?? "");
  if (shape === undefined) {
    const contentType = binary ? contentTypeStreamProto : contentTypeStreamJson;
    const header: Record<string, string> = {
      [headerContentType]: contentType,
    };
    const plain: Record<string, string> = { "content-type": contentType };
    if (encoding !== undefined) {
      header[headerStreamEncoding] = encoding;
      plain[connectStream.encodingHeader] = encoding;
    }
    shape = {
      init: { header, trailer: {} },
      head: { plain, before: undefined, trailers: false },
    };
    byEncoding.set(encoding ?? "", shape);
  }
  return shape;
}

/** One Connect streaming call, its messages in protobuf (`binary`) or JSON. */
export async function serveConnectStream(
  call: EngineCall,
  binary: boolean,
): Promise<void> {
  const { opt } = call.host;
  const { ctx, input, writer } = envelopedCall(
    call,
    connectStream,
    binary,
    (encoding) => shapeOf(binary, encoding),
  );
  let error: ConnectError | undefined;
  try {
    // As connect's applyRequestGate: before the body is read and before the
    // interceptors, so a rejected call is never parsed nor observed.
    // A gate that answers at once (load shedding) costs no turn of the loop.
    const gated = opt.requestGate?.(ctx);
    if (gated !== undefined) await gated;
    await streamResponses(call, ctx, input, writer);
  } catch (e) {
    error =
      e instanceof ConnectError
        ? e
        : new ConnectError(
            "internal error",
            Code.Internal,
            undefined,
            undefined,
            e,
          );
  }
  call.end(error);
  const finished = writer.finish(
    endStreamFlag,
    endStream(opt.jsonOptions).serialize({
      metadata: ctx.responseTrailer,
      error,
    }),
  );
  if (finished !== undefined) await finished;
  call.exchange.body.discard();
}

const endStreams = new WeakMap<
  object,
  ReturnType<typeof createEndStreamSerialization>
>();
const noJsonOptions = {};

/** connect's end-of-stream serialization for a set of JSON options, made once. */
function endStream(
  jsonOptions: Parameters<typeof createEndStreamSerialization>[0],
) {
  const key = jsonOptions ?? noJsonOptions;
  let s = endStreams.get(key);
  if (s === undefined) {
    s = createEndStreamSerialization(jsonOptions);
    endStreams.set(key, s);
  }
  return s;
}
