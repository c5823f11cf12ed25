import type * as http2 from "node:http2";

/** Takes an HTTP/2 stream (true) or leaves it to the request handler (false, untouched). */
export type StreamClaim = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  /** The header fields as they came, names and values in turn (the "stream" event's rawHeaders). */
  rawHeaders: string[],
) => boolean;

/**
 * Offer every stream of `server` to `claim` before Node's compatibility layer,
 * which listens to the same "stream" event and would answer it too.
 *
 * Node has no hook between a stream and its request objects; an event
 * listener cannot stop the others, so the server's own `emit` is wrapped for
 * this one event. Every other event, and every stream not claimed, goes on as
 * before.
 */
export function claimStreams(
  server: http2.Http2Server | http2.Http2SecureServer,
  claim: StreamClaim,
): void {
  const emit = server.emit;
  server.emit = function (
    this: typeof server,
    event: string | symbol,
    ...args: unknown[]
  ): boolean {
    if (
      event === "stream" &&
      claim(
        args[0] as http2.ServerHttp2Stream,
        args[1] as http2.IncomingHttpHeaders,
        args[3] as string[],
      )
    ) {
      return true;
    }
    return emit.call(this, event, ...args);
  } as typeof emit;
}
