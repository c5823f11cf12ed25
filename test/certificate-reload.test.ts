/**
 * The TLS certificate replaced under a running server as Kubernetes replaces
 * a Secret's files (a new directory, and one symlink swapped to it): new
 * connections get the new certificate, connections and calls already open
 * are untouched, no call of a client under load fails, and a bad pair keeps
 * the previous certificate serving with one error line.
 */
import assert from "node:assert/strict";
import { mkdir, rename, symlink, writeFile } from "node:fs/promises";
import * as https from "node:https";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import * as tls from "node:tls";
import { createClient } from "@connectrpc/connect";
import { Greeter } from "../gen/helloworld_pb.js";
import { loadConfig } from "../src/config.js";
import { tempDir } from "./support/auth.js";
import { LogCapture } from "./support/log-capture.js";
import { pushable } from "./support/pushable.js";
import { startTestServer } from "./support/server.js";
import { type CertAndKey, certificateAuthority, issue } from "./support/tls.js";
import { testTransport } from "./support/transports.js";
import { until } from "./support/wait.js";

const ca = certificateAuthority("reload test CA");
const localhost = ["DNS:localhost", "IP:127.0.0.1"];
const first = issue(ca, { cn: "first", san: localhost });
const second = issue(ca, { cn: "second", san: localhost });
const third = issue(ca, { cn: "third", san: localhost });

/**
 * A Secret volume as the kubelet writes it: tls.crt and tls.key are
 * symlinks into ..data, itself a symlink to the current version's
 * directory, swapped in one rename.
 */
class SecretVolume {
  #version = 0;
  private constructor(readonly dir: string) {}

  static async create(t: TestContext, pair: CertAndKey): Promise<SecretVolume> {
    const volume = new SecretVolume(await tempDir(t));
    await volume.update(pair);
    await symlink("..data/tls.crt", join(volume.dir, "tls.crt"));
    await symlink("..data/tls.key", join(volume.dir, "tls.key"));
    return volume;
  }

  get cert(): string {
    return join(this.dir, "tls.crt");
  }

  get key(): string {
    return join(this.dir, "tls.key");
  }

  async update(pair: { cert: Buffer; key: Buffer }): Promise<void> {
    const version = `..v${++this.#version}`;
    await mkdir(join(this.dir, version));
    await writeFile(join(this.dir, version, "tls.crt"), pair.cert);
    await writeFile(join(this.dir, version, "tls.key"), pair.key);
    await symlink(version, join(this.dir, "..data_tmp"));
    await rename(join(this.dir, "..data_tmp"), join(this.dir, "..data"));
  }
}

/** The common name of the certificate a new TLS connection to `port` is shown. */
function servedName(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: "127.0.0.1", port, ca: ca.cert, ALPNProtocols: ["h2"] },
      () => {
        const cn = socket.getPeerCertificate().subject.CN;
        socket.destroy();
        resolve(String(cn));
      },
    );
    socket.on("error", reject);
  });
}

/** SayHello over Connect and HTTP/1.1 on a connection of its own (no agent), so that each call has a new TLS handshake. */
function freshCall(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: "127.0.0.1",
        port,
        path: "/Greeter/SayHello",
        method: "POST",
        ca: ca.cert,
        agent: false,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString();
          if (res.statusCode === 200 && body === '{"message":"Hello, Fresh!"}')
            resolve();
          else reject(new Error(`${res.statusCode} ${body}`));
        });
      },
    );
    req.on("error", reject);
    req.end('{"name":"Fresh"}');
  });
}

async function reloadingServer(t: TestContext, volume: SecretVolume) {
  const log = new LogCapture();
  const config = loadConfig(
    [
      "--tls-cert",
      volume.cert,
      "--tls-key",
      volume.key,
      "--tls-reload-ms",
      "50",
    ],
    {},
  );
  const server = await startTestServer(t, {
    tls: config.tls,
    tlsReloadMs: config.tlsReloadMs,
    logLevel: "info",
    logDestination: log.destination,
  });
  return { server, log };
}

test("a Secret update swaps the certificate for new connections; calls under load, on open connections and new ones, all succeed; a stream open across the swap goes on", {
  timeout: 60_000,
}, async (t) => {
  const volume = await SecretVolume.create(t, first);
  const { server, log } = await reloadingServer(t, volume);
  assert.equal(await servedName(server.port), "first");

  // Load: two loops on a connection opened before the swap, one that
  // opens a new connection for each call.
  const kept = createClient(
    Greeter,
    testTransport("grpc", "2", server.url, { ca: ca.cert }),
  );
  let stop = false;
  const failures: unknown[] = [];
  let calls = 0;
  const loop = async (call: () => Promise<unknown>) => {
    while (!stop) {
      try {
        await call();
        calls++;
      } catch (e) {
        failures.push(e);
      }
    }
  };
  // A bidi stream open across the swap: a message before, one after.
  const names = pushable<{ name: string }>();
  const chat = kept.chat(names)[Symbol.asyncIterator]();
  names.push({ name: "Before" });
  assert.equal((await chat.next()).value?.message, "Hello, Before!");
  const loops = [
    loop(() => kept.sayHello({ name: "Kept" })),
    loop(() => kept.sayHello({ name: "Kept" })),
    loop(() => freshCall(server.port)),
  ];
  await until("calls under way", () => calls > 20);
  await volume.update(second);
  let name = await servedName(server.port);
  const deadline = performance.now() + 10_000;
  while (name !== "second") {
    assert.ok(
      performance.now() < deadline,
      "the new certificate is served within 10 s",
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    name = await servedName(server.port);
  }
  const before = calls;
  await until("calls after the swap", () => calls > before + 20);
  stop = true;
  await Promise.all(loops);
  names.push({ name: "After" });
  assert.equal((await chat.next()).value?.message, "Hello, After!");
  names.close();
  assert.equal((await chat.next()).done, true, "the stream ends OK");
  assert.deepEqual(failures, [], "no call failed");
  assert.equal(
    log.lines.filter((l) => l.msg === "TLS certificate reloaded").length,
    1,
  );
});

test("a certificate whose key does not fit keeps the previous one serving, with one error line naming the files and no key; a good pair later is taken", {
  timeout: 30_000,
}, async (t) => {
  const volume = await SecretVolume.create(t, first);
  const { server, log } = await reloadingServer(t, volume);
  await volume.update({ cert: third.cert, key: second.key });
  const error = await log.waitFor(
    (l) =>
      l.msg ===
      "TLS certificate reload failed; the previous certificate keeps serving",
  );
  assert.equal(error.level, 50);
  assert.deepEqual(error.files, [volume.cert, volume.key]);
  assert.match(
    String((error.err as { message: string }).message),
    /key values mismatch/,
  );
  assert.ok(!JSON.stringify(log.lines).includes("PRIVATE KEY"));
  assert.equal(await servedName(server.port), "first");
  const client = createClient(
    Greeter,
    testTransport("grpc", "2", server.url, { ca: ca.cert }),
  );
  assert.equal(
    (await client.sayHello({ name: "Still" })).message,
    "Hello, Still!",
  );
  await volume.update(third);
  await log.waitFor((l) => l.msg === "TLS certificate reloaded");
  assert.equal(await servedName(server.port), "third");
  assert.equal(
    log.lines.filter((l) => l.level === 50).length,
    1,
    "one error line for the bad pair",
  );
});
