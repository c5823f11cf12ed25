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

/** A call's connection when the adapter did not hand it over (no `contextValues`). */
export const unknownConnection: Connection = { peer: "", httpVersion: "" };

/** Context values for connectNodeAdapter's `contextValues` option: the request's connection. */
export function connectionValues(req: ConnectionSource): ContextValues {
  return createContextValues().set(connectionKey, connectionOf(req));
}

/** The connection a request arrived on: one object per connection, shared by its calls. */
export function connectionOf(req: ConnectionSource): Connection {
  // Node's HTTP/2 compatibility layer hands out a new socket proxy per
  // request, so an HTTP/2 request is known by its session.
  const session = "stream" in req ? req.stream?.session : undefined;
  return connectionByKey(session ?? req.socket, req.socket, req.httpVersion);
}

/** The connection of an HTTP/2 session, for a call the fast path takes off one of its streams. */
export function sessionConnection(session: {
  readonly socket: ConnectionSource["socket"];
}): Connection {
  return connectionByKey(session, session.socket, "2.0");
}

function connectionByKey(
  key: object,
  socket: ConnectionSource["socket"],
  httpVersion: string,
): Connection {
  let connection = connections.get(key);
  if (connection === undefined) {
    connection = { peer: peerName(socket), httpVersion };
    connections.set(key, connection);
  }
  return connection;
}

/** A socket's peer as the logs name it: 127.0.0.1:52144, [::1]:52144. */
export function peerName(socket: ConnectionSource["socket"]): string {
  const { remoteAddress = "", remotePort } = socket;
  const host = remoteAddress.includes(":")
    ? `[${remoteAddress}]`
    : remoteAddress;
  return `${host}:${remotePort ?? ""}`;
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
