import type { RequestHandler } from "../transport/listener.js";

/** Whether the server takes new work (src/services/serving-status.ts). */
export interface Readiness {
  readonly serving: boolean;
}

/**
 * `GET` (and `HEAD`) `/healthz` and `/readyz` for HTTP probes, on the admin
 * port: Kubernetes' gRPC probes cannot speak TLS, so with TLS on the API
 * port they probe here instead (deploy/kubernetes/tls/).
 *
 * `/healthz` (liveness) answers 200 while the process answers at all: a
 * draining server is alive, and must not be restarted. `/readyz`
 * (readiness) answers 200 while the server takes new work, 503 once a drain
 * begins, as the gRPC health service turns NOT_SERVING. Everything else
 * goes on to `next`.
 */
export function serveHealth(
  readiness: Readiness,
  next: RequestHandler,
): RequestHandler {
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    const get = req.method === "GET" || req.method === "HEAD";
    if (!get || (path !== "/healthz" && path !== "/readyz")) {
      next(req, res);
      return;
    }
    const ok = path === "/healthz" || readiness.serving;
    const body = ok ? "ok\n" : "not serving\n";
    res.writeHead(ok ? 200 : 503, {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
    });
    if (req.method === "HEAD") res.end();
    else res.end(body);
  };
}
