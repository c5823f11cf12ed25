/**
 * gRPC-Web's trailers: the call's status and trailing metadata sent as the
 * body's last message, flagged 0x80, in HTTP/1.1 header syntax, since a
 * browser cannot read HTTP trailers (PROTOCOL-WEB.md, "Message framing").
 * The rest of gRPC-Web is gRPC's (src/protocol-grpc/handler.ts).
 */
import {
  trailerFlag,
  trailerSerialize,
} from "@connectrpc/connect/protocol-grpc-web";
import { CallContext } from "../engine/context.js";

/** The flag of the trailer message. */
export const webTrailerFlag = trailerFlag;

/** The trailers of a call that set none beyond its status, serialized once. */
const serialized = new WeakMap<object, Uint8Array>();

/**
 * The trailer message of a call, as connect's trailerSerialize writes it:
 * `name: value` lines ending in CRLF, in the order fetch Headers give.
 */
export function webTrailer(ctx: CallContext): {
  flags: number;
  data: Uint8Array;
} {
  const trailer = CallContext.trailerSet(ctx);
  if (trailer !== undefined) {
    return { flags: trailerFlag, data: trailerSerialize(trailer) };
  }
  const init = CallContext.init(ctx);
  let data = serialized.get(init.trailer);
  if (data === undefined) {
    data = trailerSerialize(new Headers(init.trailer));
    serialized.set(init.trailer, data);
  }
  return { flags: trailerFlag, data };
}
