/**
 * A dedicated path for the hot gRPC cases: calls of every kind (unary,
 * server, client and bidi streaming) over HTTP/2 with binary protobuf (issue 5).
 *
 * WHY: connect's generic gRPC handler runs every call through nine to eleven
 * async-generator stages (ES2017-downlevelled), three AbortControllers and two
 * DOMExceptions (abort() without a reason); that costs ~8x the CPU of
 * @grpc/grpc-js per unary call (bench/PROFILE.md). Here a call is read,
 * invoked and written by plain code: one AbortController, no generators of our
 * own, no per-call exception on success.
 *
 * WHAT STAYS THE SAME: the same service implementation objects the router
 * registers (recorded by `record`), the same interceptors applied the same way
 * (so logs, metrics, inflight and error hiding see fast calls exactly like
 * connect's), the same context values, and connect's own helpers for what the
 * client sees: timeout parsing, compression negotiation, (de)serialization
 * with the read limit, the trailer status encoding. Where this file re-does
 * something connect does, the comment names the connect function it mirrors.
 *
 * It takes the HTTP/2 server's raw streams (`claim`, through the listener's
 * `claimStream`) rather than Node's compatibility-layer request and response,
 * which cost a third of a call's CPU in the profile (bench/PROFILE.md).
 *
 * Everything else falls through to the connect adapter untouched: HTTP/1.1,
 * gRPC-Web, Connect, +json, unknown paths, services
 * registered with their own options, and browser requests (with an Origin,
 * which src/cors.ts answers).
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { constants as h2 } from "node:http2";
import { create, type DescMessage, isMessage } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createContextValues,
  createServiceImplSpec,
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
  createMethodSerializationLookup,
  invokeUnaryImplementation,
  type UniversalHandlerOptions,
  validateUniversalHandlerOptions,
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
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";

/** What the fast path tells about a call's connection, as much of a Node request as context values need. */
export interface RequestConnection {
  /** The connection's socket (for the peer address). */
  readonly socket: {
    readonly remoteAddress?: string;
    readonly remotePort?: number;
  };
  /** Always "2.0": the fast path serves HTTP/2 only. */
  readonly httpVersion: string;
}

/** The adapter options the fast path honours: pass the same object to connectNodeAdapter. */
export interface GrpcFastPathOptions
  extends Pick<
    Partial<UniversalHandlerOptions>,
    | "interceptors"
    | "readMaxBytes"
    | "writeMaxBytes"
    | "acceptCompression"
    | "compressMinBytes"
    | "maxTimeoutMs"
    | "shutdownSignal"
    | "requestGate"
  > {
  /** Context values for a request, as connectNodeAdapter's option. @default undefined (empty values) */
  contextValues?: (req: RequestConnection) => ContextValues;
  /** Serve gRPC over HTTP/2 here; false leaves every call to connect. @default true */
  enabled?: boolean;
}

/** The connect content type for binary gRPC responses (protocol-grpc contentTypeProto). */
const contentTypeProto = "application/grpc+proto";
/** Binary gRPC only: +json and everything else is connect's. */
const binaryGrpc = /^application\/grpc(?:\+proto)?$/i;
const compressedFlag = 1;

/**
 * The reason a finished call's signal carries. connect aborts the handler
 * context with no reason at the end of every call, which makes Node build a
 * DOMException with a stack trace per call (9 % of CPU in the profile); one
 * shared DOMException gives handlers the same kind of reason for free.
 */
const callEnded = new DOMException("This operation was aborted", "AbortError");

/** A streaming method's implementation: server, client or bidi. */
type StreamSpec = Exclude<MethodImplSpec, { kind: "unary" }>;

interface Route {
  readonly spec: MethodImplSpec;
  readonly parse: (data: Uint8Array) => unknown;
  readonly serialize: (message: unknown) => Uint8Array;
}

/** Serves binary gRPC over HTTP/2 before the connect adapter. */
export class GrpcFastPath {
  /** Calls this path has taken (not fallen through); tests read it to know who served. */
  calls = 0;
  private readonly routes = new Map<string, Route>();
  private readonly opt: ReturnType<typeof validateUniversalHandlerOptions>;
  private readonly contextValues:
    | ((req: RequestConnection) => ContextValues)
    | undefined;
  private readonly enabled: boolean;
  /**
   * How to end each call in flight, for the shutdown signal: one listener on
   * it for all calls, rather than one per call (an EventTarget listener costs
   * more than the rest of a call's bookkeeping, and hundreds of them trip
   * Node's MaxListenersExceededWarning).
   */
  private readonly running = new Set<(reason: unknown) => void>();
  /** The header advertiseGrpcEncodings (src/accept-encoding.ts) puts on connect's gRPC answers. */
  private readonly acceptEncoding: string;

  constructor(options: GrpcFastPathOptions = {}) {
    // The same normalisation (defaults, limits) connect applies to these options.
    // connectNodeAdapter's default compressions, so both paths accept the same.
    this.opt = validateUniversalHandlerOptions({
      ...options,
      acceptCompression: options.acceptCompression ?? [
        compressionGzip,
        compressionBrotli,
      ],
    });
    this.contextValues = options.contextValues;
    this.enabled = options.enabled ?? true;
    const shutdown = this.opt.shutdownSignal;
    shutdown?.addEventListener(
      "abort",
      () => {
        for (const end of this.running) end(shutdown.reason);
      },
      { once: true },
    );
    this.acceptEncoding = this.opt.acceptCompression
      .map((c) => c.name)
      .join(",");
  }

  /** Wrap a routes function: the router gets every service as before, and the fast path learns the same implementations. */
  record(
    routes: (router: ConnectRouter) => void,
  ): (router: ConnectRouter) => void {
    return (router) => {
      const recording: ConnectRouter = {
        get handlers() {
          return router.handlers;
        },
        service: (service, impl, options) => {
          // Per-service options would change behaviour here; leave those to connect.
          if (options === undefined)
            this.add(createServiceImplSpec(service, impl).methods);
          router.service(service, impl, options);
          return recording;
        },
        rpc: (method, impl, options) => {
          if (options === undefined)
            this.add({
              [method.localName]: {
                kind: method.methodKind,
                method,
                impl,
              } as MethodImplSpec,
            });
          router.rpc(method, impl, options);
          return recording;
        },
      };
      routes(recording);
    };
  }

  private add(methods: Record<string, MethodImplSpec>): void {
    for (const spec of Object.values(methods)) {
      const s = createMethodSerializationLookup(
        spec.method,
        this.opt.binaryOptions,
        this.opt.jsonOptions,
        this.opt,
      );
      const i = s.getI(true);
      const o = s.getO(true);
      this.routes.set(`/${spec.method.parent.typeName}/${spec.method.name}`, {
        spec,
        parse: (data) => i.parse(data),
        serialize: (m) => o.serialize(m as never),
      });
    }
  }

  /**
   * Serve `stream` if it is a fast case and return true; return false, having
   * touched nothing, to leave it to Node's compatibility layer and connect.
   */
  readonly claim = (
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
  ): boolean => {
    if (!this.enabled || headers[":method"] !== "POST") return false;
    const path = headers[":path"] ?? "";
    const q = path.indexOf("?");
    const route = this.routes.get(q < 0 ? path : path.slice(0, q));
    const type = headers["content-type"];
    if (
      route === undefined ||
      type === undefined ||
      !binaryGrpc.test(type) ||
      headers.origin !== undefined
    ) {
      return false;
    }
    this.calls++;
    // A reset or a write after the client left is an 'error' event; the call
    // learns of it from 'close' and rstCode, as through the compatibility layer.
    stream.on("error", () => {});
    const socket = stream.session?.socket;
    const values =
      this.contextValues !== undefined && socket !== undefined
        ? this.contextValues({ socket, httpVersion: "2.0" })
        : createContextValues();
    serve(
      this.opt,
      route,
      stream,
      headers,
      values,
      this.acceptEncoding,
      this.running,
    ).catch(() => {
      // serve() reports every failure as a gRPC status; what lands here is a
      // broken stream, which has nobody left to tell.
      stream.destroy();
    });
    return true;
  };
}

type Options = ReturnType<typeof validateUniversalHandlerOptions>;

/** One call: mirrors protocol-grpc/handler-factory.js and node-universal-handler.js. */
async function serve(
  opt: Options,
  route: Route,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  values: ContextValues,
  acceptEncoding: string,
  running: Set<(reason: unknown) => void>,
): Promise<void> {
  const { spec } = route;
  const requestHeader = webHeaders(headers);
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

  // One controller for request close, deadline and end of call (connect links three).
  const abort = new AbortController();
  const signal = abort.signal;
  let timer: NodeJS.Timeout | undefined;
  let deadlineAt: number | undefined;
  const end = (reason: unknown) => {
    if (timer !== undefined) clearTimeout(timer);
    if (!signal.aborted) abort.abort(reason);
  };
  if (timeout.timeoutMs !== undefined) {
    deadlineAt = Date.now() + timeout.timeoutMs;
    const expire = () =>
      end(new ConnectError("the operation timed out", Code.DeadlineExceeded));
    if (timeout.timeoutMs <= 0) expire();
    else timer = setTimeout(expire, timeout.timeoutMs);
  }
  if (opt.shutdownSignal?.aborted) end(opt.shutdownSignal.reason);
  running.add(end);
  // As connect-node: a reset tells why (CANCEL → canceled); a plain close ends the call.
  // on(), not once(), for events a stream emits once: once() allocates a
  // wrapper per listener, and these live as long as the call.
  stream.on("close", () => end(resetError(stream.rstCode) ?? callEnded));

  const context: HandlerContext = {
    method: spec.method,
    service: spec.method.parent,
    signal,
    timeoutMs:
      deadlineAt === undefined
        ? () => undefined
        : () => (deadlineAt as number) - Date.now(),
    requestMethod: "POST",
    requestHeader,
    responseHeader: new Headers({ [headerContentType]: contentTypeProto }),
    responseTrailer: new Headers({ [headerGrpcStatus]: grpcStatusOk }),
    protocolName: "grpc",
    values,
    url: `http://${headers[":authority"] ?? headers.host}${headers[":path"]}`,
  };
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
    return { done: false, value: route.parse(data) };
  };
  const writer = new ResponseWriter(
    stream,
    acceptEncoding,
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
      await writer.write(route.serialize(output));
    } else {
      await streamCall(opt.interceptors, spec, context, readMessage, (m) =>
        writer.write(route.serialize(m)),
      );
    }
  } catch (e) {
    failure = e;
  }
  end(failure ?? callEnded);
  running.delete(end);
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
    message: {
      [Symbol.asyncIterator]: () => ({ next: readMessage }),
    } as AsyncIterable<never>,
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
  const norm = (r: IteratorResult<unknown>): IteratorResult<unknown> =>
    r.done === true ? r : { done: false, value: normalize(desc, r.value) };
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      return {
        next: () => it.next().then(norm),
        return:
          it.return &&
          ((v?: unknown) =>
            (it.return as (v?: unknown) => Promise<IteratorResult<unknown>>)(
              v,
            ).then(norm)),
        throw:
          it.throw &&
          ((e?: unknown) =>
            (it.throw as (e?: unknown) => Promise<IteratorResult<unknown>>)(
              e,
            ).then(norm)),
      };
    },
  };
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

/** As connect-node's nodeHeaderToWebHeader: pseudo-headers dropped, lists appended. */
function webHeaders(headers: IncomingHttpHeaders): Headers {
  const h = new Headers();
  for (const k in headers) {
    if (k.charCodeAt(0) === 58 /* ":" */) continue;
    const v = headers[k];
    if (v === undefined) continue;
    if (typeof v === "string") h.append(k, v);
    else for (const e of v) h.append(k, e);
  }
  return h;
}

/** As connect-node's webHeaderToNodeHeaders, for the values fetch Headers hold. */
function nodeHeaders(headers: Headers): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = Object.create(null);
  headers.forEach((value, key) => {
    const existing = o[key];
    if (existing === undefined) o[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else o[key] = [existing, value];
  });
  return o;
}

/** As connect's copyHeaders (invoke-implementation.js): an interceptor's headers replace the context's. */
function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => {
    to.set(key, value);
  });
}

/** As connect-node's connectErrorFromH2ResetCode: why a reset stream ended. */
function resetError(rstCode: number | undefined): ConnectError | undefined {
  const name = (code: number) =>
    `http/2 stream closed with error code ${h2Names.get(code) ?? code} (0x${code.toString(16)})`;
  switch (rstCode) {
    case h2.NGHTTP2_PROTOCOL_ERROR:
    case h2.NGHTTP2_INTERNAL_ERROR:
    case h2.NGHTTP2_FLOW_CONTROL_ERROR:
    case h2.NGHTTP2_SETTINGS_TIMEOUT:
    case h2.NGHTTP2_FRAME_SIZE_ERROR:
    case h2.NGHTTP2_COMPRESSION_ERROR:
    case h2.NGHTTP2_CONNECT_ERROR:
      return new ConnectError(name(rstCode), Code.Internal);
    case h2.NGHTTP2_REFUSED_STREAM:
      return new ConnectError(name(rstCode), Code.Unavailable);
    case h2.NGHTTP2_CANCEL:
      return new ConnectError(name(rstCode), Code.Canceled);
    case h2.NGHTTP2_ENHANCE_YOUR_CALM:
      return new ConnectError(name(rstCode), Code.ResourceExhausted);
    case h2.NGHTTP2_INADEQUATE_SECURITY:
    case h2.NGHTTP2_HTTP_1_1_REQUIRED:
      return new ConnectError(name(rstCode), Code.PermissionDenied);
    default:
      return undefined;
  }
}

const h2Names = new Map<number, string>([
  [h2.NGHTTP2_PROTOCOL_ERROR, "PROTOCOL_ERROR"],
  [h2.NGHTTP2_INTERNAL_ERROR, "INTERNAL_ERROR"],
  [h2.NGHTTP2_FLOW_CONTROL_ERROR, "FLOW_CONTROL_ERROR"],
  [h2.NGHTTP2_SETTINGS_TIMEOUT, "SETTINGS_TIMEOUT"],
  [h2.NGHTTP2_FRAME_SIZE_ERROR, "FRAME_SIZE_ERROR"],
  [h2.NGHTTP2_REFUSED_STREAM, "REFUSED_STREAM"],
  [h2.NGHTTP2_CANCEL, "CANCEL"],
  [h2.NGHTTP2_COMPRESSION_ERROR, "COMPRESSION_ERROR"],
  [h2.NGHTTP2_CONNECT_ERROR, "CONNECT_ERROR"],
  [h2.NGHTTP2_ENHANCE_YOUR_CALM, "ENHANCE_YOUR_CALM"],
  [h2.NGHTTP2_INADEQUATE_SECURITY, "INADEQUATE_SECURITY"],
  [h2.NGHTTP2_HTTP_1_1_REQUIRED, "HTTP_1_1_REQUIRED"],
]);
