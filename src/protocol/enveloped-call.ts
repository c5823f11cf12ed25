import type { ConnectError } from "@connectrpc/connect";
import { compressionNegotiate } from "@connectrpc/connect/protocol";
import type { EngineCall } from "../engine/call.js";
import { CallContext, type ResponseInit } from "../engine/context.js";
import { type ChunkSource, EnvelopeReader } from "./envelope.js";
import { headerValue } from "./headers.js";
import { RequestMessages } from "./request-messages.js";
import { type ResponseHead, ResponseWriter } from "./response-writer.js";

/** What a protocol with enveloped messages (gRPC, gRPC-Web, Connect streams) reads of a request. */
export interface EnvelopedProtocol {
  /** The protocol's name in the handler context (protocolName). */
  readonly name: string;
  /** The request's timeout header, and how the protocol parses it (connect's parseTimeout). */
  readonly timeoutHeader: string;
  readonly parseTimeout: (
    value: string | null,
    maxTimeoutMs: number,
  ) => { timeoutMs?: number; error?: ConnectError };
  /** The headers that name the request's encoding and the encodings the client accepts, as Node spells them (lower case). */
  readonly encodingHeader: string;
  readonly acceptEncodingHeader: string;
  /** The accept-encoding header as connect names it, for compressionNegotiate's error message. */
  readonly acceptEncodingName: string;
  /** Request envelopes with this flag are skipped (RequestMessages). */
  readonly skipFlag: number;
  /** How the body is read, when not as it comes (gRPC-Web's text mode: base64). */
  readonly decodeBody?: (body: ChunkSource) => ChunkSource;
  /** How each response write goes out, when not as it is (text mode: base64). */
  readonly encodeWrite?: (bytes: Buffer) => Buffer;
}

/** A response's start for one format and encoding: the context's initial headers and trailers, and the head the writer sends. */
export interface Shape {
  readonly init: ResponseInit;
  readonly head: ResponseHead;
}

/**
 * The set-up every enveloped call shares, as connect's handler factories
 * make it: the timeout parsed and the deadline started, the encodings
 * negotiated, the handler's context, the request messages (read on
 * demand) and the response writer. A bad timeout or encoding is raised by
 * the first read, as connect's transformPrepend raises it.
 */
export function envelopedCall(
  call: EngineCall,
  protocol: EnvelopedProtocol,
  binary: boolean,
  shapeOf: (encoding: string | undefined) => Shape,
): { ctx: CallContext; input: RequestMessages; writer: ResponseWriter } {
  const { host, route, exchange } = call;
  const { opt } = host;
  const headers = exchange.headers;
  const timeout = protocol.parseTimeout(
    headerValue(headers, protocol.timeoutHeader),
    opt.maxTimeoutMs,
  );
  const compression = compressionNegotiate(
    opt.acceptCompression,
    headerValue(headers, protocol.encodingHeader),
    headerValue(headers, protocol.acceptEncodingHeader),
    protocol.acceptEncodingName,
  );
  call.startDeadline(timeout.timeoutMs);
  const shape = shapeOf(compression.response?.name);
  const ctx = new CallContext(call, protocol.name, shape.init);
  const codec = binary ? route.binary : route.json;
  const input = new RequestMessages(
    new EnvelopeReader(
      protocol.decodeBody?.(exchange.body) ?? exchange.body,
      opt.readMaxBytes,
    ),
    codec,
    compression.request,
    opt.readMaxBytes,
    protocol.skipFlag,
    compression.error ?? timeout.error,
  );
  const writer = new ResponseWriter(
    exchange,
    ctx,
    codec,
    shape.head,
    compression.response,
    opt.compressMinBytes,
    protocol.encodeWrite,
  );
  return { ctx, input, writer };
}
