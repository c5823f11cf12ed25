/**
 * A dedicated path for the hot cases: gRPC calls of every kind and
 * Connect unary calls, over HTTP/2, in protobuf (and JSON for Connect).
 *
 * WHY: connect's generic handlers run every call through Node's HTTP/2
 * compatibility layer, three AbortControllers and two DOMExceptions (abort()
 * without a reason), and gRPC calls through nine to eleven async-generator
 * stages on top; that costs several times the CPU of @grpc/grpc-js per call
 * (bench/PROFILE.md measures it). Here a call is read, invoked and written by plain code
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
 * This file routes streams to a call; src/fast-call.ts sets each call up, and
 * src/grpc-fast-path.ts and src/connect-fast-path.ts speak the protocols. Everything else falls through
 * to the connect adapter untouched: HTTP/1.1, gRPC-Web, Connect streaming and
 * GET, gRPC +json, unknown paths, services registered with their own options,
 * and browser requests (with an Origin, which src/cors.ts answers).
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import {
  type ConnectRouter,
  type ContextValues,
  createContextValues,
  createServiceImplSpec,
  type MethodImplSpec,
} from "@connectrpc/connect";
import {
  createMethodSerializationLookup,
  type UniversalHandlerOptions,
  validateUniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { ConnectionSource } from "../calls/connection.js";
import { parseRequestType } from "../http/content-type.js";
import { type Codec, FastCall, type Options, type Route } from "./call.js";
import { serveConnectUnary } from "./connect/handler.js";
import { serveGrpc } from "./grpc/handler.js";

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
  contextValues?: (req: ConnectionSource) => ContextValues;
  /** Serve the fast cases here; false leaves every call to connect. @default true */
  enabled?: boolean;
}

/** Serves the fast cases over HTTP/2 before Node's compatibility layer and the connect adapter. */
export class FastPath {
  /** Calls this path has taken (not fallen through); tests read it to know who served. */
  calls = 0;
  private readonly routes = new Map<string, Route>();
  private readonly opt: Options;
  private readonly contextValues:
    | ((req: ConnectionSource) => ContextValues)
    | undefined;
  private readonly enabled: boolean;
  /**
   * How to end each call in flight, for the shutdown signal: one listener on
   * it for all calls, rather than one per call (an EventTarget listener costs
   * more than the rest of a call's bookkeeping, and hundreds of them trip
   * Node's MaxListenersExceededWarning).
   */
  private readonly running = new Set<(reason: unknown) => void>();
  /** The header grpcAcceptEncoding (src/http/grpc-accept-encoding.ts) puts on connect's gRPC answers. */
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
    if (route === undefined) return false;
    const type = parseRequestType(headers["content-type"]);
    let serve: (call: FastCall) => Promise<void>;
    if (type?.protocol === "grpc" && type.binary) {
      serve = (call) => serveGrpc(call, this.grpcAcceptEncoding);
    } else if (
      type?.protocol === "connect" &&
      !type.stream &&
      route.spec.kind === "unary" &&
      // connect answers a missing version header; not worth doing twice
      !this.opt.requireConnectProtocolHeader
    ) {
      const { binary } = type;
      serve = (call) => serveConnectUnary(call, binary);
    } else {
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
    serve(new FastCall(this.opt, route, stream, headers, values, this.running))
      // Each protocol reports every failure to the client; what lands here is
      // a broken stream, which has nobody left to tell.
      .catch(() => stream.destroy());
    return true;
  };
}
