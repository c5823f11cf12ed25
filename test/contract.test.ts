import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Type,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { repoRoot, startChild } from "./support/child.js";

// The wire contract is the tutorial's helloworld.proto. proto/helloworld.binpb
// is that file as first committed, built into a buf image; CI (.ci/run) runs
// `buf breaking` against it with buf.yaml's rules (FILE), so a change that
// would break the tutorial's clients (the wire paths, the binary and JSON
// encoding, the code generated from the file) fails CI. One option moved on
// since: SayHello is side-effect free (NO_SIDE_EFFECTS), for Connect GET;
// buf.yaml says why its rule is left out, and test/connect-get.test.ts keeps it.

/** The `buf breaking` line of .ci/run, as CI runs it. */
const ciLine = (await readFile(join(repoRoot, ".ci", "run"), "utf8"))
  .split("\n")
  .find((l) => l.startsWith("npx buf breaking "));

/** Run CI's `buf breaking` command in `dir` (the repository's own buf, not a download). */
async function bufBreaking(t: TestContext, dir: string) {
  assert.ok(ciLine, ".ci/run runs npx buf breaking");
  const command = ciLine.replace(
    /^npx buf /,
    `${join(repoRoot, "node_modules", ".bin", "buf")} `,
  );
  return startChild(t, "bash", ["-c", command], { cwd: dir }).exited;
}

test("the frozen image is the tutorial's contract: Greeter's four RPCs on HelloRequest and HelloReply, no package", async () => {
  const set = fromBinary(
    FileDescriptorSetSchema,
    await readFile(join(repoRoot, "proto", "helloworld.binpb")),
  );
  assert.equal(set.file.length, 1);
  const [file] = set.file;
  assert.ok(file);
  assert.equal(file.name, "helloworld.proto");
  assert.equal(file.package, "");
  assert.equal(file.syntax, "proto3");
  assert.deepEqual(
    file.service.map((s) => ({
      name: s.name,
      methods: s.method.map((m) => [
        m.name,
        m.inputType,
        m.outputType,
        m.clientStreaming,
        m.serverStreaming,
      ]),
    })),
    [
      {
        name: "Greeter",
        methods: [
          ["SayHello", ".HelloRequest", ".HelloReply", false, false],
          ["StreamHello", ".HelloRequest", ".HelloReply", false, true],
          ["CollectGreetings", ".HelloRequest", ".HelloReply", true, false],
          ["Chat", ".HelloRequest", ".HelloReply", true, true],
        ],
      },
    ],
  );
  assert.deepEqual(
    file.messageType.map((m) => ({
      name: m.name,
      fields: m.field.map((f) => [f.name, f.number, f.type, f.jsonName]),
    })),
    [
      {
        name: "HelloRequest",
        fields: [["name", 1, FieldDescriptorProto_Type.STRING, "name"]],
      },
      {
        name: "HelloReply",
        fields: [["message", 1, FieldDescriptorProto_Type.STRING, "message"]],
      },
    ],
  );
});

test("proto/helloworld.proto as it stands passes CI's buf breaking check against the frozen contract", async (t) => {
  const exit = await bufBreaking(t, repoRoot);
  assert.equal(exit.code, 0, exit.stdout + exit.stderr);
});

// Changes a client of the tutorial would notice, each made to a copy of the
// project's proto/ and buf.yaml.
const breakingChanges: [string, string, string, RegExp][] = [
  [
    'a renamed field (JSON clients send "name")',
    "string name = 1;",
    "string full_name = 1;",
    /changed name from "name" to "full_name"/,
  ],
  [
    "a renumbered field",
    "string name = 1;",
    "string name = 2;",
    /Previously present field "1" with name "name" on message "HelloRequest" was deleted/,
  ],
  [
    "a field's type changed",
    "string message = 1;",
    "bytes message = 1;",
    /changed type from "string" to "bytes"/,
  ],
  [
    "a renamed RPC",
    "rpc SayHello(",
    "rpc SayHi(",
    /Previously present RPC "SayHello" on service "Greeter" was deleted/,
  ],
  [
    "an RPC made streaming",
    "rpc CollectGreetings(stream HelloRequest) returns (HelloReply);",
    "rpc CollectGreetings(stream HelloRequest) returns (stream HelloReply);",
    /RPC "CollectGreetings" on service "Greeter" changed from server unary to server streaming/,
  ],
  [
    "a package added",
    'syntax = "proto3";',
    'syntax = "proto3";\npackage helloworld;',
    /File package changed from "" to "helloworld"/,
  ],
  [
    "a renamed message (reflection and generated code name it)",
    "HelloReply",
    "HelloResponse",
    /Previously present message "HelloReply" was deleted/,
  ],
];

for (const [what, from, to, says] of breakingChanges) {
  test(`CI's buf breaking check fails on ${what}`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "contract-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await cp(join(repoRoot, "buf.yaml"), join(dir, "buf.yaml"));
    await cp(join(repoRoot, "proto"), join(dir, "proto"), { recursive: true });
    const path = join(dir, "proto", "helloworld.proto");
    const text = await readFile(path, "utf8");
    assert.ok(text.includes(from), `the proto has ${from}`);
    await writeFile(path, text.replaceAll(from, to));
    const exit = await bufBreaking(t, dir);
    assert.notEqual(exit.code, 0, `${what} passed`);
    assert.match(exit.stdout + exit.stderr, says);
  });
}

test("CI's buf breaking check lets a compatible change through: a new field, a new RPC", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "contract-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await cp(join(repoRoot, "buf.yaml"), join(dir, "buf.yaml"));
  await cp(join(repoRoot, "proto"), join(dir, "proto"), { recursive: true });
  const path = join(dir, "proto", "helloworld.proto");
  const text = await readFile(path, "utf8");
  assert.ok(
    text.includes("rpc Chat(stream HelloRequest)"),
    "the proto has Chat",
  );
  await writeFile(
    path,
    text
      .replace("string name = 1;", "string name = 1;\n  string title = 2;")
      .replace(
        "rpc Chat(stream HelloRequest) returns (stream HelloReply);",
        "rpc Chat(stream HelloRequest) returns (stream HelloReply);\n  rpc SayBye(HelloRequest) returns (HelloReply);",
      ),
  );
  const exit = await bufBreaking(t, dir);
  assert.equal(exit.code, 0, exit.stdout + exit.stderr);
});
