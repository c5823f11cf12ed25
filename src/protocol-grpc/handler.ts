/**
 * gRPC and gRPC-Web, every kind of call, protobuf or JSON, on either HTTP
 * version: connect's protocol-grpc/handler-factory.js and
 * protocol-grpc-web/handler-factory.js, with connect-node's response writing,
 * without their generator pipeline. The two protocols differ only in where
 * the status goes: gRPC's HTTP trailers, or gRPC-Web's last message
 * (src/protocol-grpc-web/trailer.ts).
 */
import {
  contentTypeJson,
  contentTypeProto,
  grpcStatusOk,
  headerAcceptEncoding,
  headerContentType,
  headerEncoding,
  headerGrpcStatus,
  headerTimeout,
  parseTimeout,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import {
  contentTypeJson as webContentTypeJson,
  contentTypeProto as webContentTypeProto,
} from "@connectrpc/connect/protocol-grpc-web";
import { asClientError } from "../calls/internal-errors.js";
import type { EngineCall } from "../engine/call.js";
import { ensureSingle, invokeUnary } from "../engine/invoke.js";
import { streamResponses } from "../engine/stream.js";
import {
  type EnvelopedProtocol,
  envelopedCall,
  type Shape,
} from "../protocol/enveloped-call.js";
import { webTrailer, webTrailerFlag } from "../protocol-grpc-web/trailer.js";

// Node's header objects have lower-case names; connect's constants are capitalised.
const grpc: EnvelopedProtocol = {
  name: "grpc",
  timeoutHeader: headerTimeout.toLowerCase(),
  parseTimeout,
  encodingHeader: headerEncoding.toLowerCase(),
  acceptEncodingHeader: headerAcceptEncoding.toLowerCase(),
  acceptEncodingName: headerAcceptEncoding,
  skipFlag: 0,
};
const grpcWeb: EnvelopedProtocol = {
  ...grpc,
  name: "grpc-web",
  skipFlag: webTrailerFlag,
};

const shapes = new Map<string, Shape>();

/** The response's initial headers and trailers, made once per protocol, format, encoding and accepted-encodings list. */
function shapeOf(
  web: boolean,
  binary: boolean,
  encoding: string | undefined,
  acceptEncoding: string,
): Shape {
  const key = `${web} ${binary} ${encoding ?? ""} ${acceptEncoding}`;
  let shape = shapes.get(key);
  if (shape === undefined) {
    const header: Record<string, string> = {
      [headerContentType]: web
        ? binary
          ? webContentTypeProto
          : webContentTypeJson
        : binary
          ? contentTypeProto
          : contentTypeJson,
    };
    if (encoding !== undefined) header[headerEncoding] = encoding;
    const before = { "grpc-accept-encoding": acceptEncoding };
    shape = {
      // Lower case, as connect-node's webHeaderToNodeHeaders writes the
      // trailers: Node sends these as they are when no handler set one, and
      // HTTP/1.1 keeps a name's case on the wire.
      init: {
        header,
        trailer: { [headerGrpcStatus.toLowerCase()]: grpcStatusOk },
      },
      head: {
        plain: { ...before, ...lowerCase(header) },
        before,
        trailers: !web,
      },
    };
    shapes.set(key, shape);
  }
  return shape;
}

/** One gRPC (`web` false) or gRPC-Web call, of any kind. */
export async function serveGrpc(
  call: EngineCall,
  web: boolean,
  binary: boolean,
  acceptEncoding: string,
): Promise<void> {
  const { host, route, exchange } = call;
  const { opt } = host;
  const { spec } = route;
  const { ctx, input, writer } = envelopedCall(
    call,
    web ? grpcWeb : grpc,
    binary,
    (encoding) => shapeOf(web, binary, encoding, acceptEncoding),
  );
  const end = web ? () => webTrailer(ctx) : undefined;

  let failure: unknown;
  let answered = false;
  try {
    // As connect's applyRequestGate: before the body is read and before the
    // interceptors, so a rejected call is never parsed nor observed.
    if (opt.requestGate !== undefined) await opt.requestGate(ctx);
    if (spec.kind === "unary") {
      // As connect: the single request is read before the handler runs.
      let message = ensureSingle(() => input.read(), "unary");
      if (message instanceof Promise) message = await message;
      let output = host.pipeline.unary(call, () =>
        invokeUnary(spec, ctx, message, host.interceptors),
      );
      if (output instanceof Promise) output = await output;
      const sent = writer.finishWith(output, end);
      answered = true;
      call.end();
      if (sent !== undefined) await sent;
    } else {
      await streamResponses(call, ctx, input, writer);
    }
  } catch (e) {
    failure = e;
  }
  if (failure !== undefined) {
    call.end(failure);
    setTrailerStatus(ctx.responseTrailer, asClientError(failure));
  } else if (!answered) {
    call.end();
  }
  if (!answered) {
    const last = end?.();
    const finished = writer.finish(last?.flags, last?.data);
    if (finished !== undefined) await finished;
  }
  exchange.body.discard();
}

/** `header` with lower-case names, as Node sends them. */
function lowerCase(header: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(header)) out[k.toLowerCase()] = v;
  return out;
}
