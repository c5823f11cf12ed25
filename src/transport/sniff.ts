import type * as net from "node:net";

/** The first bytes every HTTP/2 prior-knowledge (h2c) client sends (RFC 9113, 3.4). */
const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

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
    socket.off("error", onEnd);
    socket.off("timeout", onEnd);
    socket.setTimeout(0);
  };
  const onReadable = () => {
    for (
      let chunk: Buffer | null = socket.read();
      chunk !== null;
      chunk = socket.read()
    ) {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    }
    const n = Math.min(seen.length, h2Preface.length);
    const startsPreface = seen.subarray(0, n).equals(h2Preface.subarray(0, n));
    if (startsPreface && seen.length < h2Preface.length) return;
    done();
    socket.unshift(seen);
    handOff(startsPreface);
  };
  // An end, an error or the first-bytes timeout before the hand-off.
  const onEnd = () => {
    done();
    socket.destroy();
  };
  socket.on("readable", onReadable);
  socket.once("end", onEnd);
  socket.once("error", onEnd);
  socket.on("timeout", onEnd);
  socket.setTimeout(timeoutMs);
}
