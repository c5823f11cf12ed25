import type { CallOptions, Client } from "@connectrpc/connect";
import type { Greeter } from "../../gen/helloworld_pb.js";
import type { Command } from "./args.js";

/** What a command needs to run: a client, the names, somewhere to print. */
export interface CommandContext {
  /** A Greeter client on the chosen transport. */
  readonly client: Client<typeof Greeter>;
  /** The names to send, in order. */
  readonly names: AsyncIterable<string>;
  /** Options of the call, such as its timeout. */
  readonly callOptions: CallOptions;
  /** Prints one reply's message, as soon as it arrives. */
  readonly print: (message: string) => void;
}

/** Run one command: one RPC, printing each reply. Rejects with the call's ConnectError. */
export function runCommand(command: Command, ctx: CommandContext) {
  return handlers[command](ctx);
}

const handlers: Record<Command, (ctx: CommandContext) => Promise<void>> = {
  async "say-hello"({ client, names, callOptions, print }) {
    const res = await client.sayHello(
      { name: await first(names) },
      callOptions,
    );
    print(res.message);
  },
  async "stream-hello"({ client, names, callOptions, print }) {
    const stream = client.streamHello(
      { name: await first(names) },
      callOptions,
    );
    for await (const res of stream) print(res.message);
  },
  async "collect-greetings"({ client, names, callOptions, print }) {
    const res = await client.collectGreetings(requests(names), callOptions);
    print(res.message);
  },
  async chat({ client, names, callOptions, print }) {
    for await (const res of client.chat(requests(names), callOptions)) {
      print(res.message);
    }
  },
};

async function* requests(names: AsyncIterable<string>) {
  for await (const name of names) yield { name };
}

async function first(names: AsyncIterable<string>): Promise<string> {
  for await (const name of names) return name;
  throw new Error("no name to send");
}
