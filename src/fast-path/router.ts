/**
 * A dedicated path for the hot cases: gRPC calls of every kind and Connect
 * unary calls, over HTTP/2, in protobuf (and JSON for Connect).
 *
 * WHY: connect's generic handlers run every call through Node's HTTP/2
 * compatibility layer, three AbortControllers and two DOMExceptions (abort()
 * without a reason), and gRPC calls through nine to eleven async-generator
 * stages on top; that costs several times the CPU of @grpc/grpc-js per call
 * (bench/PROFILE.md measures it). Here a call is read, invoked and written by
 * plain code on the raw HTTP/2 stream, and what a handler does not read of
 * its context is never made (src/fast-path/call.ts).
 *
 * WHAT STAYS THE SAME: the same service implementation objects the router
 * registers (recorded by `record`), the same report of every call (the call
 * log, metrics and in-flight count of src/calls/, told directly instead of
 * through the observeCalls interceptor), the same error hiding, the user's
 * interceptors applied the same way, the same context values, and connect's
 * own helpers for what the client sees: timeout parsing, compression
 * negotiation, (de)serialization with the read limit, status and error
 * encoding. Where the fast path re-does something connect does, the comment
 * names the connect function it mirrors.
 *
 * This file routes streams to a call; call.ts sets each call up, observed.ts
 * runs its handler with what every call reports, and grpc/ and connect/ speak
 * the protocols. Everything else falls through to the connect adapter
 * untouched: HTTP/1.1, gRPC-Web, Connect streaming and GET, gRPC +json,
 * unknown paths, services registered with their own options, and browser
 * requests (with an Origin, which src/http/cors.ts answers).
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
  createMethodSerializationLookup,
  type UniversalHandlerOptions,
  validateUniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { procedureOf } from "../calls/call.js";
import type { ConnectionSource } from "../calls/connection.js";
import type { CallReport } from "../calls/report.js";
import { parseRequestType } from "../http/content-type.js";
import {
  type CallHost,
  type Codec,
  FastCall,
  type Options,
  type Route,
} from "./call.js";
import { serveConnectUnary } from "./connect/handler.js";
import { serveGrpc } from "./grpc/handler.js";

/**
 * The adapter options the fast path honours (pass the same values to
 * connectNodeAdapter), and what it does itself that connect's handlers get
 * from the server's own interceptors.
 */
export interface FastPathOptions
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
  /** Context values for a request, as connectNodeAdapter's option. @default undefined (empty values) */
  contextValues?: (req: ConnectionSource) => ContextValues;
  /**
   * The application's interceptors, run around each handler as connect runs
   * them. Not the server's own observeCalls, hideInternalErrors and
   * endOnAbort: the fast path does their work itself, with `report` and
   * `logger`. @default []
   */
  interceptors?: Interceptor[];
  /** Where every call is reported (call log, metrics, in-flight). @default undefined (calls are not reported) */
  report?: CallReport;
  /** Where handler failures hidden from clients are logged. @default undefined (not logged) */
  logger?: Logger;
  /** Serve the fast cases here; false leaves every call to connect. @default true */
  enabled?: boolean;
}

/** Serves the fast cases over HTTP/2 before Node's compatibility layer and the connect adapter. */
export class FastPath implements CallHost {
  /** Calls this path has taken (not fallen through); tests read it to know who served. */
  calls = 0;
  readonly opt: Options;
  readonly contextValues:
    | ((req: ConnectionSource) => ContextValues)
    | undefined;
  readonly interceptors: readonly Interceptor[];
  readonly report: CallReport | undefined;
  readonly logger: Logger | undefined;
  /**
   * The calls in flight, ended together by the shutdown signal: one listener
   * on it for all calls rather than one per call, since hundreds of them trip
   * Node's MaxListenersExceededWarning.
   */
  readonly running = new Set<FastCall>();
  /** The header grpcAcceptEncoding (src/http/grpc-accept-encoding.ts) puts on connect's gRPC answers. */
  readonly grpcAcceptEncoding: string;
  readonly #routes = new Map<string, Route>();
  readonly #enabled: boolean;

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
    this.interceptors = options.interceptors ?? [];
    this.report = options.report;
    this.logger = options.logger;
    this.#enabled = options.enabled ?? true;
    const shutdown = this.opt.shutdownSignal;
    shutdown?.addEventListener(
      "abort",
      () => {
        for (const call of this.running) call.end(shutdown.reason);
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
    };
  }

  #add(methods: Record<string, MethodImplSpec>): void {
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
      const procedure = procedureOf(spec.method);
      this.#routes.set(procedure.path, {
        spec,
        procedure,
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
      !this.#enabled ||
      headers[":method"] !== "POST" ||
      headers.origin !== undefined
    ) {
      return false;
    }
    const path = headers[":path"] ?? "";
    const q = path.indexOf("?");
    const route = this.#routes.get(q < 0 ? path : path.slice(0, q));
    if (route === undefined) return false;
    const type = parseRequestType(headers["content-type"]);
    let served: Promise<void>;
    if (type?.protocol === "grpc" && type.binary) {
      served = serveGrpc(this.#call(route, stream, headers));
    } else if (
      type?.protocol === "connect" &&
      !type.stream &&
      route.spec.kind === "unary" &&
      // connect answers a missing version header; not worth doing twice
      !this.opt.requireConnectProtocolHeader
    ) {
      served = serveConnectUnary(
        this.#call(route, stream, headers),
        type.binary,
      );
    } else {
      return false;
    }
    // Each protocol reports every failure to the client; what lands here is
    // a bug of the fast path's own, with the stream in an unknown state.
    served.catch(this.#broken(stream));
    return true;
  };

  #call(
    route: Route,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
  ): FastCall {
    this.calls++;
    // A reset, or a write after the client left, is an 'error' event; the
    // call learns of it from 'close' and rstCode, as through Node's
    // compatibility layer.
    stream.on("error", this.#streamError);
    return new FastCall(this, route, stream, headers);
  }

  readonly #streamError = (e: Error): void => {
    this.logger?.debug({ err: e }, "fast path: stream error");
  };

  #broken(stream: ServerHttp2Stream): (e: unknown) => void {
    return (e) => {
      this.logger?.error({ err: e }, "fast path failed; stream reset");
      stream.destroy();
    };
  }
}
