/**
 * gRPC and gRPC-Web, every kind of call, protobuf or JSON, on either HTTP
 * version: connect's protocol-grpc/handler-factory.js and
 * protocol-grpc-web/handler-factory.js, with connect-node's response writing,
 * without their generator pipeline. The two protocols differ only in where
 * the status goes: gRPC's HTTP trailers, or gRPC-Web's last message
 * (src/protocol-grpc-web/trailer.ts).
 */

import type { Compression } from "@connectrpc/connect/protocol";
import {
  contentTypeJson,
  contentTypeProto,
  grpcStatusOk,
  headerAcceptEncoding,
  headerContentType,
  headerEncoding,
  headerGrpcStatus,
  headerTimeout,
  parseTimeout,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import {
  contentTypeJson as webContentTypeJson,
  contentTypeProto as webContentTypeProto,
} from "@connectrpc/connect/protocol-grpc-web";
import { asClientError } from "../calls/internal-errors.js";
import type { EngineCall } from "../engine/call.js";
import { ensureSingle, invokeUnary } from "../engine/invoke.js";
import { streamResponses } from "../engine/stream.js";
import {
  grpcAcceptEncoding,
  grpcAcceptEncodingHeader,
} from "../protocol/accept-encoding.js";
import {
  type EnvelopedProtocol,
  envelopedCall,
  type Shape,
} from "../protocol/enveloped-call.js";
import { webTrailer, webTrailerFlag } from "../protocol-grpc-web/trailer.js";

// Node's header objects have lower-case names; connect's constants are capitalised.
const grpc: EnvelopedProtocol = {
  name: "grpc",
  timeoutHeader: headerTimeout.toLowerCase(),
  parseTimeout,
  encodingHeader: headerEncoding.toLowerCase(),
  acceptEncodingHeader: headerAcceptEncoding.toLowerCase(),
  acceptEncodingName: headerAcceptEncoding,
  skipFlag: 0,
};
const grpcWeb: EnvelopedProtocol = {
  ...grpc,
  name: "grpc-web",
  skipFlag: webTrailerFlag,
};

/**
 * The responses' initial headers and trailers for one server's accepted
 * encodings, made once for every protocol (gRPC, gRPC-Web), format and
 * response encoding, so a call looks its shape up without making a key.
 */
export class GrpcShapes {
  /** By web (2) + binary (1), then by response encoding ("" for none). */
  readonly #table: Map<string, Shape>[] = [];

  constructor(acceptCompression: readonly Compression[]) {
    const acceptEncoding = grpcAcceptEncoding("grpc", acceptCompression) ?? "";
    const before = { [grpcAcceptEncodingHeader]: acceptEncoding };
    for (const web of [false, true]) {
      for (const binary of [false, true]) {
        const byEncoding = new Map<string, Shape>();
        for (const encoding of ["", ...acceptCompression.map((c) => c.name)]) {
          const header: Record<string, string> = {
            [headerContentType]: web
              ? binary
                ? webContentTypeProto
                : webContentTypeJson
              : binary
                ? contentTypeProto
                : contentTypeJson,
          };
          if (encoding !== "") header[headerEncoding] = encoding;
          byEncoding.set(encoding, {
            init: { header, trailer: { [headerGrpcStatus]: grpcStatusOk } },
            head: {
              plain: { ...before, ...lowerCase(header) },
              before,
              trailers: !web,
            },
          });
        }
        this.#table[(web ? 2 : 0) + (binary ? 1 : 0)] = byEncoding;
      }
    }
  }

  /** The shape of a response in `web` or gRPC, `binary` or JSON, with the response `encoding`, if any. */
  of(web: boolean, binary: boolean, encoding: string | undefined): Shape {
    const shape = this.#table[(web ? 2 : 0) + (binary ? 1 : 0)]?.get(
      encoding ?? "",
    );
    if (shape === undefined) throw new Error(`no shape for ${encoding}`);
    return shape;
  }
}

/** One gRPC (`web` false) or gRPC-Web call, of any kind. */
export async function serveGrpc(
  call: EngineCall,
  web: boolean,
  binary: boolean,
  shapes: GrpcShapes,
): Promise<void> {
  const { host, route, exchange } = call;
  const { opt } = host;
  const { spec } = route;
  const { ctx, input, writer } = envelopedCall(
    call,
    web ? grpcWeb : grpc,
    binary,
    (encoding) => shapes.of(web, binary, encoding),
  );
  const end = web ? () => webTrailer(ctx) : undefined;

  let failure: unknown;
  let answered = false;
  try {
    // As connect's applyRequestGate: before the body is read and before the
    // interceptors, so a rejected call is never parsed nor observed.
    // A gate that answers at once (load shedding) costs no turn of the loop.
    const gated = opt.requestGate?.(ctx);
    if (gated !== undefined) await gated;
    if (spec.kind === "unary") {
      // As connect: the single request is read before the handler runs.
      let message = ensureSingle(() => input.read(), "unary");
      if (message instanceof Promise) message = await message;
      let output = host.pipeline.unary(call, () =>
        invokeUnary(spec, ctx, message, host.interceptors),
      );
      if (output instanceof Promise) output = await output;
      const sent = writer.finishWith(output, end);
      answered = true;
      call.end();
      if (sent !== undefined) await sent;
    } else {
      await streamResponses(call, ctx, input, writer);
    }
  } catch (e) {
    failure = e;
  }
  if (failure !== undefined) {
    call.end(failure);
    setTrailerStatus(ctx.responseTrailer, asClientError(failure));
  } else if (!answered) {
    call.end();
  }
  if (!answered) {
    const last = end?.();
    const finished = writer.finish(last?.flags, last?.data);
    if (finished !== undefined) await finished;
  }
  exchange.body.discard();
}

/** `header` with lower-case names, as Node sends them. */
function lowerCase(header: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(header)) out[k.toLowerCase()] = v;
  return out;
}
