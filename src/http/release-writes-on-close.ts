import type { Middleware } from "./middleware.js";

/**
 * Wrap a handler so that a response whose client went away while a write
 * waited for room ends its call instead of holding it for ever.
 *
 * connect-node writes a response body with `universalResponseToNodeResponse`,
 * whose `write()` waits for `drain` or `error` once a write fills the
 * stream's buffer. A client that goes away then (RST_STREAM CANCEL, a
 * dropped connection) closes the response with neither: Node emits only
 * `close`, as a cancel is no error to it. The call would wait for ever: its
 * handler neither resumed nor stopped, the call never reported as ended and
 * counted in flight, so that a drain would wait its whole grace period.
 *
 * On `close`, a write still waiting gets the error Node gives a write to a
 * destroyed stream (`ERR_STREAM_DESTROYED`). connect then stops the handler
 * (its iterator's `throw`, as for any failed write) and takes the call as
 * aborted by its client (`connectErrorFromNodeReason`): nothing is logged
 * as a failure, and the call is reported with the reason its signal got.
 * The fast path's writer waits for `close` too
 * (src/fast-path/grpc/response-writer.ts).
 */
export function releaseWritesOnClose(): Middleware {
  return (next) => (req, res) => {
    res.once("close", () => {
      // connect's write() listens for "drain" only while it waits.
      if (res.writableFinished || res.listenerCount("drain") === 0) return;
      res.emit("error", destroyed());
    });
    next(req, res);
  };
}

function destroyed(): Error {
  return Object.assign(
    new Error("the response was closed before a write could finish"),
    { code: "ERR_STREAM_DESTROYED" },
  );
}
