/**
 * gRPC and gRPC-Web (binary or text), every kind of call, protobuf or JSON,
 * on either HTTP version: connect's protocol-grpc/handler-factory.js and
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
import type { RequestType } from "../protocol/content-type.js";
import {
  type EnvelopedProtocol,
  envelopedCall,
  type Shape,
} from "../protocol/enveloped-call.js";
import {
  Base64Body,
  base64Frame,
  contentTypeTextJson,
  contentTypeTextProto,
} from "../protocol-grpc-web/text.js";
import { webTrailer, webTrailerFlag } from "../protocol-grpc-web/trailer.js";
import { setTrailerStatus } from "./grpc-message.js";

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
const grpcWebText: EnvelopedProtocol = {
  ...grpcWeb,
  decodeBody: (body) => new Base64Body(body),
  encodeWrite: base64Frame,
};

/** Which of gRPC, gRPC-Web and gRPC-Web's text mode a call speaks. */
type Variant = "grpc" | "web" | "text";
const variants: readonly Variant[] = ["grpc", "web", "text"];
const contentTypes: Record<Variant, readonly [json: string, proto: string]> = {
  grpc: [contentTypeJson, contentTypeProto],
  web: [webContentTypeJson, webContentTypeProto],
  text: [contentTypeTextJson, contentTypeTextProto],
};

function variantOf(type: RequestType): Variant {
  if (type.protocol === "grpc") return "grpc";
  return type.text ? "text" : "web";
}

/**
 * The responses' initial headers and trailers for one server's accepted
 * encodings, made once for every protocol (gRPC, gRPC-Web, its text mode),
 * format and response encoding, so a call looks its shape up without making
 * a key.
 */
export class GrpcShapes {
  /** By variant (variantIndex) + binary (1), then by response encoding ("" for none). */
  readonly #table: Map<string, Shape>[] = [];

  constructor(acceptCompression: readonly Compression[]) {
    const acceptEncoding = grpcAcceptEncoding("grpc", acceptCompression) ?? "";
    const before = { [grpcAcceptEncodingHeader]: acceptEncoding };
    for (const variant of variants) {
      const web = variant !== "grpc";
      for (const binary of [false, true]) {
        const byEncoding = new Map<string, Shape>();
        for (const encoding of ["", ...acceptCompression.map((c) => c.name)]) {
          const header: Record<string, string> = {
            [headerContentType]: contentTypes[variant][binary ? 1 : 0],
          };
          if (encoding !== "") header[headerEncoding] = encoding;
          byEncoding.set(encoding, {
            // Lower case, as connect-node's webHeaderToNodeHeaders writes
            // the trailers: Node sends these as they are when no handler set
            // one, and HTTP/1.1 keeps a name's case on the wire.
            init: {
              header,
              trailer: { [headerGrpcStatus.toLowerCase()]: grpcStatusOk },
            },
            head: {
              plain: { ...before, ...lowerCase(header) },
              before,
              trailers: !web,
            },
          });
        }
        this.#table[index(variant, binary)] = byEncoding;
      }
    }
  }

  /** The shape of a response in `variant`, `binary` or JSON, with the response `encoding`, if any. */
  of(variant: Variant, binary: boolean, encoding: string | undefined): Shape {
    const shape = this.#table[index(variant, binary)]?.get(encoding ?? "");
    if (shape === undefined) throw new Error(`no shape for ${encoding}`);
    return shape;
  }
}

/** Where a variant's shapes start in GrpcShapes' table. */
const variantIndex: Record<Variant, number> = { grpc: 0, web: 2, text: 4 };

function index(variant: Variant, binary: boolean): number {
  return variantIndex[variant] + (binary ? 1 : 0);
}

/** One gRPC or gRPC-Web call (`type`), of any kind. */
export async function serveGrpc(
  call: EngineCall,
  type: RequestType,
  shapes: GrpcShapes,
): Promise<void> {
  const { host, route, exchange } = call;
  const { opt } = host;
  const { spec } = route;
  const variant = variantOf(type);
  const web = variant !== "grpc";
  const { binary } = type;
  const { ctx, input, writer } = envelopedCall(
    call,
    variant === "text" ? grpcWebText : web ? grpcWeb : grpc,
    binary,
    (encoding) => shapes.of(variant, binary, encoding),
  );
  const end = web ? () => webTrailer(ctx) : undefined;

  let failure: unknown;
  let answered = false;
  try {
    // As connect's applyRequestGate: before the body is read and before the
    // interceptors, so a rejected call is never read nor parsed (the call
    // pipeline reports it: CallPipeline.gated). Awaited only when the gate
    // is asynchronous, as a cached token's check is not.
    const gated = opt.requestGate?.(ctx);
    if (gated instanceof Promise) await gated;
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
