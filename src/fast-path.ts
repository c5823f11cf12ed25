/**
 * A dedicated path for the hot cases (issue 5): gRPC calls of every kind and
 * Connect unary calls, over HTTP/2, in protobuf (and JSON for Connect).
 *
 * WHY: connect's generic handlers run every call through Node's HTTP/2
 * compatibility layer, three AbortControllers and two DOMExceptions (abort()
 * without a reason), and gRPC calls through nine to eleven async-generator
 * stages on top; that costs several times the CPU of @grpc/grpc-js per call
 * (bench/PROFILE.md). Here a call is read, invoked and written by plain code
 * on the raw HTTP/2 stream: one AbortController, no generators of our own, no
 * exception on success.
 *
 * WHAT STAYS THE SAME: the same service implementation objects the router
 * registers (recorded by `record`), the same interceptors applied the same way
 * (so logs, metrics, inflight and error hiding see fast calls exactly like
 * connect's), the same context values, and connect's own helpers for what the
 * client sees: timeout parsing, compression negotiation, (de)serialization
 * with the read limit, status and error encoding. Where the fast path re-does
 * something connect does, the comment names the connect function it mirrors.
 *
 * This file routes streams and sets each call up; src/grpc-fast-path.ts and
 * src/connect-fast-path.ts speak the protocols. Everything else falls through
 * to the connect adapter untouched: HTTP/1.1, gRPC-Web, Connect streaming and
 * GET, gRPC +json, unknown paths, services registered with their own options,
 * and browser requests (with an Origin, which src/cors.ts answers).
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { constants as h2 } from "node:http2";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createContextValues,
  createServiceImplSpec,
  type HandlerContext,
  type MethodImplSpec,
} from "@connectrpc/connect";
import {
  createMethodSerializationLookup,
  type UniversalHandlerOptions,
  validateUniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { serveConnectUnary } from "./connect-fast-path.js";
import { serveGrpc } from "./grpc-fast-path.js";

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
export interface FastPathOptions
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
    | "requireConnectProtocolHeader"
  > {
  /** Context values for a request, as connectNodeAdapter's option. @default undefined (empty values) */
  contextValues?: (req: RequestConnection) => ContextValues;
  /** Serve the fast cases here; false leaves every call to connect. @default true */
  enabled?: boolean;
}

/** The adapter options after connect's own validation and defaults. */
export type Options = ReturnType<typeof validateUniversalHandlerOptions>;

/** How a message is read and written in one format. */
export interface Codec {
  readonly parse: (data: Uint8Array) => unknown;
  readonly serialize: (message: unknown) => Uint8Array;
}

/** A procedure the fast path can serve. */
export interface Route {
  readonly spec: MethodImplSpec;
  readonly binary: Codec;
  readonly json: Codec;
}

/** Binary gRPC only: +json is connect's. */
const grpcType = /^application\/grpc(?:\+proto)?$/i;
/** Connect unary: the content types connect's parseContentType accepts for it. */
const connectType = /^application\/(proto|json)(?:;\s*charset=utf-?8)?$/i;

/**
 * The reason a finished call's signal carries. connect aborts the handler
 * context with no reason at the end of every call, which makes Node build a
 * DOMException with a stack trace per call (9 % of CPU in the profile); one
 * shared DOMException gives handlers the same kind of reason for free.
 */
export const callEnded = new DOMException(
  "This operation was aborted",
  "AbortError",
);

/** Serves the fast cases over HTTP/2 before Node's compatibility layer and the connect adapter. */
export class FastPath {
  /** Calls this path has taken (not fallen through); tests read it to know who served. */
  calls = 0;
  private readonly routes = new Map<string, Route>();
  private readonly opt: Options;
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
  private readonly grpcAcceptEncoding: string;

  constructor(options: FastPathOptions = {}) {
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
    this.grpcAcceptEncoding = this.opt.acceptCompression
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
      const codec = (binary: boolean): Codec => {
        const i = s.getI(binary);
        const o = s.getO(binary);
        return {
          parse: (data) => i.parse(data),
          serialize: (m) => o.serialize(m as never),
        };
      };
      this.routes.set(`/${spec.method.parent.typeName}/${spec.method.name}`, {
        spec,
        binary: codec(true),
        json: codec(false),
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
    if (
      !this.enabled ||
      headers[":method"] !== "POST" ||
      headers.origin !== undefined
    ) {
      return false;
    }
    const path = headers[":path"] ?? "";
    const q = path.indexOf("?");
    const route = this.routes.get(q < 0 ? path : path.slice(0, q));
    const type = headers["content-type"];
    if (route === undefined || type === undefined) return false;
    let serve: (call: FastCall) => Promise<void>;
    if (grpcType.test(type)) {
      serve = (call) => serveGrpc(call, this.grpcAcceptEncoding);
    } else {
      const connect = connectType.exec(type);
      if (
        connect === null ||
        route.spec.kind !== "unary" ||
        // connect answers a missing version header; not worth doing twice
        this.opt.requireConnectProtocolHeader
      ) {
        return false;
      }
      const binary = (connect[1] as string).toLowerCase() === "proto";
      serve = (call) => serveConnectUnary(call, binary);
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
    serve(new FastCall(this.opt, route, stream, headers, values, this.running))
      // Each protocol reports every failure to the client; what lands here is
      // a broken stream, which has nobody left to tell.
      .catch(() => stream.destroy());
    return true;
  };
}

/**
 * One call's set-up, shared by both protocols: the request headers as fetch
 * Headers, and one AbortController for request close, deadline, shutdown and
 * end of call (connect links three).
 */
export class FastCall {
  readonly requestHeader: Headers;
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private deadlineAt: number | undefined;
  /** Ends the call: bound once, since it is also the shutdown hook. */
  readonly end = (reason: unknown = callEnded): void => {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.running.delete(this.end);
    if (!this.abort.signal.aborted) this.abort.abort(reason);
  };

  constructor(
    readonly opt: Options,
    readonly route: Route,
    readonly stream: ServerHttp2Stream,
    private readonly headers: IncomingHttpHeaders,
    private readonly values: ContextValues,
    private readonly running: Set<(reason: unknown) => void>,
  ) {
    this.requestHeader = webHeaders(headers);
    if (opt.shutdownSignal?.aborted) this.end(opt.shutdownSignal.reason);
    else running.add(this.end);
    // As connect-node: a reset tells why (CANCEL → canceled); a plain close
    // ends the call. on(), not once(), for events a stream emits once: once()
    // allocates a wrapper per listener, and these live as long as the call.
    stream.on("close", () => this.end(resetError(stream.rstCode)));
  }

  /** Start the deadline, if the client sent one (connect's createDeadlineSignal). */
  startDeadline(timeoutMs: number | undefined): void {
    if (timeoutMs === undefined) return;
    this.deadlineAt = Date.now() + timeoutMs;
    const expire = () =>
      this.end(
        new ConnectError("the operation timed out", Code.DeadlineExceeded),
      );
    if (timeoutMs <= 0) expire();
    else this.timer = setTimeout(expire, timeoutMs);
  }

  /** The handler context, as connect's createHandlerContext builds it. */
  handlerContext(
    protocolName: string,
    responseHeader: Headers,
    responseTrailer: Headers,
  ): HandlerContext {
    const { method } = this.route.spec;
    const deadlineAt = this.deadlineAt;
    const h = this.headers;
    return {
      method,
      service: method.parent,
      signal: this.abort.signal,
      timeoutMs:
        deadlineAt === undefined
          ? () => undefined
          : () => deadlineAt - Date.now(),
      requestMethod: "POST",
      requestHeader: this.requestHeader,
      responseHeader,
      responseTrailer,
      protocolName,
      values: this.values,
      url: `${h[":scheme"] ?? "http"}://${h[":authority"] ?? h.host}${h[":path"]}`,
    };
  }

  /** The stream is gone: nothing more can be sent. */
  get gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
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
export function nodeHeaders(
  headers: Headers,
): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = Object.create(null);
  headers.forEach((value, key) => {
    const existing = o[key];
    if (existing === undefined) o[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else o[key] = [existing, value];
  });
  return o;
}

/** As connect-node's connectErrorFromH2ResetCode: why a reset stream ended (undefined: it was not reset). */
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
