import { readFile } from "node:fs/promises";
import { createClient } from "@connectrpc/connect";
import { Greeter } from "../../gen/helloworld_pb.js";
import {
  helpText,
  type Invocation,
  parseInvocation,
  UsageError,
} from "./args.js";
import { runCommand } from "./commands.js";
import { errorLine } from "./errors.js";
import { namesFrom } from "./names.js";
import { createTransport } from "./transport.js";

/** Wiring only: parse the command line, call the server, print replies; returns the exit status. */
async function main(argv: readonly string[]): Promise<number> {
  let invocation: ReturnType<typeof parseInvocation>;
  try {
    invocation = parseInvocation(argv, process.env);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(
      `error: ${e.message}\nhint: npm run client -- --help shows the commands and options\n`,
    );
    return 2;
  }
  if (invocation === undefined) {
    process.stdout.write(`${helpText()}\n`);
    return 0;
  }
  let tls: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  try {
    tls = await readTls(invocation.tls);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 2;
  }
  const client = createClient(Greeter, createTransport({ ...invocation, tls }));
  try {
    await runCommand(invocation.command, {
      client,
      names: namesFrom(invocation.names, process.stdin),
      callOptions: {
        timeoutMs: invocation.timeoutMs,
        headers:
          invocation.traceparent === undefined
            ? undefined
            : { traceparent: invocation.traceparent },
      },
      print: (message) => process.stdout.write(`${message}\n`),
    });
    return 0;
  } catch (e) {
    process.stderr.write(`${errorLine(e)}\n`);
    return 1;
  } finally {
    // A call can end before stdin does (an error, a deadline): stop reading, or
    // the process would wait for a line nobody will send.
    process.stdin.destroy();
  }
}

/** The PEM files named on the command line, read; a file that cannot be read is a usage error. */
async function readTls(
  files: Invocation["tls"],
): Promise<{ ca?: Buffer; cert?: Buffer; key?: Buffer }> {
  const out: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  for (const k of ["ca", "cert", "key"] as const) {
    const path = files[k];
    if (path === undefined) continue;
    try {
      out[k] = await readFile(path);
    } catch (e) {
      throw new Error(
        `--${k}: cannot read "${path}" (${(e as NodeJS.ErrnoException).code ?? e})`,
      );
    }
  }
  return out;
}

// A reader that went away (`| head -1`) is not an error of the call: stop quietly.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code !== "EPIPE") throw e;
  process.exit(0);
});

// Set the exit code rather than exit(), so output still in flight reaches a pipe.
main(process.argv.slice(2)).then((status) => {
  process.exitCode = status;
});
