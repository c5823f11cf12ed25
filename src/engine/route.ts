import type { MethodImplSpec } from "@connectrpc/connect";
import {
  createMethodSerializationLookup,
  type validateUniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import { type Procedure, procedureOf } from "../calls/observer.js";

/** The adapter options after connect's own validation and defaults. */
export type Options = ReturnType<typeof validateUniversalHandlerOptions>;

/** How a message is read and written in one format. */
export interface Codec {
  readonly parse: (data: Uint8Array) => unknown;
  readonly serialize: (message: unknown) => Uint8Array;
}

/** A procedure the engine serves: its implementation and its codecs, made once. */
export interface Route {
  readonly spec: MethodImplSpec;
  readonly procedure: Procedure;
  readonly binary: Codec;
  readonly json: Codec;
}

/**
 * The route of one method, with connect's own serialization (its read limit
 * and JSON options), as connect's handler factories make it
 * (createMethodSerializationLookup).
 */
export function routeOf(spec: MethodImplSpec, opt: Options): Route {
  const s = createMethodSerializationLookup(
    spec.method,
    opt.binaryOptions,
    opt.jsonOptions,
    opt,
  );
  const codec = (binary: boolean): Codec => {
    const i = s.getI(binary);
    const o = s.getO(binary);
    return {
      parse: (data) => i.parse(data),
      serialize: (m) => o.serialize(m as never),
    };
  };
  return {
    spec,
    procedure: procedureOf(spec.method),
    binary: codec(true),
    json: codec(false),
  };
}
