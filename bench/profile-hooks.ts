/**
 * Preloaded into a server under profile (node --import): counts
 * AbortController.abort() calls, and those without a reason, each of which
 * makes Node build a DOMException ("This operation was aborted") with a stack
 * trace. Writes the counts as JSON to PROFILE_HOOKS_OUT when the process exits.
 */
import { writeFileSync } from "node:fs";

const counts = { aborts: 0, abortsWithoutReason: 0, abortControllers: 0 };
const abort = AbortController.prototype.abort;
AbortController.prototype.abort = function (
  this: AbortController,
  reason?: unknown,
) {
  counts.aborts++;
  if (reason === undefined && !this.signal.aborted) {
    counts.abortsWithoutReason++;
  }
  return abort.call(this, reason);
};
globalThis.AbortController = class extends AbortController {
  constructor() {
    super();
    counts.abortControllers++;
  }
};
const out = process.env.PROFILE_HOOKS_OUT;
if (out) {
  process.on("exit", () => writeFileSync(out, JSON.stringify(counts)));
}

// With PROFILE_HEAP_OUT, sample every allocation site, garbage included (the
// --heap-prof flag keeps only objects still alive at exit, which hides exactly
// the short-lived per-call garbage that costs GC time).
const heapOut = process.env.PROFILE_HEAP_OUT;
if (heapOut) {
  const inspector = await import("node:inspector");
  const session = new inspector.Session();
  session.connect();
  session.post("HeapProfiler.startSampling", {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  } as object);
  process.on("exit", () => {
    session.post("HeapProfiler.stopSampling", (err, result) => {
      if (!err) writeFileSync(heapOut, JSON.stringify(result.profile));
    });
  });
}
