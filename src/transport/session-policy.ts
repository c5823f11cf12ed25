import type * as http2 from "node:http2";

/**
 * A connection policy: a rule every HTTP/2 session is put under as it opens,
 * which closes the session with `goAway` (the two-step GOAWAY,
 * src/transport/goaway.ts) when the rule says so. Each policy is a file of
 * its own, such as the idle close (src/transport/idle.ts), listed in
 * createListener (src/transport/listener.ts).
 */
export type SessionPolicy = (
  session: http2.ServerHttp2Session,
  goAway: () => void,
) => void;
