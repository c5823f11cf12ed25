import type { Interceptor } from "@connectrpc/connect";
import { untilAborted } from "./until-aborted.js";

/**
 * End a call's request stream when the call's signal aborts.
 *
 * Connect aborts a handler's signal when the deadline passes (or the client
 * goes away) but leaves the request stream open: a handler reading client
 * messages would wait past its deadline for a client that sends nothing. With
 * this interceptor the next read rejects with the signal's reason
 * (DEADLINE_EXCEEDED or CANCELED), for every service, so handlers need not know.
 */
export const requestDeadline: Interceptor = (next) => (req) =>
  next(
    req.stream
      ? { ...req, message: untilAborted(req.message, req.signal) }
      : req,
  );
