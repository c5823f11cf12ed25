import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { gates, type RequestGate } from "../src/calls/gates.js";

/**
 * The server's request gates as one (src/calls/gates.ts): load shedding
 * first, then whatever else a call must pass before its request is read.
 * The servers' tests check what each gate does; these check the order.
 */

const context = {} as HandlerContext;

function recording(
  seen: string[],
  name: string,
  refuse = false,
  wait = false,
): RequestGate {
  return () => {
    seen.push(name);
    const refusal = new ConnectError(name, Code.Unavailable);
    if (!wait) {
      if (refuse) throw refusal;
      return;
    }
    return new Promise<void>((resolve, reject) =>
      setImmediate(() => (refuse ? reject(refusal) : resolve())),
    );
  };
}

test("no gate is no cost: undefined, and one gate is that gate itself", () => {
  assert.equal(gates(), undefined);
  assert.equal(gates(undefined, undefined), undefined);
  const one = recording([], "one");
  assert.equal(gates(undefined, one), one);
});

test("gates run in order, the first to refuse ends the call, and gates that answer at once make the whole answer at once", async () => {
  const seen: string[] = [];
  const all = gates(
    recording(seen, "a"),
    recording(seen, "b"),
    recording(seen, "c"),
  ) as RequestGate;
  assert.equal(all(context), undefined, "no promise: no turn of the loop");
  assert.deepEqual(seen, ["a", "b", "c"]);

  const refused: string[] = [];
  const stop = gates(
    recording(refused, "a"),
    recording(refused, "b", true),
    recording(refused, "c"),
  ) as RequestGate;
  assert.throws(() => stop(context), { message: "[unavailable] b" });
  assert.deepEqual(refused, ["a", "b"]);
});

test("after a gate that waits, the rest run once it has passed, and a refusal of any of them rejects", async () => {
  const seen: string[] = [];
  const all = gates(
    recording(seen, "a"),
    recording(seen, "b", false, true),
    recording(seen, "c", false, true),
    recording(seen, "d"),
  ) as RequestGate;
  const pending = all(context);
  assert.ok(pending instanceof Promise);
  assert.deepEqual(seen, ["a", "b"], "c waits for b");
  await pending;
  assert.deepEqual(seen, ["a", "b", "c", "d"]);

  const refused: string[] = [];
  const stop = gates(
    recording(refused, "a", false, true),
    recording(refused, "b", true, true),
    recording(refused, "c"),
  ) as RequestGate;
  await assert.rejects(Promise.resolve(stop(context)), {
    message: "[unavailable] b",
  });
  assert.deepEqual(refused, ["a", "b"]);
});
