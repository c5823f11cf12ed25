import {
  type ContextValues,
  createContextKey,
  createContextValues,
} from "@connectrpc/connect";
import {
  type ClientCertificate,
  clientCertificateOf,
  type TlsSocketLike,
} from "../auth/peer-certificate.js";

/** The connection a call arrived on; interceptors do not see it, so the adapter hands it over. */
export interface Connection {
  /** The client's address and port, such as 127.0.0.1:52144 or [::1]:52144. */
  readonly peer: string;
  /** The HTTP version, "1.1" or "2.0". */
  readonly httpVersion: string;
  /** Under TLS, the client's certificate as the handshake verified it (mutual TLS), read once per connection; undefined without TLS. */
  readonly clientCertificate?: ClientCertificate | undefined;
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
    connection = {
      peer: peerName(socket),
      httpVersion,
      clientCertificate: clientCertificateOf(socket),
    };
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
  readonly socket: TlsSocketLike & {
    readonly remoteAddress?: string;
    readonly remotePort?: number;
  };
  readonly stream?: { readonly session?: object | undefined };
  /**
   * The request's header fields as they came, names and values in turn:
   * Node's header objects keep only the first of a field such as
   * Authorization when it is repeated, and a gate must see both.
   */
  readonly rawHeaders?: readonly string[];
}

const connections = new WeakMap<object, Connection>();
