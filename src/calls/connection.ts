import {
  type ContextValues,
  createContextKey,
  createContextValues,
} from "@connectrpc/connect";

/** The connection a call arrived on; interceptors do not see it, so the adapter hands it over. */
export interface Connection {
  /** The client's address and port, such as 127.0.0.1:52144 or [::1]:52144. */
  readonly peer: string;
  /** The HTTP version, "1.1" or "2.0". */
  readonly httpVersion: string;
}

/** Where a call finds its connection among its context values. */
export const connectionKey = createContextKey<Connection | undefined>(
  undefined,
  { description: "the connection a call arrived on" },
);

/** Context values for connectNodeAdapter's `contextValues` option: the request's connection. */
export function connectionValues(req: ConnectionSource): ContextValues {
  // One Connection per connection, shared by its calls. Node's HTTP/2
  // compatibility layer hands out a new socket proxy per request, so an
  // HTTP/2 request is known by its session.
  const key: object =
    "stream" in req && req.stream?.session ? req.stream.session : req.socket;
  let connection = connections.get(key);
  if (connection === undefined) {
    const { remoteAddress = "", remotePort } = req.socket;
    const host = remoteAddress.includes(":")
      ? `[${remoteAddress}]`
      : remoteAddress;
    connection = {
      peer: `${host}:${remotePort ?? ""}`,
      httpVersion: req.httpVersion,
    };
    connections.set(key, connection);
  }
  return createContextValues().set(connectionKey, connection);
}

/** What connectionValues reads of a request: any Node request, or what the fast path knows of its stream's connection. */
export interface ConnectionSource {
  readonly httpVersion: string;
  readonly socket: {
    readonly remoteAddress?: string;
    readonly remotePort?: number;
  };
  readonly stream?: { readonly session?: object | undefined };
}

const connections = new WeakMap<object, Connection>();
