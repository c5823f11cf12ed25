import type * as net from "node:net";

/** The first bytes every HTTP/2 prior-knowledge (h2c) client sends (RFC 9113, 3.4). */
const h2Preface = Buffer.from(
  "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
  // Stryker disable next-line StringLiteral: equivalent, the preface is ASCII, the same bytes in UTF-8
  "latin1",
);

/**
 * Read a new cleartext connection's first bytes until they do or do not
 * start the HTTP/2 preface, put them back, and tell which it was. A
 * connection that sends nothing within `timeoutMs`, or closes first, is
 * destroyed.
 *
 * Node's HTTP/2 server cannot fall back to HTTP/1.1 on a cleartext port
 * (nodejs/node#44887), so the listener hands a connection to its HTTP/2 or
 * its HTTP/1.1 server by these bytes. Under TLS, ALPN does it.
 */
export function sniff(
  socket: net.Socket,
  timeoutMs: number,
  handOff: (isHttp2: boolean) => void,
): void {
  let seen: Buffer = Buffer.alloc(0);
  const done = () => {
    socket.off("readable", onReadable);
    socket.off("end", onEnd);
    // Stryker disable next-line StringLiteral,CallExpression: equivalent, Node destroys a socket with its error
    socket.off("error", onEnd);
    // Stryker disable next-line StringLiteral,CallExpression: unreachable, setTimeout(0) below turns the timeout off
    socket.off("timeout", onEnd);
    socket.setTimeout(0);
  };
  const onReadable = () => {
    for (
      let chunk: Buffer | null = socket.read();
      chunk !== null;
      chunk = socket.read()
    ) {
      // Stryker disable next-line ConditionalExpression: speed-only, concatenating onto nothing copies the chunk
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    }
    const n = Math.min(seen.length, h2Preface.length);
    const startsPreface = seen.subarray(0, n).equals(h2Preface.subarray(0, n));
    // With exactly the preface in, `<=` waits for the SETTINGS frame every
    // client sends right after it (RFC 9113, 3.4), and then hands it off.
    // Stryker disable next-line EqualityOperator: equivalent, the SETTINGS frame always follows
    if (startsPreface && seen.length < h2Preface.length) return;
    done();
    socket.unshift(seen);
    handOff(startsPreface);
  };
  // An end, an error or the first-bytes timeout before the hand-off.
  const onEnd = () => {
    // Stryker disable next-line CallExpression: equivalent, the socket is destroyed next
    done();
    socket.destroy();
  };
  socket.on("readable", onReadable);
  // Node ends a connection whose peer ended it too (allowHalfOpen is false).
  // Stryker disable next-line StringLiteral,CallExpression: equivalent, Node closes it a moment later
  socket.once("end", onEnd);
  socket.once("error", onEnd);
  socket.on("timeout", onEnd);
  socket.setTimeout(timeoutMs);
}
