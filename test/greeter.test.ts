import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type ServiceImpl,
} from "@connectrpc/connect";
import { Greeter } from "../gen/helloworld_pb.js";
import { throughPipeline } from "../src/calls/interceptor.js";
import { CallPipeline } from "../src/calls/pipeline.js";
import {
  createGreeter,
  maxCollectedNames,
  maxNameLength,
} from "../src/services/greeter.js";
import { connectErrorOf } from "./support/errors.js";
import { pushable } from "./support/pushable.js";

/**
 * A client of the Greeter running in memory (no sockets), with the given
 * implementation and what every call gets on the server (a call ends when it
 * is cut short, even if its handler waits on), reported nowhere.
 */
function inMemoryClient(
  impl: ServiceImpl<typeof Greeter> = createGreeter({ streamIntervalMs: 0 }),
) {
  return createClient(
    Greeter,
    createRouterTransport((router) => router.service(Greeter, impl), {
      router: {
        interceptors: [throughPipeline(new CallPipeline())],
      },
    }),
  );
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function* names(...ns: string[]) {
  for (const name of ns) yield { name };
}

const astral = "😀"; // one code point, two UTF-16 units

test("SayHello greets the name it is given", async () => {
  const client = inMemoryClient();
  const res = await client.sayHello({ name: "Alice" });
  assert.equal(res.message, "Hello, Alice!");
});

test("SayHello with an empty name fails with INVALID_ARGUMENT 'name is required'", async () => {
  const err = await connectErrorOf(inMemoryClient().sayHello({ name: "" }));
  assert.equal(err.code, Code.InvalidArgument);
  assert.equal(err.rawMessage, "name is required");
});

test("SayHello accepts a name of exactly 256 characters", async () => {
  const name = "a".repeat(maxNameLength);
  assert.equal(maxNameLength, 256);
  const res = await inMemoryClient().sayHello({ name });
  assert.equal(res.message, `Hello, ${name}!`);
});

test("SayHello rejects a name of 257 characters with INVALID_ARGUMENT", async () => {
  const err = await connectErrorOf(
    inMemoryClient().sayHello({ name: "a".repeat(257) }),
  );
  assert.equal(err.code, Code.InvalidArgument);
  assert.match(err.rawMessage, /longer than 256 characters/);
});

test("SayHello accepts a name of 256 astral code points (512 UTF-16 units)", async () => {
  const name = astral.repeat(256);
  assert.equal(name.length, 512);
  const res = await inMemoryClient().sayHello({ name });
  assert.equal(res.message, `Hello, ${name}!`);
});

test("SayHello rejects a name of 257 astral code points with INVALID_ARGUMENT", async () => {
  const err = await connectErrorOf(
    inMemoryClient().sayHello({ name: astral.repeat(257) }),
  );
  assert.equal(err.code, Code.InvalidArgument);
});

test("StreamHello sends five numbered greetings in order", async () => {
  const replies = await collect(inMemoryClient().streamHello({ name: "Bob" }));
  assert.deepEqual(
    replies.map((r) => r.message),
    [0, 1, 2, 3, 4].map((i) => `Hello Bob, message ${i}`),
  );
});

test("StreamHello with an empty name fails with INVALID_ARGUMENT before any reply", async () => {
  const replies: string[] = [];
  const err = await connectErrorOf(
    (async () => {
      for await (const r of inMemoryClient().streamHello({ name: "" }))
        replies.push(r.message);
    })(),
  );
  assert.equal(err.code, Code.InvalidArgument);
  assert.equal(err.rawMessage, "name is required");
  assert.deepEqual(replies, []);
});

test("StreamHello with a 257-character name fails with INVALID_ARGUMENT", async () => {
  const err = await connectErrorOf(
    collect(inMemoryClient().streamHello({ name: "x".repeat(257) })),
  );
  assert.equal(err.code, Code.InvalidArgument);
});

test("StreamHello's pause between replies ends with CANCELED as soon as the client aborts", {
  timeout: 10_000,
}, async (t) => {
  // An interval of ten minutes: only an interruptible pause lets this test end in time.
  const greeter = createGreeter({ streamIntervalMs: 600_000 });
  let pauseStarted!: () => void;
  const pausing = new Promise<void>((r) => {
    pauseStarted = r;
  });
  let handlerEnded!: (outcome: unknown) => void;
  const handlerOutcome = new Promise<unknown>((r) => {
    handlerEnded = r;
  });
  const client = inMemoryClient({
    ...greeter,
    async *streamHello(req, ctx) {
      // The pause listens for "abort" on the call's signal: that is how the
      // test knows the handler is inside it before aborting.
      const { signal } = ctx;
      const listen = signal.addEventListener.bind(signal);
      signal.addEventListener = (...args: Parameters<typeof listen>) => {
        listen(...args);
        if (args[0] === "abort") pauseStarted();
      };
      try {
        yield* greeter.streamHello(req, ctx);
        handlerEnded("completed");
      } catch (e) {
        handlerEnded(e);
        throw e;
      }
    },
  });
  const abort = new AbortController();
  t.after(() => abort.abort());
  const replies = client
    .streamHello({ name: "Carol" }, { signal: abort.signal })
    [Symbol.asyncIterator]();
  const first = await replies.next();
  assert.equal(first.value?.message, "Hello Carol, message 0");
  const second = replies.next();
  await pausing;
  abort.abort();
  const err = await connectErrorOf(second);
  assert.equal(err.code, Code.Canceled);
  const outcome = await handlerOutcome;
  assert.notEqual(outcome, "completed");
  assert.equal(ConnectError.from(outcome).code, Code.Canceled);
});

test("CollectGreetings stops waiting for names at the call's deadline, with DEADLINE_EXCEEDED", {
  timeout: 10_000,
}, async (t) => {
  const greeter = createGreeter({ streamIntervalMs: 0 });
  let handlerEnded!: (outcome: unknown) => void;
  const handlerOutcome = new Promise<unknown>((r) => {
    handlerEnded = r;
  });
  const client = inMemoryClient({
    ...greeter,
    async collectGreetings(reqs, ctx) {
      try {
        const res = await greeter.collectGreetings(reqs, ctx);
        handlerEnded("completed");
        return res;
      } catch (e) {
        handlerEnded(e);
        throw e;
      }
    },
  });
  // One name, then a client that neither sends another nor finishes.
  const requests = pushable<{ name: string }>();
  t.after(() => requests.close());
  requests.push({ name: "Alice" });
  const err = await connectErrorOf(
    client.collectGreetings(requests, { timeoutMs: 200 }),
  );
  assert.equal(err.code, Code.DeadlineExceeded);
  const outcome = await handlerOutcome;
  assert.notEqual(outcome, "completed");
  assert.equal(ConnectError.from(outcome).code, Code.DeadlineExceeded);
});

test("CollectGreetings greets every name it was sent, in order, once the client finishes", async () => {
  const res = await inMemoryClient().collectGreetings(
    names("Alice", "Bob", "Carol"),
  );
  assert.equal(res.message, "Hello, Alice, Bob, Carol!");
});

test("CollectGreetings with one name greets just that name", async () => {
  const res = await inMemoryClient().collectGreetings(names("Dave"));
  assert.equal(res.message, "Hello, Dave!");
});

test("CollectGreetings with zero messages fails with INVALID_ARGUMENT 'at least one name is required'", async () => {
  const err = await connectErrorOf(inMemoryClient().collectGreetings(names()));
  assert.equal(err.code, Code.InvalidArgument);
  assert.equal(err.rawMessage, "at least one name is required");
});

test("CollectGreetings with an empty name among others fails with INVALID_ARGUMENT", async () => {
  const err = await connectErrorOf(
    inMemoryClient().collectGreetings(names("Alice", "", "Bob")),
  );
  assert.equal(err.code, Code.InvalidArgument);
  assert.equal(err.rawMessage, "name is required");
});

test("CollectGreetings with a 257-character name fails with INVALID_ARGUMENT", async () => {
  const err = await connectErrorOf(
    inMemoryClient().collectGreetings(names("Alice", "y".repeat(257))),
  );
  assert.equal(err.code, Code.InvalidArgument);
});

test("CollectGreetings greets as many names as the cap allows, and one more fails with RESOURCE_EXHAUSTED", async () => {
  const many = Array.from({ length: maxCollectedNames }, (_, i) => `n${i}`);
  const res = await inMemoryClient().collectGreetings(names(...many));
  assert.equal(res.message, `Hello, ${many.join(", ")}!`);
  const err = await connectErrorOf(
    inMemoryClient().collectGreetings(names(...many, "one too many")),
  );
  assert.equal(err.code, Code.ResourceExhausted);
  assert.equal(
    err.rawMessage,
    `at most ${maxCollectedNames} names can be greeted at once`,
  );
});

test("Chat greets each name it is sent", async () => {
  const replies = await collect(
    inMemoryClient().chat(names("Alice", "Bob", "Carol")),
  );
  assert.deepEqual(
    replies.map((r) => r.message),
    ["Hello, Alice!", "Hello, Bob!", "Hello, Carol!"],
  );
});

test("Chat with zero messages ends OK with no replies", async () => {
  const replies = await collect(inMemoryClient().chat(names()));
  assert.deepEqual(replies, []);
});

test("Chat answers each request before the next one is sent", {
  timeout: 10_000,
}, async () => {
  const requests = pushable<{ name: string }>();
  const replies = inMemoryClient().chat(requests)[Symbol.asyncIterator]();
  for (const name of ["Alice", "Bob", "Carol"]) {
    requests.push({ name });
    // The next request is pushed only after this reply arrived, so the reply
    // cannot have waited for it (nor for the end of the request stream).
    const reply = await replies.next();
    assert.equal(reply.done, false);
    assert.equal(reply.value.message, `Hello, ${name}!`);
  }
  requests.close();
  assert.equal((await replies.next()).done, true);
});

test("Chat answers the names before an empty one, then fails with INVALID_ARGUMENT", async () => {
  const replies: string[] = [];
  const err = await connectErrorOf(
    (async () => {
      for await (const r of inMemoryClient().chat(names("Alice", "", "Bob")))
        replies.push(r.message);
    })(),
  );
  assert.equal(err.code, Code.InvalidArgument);
  assert.equal(err.rawMessage, "name is required");
  assert.deepEqual(replies, ["Hello, Alice!"]);
});
