import { promisify } from "node:util";
import * as zlib from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";

/**
 * The encodings the server reads and writes besides connect-node's gzip and
 * br (compressionGzip, compressionBrotli), on the same model: Node's zlib,
 * and a decompressed size bounded by `readMaxBytes` through zlib's own
 * `maxOutputLength`, which stops inflating as soon as the output passes it
 * (a few KiB past the limit, one output chunk), so a small message that
 * would inflate to gigabytes is refused before it is inflated whole.
 */

const deflate = promisify(zlib.deflate);
const inflate = promisify(zlib.inflate);
const zstdCompress = promisify(zlib.zstdCompress);
const zstdDecompress = promisify(zlib.zstdDecompress);

/**
 * "deflate": the zlib format (RFC 1950) that HTTP's Content-Encoding
 * (RFC 9110, 8.4.1.2) and gRPC's grpc-encoding (grpc-js: zlib.deflate) both
 * mean by the name.
 */
export const compressionDeflate: Compression = {
  name: "deflate",
  compress: (bytes) => deflate(bytes),
  decompress: (bytes, readMaxBytes) =>
    bounded(bytes, readMaxBytes, () =>
      inflate(bytes, { maxOutputLength: readMaxBytes }),
    ),
};

/**
 * The largest zstd window a request may ask the decoder to keep, as log2:
 * 8 MiB, the most RFC 9659 (zstd in HTTP) lets an encoder use, so that a
 * frame cannot make the decoder reserve the format's 128 MiB default either.
 */
const zstdWindowLogMax = 23;

/** "zstd": Zstandard (RFC 8878), in Node's zlib since 22.15 and 24. */
export const compressionZstd: Compression = {
  name: "zstd",
  compress: (bytes) => zstdCompress(bytes),
  decompress: (bytes, readMaxBytes) =>
    bounded(bytes, readMaxBytes, () =>
      zstdDecompress(bytes, {
        maxOutputLength: readMaxBytes,
        params: { [zlib.constants.ZSTD_d_windowLogMax]: zstdWindowLogMax },
      }),
    ),
};

/**
 * What `inflate` makes of `bytes`, its failures as connect-node's
 * wrapZLibErrors reports them: past `readMaxBytes` RESOURCE_EXHAUSTED (and a
 * zstd window over the limit above), bytes that are not in the encoding
 * INVALID_ARGUMENT "decompression failed", anything else (a truncated
 * stream) INTERNAL "decompression failed".
 */
async function bounded(
  bytes: Uint8Array,
  readMaxBytes: number,
  inflate: () => Promise<Uint8Array<ArrayBuffer>>,
): Promise<Uint8Array<ArrayBuffer>> {
  // As connect-node: an empty message is empty in every encoding.
  if (bytes.byteLength === 0) return new Uint8Array(0);
  try {
    return await inflate();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "";
    if (code === "ERR_BUFFER_TOO_LARGE") {
      throw new ConnectError(
        `message is larger than configured readMaxBytes ${readMaxBytes} after decompression`,
        Code.ResourceExhausted,
        undefined,
        undefined,
        e,
      );
    }
    if (code === "ZSTD_error_frameParameter_windowTooLarge") {
      throw new ConnectError(
        `message needs a zstd window larger than ${2 ** zstdWindowLogMax} bytes`,
        Code.ResourceExhausted,
        undefined,
        undefined,
        e,
      );
    }
    throw new ConnectError(
      "decompression failed",
      code === "Z_DATA_ERROR" || code.startsWith("ZSTD_error_")
        ? Code.InvalidArgument
        : Code.Internal,
      undefined,
      undefined,
      e,
    );
  }
}
