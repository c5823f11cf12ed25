import type { HandlerContext } from "@connectrpc/connect";

/**
 * What connect calls a request gate (its `requestGate` option, which the
 * engine honours too): a check a call must pass after its headers arrive and
 * before its request is read or any interceptor sees it; it refuses the
 * call by throwing the error its client gets.
 */
export type RequestGate = (context: HandlerContext) => void | Promise<void>;

/**
 * The server's gates as one: each of `gates` in order, the first that
 * refuses ending the call; undefined when there are none, so that no call
 * pays for a gate, and a lone gate as it is. A gate that answers at once
 * costs its caller no turn of the event loop.
 */
export function gates(
  ...list: readonly (RequestGate | undefined)[]
): RequestGate | undefined {
  const present = list.filter((g): g is RequestGate => g !== undefined);
  if (present.length <= 1) return present[0];
  return (context) => {
    for (let i = 0; i < present.length; i++) {
      const pending = (present[i] as RequestGate)(context);
      if (pending instanceof Promise)
        return rest(pending, present, i + 1, context);
    }
    return undefined;
  };
}

/** The gates from `from` on, once `pending` has passed. */
async function rest(
  pending: Promise<void>,
  list: readonly RequestGate[],
  from: number,
  context: HandlerContext,
): Promise<void> {
  await pending;
  for (let i = from; i < list.length; i++)
    await (list[i] as RequestGate)(context);
}
