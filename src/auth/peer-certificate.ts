import type { X509Certificate } from "node:crypto";
import type { PeerCertificate } from "./principal.js";

/** Why a TLS client has no verified certificate, as the auth failures count it. */
export type CertificateProblem =
  | "missing"
  | "untrusted"
  | "expired"
  | "not_yet_valid";

/** What the TLS handshake told of the client: its verified certificate, or why there is none. */
export type ClientCertificate =
  | { readonly certificate: PeerCertificate; readonly problem?: undefined }
  | { readonly certificate?: undefined; readonly problem: CertificateProblem };

/** What of a TLS socket (or the proxy Node's HTTP/2 session puts before it) is read here. */
export interface TlsSocketLike {
  readonly encrypted?: boolean;
  readonly authorized?: boolean;
  readonly authorizationError?: Error | string;
  getPeerX509Certificate?(): X509Certificate | undefined;
}

/**
 * The client certificate of a connection, read once when its first call
 * arrives: verified against the client CA by the handshake (`authorized`),
 * or the reason it was not, as OpenSSL names it (TLS_CLIENT_AUTH=optional
 * lets such a client in; `require` ends its handshake). Undefined for a
 * connection without TLS.
 */
export function clientCertificateOf(
  socket: TlsSocketLike,
): ClientCertificate | undefined {
  if (socket.encrypted !== true) return undefined;
  const x509 = socket.getPeerX509Certificate?.();
  if (x509 === undefined) return { problem: "missing" };
  if (socket.authorized !== true) {
    const error = socket.authorizationError;
    const code =
      typeof error === "string" ? error : (error as { code?: string })?.code;
    return {
      problem:
        code === "CERT_HAS_EXPIRED"
          ? "expired"
          : code === "CERT_NOT_YET_VALID"
            ? "not_yet_valid"
            : "untrusted",
    };
  }
  return {
    certificate: {
      subject: x509.subject.split("\n").join(", "),
      uris: subjectAltNames(x509.subjectAltName ?? "")
        .filter((n) => n.type === "URI")
        .map((n) => n.value),
    },
  };
}

/**
 * The entries of Node's subjectAltName text, such as
 * `URI:spiffe://example.org/a, DNS:a.example`. A value that holds ", " or a
 * quote comes as a JSON string (Node's escaping since CVE-2021-44532), so
 * the text is not simply split at commas.
 */
export function subjectAltNames(
  text: string,
): { type: string; value: string }[] {
  const names: { type: string; value: string }[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      // A JSON string: up to the first quote no backslash escapes.
      end = colon + 2;
      while (end < text.length && text[end] !== '"') {
        end += text[end] === "\\" ? 2 : 1;
      }
      end++;
      value = JSON.parse(text.slice(colon + 1, end)) as string;
    } else {
      end = text.indexOf(", ", colon + 1);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }
    names.push({ type, value });
    i = end + 2;
  }
  return names;
}
