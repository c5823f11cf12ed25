/**
 * The fast path's gRPC (src/fast-path/router.ts): calls of every kind over
 * HTTP/2, binary protobuf, mirroring connect's protocol-grpc/handler-factory.js
 * and connect-node's node-universal-handler.js, without their generator pipeline.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import {
  compressedFlag,
  compressionNegotiate,
  invokeUnaryImplementation,
} from "@connectrpc/connect/protocol";
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
import type { FastCall } from "../call.js";
import { ensureSingle, invokeStream } from "../invoke-stream.js";
import { EnvelopeReader } from "./envelope-reader.js";
import { ResponseWriter } from "./response-writer.js";

/**
 * One gRPC call, `grpcAcceptEncoding` the encodings it reads, for the
 * grpc-accept-encoding header connect's answers get (src/http/grpc-accept-encoding.ts).
 */
export async function serveGrpc(
  call: FastCall,
  grpcAcceptEncoding: string,
): Promise<void> {
  const { opt, route, stream, requestHeader } = call;
  const { spec } = route;
  const timeout = parseTimeout(
    requestHeader.get(headerTimeout),
    opt.maxTimeoutMs,
  );
  const compression = compressionNegotiate(
    opt.acceptCompression,
    requestHeader.get(headerEncoding),
    requestHeader.get(headerAcceptEncoding),
    headerAcceptEncoding,
  );
  call.startDeadline(timeout.timeoutMs);
  const context = call.handlerContext(
    "grpc",
    new Headers({ [headerContentType]: contentTypeProto }),
    new Headers({ [headerGrpcStatus]: grpcStatusOk }),
  );
  if (compression.response) {
    context.responseHeader.set(headerEncoding, compression.response.name);
  }
  const input = new EnvelopeReader(stream, opt.readMaxBytes, () => {
    // raised on the first read, as connect's transformPrepend does
    if (compression.error) throw compression.error;
    if (timeout.error) throw timeout.error;
  });
  const readMessage = async (): Promise<IteratorResult<unknown>> => {
    const env = await input.next();
    if (env === undefined) return { done: true, value: undefined };
    let data = env.data;
    if ((env.flags & compressedFlag) === compressedFlag) {
      if (!compression.request) {
        throw new ConnectError(
          "received compressed envelope, but do not know how to decompress",
          Code.Internal,
        );
      }
      data = await compression.request.decompress(data, opt.readMaxBytes);
    }
    return { done: false, value: route.binary.parse(data) };
  };
  const writer = new ResponseWriter(
    stream,
    grpcAcceptEncoding,
    context,
    compression.response,
    opt.compressMinBytes,
  );

  let failure: unknown;
  try {
    // As connect's applyRequestGate: before the body is read and before the
    // interceptors, so a rejected call is never parsed nor observed.
    if (opt.requestGate !== undefined) await opt.requestGate(context);
    if (spec.kind === "unary") {
      // As connect: the single request is read before the interceptors run.
      const message = await ensureSingle(readMessage, "unary");
      const output = await invokeUnaryImplementation(
        spec,
        context,
        message as never,
        opt.interceptors,
      );
      await writer.write(route.binary.serialize(output));
    } else {
      await invokeStream(opt.interceptors, spec, context, readMessage, (m) =>
        writer.write(route.binary.serialize(m)),
      );
    }
  } catch (e) {
    failure = e;
  }
  call.end(failure);
  if (failure !== undefined) {
    setTrailerStatus(
      context.responseTrailer,
      failure instanceof ConnectError
        ? failure
        : new ConnectError(
            "internal error",
            Code.Internal,
            undefined,
            undefined,
            failure,
          ),
    );
  }
  writer.finish();
  input.discard();
}
