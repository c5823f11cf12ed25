/**
 * The fast path's Connect (src/fast-path/router.ts): unary POST calls over
 * HTTP/2, in protobuf or JSON, mirroring createUnaryHandler in connect's
 * protocol-connect/handler-factory.js and connect-node's response writing.
 * GET requests and streaming calls stay with connect.
 */
import {
  compressionNegotiate,
  mergeNonProtocolHeaders,
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
import { asClientError } from "../../calls/hide-internal-errors.js";
import { headerValue, nodeHeaders } from "../../http/headers.js";
import { type FastCall, FastContext, type ResponseInit } from "../call.js";
import { runUnary } from "../observed.js";
import { readAll } from "../request-body.js";

// Node's HTTP/2 header objects have lower-case names; connect's constants are capitalised.
const timeoutHeader = headerTimeout.toLowerCase();
const encodingHeader = headerUnaryEncoding.toLowerCase();
const acceptEncodingHeader = headerUnaryAcceptEncoding.toLowerCase();
const contentLengthHeader = headerUnaryContentLength.toLowerCase();

const noTrailer = {};
const protoInit: ResponseInit = {
  header: { [headerContentType]: contentTypeUnaryProto },
  trailer: noTrailer,
};
const jsonInit: ResponseInit = {
  header: { [headerContentType]: contentTypeUnaryJson },
  trailer: noTrailer,
};

/** One Connect unary call, its messages in protobuf (`binary`) or JSON. */
export async function serveConnectUnary(
  call: FastCall,
  binary: boolean,
): Promise<void> {
  const { host, route, stream, headers } = call;
  const { opt } = host;
  const codec = binary ? route.binary : route.json;
  const timeout = parseTimeout(
    headerValue(headers, timeoutHeader),
    opt.maxTimeoutMs,
  );
  call.startDeadline(timeout.timeoutMs);
  const ctx = new FastContext(call, "connect", binary ? protoInit : jsonInit);
  const compression = compressionNegotiate(
    opt.acceptCompression,
    headerValue(headers, encodingHeader),
    headerValue(headers, acceptEncodingHeader),
    headerUnaryAcceptEncoding,
  );
  let status = 200;
  let body: Uint8Array;
  try {
    // As connect: the gate runs before the body is read, so a request it
    // rejects is never read, decompressed or parsed.
    if (opt.requestGate !== undefined) await opt.requestGate(ctx);
    if (compression.error) throw compression.error;
    if (timeout.error) throw timeout.error;
    let bytes = await readAll(
      call.body,
      opt.readMaxBytes,
      headerValue(headers, contentLengthHeader),
    );
    if (compression.request) {
      bytes = await compression.request.decompress(bytes, opt.readMaxBytes);
    }
    let output = runUnary(call, ctx, "connect", codec.parse(bytes));
    if (output instanceof Promise) output = await output;
    body = codec.serialize(output);
  } catch (e) {
    call.end(e);
    const error = asClientError(e);
    status = codeToHttpStatus(error.code);
    ctx.responseHeader.set(headerContentType, contentTypeUnaryJson);
    // As connect: an error's own metadata goes out; one read off the wire does not.
    if (!error.isWireError) {
      mergeNonProtocolHeaders(ctx.responseHeader, error.metadata);
    }
    body = errorToJsonBytes(error, opt.jsonOptions);
  }
  call.end();
  let encoding: string | undefined;
  if (compression.response && body.byteLength >= opt.compressMinBytes) {
    body = await compression.response.compress(body);
    encoding = compression.response.name;
  }
  if (call.gone) return;
  const written = FastContext.written(ctx);
  if (written.header === undefined && written.trailer === undefined) {
    // Nothing set by the handler: the protocol's own headers, as they are.
    const head: Record<string, string | number> = {
      ":status": status,
      ...written.init.header,
      [headerUnaryContentLength]: body.byteLength,
    };
    if (encoding !== undefined) head[headerUnaryEncoding] = encoding;
    stream.respond(head);
  } else {
    if (encoding !== undefined)
      ctx.responseHeader.set(headerUnaryEncoding, encoding);
    const header = trailerMux(ctx.responseHeader, ctx.responseTrailer);
    header.set(headerUnaryContentLength, body.byteLength.toString(10));
    stream.respond({ ":status": status, ...nodeHeaders(header) });
  }
  // The body, then END_STREAM once it is written: ending with the body
  // closes the stream while its write is still pending in Node, whose
  // stream then builds an ERR_STREAM_DESTROYED error (with a stack trace)
  // for nobody, on every call. An empty DATA frame ends the stream instead.
  stream.write(body, () => stream.end());
  // A request the call did not read to its end (a rejected one) is dropped,
  // so the stream can close.
  call.body.discard();
}
