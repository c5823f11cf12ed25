/**
 * The TLS certificate, key and client CA reloaded from their files without a
 * restart: a Kubernetes Secret update, or a renewal by cert-manager, swaps
 * the files under a running server. Each file is checked every `intervalMs`
 * (node:fs watchFile: a stat, which follows the symlinks a Secret volume
 * swaps); on a change the set is read again and, if it makes a TLS context
 * (the key fits the certificate, the PEM parses), it serves every new
 * connection from then on (tls.Server's setSecureContext). Connections
 * already open, and their calls, keep the context they started with.
 *
 * A set that does not load keeps the previous one serving, and is logged as
 * one error line; a later change is tried again (a certificate and key
 * written one after the other pass through a mismatched pair first).
 */
import { readFileSync, type Stats, unwatchFile, watchFile } from "node:fs";
import { createSecureContext, type Server } from "node:tls";
import type { Logger } from "pino";

/** The files of a TLS set: certificate chain and key, and the client CA bundle if any. */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly clientCa?: string;
}

/** Watch `files` and give `server` each new set that loads. Returns a function that stops watching. */
export function reloadCertificates(
  server: Pick<Server, "setSecureContext">,
  files: TlsFiles,
  intervalMs: number,
  logger: Logger,
): () => void {
  const paths = [files.cert, files.key, files.clientCa].filter(
    (p): p is string => p !== undefined,
  );
  /** The files' contents as last tried, so a change seen by two watchers is tried once. */
  let tried = paths.map((p) => readOrEmpty(p));
  const reload = () => {
    const contents = paths.map((p) => readOrEmpty(p));
    if (contents.every((c, i) => c.equals(tried[i] as Buffer))) return;
    tried = contents;
    const [cert, key, ca] = contents as [Buffer, Buffer, Buffer?];
    const set = ca === undefined ? { cert, key } : { cert, key, ca };
    try {
      // Throws for a key that does not fit its certificate, or bad PEM,
      // without touching what the server serves.
      createSecureContext(set);
    } catch (e) {
      logger.error(
        { files: paths, err: { message: (e as Error).message } },
        "TLS certificate reload failed; the previous certificate keeps serving",
      );
      return;
    }
    server.setSecureContext(set);
    logger.info({ files: paths }, "TLS certificate reloaded");
  };
  const changed = (current: Stats) => {
    // A file removed, and not back yet, is waited for.
    if (current.mtimeMs !== 0) reload();
  };
  for (const path of paths) {
    watchFile(path, { interval: intervalMs, persistent: false }, changed);
  }
  return () => {
    for (const path of paths) unwatchFile(path, changed);
  };
}

function readOrEmpty(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch {
    return Buffer.alloc(0);
  }
}
