import { constants as h2 } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The RST_STREAM codes connect-node's connectErrorFromH2ResetCode reads, by
 * name (RFC 9113, 7) and the code a call they end gets.
 */
const resets = new Map<number, readonly [name: string, code: Code]>([
  [h2.NGHTTP2_PROTOCOL_ERROR, ["PROTOCOL_ERROR", Code.Internal]],
  [h2.NGHTTP2_INTERNAL_ERROR, ["INTERNAL_ERROR", Code.Internal]],
  [h2.NGHTTP2_FLOW_CONTROL_ERROR, ["FLOW_CONTROL_ERROR", Code.Internal]],
  [h2.NGHTTP2_SETTINGS_TIMEOUT, ["SETTINGS_TIMEOUT", Code.Internal]],
  [h2.NGHTTP2_FRAME_SIZE_ERROR, ["FRAME_SIZE_ERROR", Code.Internal]],
  [h2.NGHTTP2_COMPRESSION_ERROR, ["COMPRESSION_ERROR", Code.Internal]],
  [h2.NGHTTP2_CONNECT_ERROR, ["CONNECT_ERROR", Code.Internal]],
  [h2.NGHTTP2_REFUSED_STREAM, ["REFUSED_STREAM", Code.Unavailable]],
  [h2.NGHTTP2_CANCEL, ["CANCEL", Code.Canceled]],
  [h2.NGHTTP2_ENHANCE_YOUR_CALM, ["ENHANCE_YOUR_CALM", Code.ResourceExhausted]],
  [
    h2.NGHTTP2_INADEQUATE_SECURITY,
    ["INADEQUATE_SECURITY", Code.PermissionDenied],
  ],
  [h2.NGHTTP2_HTTP_1_1_REQUIRED, ["HTTP_1_1_REQUIRED", Code.PermissionDenied]],
]);

/** As connect-node's connectErrorFromH2ResetCode: why a reset stream ended (undefined: it was not reset). */
export function resetError(
  rstCode: number | undefined,
): ConnectError | undefined {
  const reset = rstCode === undefined ? undefined : resets.get(rstCode);
  if (reset === undefined) return undefined;
  const [name, code] = reset;
  return new ConnectError(
    `http/2 stream closed with error code ${name} (0x${(rstCode as number).toString(16)})`,
    code,
  );
}
