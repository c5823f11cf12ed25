/**
 * Connect's unary calls: POST, or GET for a method without side effects
 * (src/protocol-connect/get.ts), in protobuf or JSON, on either HTTP
 * version, mirroring createUnaryHandler in connect's
 * protocol-connect/handler-factory.js and connect-node's response writing.
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
import { asClientError } from "../calls/internal-errors.js";
import type { EngineCall } from "../engine/call.js";
import { CallContext, type ResponseInit } from "../engine/context.js";
import { invokeUnary } from "../engine/invoke.js";
import { headerValue, nodeHeaders } from "../protocol/headers.js";
import { readAll } from "../protocol/request-body.js";
import { type GetQuery, getCompression, getMessage } from "./get.js";

// Node's header objects have lower-case names; connect's constants are capitalised.
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

/**
 * One Connect unary call, its messages in protobuf (`binary`) or JSON; a GET
 * has its message in `get`, the query, instead of the body.
 */
export async function serveConnectUnary(
  call: EngineCall,
  binary: boolean,
  get?: GetQuery,
): Promise<void> {
  const { host, route, exchange } = call;
  const { opt } = host;
  const { spec } = route;
  if (spec.kind !== "unary") throw new Error(`${spec.kind} is not unary`);
  const headers = exchange.headers;
  const codec = binary ? route.binary : route.json;
  const timeout = parseTimeout(
    headerValue(headers, timeoutHeader),
    opt.maxTimeoutMs,
  );
  call.startDeadline(timeout.timeoutMs);
  const ctx = new CallContext(call, "connect", binary ? protoInit : jsonInit);
  const compression = compressionNegotiate(
    opt.acceptCompression,
    get === undefined
      ? headerValue(headers, encodingHeader)
      : getCompression(get),
    headerValue(headers, acceptEncodingHeader),
    headerUnaryAcceptEncoding,
  );
  let status = 200;
  let failed = false;
  let body: Uint8Array;
  try {
    // As connect's applyRequestGate: before the body is read and before the
    // interceptors, so a rejected call is never read nor parsed (the call
    // pipeline reports it: CallPipeline.gated). Awaited only when the gate
    // is asynchronous, as a cached token's check is not.
    const gated = opt.requestGate?.(ctx);
    if (gated instanceof Promise) await gated;
    if (compression.error) throw compression.error;
    if (timeout.error) throw timeout.error;
    let bytes: Uint8Array;
    if (get !== undefined) {
      bytes = await getMessage(get, compression.request, opt.readMaxBytes);
    } else {
      bytes = await readAll(
        exchange.body,
        opt.readMaxBytes,
        headerValue(headers, contentLengthHeader),
      );
      if (compression.request) {
        bytes = await compression.request.decompress(bytes, opt.readMaxBytes);
      }
    }
    const input = codec.parse(bytes);
    let output = host.pipeline.unary(call, () =>
      invokeUnary(spec, ctx, input, host.interceptors),
    );
    if (output instanceof Promise) output = await output;
    body = codec.serialize(output);
  } catch (e) {
    call.end(e);
    const error = asClientError(e);
    status = codeToHttpStatus(error.code);
    failed = true;
    // As connect: an error's own metadata goes out; one read off the wire
    // does not. An error without any (a refusal, most errors) costs no
    // Headers object: the plain answer below says the same.
    if (!error.isWireError && hasAny(error.metadata)) {
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
  if (exchange.gone) return;
  if (
    CallContext.headerSet(ctx) === undefined &&
    CallContext.trailerSet(ctx) === undefined
  ) {
    // Nothing set by the handler: the protocol's own headers, in the order
    // connect-node's webHeaderToNodeHeaders gives them (fetch Headers sort
    // their names).
    const contentType =
      binary && !failed ? contentTypeUnaryProto : contentTypeUnaryJson;
    exchange.respond(
      status,
      encoding === undefined
        ? { "content-length": body.byteLength, "content-type": contentType }
        : {
            "content-encoding": encoding,
            "content-length": body.byteLength,
            "content-type": contentType,
          },
      false,
    );
  } else {
    if (failed) ctx.responseHeader.set(headerContentType, contentTypeUnaryJson);
    if (encoding !== undefined)
      ctx.responseHeader.set(headerUnaryEncoding, encoding);
    const header = trailerMux(ctx.responseHeader, ctx.responseTrailer);
    header.set(headerUnaryContentLength, body.byteLength.toString(10));
    exchange.respond(status, nodeHeaders(header), false);
  }
  exchange.end(body, undefined);
  // A request the call did not read to its end (a rejected one) is dropped,
  // so the stream can close.
  exchange.body.discard();
}

/** Whether `headers` holds any header. */
function hasAny(headers: Headers): boolean {
  for (const _ of headers.keys()) return true;
  return false;
}
