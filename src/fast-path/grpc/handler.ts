/**
 * The fast path's gRPC (src/fast-path/router.ts): calls of every kind over
 * HTTP/2, binary protobuf, mirroring connect's protocol-grpc/handler-factory.js
 * and connect-node's node-universal-handler.js, without their generator pipeline.
 */
import type { OutgoingHttpHeaders } from "node:http2";
import { compressionNegotiate } from "@connectrpc/connect/protocol";
import {
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
import { asClientError } from "../../calls/hide-internal-errors.js";
import { headerValue } from "../../http/headers.js";
import { type FastCall, FastContext, type ResponseInit } from "../call.js";
import { ensureSingle } from "../invoke.js";
import { runStream, runUnary } from "../observed.js";
import { EnvelopeReader } from "./envelope-reader.js";
import { RequestMessages } from "./request-messages.js";
import { ResponseWriter } from "./response-writer.js";

// Node's HTTP/2 header objects have lower-case names; connect's constants are capitalised.
const timeoutHeader = headerTimeout.toLowerCase();
const encodingHeader = headerEncoding.toLowerCase();
const acceptEncodingHeader = headerAcceptEncoding.toLowerCase();

/** What a gRPC response starts with, for one response encoding. */
interface Shape {
  readonly init: ResponseInit;
  /** The whole response header block when the handler adds nothing. */
  readonly plain: OutgoingHttpHeaders;
}

const shapes = new Map<string, Shape>();

/** The response's initial headers and trailers, made once per encoding and accepted-encodings list. */
function shapeOf(encoding: string | undefined, acceptEncoding: string): Shape {
  const key = `${encoding ?? ""} ${acceptEncoding}`;
  let shape = shapes.get(key);
  if (shape === undefined) {
    const header: Record<string, string> = {
      [headerContentType]: contentTypeProto,
    };
    if (encoding !== undefined) header[headerEncoding] = encoding;
    shape = {
      init: { header, trailer: { [headerGrpcStatus]: grpcStatusOk } },
      plain: {
        ":status": 200,
        "grpc-accept-encoding": acceptEncoding,
        ...header,
      },
    };
    shapes.set(key, shape);
  }
  return shape;
}

/** One gRPC call, of any kind. */
export async function serveGrpc(call: FastCall): Promise<void> {
  const { host, route, stream, headers } = call;
  const { opt } = host;
  const { spec } = route;
  const timeout = parseTimeout(
    headerValue(headers, timeoutHeader),
    opt.maxTimeoutMs,
  );
  const compression = compressionNegotiate(
    opt.acceptCompression,
    headerValue(headers, encodingHeader),
    headerValue(headers, acceptEncodingHeader),
    headerAcceptEncoding,
  );
  call.startDeadline(timeout.timeoutMs);
  const shape = shapeOf(compression.response?.name, host.grpcAcceptEncoding);
  const ctx = new FastContext(call, "grpc", shape.init);
  const input = new RequestMessages(
    new EnvelopeReader(call.body, opt.readMaxBytes),
    route.binary,
    compression.request,
    opt.readMaxBytes,
    compression.error ?? timeout.error,
  );
  const writer = new ResponseWriter(
    stream,
    ctx,
    route.binary,
    shape.plain,
    host.grpcAcceptEncoding,
    compression.response,
    opt.compressMinBytes,
  );

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
      let output = runUnary(call, ctx, "grpc", message);
      if (output instanceof Promise) output = await output;
      const sent = writer.finishWith(output);
      answered = true;
      call.end();
      if (sent !== undefined) await sent;
    } else {
      await runStream(call, ctx, "grpc", input, writer);
    }
  } catch (e) {
    failure = e;
  }
  if (failure !== undefined) {
    call.end(failure);
    setTrailerStatus(ctx.responseTrailer, asClientError(failure));
    writer.finish();
  } else if (!answered) {
    call.end();
    writer.finish();
  }
  call.body.discard();
}
