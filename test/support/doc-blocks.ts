/** A fenced code block of a Markdown file. */
export interface Fence {
  /** The info string after the opening fence, such as "sh" or "ts". */
  readonly lang: string;
  /** The lines between the fences. */
  readonly lines: readonly string[];
  /** 1-based line number of the opening fence, for messages. */
  readonly line: number;
}

/** One "$ " command of a doc's ```sh block and the stdout it must print. */
export interface DocCommand {
  /** The command as bash gets it, continuation lines and heredocs included. */
  readonly command: string;
  /** Its first line, naming it in test output. */
  readonly title: string;
  /** The exact stdout expected. */
  readonly stdout: string;
  /** 1-based line number in the Markdown file. */
  readonly line: number;
}

/**
 * What an ```sh block asks for: commands to run (against a server started with
 * `server`, the flags of its "# server: npm start -- ..." line), or a reason
 * not to run it.
 */
export type ShBlock =
  | {
      readonly run: true;
      readonly server: readonly string[];
      readonly commands: readonly DocCommand[];
    }
  | { readonly run: false; readonly reason: string };

/** Every fenced code block of `markdown`, in order. */
export function fences(markdown: string): Fence[] {
  const lines = markdown.split("\n");
  const found: Fence[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i] ?? "");
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && l === "```");
    if (end < 0) throw new Error(`line ${i + 1}: fence is never closed`);
    found.push({
      lang: open[1] ?? "",
      lines: lines.slice(i + 1, end),
      line: i + 1,
    });
    i = end;
  }
  return found;
}

const prompt = "$ ";
const serverLine = "# server: npm start -- ";

/**
 * Split an ```sh block into commands and expected output, by the rule README.md
 * states at its top: a command starts at "$ ", continues while its last line
 * ends in "\", then through each heredoc it opens, up to that heredoc's
 * terminator line; the lines up to the next "$ " are its stdout. A first line
 * "# not run: <reason>" skips the block; a first line "# server: npm start --
 * <flags>" says how the server its commands call was started.
 */
export function parseShBlock(fence: Fence): ShBlock {
  const notRun = /^# not run:(.*)$/.exec(fence.lines[0] ?? "");
  if (notRun) {
    const reason = (notRun[1] ?? "").trim();
    if (reason === "") {
      throw new Error(`line ${fence.line + 1}: "# not run:" needs a reason`);
    }
    return { run: false, reason };
  }
  let server: string[] = [];
  let first = fence.line + 1;
  let lines = fence.lines;
  if ((lines[0] ?? "").startsWith(serverLine)) {
    server = (lines[0] ?? "").slice(serverLine.length).trim().split(/\s+/);
    lines = lines.slice(1);
    first++;
  }
  const commands: DocCommand[] = [];
  let i = 0;
  if (!(lines[0] ?? "").startsWith(prompt)) {
    throw new Error(
      `line ${first}: a run block starts with "$ " (or "# not run: <reason>", or "${serverLine}<flags>")`,
    );
  }
  while (i < lines.length) {
    const line = first + i;
    const command = [(lines[i] ?? "").slice(prompt.length)];
    while ((command.at(-1) ?? "").endsWith("\\")) {
      i++;
      if (i >= lines.length) {
        throw new Error(
          `line ${line}: the block ends inside a "\\" continuation`,
        );
      }
      command.push(lines[i] ?? "");
    }
    for (const terminator of heredocTerminators(command.join("\n"))) {
      do {
        i++;
        if (i >= lines.length) {
          throw new Error(
            `line ${line}: heredoc ${terminator} is never closed`,
          );
        }
        command.push(lines[i] ?? "");
      } while (lines[i] !== terminator);
    }
    i++;
    const stdout: string[] = [];
    while (i < lines.length && !(lines[i] ?? "").startsWith(prompt)) {
      stdout.push(lines[i] ?? "");
      i++;
    }
    commands.push({
      command: command.join("\n"),
      title: (command[0] ?? "").replace(/\s*\\$/, ""),
      stdout: stdout.map((l) => `${l}\n`).join(""),
      line,
    });
  }
  return { run: true, server, commands };
}

/** The terminators of the heredocs a command opens (<<EOF, <<'EOF', <<"EOF"), in order; not <<< strings. */
export function heredocTerminators(command: string): string[] {
  return [...command.matchAll(/(?<!<)<<(?!<)\s*(['"]?)([A-Za-z_]\w*)\1/g)].map(
    (m) => m[2] ?? "",
  );
}

/** One row of a Markdown table: its cells, trimmed. */
export function tableCells(row: string): string[] {
  return row
    .replace(/^\|/, "")
    .replace(/\|\s*$/, "")
    .split("|")
    .map((c) => c.trim());
}

/** A Markdown link or image: `[text](target)` or `![alt](target)`. */
export interface Link {
  readonly image: boolean;
  /** The target without its #fragment. */
  readonly target: string;
  /** 1-based line number, for messages. */
  readonly line: number;
}

/** Every inline link and image of `markdown` outside code blocks and code spans. */
export function links(markdown: string): Link[] {
  const found: Link[] = [];
  let inFence = false;
  for (const [i, text] of markdown.split("\n").entries()) {
    if (/^```/.test(text)) inFence = !inFence;
    if (inFence) continue;
    const prose = text.replace(/`[^`]*`/g, "");
    for (const m of prose.matchAll(/(!?)\[[^\]]*\]\(([^)\s]+)\)/g)) {
      found.push({
        image: m[1] === "!",
        target: (m[2] ?? "").split("#")[0] ?? "",
        line: i + 1,
      });
    }
  }
  return found;
}
