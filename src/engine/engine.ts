/**
 * The protocol engine: every call to a method the router serves, in gRPC,
 * gRPC-Web or Connect, protobuf or JSON, unary or streaming, over HTTP/2 or
 * HTTP/1.1, is served here, on Node's own request objects, instead of by
 * connect's generic handlers.
 *
 * WHY: connect's generic handlers run every call through a universal request
 * and response made of fetch Headers, three AbortControllers, two
 * DOMExceptions and, for streams and gRPC, nine to eleven async-generator
 * stages; that costs several times the CPU of @grpc/grpc-js or fastify per
 * call (bench/PROFILE.md measures it). Here a call is read, invoked and
 * written by plain code on an exchange (src/engine/exchange.ts: an HTTP/2
 * stream, or an HTTP/1.1 request and response), and what a handler does not
 * read of its context is never made (src/engine/context.ts).
 *
 * WHAT STAYS THE SAME: the service implementation objects the router
 * registers (learnt by `record`), what every call gets (src/calls/pipeline.ts:
 * its report, error hiding, its end), the application's interceptors
 * applied as connect applies them, the same context values, and connect's
 * own code for what the client sees: timeout parsing, compression
 * negotiation, (de)serialization with the read limit, status, error and
 * trailer encoding. Where the engine does again what connect does, the
 * comment names the connect function it mirrors, and the parity tests
 * (test/engine.test.ts) hold the two to the same bytes.
 *
 * WHAT IT LEAVES TO CONNECT, untouched: unknown paths, services registered
 * with options of their own, GETs that are no Connect GET of a method
 * without side effects (405, 415), bidi streams over HTTP/1.1 (connect
 * answers 505), content types that do not fit the method (415), and
 * everything when `enabled` is false. gRPC-Web's text mode,
 * which connect does not speak (415), the engine serves itself
 * (src/protocol-grpc-web/text.ts).
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import {
  type ConnectRouter,
  type ContextValues,
  createServiceImplSpec,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import {
  type UniversalHandlerOptions,
  validateUniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { type Logger, pino } from "pino";
import type { ConnectionSource } from "../calls/connection.js";
import type { DeadlinePolicy } from "../calls/deadline-policy.js";
import { CallPipeline } from "../calls/pipeline.js";
import type { CorsPolicy } from "../http/cors.js";
import type { Middleware } from "../http/middleware.js";
import {
  parseRequestType,
  type RequestType,
} from "../protocol/content-type.js";
import { type GetQuery, getQuery } from "../protocol-connect/get.js";
import { serveConnectStream } from "../protocol-connect/stream.js";
import { serveConnectUnary } from "../protocol-connect/unary.js";
import { specGrpcMessages } from "../protocol-grpc/grpc-message.js";
import { GrpcShapes, serveGrpc } from "../protocol-grpc/handler.js";
import { type CallHost, EngineCall } from "./call.js";
import type { Exchange } from "./exchange.js";
import { Http1Exchange } from "./http1-exchange.js";
import { Http2Exchange } from "./http2-exchange.js";
import { type Options, type Route, routeOf } from "./route.js";

/**
 * The adapter options the engine honours (pass the same values to
 * connectNodeAdapter), and what every call gets.
 */
export interface EngineOptions
  extends Pick<
    Partial<UniversalHandlerOptions>,
    | "readMaxBytes"
    | "writeMaxBytes"
    | "acceptCompression"
    | "compressMinBytes"
    | "maxTimeoutMs"
    | "shutdownSignal"
    | "requestGate"
    | "requireConnectProtocolHeader"
  > {
  /** What every call gets: its report, error hiding, its end (src/calls/pipeline.ts). @default a pipeline that reports to no one */
  pipeline?: CallPipeline;
  /** Where a failure of the engine's own is logged. @default nowhere */
  logger?: Logger;
  /** Context values for a request, as connectNodeAdapter's option. @default undefined (empty values) */
  contextValues?: (req: ConnectionSource) => ContextValues;
  /** The application's interceptors, run around each handler as connect runs them. @default [] */
  interceptors?: Interceptor[];
  /** Which browsers on other origins may call, and the headers that say so. @default undefined (no CORS headers) */
  cors?: CorsPolicy;
  /** Serve calls here; false leaves every call to connect. @default true */
  enabled?: boolean;
  /** The server's deadline policy, applied to each call taken (src/calls/deadline-policy.ts). @default undefined (none) */
  deadlines?: DeadlinePolicy;
}

/** What serves a request: its route, its protocol, and a Connect GET's query. */
interface Match {
  readonly route: Route;
  readonly type: RequestType;
  readonly get?: GetQuery;
}

/** What a Connect GET is, by its encoding parameter. */
const getProto: RequestType = {
  protocol: "connect",
  binary: true,
  stream: false,
  text: false,
};
const getJson: RequestType = { ...getProto, binary: false };

/** Serves every call it can, over both HTTP versions, before the HTTP chain and connect see it. */
export class Engine implements CallHost {
  /** Calls this engine has taken (not left to connect); tests read it to know who served. */
  calls = 0;
  readonly opt: Options;
  readonly contextValues:
    | ((req: ConnectionSource) => ContextValues)
    | undefined;
  readonly interceptors: Interceptor[];
  readonly pipeline: CallPipeline;
  /**
   * The calls in flight, ended together by the shutdown signal: one listener
   * on it for all calls rather than one per call, since hundreds of them trip
   * Node's MaxListenersExceededWarning.
   */
  readonly running = new Set<EngineCall>();
  readonly #routes = new Map<string, Route>();
  readonly #enabled: boolean;
  readonly #logger: Logger;
  readonly #cors: CorsPolicy | undefined;
  readonly #deadlines: DeadlinePolicy | undefined;
  /** The start of gRPC and gRPC-Web answers, for the encodings this engine reads. */
  readonly #grpcShapes: GrpcShapes;

  constructor(options: EngineOptions = {}) {
    // The same normalisation (defaults, limits) connect applies to these
    // options, and connectNodeAdapter's default compressions, so both
    // accept the same.
    this.opt = validateUniversalHandlerOptions({
      ...options,
      acceptCompression: options.acceptCompression ?? [
        compressionGzip,
        compressionBrotli,
      ],
    });
    this.contextValues = options.contextValues;
    this.interceptors = options.interceptors ?? [];
    this.pipeline = options.pipeline ?? new CallPipeline();
    this.#logger = options.logger ?? pino({ level: "silent" });
    this.#cors = options.cors;
    this.#deadlines = options.deadlines;
    this.#enabled = options.enabled ?? true;
    this.#grpcShapes = new GrpcShapes(this.opt.acceptCompression);
    const shutdown = this.opt.shutdownSignal;
    shutdown?.addEventListener(
      "abort",
      () => {
        for (const call of this.running) call.end(shutdown.reason);
      },
      { once: true },
    );
  }

  /**
   * Wrap a routes function: the router gets every service as before, and the
   * engine learns the same implementations. connect's handlers the router
   * makes write grpc-message as the engine does (specGrpcMessages), so that
   * both paths answer alike.
   */
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
            this.#add(createServiceImplSpec(service, impl).methods);
          router.service(service, impl, options);
          return recording;
        },
        rpc: (method, impl, options) => {
          if (options === undefined)
            this.#add({
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
      specGrpcMessages(router.handlers, this.opt.acceptCompression);
    };
  }

  #add(methods: Record<string, MethodImplSpec>): void {
    for (const spec of Object.values(methods)) {
      const route = routeOf(spec, this.opt);
      this.#routes.set(route.procedure.path, route);
    }
  }

  /**
   * What serves a request, or undefined to leave it to connect: the route of
   * its path, and its protocol, if the engine speaks it for that method.
   */
  #match(
    method: string | undefined,
    path: string | undefined,
    contentType: string | undefined,
    http1: boolean,
  ): Match | undefined {
    if (!this.#enabled || path === undefined) return undefined;
    const q = path.indexOf("?");
    const route = this.#routes.get(q < 0 ? path : path.slice(0, q));
    if (route === undefined) return undefined;
    if (method === "GET") {
      // connect answers a missing connect=v1 when it is required
      if (q < 0 || this.opt.requireConnectProtocolHeader) return undefined;
      const get = getQuery(route, path.slice(q + 1));
      if (get === undefined) return undefined;
      return { route, type: get.binary ? getProto : getJson, get };
    }
    if (method !== "POST") return undefined;
    const type = parseRequestType(contentType);
    if (type === undefined) return undefined;
    const kind = route.spec.kind;
    // A full-duplex call cannot work over HTTP/1.1; connect answers it.
    if (http1 && kind === "bidi_streaming") return undefined;
    if (
      type.protocol === "connect" &&
      // connect answers a missing version header; not worth doing twice
      (this.opt.requireConnectProtocolHeader ||
        // unary calls in a streaming content type, or the reverse: 415
        type.stream !== (kind !== "unary"))
    ) {
      return undefined;
    }
    return { route, type };
  }

  /**
   * Serve an HTTP/2 stream and return true; return false, having touched
   * nothing, to leave it to Node's compatibility layer and the HTTP chain
   * (src/transport/listener.ts offers every stream here first).
   */
  readonly claimStream = (
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    rawHeaders?: string[],
  ): boolean => {
    const match = this.#match(
      headers[":method"],
      headers[":path"],
      headers["content-type"],
      false,
    );
    if (match === undefined) return false;
    // A reset, or a write after the client left, is an 'error' event; the
    // call learns of it from 'close' and rstCode, as through Node's
    // compatibility layer.
    stream.on("error", this.#streamError);
    this.#serve(
      match,
      new Http2Exchange(
        stream,
        headers,
        this.#cors?.responseHeaders(headers.origin),
        rawHeaders,
      ),
      () => stream.destroy(),
    );
    return true;
  };

  /**
   * The HTTP chain's first step: an HTTP/1.1 request the engine serves is
   * answered here, anything else goes on (HTTP/2 requests reach the chain
   * only once their stream was left, above).
   */
  readonly http1: Middleware = (next) => (req, res) => {
    if (req.httpVersionMajor !== 1) {
      next(req, res);
      return;
    }
    const match = this.#match(
      req.method,
      req.url,
      req.headers["content-type"],
      true,
    );
    if (match === undefined) {
      next(req, res);
      return;
    }
    const h1req = req as import("node:http").IncomingMessage;
    const h1res = res as import("node:http").ServerResponse;
    this.#serve(
      match,
      new Http1Exchange(
        h1req,
        h1res,
        this.#cors?.responseHeaders(req.headers.origin),
      ),
      () => h1res.destroy(),
    );
  };

  #serve(
    { route, type, get }: Match,
    exchange: Exchange,
    drop: () => void,
  ): void {
    this.calls++;
    // Before anything reads the timeout header.
    const change = this.#deadlines?.apply(exchange.headers, type.protocol);
    const call = new EngineCall(this, route, exchange, type.protocol);
    if (change !== undefined) call.deadline = change;
    let served: Promise<void>;
    switch (type.protocol) {
      case "grpc":
      case "grpc-web":
        served = serveGrpc(call, type, this.#grpcShapes);
        break;
      case "connect":
        served = type.stream
          ? serveConnectStream(call, type.binary)
          : serveConnectUnary(call, type.binary, get);
        break;
    }
    // Each protocol reports every failure to the client; what lands here is
    // a bug of the engine's own, with the exchange in an unknown state.
    served.catch((e: unknown) => {
      this.#logger.error({ err: e }, "engine failed; exchange dropped");
      drop();
    });
  }

  readonly #streamError = (e: Error): void => {
    this.#logger.debug({ err: e }, "engine: stream error");
  };
}
