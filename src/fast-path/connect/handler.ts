/**
 * The fast path's Connect (src/fast-path.ts): unary POST calls over HTTP/2,
 * in protobuf or JSON, mirroring createUnaryHandler in connect's
 * protocol-connect/handler-factory.js and connect-node's response writing.
 * GET requests and streaming calls stay with connect.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import {
  compressionNegotiate,
  invokeUnaryImplementation,
  mergeNonProtocolHeaders,
  readAllBytes,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  errorToJsonBytes,
  headerContentType,
  headerTimeout,
  headerUnaryAcceptEncoding,
  headerUnaryContentLength,
  headerUnaryEncoding,
  parseTimeout,
  trailerMux,
} from "@connectrpc/connect/protocol-connect";
import type { FastCall } from "../call.js";
import { nodeHeaders } from "../headers.js";

/** One Connect unary call, its messages in protobuf (`binary`) or JSON. */
export async function serveConnectUnary(
  call: FastCall,
  binary: boolean,
): Promise<void> {
  const { opt, route, stream, requestHeader } = call;
  const { spec } = route;
  // The router only hands unary methods here (FastPath.claim).
  if (spec.kind !== "unary") throw new Error(`${spec.kind} is not unary`);
  const codec = binary ? route.binary : route.json;
  const timeout = parseTimeout(
    requestHeader.get(headerTimeout),
    opt.maxTimeoutMs,
  );
  call.startDeadline(timeout.timeoutMs);
  const context = call.handlerContext(
    "connect",
    new Headers({
      [headerContentType]: binary
        ? contentTypeUnaryProto
        : contentTypeUnaryJson,
    }),
    new Headers(),
  );
  const compression = compressionNegotiate(
    opt.acceptCompression,
    requestHeader.get(headerUnaryEncoding),
    requestHeader.get(headerUnaryAcceptEncoding),
    headerUnaryAcceptEncoding,
  );
  let status = 200;
  let body: Uint8Array;
  try {
    // As connect: the gate runs before the body is read, so a request it
    // rejects is never read, decompressed or parsed.
    if (opt.requestGate !== undefined) await opt.requestGate(context);
    if (compression.error) throw compression.error;
    if (timeout.error) throw timeout.error;
    let bytes = await readAllBytes(
      undestroyed(stream),
      opt.readMaxBytes,
      requestHeader.get(headerUnaryContentLength),
    );
    if (compression.request) {
      bytes = await compression.request.decompress(bytes, opt.readMaxBytes);
    }
    const output = await invokeUnaryImplementation(
      spec,
      context,
      codec.parse(bytes) as never,
      opt.interceptors,
    );
    body = codec.serialize(output);
  } catch (e) {
    call.end(e);
    const error =
      e instanceof ConnectError
        ? e
        : new ConnectError(
            "internal error",
            Code.Internal,
            undefined,
            undefined,
            e,
          );
    status = codeToHttpStatus(error.code);
    context.responseHeader.set(headerContentType, contentTypeUnaryJson);
    // As connect: an error's own metadata goes out; one read off the wire does not.
    if (!error.isWireError) {
      mergeNonProtocolHeaders(context.responseHeader, error.metadata);
    }
    body = errorToJsonBytes(error, opt.jsonOptions);
  }
  call.end();
  if (compression.response && body.byteLength >= opt.compressMinBytes) {
    body = await compression.response.compress(body);
    context.responseHeader.set(headerUnaryEncoding, compression.response.name);
  }
  const header = trailerMux(context.responseHeader, context.responseTrailer);
  header.set(headerUnaryContentLength, body.byteLength.toString(10));
  if (call.gone) return;
  stream.respond({ ":status": status, ...nodeHeaders(header) });
  stream.end(body);
  // A request the call did not read to its end (a rejected one) is dropped,
  // so the stream can close.
  stream.resume();
}

/**
 * The stream's chunks, without the iterator's return(): a stream iterator
 * destroys its stream when the loop over it stops early (readAllBytes over
 * readMaxBytes), and the call still has its error to send.
 */
function undestroyed(
  stream: AsyncIterable<Uint8Array>,
): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      const it = stream[Symbol.asyncIterator]();
      return { next: () => it.next() };
    },
  };
}
