/**
 * The fast path's gRPC (src/fast-path.ts): calls of every kind over HTTP/2,
 * binary protobuf, mirroring connect's protocol-grpc/handler-factory.js and
 * connect-node's node-universal-handler.js, without their generator pipeline.
 */

import type { ServerHttp2Stream } from "node:http2";
import { create, type DescMessage, isMessage } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type StreamRequest,
  type StreamResponse,
} from "@connectrpc/connect";
import {
  type Compression,
  compressionNegotiate,
  createAsyncIterable,
  invokeUnaryImplementation,
} from "@connectrpc/connect/protocol";
import {
  grpcStatusOk,
  headerAcceptEncoding,
  headerContentType,
  headerEncoding,
  headerGrpcStatus,
  headerTimeout,
  parseTimeout,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import { type FastCall, nodeHeaders } from "../call.js";

/** The connect content type for binary gRPC responses (protocol-grpc contentTypeProto). */
const contentTypeProto = "application/grpc+proto";
const compressedFlag = 1;

/** A streaming method's implementation: server, client or bidi. */
type StreamSpec = Exclude<MethodImplSpec, { kind: "unary" }>;

/**
 * One gRPC call, `grpcAcceptEncoding` the encodings it reads, for the
 * grpc-accept-encoding header connect's answers get (src/accept-encoding.ts).
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
      await streamCall(opt.interceptors, spec, context, readMessage, (m) =>
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

/**
 * A streaming call through the interceptors, as connect's
 * transformInvokeImplementation + invokeStreamImplementation, but driven by a
 * plain loop instead of a generator pipeline.
 */
async function streamCall(
  interceptors: Interceptor[],
  spec: StreamSpec,
  context: HandlerContext,
  readMessage: () => Promise<IteratorResult<unknown>>,
  write: (message: unknown) => Promise<boolean>,
): Promise<void> {
  const output = spec.method.output;
  const anyFn = async (req: StreamRequest): Promise<StreamResponse> => {
    // As connect's mergeRequest: what the interceptors changed, the handler
    // sees; a copy only if they changed something (it lives as long as the call).
    const ctx =
      req.service === context.service &&
      req.header === context.requestHeader &&
      req.signal === context.signal &&
      req.contextValues === context.values
        ? context
        : {
            ...context,
            service: req.service,
            requestHeader: req.header,
            signal: req.signal,
            values: req.contextValues,
          };
    // The interceptors may have wrapped the request stream: read through it.
    const input = req.message as AsyncIterable<never>;
    let message: AsyncIterable<unknown>;
    if (spec.kind === "server_streaming") {
      const it = input[Symbol.asyncIterator]();
      const single = await ensureSingle(() => it.next(), "server-streaming");
      message = normalized(output, spec.impl(single as never, ctx));
    } else if (spec.kind === "client_streaming") {
      message = createAsyncIterable([
        normalize(output, await spec.impl(input, ctx)),
      ]);
    } else {
      message = normalized(output, spec.impl(input, ctx));
    }
    return {
      stream: true,
      message: message as AsyncIterable<never>,
      method: spec.method,
      service: spec.method.parent,
      header: context.responseHeader,
      trailer: context.responseTrailer,
    };
  };
  let next = anyFn as (req: StreamRequest) => Promise<StreamResponse>;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    next = (interceptors[i] as Interceptor)(next as never) as typeof next;
  }
  const res = await next({
    stream: true,
    message: new MessageSource(readMessage) as AsyncIterable<never>,
    method: spec.method,
    requestMethod: context.requestMethod,
    url: context.url,
    signal: context.signal,
    header: context.requestHeader,
    service: spec.method.parent,
    contextValues: context.values,
  } as StreamRequest);
  copyHeaders(res.header, context.responseHeader);
  const it = res.message[Symbol.asyncIterator]();
  let done = false;
  try {
    for (;;) {
      const r = await it.next();
      if (r.done === true) {
        done = true;
        break;
      }
      if (!(await write(r.value))) break; // the client went away
    }
  } finally {
    // As connect-node's writer: stop the handler when the response ends early.
    if (!done) await it.return?.().catch(() => {});
  }
  if (done) copyHeaders(res.trailer, context.responseTrailer);
}

/** Read exactly one message, as connect's ensureSingle: none or a second one is UNIMPLEMENTED. */
async function ensureSingle(
  read: () => Promise<IteratorResult<unknown>>,
  method: string,
): Promise<unknown> {
  const first = await read();
  if (first.done === true) {
    throw new ConnectError(
      `protocol error: missing input message for ${method} method`,
      Code.Unimplemented,
    );
  }
  const second = await read();
  if (second.done !== true) {
    throw new ConnectError(
      `protocol error: received extra input message for ${method} method`,
      Code.Unimplemented,
    );
  }
  return first.value;
}

/** As connect's normalize: a partial message becomes a full one. */
function normalize(desc: DescMessage, message: unknown): unknown {
  return isMessage(message, desc) ? message : create(desc, message as never);
}

/** As connect's normalizeIterable: partial messages become full ones, without a generator. */
function normalized(
  desc: DescMessage,
  source: AsyncIterable<unknown>,
): AsyncIterable<unknown> {
  return new Normalized(desc, source);
}

/**
 * A class rather than closures in an object literal: an open stream holds
 * one small object instead of four functions (and the names V8 builds at run
 * time for computed keys such as [Symbol.asyncIterator]).
 */
class Normalized implements AsyncIterable<unknown>, AsyncIterator<unknown> {
  private it: AsyncIterator<unknown> | undefined;
  private readonly norm = (
    r: IteratorResult<unknown>,
  ): IteratorResult<unknown> =>
    r.done === true ? r : { done: false, value: normalize(this.desc, r.value) };

  constructor(
    private readonly desc: DescMessage,
    private readonly source: AsyncIterable<unknown>,
  ) {}

  [Symbol.asyncIterator](): this {
    this.it = this.source[Symbol.asyncIterator]();
    return this;
  }

  next(): Promise<IteratorResult<unknown>> {
    return (this.it as AsyncIterator<unknown>).next().then(this.norm);
  }

  return(v?: unknown): Promise<IteratorResult<unknown>> {
    const it = this.it as AsyncIterator<unknown>;
    if (it.return === undefined)
      return Promise.resolve({ done: true, value: v });
    return it.return(v).then(this.norm);
  }

  throw(e?: unknown): Promise<IteratorResult<unknown>> {
    const it = this.it as AsyncIterator<unknown>;
    if (it.throw === undefined) return Promise.reject(e);
    return it.throw(e).then(this.norm);
  }
}

/** The request messages as an async iterable, read by `next`. */
class MessageSource implements AsyncIterable<unknown>, AsyncIterator<unknown> {
  constructor(readonly next: () => Promise<IteratorResult<unknown>>) {}

  [Symbol.asyncIterator](): this {
    return this;
  }
}

interface Envelope {
  flags: number;
  data: Uint8Array;
}

/**
 * Splits the request body into enveloped messages as they arrive, like
 * connect's transformSplitEnvelope: a length over readMaxBytes fails as soon
 * as its header is in, a body ending inside a frame is "incomplete envelope".
 * Errors are queued behind the messages before them, so they surface in the
 * same order as in connect's pipeline.
 */
class EnvelopeReader {
  private readonly queue: (Envelope | { error: unknown })[] = [];
  private buf: Buffer | undefined;
  private ended = false;
  private failed = false;
  private discarding = false;
  private wake: (() => void) | undefined;
  private first: (() => void) | undefined;
  private queuedBytes = 0;

  /** Enough read ahead of the handler: more waits in the client, held by HTTP/2 flow control. */
  private get full(): boolean {
    return this.queue.length >= 16 || this.queuedBytes >= 64 * 1024;
  }

  constructor(
    private readonly req: ServerHttp2Stream,
    private readonly readMaxBytes: number,
    first: () => void,
  ) {
    this.first = first;
    req.on("data", (chunk: Buffer) => this.push(chunk));
    req.on("end", () => {
      if (!this.failed && this.buf !== undefined && this.buf.length > 0) {
        this.fail(
          new ConnectError(
            "protocol error: incomplete envelope",
            Code.InvalidArgument,
          ),
        );
      }
      this.ended = true;
      this.wake?.();
    });
    req.on("close", () => {
      if (!this.ended) {
        this.ended = true;
        // As a Node stream iterator reports a premature close, through connect-node.
        if (!this.failed)
          this.fail(
            new ConnectError(
              "stream closed before the request ended",
              Code.Aborted,
            ),
          );
      }
      this.wake?.();
    });
  }

  private fail(error: unknown): void {
    this.failed = true;
    this.queue.push({ error });
    this.buf = undefined;
    // A reader may be waiting: an oversized length prefix fails a request
    // whose body is still arriving, or never will.
    this.wake?.();
  }

  /** The call is over: read and drop the rest of the body, so the stream can close. */
  discard(): void {
    if (this.ended) return;
    this.discarding = true;
    this.buf = undefined;
    this.req.resume();
  }

  private push(chunk: Buffer): void {
    if (this.failed || this.discarding) return;
    let buf =
      this.buf === undefined || this.buf.length === 0
        ? chunk
        : Buffer.concat([this.buf, chunk]);
    while (buf.length >= 5) {
      const length = buf.readUInt32BE(1);
      if (length > this.readMaxBytes) {
        this.fail(
          new ConnectError(
            `message size ${length} is larger than configured readMaxBytes ${this.readMaxBytes}`,
            Code.ResourceExhausted,
          ),
        );
        return;
      }
      if (buf.length < 5 + length) break;
      this.queue.push({
        flags: buf[0] as number,
        data: buf.subarray(5, 5 + length),
      });
      this.queuedBytes += length;
      buf = buf.subarray(5 + length);
    }
    this.buf = buf;
    // Hold the client to the HTTP/2 window while messages wait to be read.
    if (this.full) this.req.pause();
    this.wake?.();
  }

  /** The next message, undefined at the end of the body; throws a queued error. */
  async next(): Promise<Envelope | undefined> {
    if (this.first !== undefined) {
      const check = this.first;
      this.first = undefined;
      check();
    }
    while (this.queue.length === 0 && !this.ended) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
    const item = this.queue.shift();
    if (item === undefined) return undefined;
    if ("error" in item) throw item.error;
    this.queuedBytes -= item.data.byteLength;
    if (!this.full && this.req.isPaused() && !this.ended) this.req.resume();
    return item;
  }
}

/**
 * Writes the response as connect-node's universalResponseToNodeResponse does:
 * headers with the first message (so handlers may still set them), each
 * message enveloped and compressed from compressMinBytes, waiting for 'drain'
 * when the stream asks, then the trailers.
 */
class ResponseWriter {
  private headersSent = false;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly acceptEncoding: string,
    private readonly context: HandlerContext,
    private readonly compression: Compression | null,
    private readonly compressMinBytes: number,
  ) {}

  private get gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    const trailer = this.context.responseTrailer;
    // Trailers are read when the stream asks for them, after the last write.
    this.stream.on("wantTrailers", () =>
      this.stream.sendTrailers(nodeHeaders(trailer)),
    );
    this.stream.respond(
      {
        ":status": 200,
        "grpc-accept-encoding": this.acceptEncoding,
        ...nodeHeaders(this.context.responseHeader),
      },
      { waitForTrailers: true },
    );
  }

  /** Write one message; false when the client is gone and nothing more should be produced. */
  async write(message: Uint8Array): Promise<boolean> {
    if (this.gone) return false;
    let flags = 0;
    let data = message;
    if (this.compression !== null && data.byteLength >= this.compressMinBytes) {
      data = await this.compression.compress(data);
      flags = compressedFlag;
      if (this.gone) return false;
    }
    const frame = Buffer.allocUnsafe(5 + data.byteLength);
    frame[0] = flags;
    frame.writeUInt32BE(data.byteLength, 1);
    frame.set(data, 5);
    this.sendHeaders();
    if (this.stream.write(frame)) return true;
    // Back-pressure: wait until the stream drains or closes.
    const stream = this.stream;
    await new Promise<void>((resolve) => {
      const done = () => {
        stream.off("drain", done);
        stream.off("close", done);
        resolve();
      };
      stream.on("drain", done);
      stream.on("close", done);
    });
    return !this.gone;
  }

  /** Headers if none went yet, then the trailers, and end the stream. */
  finish(): void {
    if (this.gone) return;
    this.sendHeaders();
    this.stream.end();
  }
}

/** As connect's copyHeaders (invoke-implementation.js): an interceptor's headers replace the context's. */
function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => {
    to.set(key, value);
  });
}
