import type { IncomingHttpHeaders } from "node:http2";

/** As connect-node's nodeHeaderToWebHeader: pseudo-headers dropped, lists appended. */
export function webHeaders(headers: IncomingHttpHeaders): Headers {
  const h = new Headers();
  for (const k in headers) {
    if (k.charCodeAt(0) === 58 /* ":" */) continue;
    const v = headers[k];
    if (v === undefined) continue;
    if (typeof v === "string") h.append(k, v);
    else for (const e of v) h.append(k, e);
  }
  return h;
}

/** As connect-node's webHeaderToNodeHeaders, for the values fetch Headers hold. */
export function nodeHeaders(
  headers: Headers,
): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = Object.create(null);
  headers.forEach((value, key) => {
    const existing = o[key];
    if (existing === undefined) o[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else o[key] = [existing, value];
  });
  return o;
}

/** A request header's value (`name` in lower case) as fetch Headers would give it: repeated values joined, null when absent. */
export function headerValue(
  headers: IncomingHttpHeaders,
  name: string,
): string | null {
  const value = headers[name];
  if (value === undefined) return null;
  return typeof value === "string" ? value : value.join(", ");
}
