/**
 * Running an implementation, as connect's invokeUnaryImplementation,
 * transformInvokeImplementation and invokeStreamImplementation do: through
 * the adapter's interceptors when there are any, else directly, and driven
 * by plain loops instead of a generator pipeline either way.
 */
import { create, type DescMessage, isMessage } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";

type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;
/** A streaming method's implementation: server, client or bidi. */
export type StreamSpec = Exclude<MethodImplSpec, { kind: "unary" }>;

/**
 * A unary implementation's answer to `input`: the output message, or a
 * promise of it when the implementation (or an interceptor) is asynchronous.
 */
export function invokeUnary(
  spec: UnarySpec,
  context: HandlerContext,
  input: unknown,
  interceptors: readonly Interceptor[],
): unknown {
  if (interceptors.length > 0) {
    return invokeUnaryIntercepted(spec, context, input, interceptors);
  }
  const output = spec.impl(input as never, context);
  const desc = spec.method.output;
  return isPromise(output)
    ? output.then((o) => normalize(desc, o))
    : normalize(desc, output);
}

/**
 * As connect's invokeUnaryImplementation, but the handler gets `context`
 * itself when the interceptors changed nothing of the request: connect's
 * mergeRequest spreads the context into a new object, which keeps only own
 * properties, and a CallContext's are getters on its class.
 */
async function invokeUnaryIntercepted(
  spec: UnarySpec,
  context: HandlerContext,
  input: unknown,
  interceptors: readonly Interceptor[],
): Promise<unknown> {
  const anyFn = async (req: UnaryRequest): Promise<UnaryResponse> => {
    const output = await spec.impl(
      req.message as never,
      contextFor(context, req),
    );
    return seen(
      "response",
      spec,
      context,
      false,
      normalize(spec.method.output, output),
    );
  };
  const res = await intercepted(
    interceptors,
    anyFn,
    seen("request", spec, context, false, input),
  );
  copyHeaders(res.header, context.responseHeader);
  copyHeaders(res.trailer, context.responseTrailer);
  return res.message;
}

/** What a streaming implementation answers: its response messages, and the headers and trailers interceptors may have replaced. */
export interface StreamAnswer {
  /** The response messages, as the handler yields them: normalize each (`normalize`) unless `normalized`. */
  readonly messages: AsyncIterator<unknown>;
  /** Whether the messages are full messages already (interceptors saw them normalized, as in connect). */
  readonly normalized: boolean;
  readonly header: Headers | undefined;
  readonly trailer: Headers | undefined;
}

/**
 * Start a streaming implementation on the request messages `input`. A
 * server-streaming call's single request is read first (ensureSingle).
 */
export async function invokeStream(
  spec: StreamSpec,
  context: HandlerContext,
  input: AsyncIterable<unknown>,
  interceptors: readonly Interceptor[],
): Promise<StreamAnswer> {
  if (interceptors.length === 0) {
    return {
      messages: await start(spec, context, input),
      normalized: false,
      header: undefined,
      trailer: undefined,
    };
  }
  const anyFn = async (req: StreamRequest): Promise<StreamResponse> => {
    const messages = new Normalized(
      spec.method.output,
      await start(spec, contextFor(context, req), req.message),
    );
    return seen("response", spec, context, true, {
      [Symbol.asyncIterator]: () => messages,
    });
  };
  const res = await intercepted(
    interceptors,
    anyFn,
    seen("request", spec, context, true, input),
  );
  return {
    messages: res.message[Symbol.asyncIterator](),
    normalized: true,
    header: res.header,
    trailer: res.trailer,
  };
}

/** The implementation called on its request messages; its response messages, as it gives them. */
async function start(
  spec: StreamSpec,
  ctx: HandlerContext,
  input: AsyncIterable<unknown>,
): Promise<AsyncIterator<unknown>> {
  if (spec.kind === "server_streaming") {
    const it = input[Symbol.asyncIterator]();
    const single = await ensureSingle(() => it.next(), "server-streaming");
    return spec.impl(single as never, ctx)[Symbol.asyncIterator]();
  }
  if (spec.kind === "client_streaming") {
    return once(await spec.impl(input as never, ctx));
  }
  return spec.impl(input as never, ctx)[Symbol.asyncIterator]();
}

/** `call` wrapped in the interceptors, the first one outermost, as connect's applyInterceptors does, and called with `req`. */
function intercepted<Req, Res>(
  interceptors: readonly Interceptor[],
  call: (req: Req) => Promise<Res>,
  req: Req,
): Promise<Res> {
  let next = call;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    next = (interceptors[i] as Interceptor)(
      next as never,
    ) as unknown as typeof next;
  }
  return next(req);
}

/**
 * What interceptors see of the request, or of the response: made from the
 * context as connect's handler factories make them.
 */
function seen<S extends boolean>(
  side: "request" | "response",
  spec: MethodImplSpec,
  context: HandlerContext,
  stream: S,
  message: unknown,
): S extends true
  ? StreamRequest & StreamResponse
  : UnaryRequest & UnaryResponse {
  const about = {
    stream,
    message,
    method: spec.method,
    service: spec.method.parent,
  };
  return (
    side === "request"
      ? {
          ...about,
          requestMethod: context.requestMethod,
          url: context.url,
          signal: context.signal,
          header: context.requestHeader,
          contextValues: context.values,
        }
      : {
          ...about,
          header: context.responseHeader,
          trailer: context.responseTrailer,
        }
  ) as never;
}

/** As connect's mergeRequest: what the interceptors changed of the request, the handler sees. */
function contextFor(
  context: HandlerContext,
  req: UnaryRequest | StreamRequest,
): HandlerContext {
  return req.service === context.service &&
    req.header === context.requestHeader &&
    req.signal === context.signal &&
    req.contextValues === context.values
    ? context
    : merged(context, req);
}

/** The context with what interceptors replaced in the request. */
function merged(
  context: HandlerContext,
  req: UnaryRequest | StreamRequest,
): HandlerContext {
  return {
    method: context.method,
    service: req.service,
    requestMethod: context.requestMethod,
    protocolName: context.protocolName,
    url: context.url,
    signal: req.signal,
    timeoutMs: () => context.timeoutMs(),
    requestHeader: req.header,
    responseHeader: context.responseHeader,
    responseTrailer: context.responseTrailer,
    values: req.contextValues,
  };
}

type Read = () => IteratorResult<unknown> | Promise<IteratorResult<unknown>>;

/**
 * Read exactly one message, as connect's ensureSingle: none or a second one
 * is UNIMPLEMENTED. At once when `read` answers at once, else a promise.
 */
export function ensureSingle(read: Read, method: string): unknown {
  const first = read();
  return first instanceof Promise
    ? first.then((f) => second(read, method, f))
    : second(read, method, first);
}

function second(
  read: Read,
  method: string,
  first: IteratorResult<unknown>,
): unknown {
  if (first.done === true) {
    throw new ConnectError(
      `protocol error: missing input message for ${method} method`,
      Code.Unimplemented,
    );
  }
  const next = read();
  return next instanceof Promise
    ? next.then((n) => only(method, first, n))
    : only(method, first, next);
}

function only(
  method: string,
  first: IteratorResult<unknown>,
  next: IteratorResult<unknown>,
): unknown {
  if (next.done !== true) {
    throw new ConnectError(
      `protocol error: received extra input message for ${method} method`,
      Code.Unimplemented,
    );
  }
  return first.value;
}

/** As connect's normalize: a partial message becomes a full one. */
export function normalize(desc: DescMessage, message: unknown): unknown {
  return isMessage(message, desc) ? message : create(desc, message as never);
}

function isPromise(value: unknown): value is Promise<unknown> {
  return value instanceof Promise;
}

/** An iterator of one value. */
function once(value: unknown): AsyncIterator<unknown> {
  let done = false;
  return {
    next() {
      if (done) return Promise.resolve({ done: true, value: undefined });
      done = true;
      return Promise.resolve({ done: false, value });
    },
  };
}

/**
 * As connect's normalizeIterable: partial messages become full ones, without
 * a generator. A class rather than closures: an open stream holds one small
 * object instead of several functions.
 */
class Normalized implements AsyncIterator<unknown> {
  private readonly norm = (
    r: IteratorResult<unknown>,
  ): IteratorResult<unknown> =>
    r.done === true ? r : { done: false, value: normalize(this.desc, r.value) };

  constructor(
    private readonly desc: DescMessage,
    private readonly it: AsyncIterator<unknown>,
  ) {}

  next(): Promise<IteratorResult<unknown>> {
    return this.it.next().then(this.norm);
  }

  return(v?: unknown): Promise<IteratorResult<unknown>> {
    if (this.it.return === undefined)
      return Promise.resolve({ done: true, value: v });
    return this.it.return(v).then(this.norm);
  }

  throw(e?: unknown): Promise<IteratorResult<unknown>> {
    if (this.it.throw === undefined) return Promise.reject(e);
    return this.it.throw(e).then(this.norm);
  }
}

/** As connect's copyHeaders (invoke-implementation.js): an interceptor's headers replace the context's. */
export function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => {
    to.set(key, value);
  });
}
