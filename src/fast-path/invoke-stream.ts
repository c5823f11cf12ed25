/**
 * Running a streaming implementation through the interceptors, as connect's
 * transformInvokeImplementation and invokeStreamImplementation do, but driven
 * by plain loops instead of a generator pipeline.
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
} from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";

/** A streaming method's implementation: server, client or bidi. */
type StreamSpec = Exclude<MethodImplSpec, { kind: "unary" }>;

/**
 * A streaming call through the interceptors, as connect's
 * transformInvokeImplementation + invokeStreamImplementation, but driven by a
 * plain loop instead of a generator pipeline.
 */
export async function invokeStream(
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
export async function ensureSingle(
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

/** As connect's copyHeaders (invoke-implementation.js): an interceptor's headers replace the context's. */
function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => {
    to.set(key, value);
  });
}
