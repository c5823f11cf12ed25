import {
  Code,
  ConnectError,
  createClient,
  type Transport,
} from "@connectrpc/connect";
import { Greeter } from "../../gen/helloworld_pb.js";

/** One call the load made. */
export interface CallRecord {
  kind: "SayHello" | "StreamHello";
  /** The client that made it (its own connection). */
  client: number;
  /** How it went, as `LoadOptions.transport` named it ("gRPC", "Connect over HTTP/1.1"...). */
  via: string;
  /** performance.now() when it started and ended. */
  start: number;
  end: number;
  /** Undefined for a call that got every reply and OK. */
  error?: { code: Code; message: string };
}

/** Options of `startLoad`. */
export interface LoadOptions {
  /** Clients calling SayHello in a loop, each on its own connection. */
  unaryClients: number;
  /** Clients calling StreamHello in a loop, each on its own connection. */
  streamClients: number;
  /** A fresh transport (and so a fresh connection) for client number `client`, and its name for the records. */
  transport(client: number): { via: string; transport: Transport };
  /** Each call's deadline, in milliseconds. */
  deadlineMs: number;
}

/** Load running until `stop()`. */
export interface Load {
  /** Every call finished so far. */
  readonly records: readonly CallRecord[];
  /** Let every client finish its current call, then resolve with every call made. */
  stop(): Promise<CallRecord[]>;
}

/**
 * Steady load: clients that each call in a loop, one call at a time, and
 * check every reply. A call that fails is recorded, and the client goes on.
 */
export function startLoad(options: LoadOptions): Load {
  const records: CallRecord[] = [];
  let stopping = false;
  const loop = async (client: number, kind: CallRecord["kind"]) => {
    const { via, transport } = options.transport(client);
    const greeter = createClient(Greeter, transport);
    for (let i = 0; !stopping; i++) {
      const name = `c${client}-${i}`;
      const start = performance.now();
      let error: CallRecord["error"];
      try {
        if (kind === "SayHello") {
          const res = await greeter.sayHello(
            { name },
            { timeoutMs: options.deadlineMs },
          );
          if (res.message !== `Hello, ${name}!`) {
            throw new Error(`unexpected reply ${res.message}`);
          }
        } else {
          const messages: string[] = [];
          for await (const res of greeter.streamHello(
            { name },
            { timeoutMs: options.deadlineMs },
          )) {
            messages.push(res.message);
          }
          const expected = [0, 1, 2, 3, 4].map(
            (k) => `Hello ${name}, message ${k}`,
          );
          if (messages.join("|") !== expected.join("|")) {
            throw new Error(`unexpected replies ${messages.join("|")}`);
          }
        }
      } catch (e) {
        const err = ConnectError.from(e);
        error = { code: err.code, message: err.message };
      }
      records.push({ kind, client, via, start, end: performance.now(), error });
    }
  };
  const loops: Promise<void>[] = [];
  for (let c = 0; c < options.unaryClients; c++)
    loops.push(loop(c, "SayHello"));
  for (let c = 0; c < options.streamClients; c++) {
    loops.push(loop(options.unaryClients + c, "StreamHello"));
  }
  return {
    records,
    async stop() {
      stopping = true;
      await Promise.all(loops);
      return records;
    },
  };
}

/** A line for a test's diagnostics: calls made, failed, and the failures grouped by message. */
export function summary(records: readonly CallRecord[]): string {
  const failed = records.filter((r) => r.error);
  const byMessage = new Map<string, number>();
  for (const r of failed) {
    const key = `${r.kind} (${r.via}): ${Code[r.error?.code ?? 0]} ${r.error?.message}`;
    byMessage.set(key, (byMessage.get(key) ?? 0) + 1);
  }
  const count = new Map<string, number>();
  for (const r of records) {
    const key = `${r.kind} (${r.via})`;
    count.set(key, (count.get(key) ?? 0) + 1);
  }
  return `${records.length} calls (${[...count].map(([k, n]) => `${n} ${k}`).join(", ")}), ${failed.length} failed${
    failed.length
      ? `: ${[...byMessage].map(([m, n]) => `${n} × ${m}`).join("; ")}`
      : ""
  }`;
}
