import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Code,
  ConnectError,
  createClient,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { service as grpcHealthService } from "grpc-health-check";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../gen/health/v1/health_pb.js";
import { startTestServer } from "./support/server.js";

/** One client transport per protocol, each over the HTTP version its clients usually use. */
const protocols: Record<string, (baseUrl: string) => Transport> = {
  "gRPC (HTTP/2)": (baseUrl) => createGrpcTransport({ baseUrl }),
  "gRPC-Web (HTTP/1.1)": (baseUrl) =>
    createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  "Connect (HTTP/1.1)": (baseUrl) =>
    createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  "Connect (HTTP/2)": (baseUrl) =>
    createConnectTransport({ baseUrl, httpVersion: "2" }),
};

for (const [protocol, transport] of Object.entries(protocols)) {
  test(`Check over ${protocol} reports SERVING for the server and for Greeter, then NOT_SERVING once shutdown begins`, {
    timeout: 20_000,
  }, async (t) => {
    const server = await startTestServer(t);
    const health = createClient(Health, transport(server.url));
    for (const service of ["", "Greeter"]) {
      const res = await health.check({ service });
      assert.equal(res.status, Status.SERVING, `service "${service}"`);
    }
    server.status.set(false);
    for (const service of ["", "Greeter"]) {
      const res = await health.check({ service });
      assert.equal(res.status, Status.NOT_SERVING, `service "${service}"`);
    }
  });

  test(`Check over ${protocol} for an unknown service fails with NOT_FOUND`, {
    timeout: 20_000,
  }, async (t) => {
    const server = await startTestServer(t);
    const health = createClient(Health, transport(server.url));
    await assert.rejects(health.check({ service: "NoSuchService" }), (e) => {
      assert.ok(e instanceof ConnectError);
      assert.equal(e.code, Code.NotFound);
      assert.match(e.rawMessage, /NoSuchService/);
      return true;
    });
    // The server keeps answering.
    const res = await health.check({ service: "" });
    assert.equal(res.status, Status.SERVING);
  });

  test(`Watch over ${protocol} sends SERVING at once, then NOT_SERVING when shutdown begins, and ends OK so it holds no shutdown up`, {
    timeout: 20_000,
  }, async (t) => {
    const server = await startTestServer(t);
    const health = createClient(Health, transport(server.url));
    const stream = health.watch({ service: "Greeter" })[Symbol.asyncIterator]();
    const first = await stream.next();
    assert.equal(first.done, false);
    assert.equal(first.value.status, Status.SERVING);
    server.status.set(false);
    const second = await stream.next();
    assert.equal(second.done, false);
    assert.equal(second.value.status, Status.NOT_SERVING);
    // Ends with OK: a failed call would make next() reject.
    assert.equal((await stream.next()).done, true);
    await server.inflight.whenIdle();
  });

  test(`a Watch client over ${protocol} that goes away ends the handler and unsubscribes it from the serving status`, {
    timeout: 20_000,
  }, async (t) => {
    const server = await startTestServer(t);
    // Count live subscriptions by wrapping the server's own status object.
    let subscribed = 0;
    const subscribe = server.status.subscribe.bind(server.status);
    server.status.subscribe = (listener) => {
      subscribed++;
      const unsubscribe = subscribe(listener);
      return () => {
        subscribed--;
        return unsubscribe();
      };
    };
    const health = createClient(Health, transport(server.url));
    const abort = new AbortController();
    const stream = health
      .watch({ service: "" }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    assert.equal((await stream.next()).value?.status, Status.SERVING);
    assert.equal(subscribed, 1);
    assert.equal(server.inflight.count, 1);
    abort.abort();
    await assert.rejects(stream.next(), (e) => {
      assert.ok(e instanceof ConnectError);
      assert.equal(e.code, Code.Canceled);
      return true;
    });
    await server.inflight.whenIdle();
    assert.equal(subscribed, 0);
    // A change after the watcher left reaches nobody and breaks nothing.
    server.status.set(false);
    const res = await health.check({ service: "" });
    assert.equal(res.status, Status.NOT_SERVING);
  });
}

test("Watch for an unknown service sends SERVICE_UNKNOWN and keeps the call open until the client goes away", {
  timeout: 20_000,
}, async (t) => {
  const server = await startTestServer(t);
  const health = createClient(
    Health,
    createGrpcTransport({ baseUrl: server.url }),
  );
  const abort = new AbortController();
  const stream = health
    .watch({ service: "NoSuchService" }, { signal: abort.signal })
    [Symbol.asyncIterator]();
  const first = await stream.next();
  assert.equal(first.value?.status, Status.SERVICE_UNKNOWN);
  let settled = false;
  const next = stream.next().finally(() => {
    settled = true;
  });
  // A full round trip on the same connection: had the server ended the
  // watch after its first message, the end would have arrived by now.
  assert.equal((await health.check({ service: "" })).status, Status.SERVING);
  assert.equal(settled, false);
  assert.equal(server.inflight.count, 1);
  abort.abort();
  await assert.rejects(next, (e) => {
    assert.ok(e instanceof ConnectError);
    assert.equal(e.code, Code.Canceled);
    return true;
  });
  await server.inflight.whenIdle();
});

test("Watch for an unknown service ends OK once shutdown begins", {
  timeout: 20_000,
}, async (t) => {
  const server = await startTestServer(t);
  const health = createClient(
    Health,
    createGrpcTransport({ baseUrl: server.url }),
  );
  const stream = health
    .watch({ service: "NoSuchService" })
    [Symbol.asyncIterator]();
  assert.equal((await stream.next()).value?.status, Status.SERVICE_UNKNOWN);
  server.status.set(false);
  assert.equal((await stream.next()).done, true);
  await server.inflight.whenIdle();
});

test("Watch begun after shutdown began sends NOT_SERVING and ends OK", {
  timeout: 20_000,
}, async (t) => {
  const server = await startTestServer(t);
  server.status.set(false);
  const health = createClient(
    Health,
    createGrpcTransport({ baseUrl: server.url }),
  );
  const statuses: Status[] = [];
  for await (const res of health.watch({ service: "" })) {
    statuses.push(res.status);
  }
  assert.deepEqual(statuses, [Status.NOT_SERVING]);
});

test("List reports every known service with the server's status", {
  timeout: 20_000,
}, async (t) => {
  const server = await startTestServer(t);
  const health = createClient(
    Health,
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  );
  const serving = await health.list({});
  assert.deepEqual(
    Object.fromEntries(
      Object.entries(serving.statuses).map(([k, v]) => [k, v.status]),
    ),
    { "": Status.SERVING, Greeter: Status.SERVING },
  );
  server.status.set(false);
  const stopping = await health.list({});
  assert.deepEqual(
    Object.fromEntries(
      Object.entries(stopping.statuses).map(([k, v]) => [k, v.status]),
    ),
    { "": Status.NOT_SERVING, Greeter: Status.NOT_SERVING },
  );
});

test("an independent gRPC client (@grpc/grpc-js with grpc-health-check's definition) checks and watches the server", {
  timeout: 20_000,
}, async (t) => {
  const server = await startTestServer(t);
  const Client = grpc.makeGenericClientConstructor(grpcHealthService, "Health");
  const client = new Client(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as GrpcJsHealthClient;
  t.after(() => client.close());

  const check = (service: string) =>
    new Promise<{ status: string }>((resolve, reject) =>
      client.check({ service }, (err, res) =>
        err ? reject(err) : resolve(res),
      ),
    );
  assert.deepEqual(await check("Greeter"), { status: "SERVING" });
  await assert.rejects(check("NoSuchService"), (e: grpc.ServiceError) => {
    assert.equal(e.code, grpc.status.NOT_FOUND);
    return true;
  });

  const call = client.watch({ service: "" });
  const ended = new Promise<grpc.StatusObject>((resolve) =>
    call.on("status", resolve),
  );
  const statuses = call[Symbol.asyncIterator]();
  assert.deepEqual((await statuses.next()).value, { status: "SERVING" });
  server.status.set(false);
  assert.deepEqual((await statuses.next()).value, { status: "NOT_SERVING" });
  assert.equal((await statuses.next()).done, true);
  assert.equal((await ended).code, grpc.status.OK);
});

/** The health client grpc-js makes from grpc-health-check's service definition. */
interface GrpcJsHealthClient {
  check(
    req: { service: string },
    callback: (err: grpc.ServiceError | null, res: { status: string }) => void,
  ): void;
  watch(req: { service: string }): grpc.ClientReadableStream<{
    status: string;
  }>;
  close(): void;
}

test("the admin port answers HTTP probes: /healthz 200 while the process runs, /readyz 200 while serving and 503 once a drain begins", async (t) => {
  const server = await startTestServer(t);
  const admin = new URL(server.metricsUrl ?? "").origin;
  const probe = async (path: string, method = "GET") => {
    const res = await fetch(`${admin}${path}`, { method });
    return [res.status, await res.text(), res.headers.get("cache-control")];
  };
  assert.deepEqual(await probe("/healthz"), [200, "ok\n", "no-store"]);
  assert.deepEqual(await probe("/readyz"), [200, "ok\n", "no-store"]);
  assert.deepEqual(await probe("/readyz", "HEAD"), [200, "", "no-store"]);
  assert.deepEqual(await probe("/readyz?verbose"), [200, "ok\n", "no-store"]);
  assert.equal((await probe("/readyz", "POST"))[0], 404);
  assert.equal((await probe("/livez"))[0], 404);
  // What a drain does first (src/lifecycle/shutdown.ts).
  server.status.set(false);
  assert.deepEqual(await probe("/readyz"), [503, "not serving\n", "no-store"]);
  assert.deepEqual(await probe("/healthz"), [200, "ok\n", "no-store"]);
});
