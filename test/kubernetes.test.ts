/**
 * The Kubernetes manifests in deploy/kubernetes: valid against the Kubernetes
 * and Gateway API schemas, complete in their kustomization, and in agreement
 * with each other and with the server they run (its settings, its ports, its
 * health service, its routes and its drain). No cluster runs here; every value
 * the server also knows is read from the code, not repeated.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createClient, createConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { IGRPCRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GRPCRoute";
import type { IHTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IHorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IProbe } from "kubernetes-models/v1/Probe";
import type { IService } from "kubernetes-models/v1/Service";
import { parse, stringify } from "yaml";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../gen/health/v1/health_pb.js";
import { Greeter } from "../gen/helloworld_pb.js";
import {
  type Config,
  ConfigError,
  loadConfig,
  settings,
} from "../src/config.js";
import { startServer } from "../src/server.js";
import { routes } from "../src/services/routes.js";
import {
  type KubeObject,
  kustomizeBuild,
  type Manifest,
  manifestFiles,
  manifestLabel,
  parseManifests,
  readKustomization,
  readManifests,
  unknownFields,
  validateSchema,
} from "./kubernetes/manifests.js";
import { repoRoot } from "./support/child.js";
import { fences } from "./support/doc-blocks.js";
import { selfSignedCert } from "./support/tls.js";

const dir = fileURLToPath(new URL("../deploy/kubernetes/", import.meta.url));

/**
 * The image `npm run image` builds and tags (package.json's image script):
 * the Deployment runs it, and the kustomization's images entry retargets it.
 * Change the two together.
 */
const image = "localhost/connect-greeter:latest";

/**
 * How long a drain may run past SHUTDOWN_GRACE_MS, in seconds: src/shutdown.ts
 * gives calls still running at the end of the grace period endCallsMs (1 s) to
 * send their status, then connections lingerMs (1 s) to close.
 */
const drainTailSeconds = 2;

/** The manifests, found by kind, each kind typed with its kubernetes-models interface. */
class Manifests {
  constructor(readonly list: Manifest[]) {}

  /** A deep copy, for a test to break. */
  copy(): Manifests {
    return new Manifests(structuredClone(this.list));
  }

  all(kind: string): KubeObject[] {
    return this.list.filter((m) => m.object.kind === kind).map((m) => m.object);
  }

  one(kind: string): KubeObject {
    const found = this.all(kind);
    assert.equal(
      found.length,
      1,
      `expected one ${kind}, found ${found.length}`,
    );
    return found[0] as KubeObject;
  }

  get deployment(): IDeployment {
    return this.one("Deployment") as unknown as IDeployment;
  }
  get service(): IService {
    return this.one("Service") as unknown as IService;
  }
  get pdb(): IPodDisruptionBudget {
    return this.one("PodDisruptionBudget") as unknown as IPodDisruptionBudget;
  }
  get hpa(): IHorizontalPodAutoscaler {
    return this.one(
      "HorizontalPodAutoscaler",
    ) as unknown as IHorizontalPodAutoscaler;
  }
  get grpcRoutes(): IGRPCRoute[] {
    return this.all("GRPCRoute") as unknown as IGRPCRoute[];
  }
  get httpRoutes(): IHTTPRoute[] {
    return this.all("HTTPRoute") as unknown as IHTTPRoute[];
  }

  /** The server's container, the pod's only one. */
  get container(): IContainer {
    const containers = this.deployment.spec?.template.spec?.containers ?? [];
    assert.equal(containers.length, 1, "expected one container in the pod");
    return containers[0] as IContainer;
  }

  /** The pod template's labels. */
  get podLabels(): Record<string, string> {
    return this.deployment.spec?.template.metadata?.labels ?? {};
  }
}

async function load(): Promise<Manifests> {
  return new Manifests(await readManifests(dir));
}

/** The container's environment as a map; every value must be literal to be checked. */
function containerEnv(c: IContainer): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of c.env ?? []) {
    assert.ok(
      v.value !== undefined && v.valueFrom === undefined,
      `env ${v.name}: give a literal value, so it can be checked against the server's configuration`,
    );
    env[v.name] = v.value;
  }
  return env;
}

/** The configuration the server reads from the Deployment's environment (defaults filled in). */
function serverConfig(m: Manifests): Config {
  const env = containerEnv(m.container);
  try {
    return loadConfig([], env);
  } catch (e) {
    if (e instanceof ConfigError) {
      assert.fail(
        `the Deployment's environment does not pass the server's loadConfig: ${e.message}`,
      );
    }
    throw e;
  }
}

/** The environment variables the server reads (src/config.ts). */
const settingEnvs = new Set<string>(Object.values(settings).map((s) => s.env));

/** The procedures the server routes (src/routes.ts), as the router registers them. */
function servedProcedures(): UniversalHandler[] {
  const router = createConnectRouter();
  routes()(router);
  return router.handlers;
}

/** Whether a selector's matchLabels (and no expressions) select these labels. */
function selects(
  selector:
    | { matchLabels?: Record<string, string>; matchExpressions?: unknown[] }
    | undefined,
  labels: Record<string, string>,
): boolean {
  if (selector === undefined) return false;
  assert.ok(
    (selector.matchExpressions ?? []).length === 0,
    "matchExpressions are not checked here: select with matchLabels",
  );
  const wanted = Object.entries(selector.matchLabels ?? {});
  return wanted.length > 0 && wanted.every(([k, v]) => labels[k] === v);
}

function show(labels: Record<string, string> | undefined): string {
  return JSON.stringify(labels ?? {});
}

// The checks. Each throws an AssertionError that says what disagrees with what.

function checkSelectors(m: Manifests): void {
  const labels = m.podLabels;
  const d = m.deployment;
  assert.ok(
    selects(d.spec?.selector, labels),
    `Deployment selector ${show(d.spec?.selector.matchLabels)} does not select its own pod labels ${show(labels)}`,
  );
  const serviceSelector = m.service.spec?.selector ?? {};
  assert.ok(
    selects({ matchLabels: serviceSelector }, labels),
    `Service selector ${show(serviceSelector)} does not select the Deployment's pod labels ${show(labels)}`,
  );
  assert.ok(
    selects(m.pdb.spec?.selector, labels),
    `PodDisruptionBudget selector ${show(m.pdb.spec?.selector?.matchLabels)} does not select the Deployment's pod labels ${show(labels)}`,
  );
  for (const c of d.spec?.template.spec?.topologySpreadConstraints ?? []) {
    assert.ok(
      selects(c.labelSelector, labels),
      `topology spread over ${c.topologyKey} selects ${show(c.labelSelector?.matchLabels)}, not the Deployment's pod labels ${show(labels)}`,
    );
  }
}

function checkPorts(m: Manifests): void {
  const config = serverConfig(m);
  const ports = m.container.ports ?? [];
  const listed = ports.map((p) => `${p.name} ${p.containerPort}`).join(", ");
  const api = ports.find((p) => p.containerPort === config.port);
  assert.ok(
    api?.name,
    `the server listens on ${config.port} (PORT), but the container declares no named port ${config.port} (it has ${listed})`,
  );
  assert.ok(
    config.adminPort !== undefined,
    "ADMIN_PORT is off: the pods serve no metrics to scrape",
  );
  const admin = ports.find((p) => p.containerPort === config.adminPort);
  assert.ok(
    admin?.name,
    `the server serves metrics on ${config.adminPort} (ADMIN_PORT), but the container declares no named port ${config.adminPort} (it has ${listed})`,
  );
  const annotations = m.deployment.spec?.template.metadata?.annotations ?? {};
  assert.equal(
    annotations["prometheus.io/port"],
    String(config.adminPort),
    `prometheus.io/port is ${annotations["prometheus.io/port"]}, but the server serves metrics on ${config.adminPort} (ADMIN_PORT)`,
  );
  for (const p of m.service.spec?.ports ?? []) {
    const target = p.targetPort ?? p.port;
    const port = ports.find((c) =>
      typeof target === "number"
        ? c.containerPort === target
        : c.name === target,
    );
    assert.ok(
      port !== undefined,
      `Service port ${p.name}: targetPort ${target} names no port of the container (it has ${listed})`,
    );
    assert.equal(
      port.containerPort,
      config.port,
      `Service port ${p.name} reaches container port ${port.name} ${port.containerPort}, not the API port ${config.port}: the Service must not expose metrics`,
    );
    assert.equal(
      p.appProtocol,
      "kubernetes.io/h2c",
      `Service port ${p.name}: appProtocol ${p.appProtocol}, not kubernetes.io/h2c, so L7 balancers may not speak HTTP/2 to the pods`,
    );
  }
}

function checkEnv(m: Manifests): void {
  for (const v of m.container.env ?? []) {
    assert.ok(
      settingEnvs.has(v.name),
      `env ${v.name} is not a setting of the server (src/config.ts reads ${[...settingEnvs].join(", ")})`,
    );
  }
  serverConfig(m);
  assert.equal(
    m.deployment.spec?.template.spec?.enableServiceLinks,
    false,
    "enableServiceLinks is not false: Kubernetes would add a variable per Service of the namespace, and the server reads settings such as ADMIN_PORT from the environment",
  );
}

/** The probes, each with its grpc action. */
function grpcProbes(
  m: Manifests,
): [string, IProbe & { grpc: { port: number; service?: string } }][] {
  const c = m.container;
  const probes: [string, IProbe | undefined][] = [
    ["startupProbe", c.startupProbe],
    ["readinessProbe", c.readinessProbe],
    ["livenessProbe", c.livenessProbe],
  ];
  return probes.map(([name, probe]) => {
    assert.ok(
      probe?.grpc !== undefined,
      `${name}: expected a native gRPC probe (grpc.health.v1)`,
    );
    return [name, probe as IProbe & { grpc: { port: number } }];
  });
}

/** Start the server with `config`, as the manifests set it, on free loopback ports and silent; closed after the test. */
async function startConfigured(t: TestContext, config: Config) {
  const server = await startServer({
    ...config,
    port: 0,
    host: "127.0.0.1",
    adminPort: 0,
    logLevel: "silent",
  });
  t.after(() => server.close());
  return server;
}

/**
 * Send each probe's Check as the kubelet does (grpc.health.v1 over h2c with
 * prior knowledge) to a real server started with the Deployment's settings:
 * SERVING, then NOT_SERVING once a drain begins.
 */
async function checkProbes(t: TestContext, m: Manifests): Promise<void> {
  const config = serverConfig(m);
  const probes = grpcProbes(m);
  for (const [name, probe] of probes) {
    assert.equal(
      probe.grpc.port,
      config.port,
      `${name} probes port ${probe.grpc.port}, but the server serves health on its API port ${config.port} (PORT)`,
    );
  }
  const server = await startConfigured(t, config);
  const health = createClient(
    Health,
    createGrpcTransport({ baseUrl: server.url }),
  );
  const ask = async (name: string, service: string) => {
    try {
      return (await health.check({ service })).status;
    } catch (e) {
      assert.fail(
        `${name} asks for service ${JSON.stringify(service)}, which the server's health service does not know: ${(e as Error).message}`,
      );
    }
  };
  for (const [name, probe] of probes) {
    const service = probe.grpc.service ?? "";
    assert.equal(
      await ask(name, service),
      Status.SERVING,
      `${name} while serving`,
    );
  }
  server.status.set(false);
  for (const [name, probe] of probes) {
    const service = probe.grpc.service ?? "";
    assert.equal(
      await ask(name, service),
      Status.NOT_SERVING,
      `${name} once a drain begins`,
    );
  }
}

function checkGrace(m: Manifests): void {
  const config = serverConfig(m);
  const pod = m.deployment.spec?.template.spec;
  const sleep = m.container.lifecycle?.preStop?.sleep?.seconds;
  assert.ok(
    sleep !== undefined && sleep > 0,
    "preStop: expected a sleep action, so endpoints are updated before the drain begins",
  );
  const drain = config.shutdownGraceMs / 1000 + drainTailSeconds;
  const grace = pod?.terminationGracePeriodSeconds ?? 30;
  assert.ok(
    grace > sleep + drain,
    `terminationGracePeriodSeconds ${grace} does not outlast the preStop pause (${sleep} s) plus the drain (SHUTDOWN_GRACE_MS ${config.shutdownGraceMs} ms + ${drainTailSeconds} s): the kubelet would SIGKILL calls in flight`,
  );
  const liveness = m.container.livenessProbe;
  const window =
    (liveness?.periodSeconds ?? 10) * (liveness?.failureThreshold ?? 3);
  assert.ok(
    window > drain,
    `livenessProbe fails after ${window} s of NOT_SERVING, within a drain (${drain} s): a stopping pod would be restarted`,
  );
}

/**
 * Behind a Service, which balances connections, a pod added by the
 * autoscaler gets clients only as connections end: the Deployment must age
 * them (docs/deploying-kubernetes.md), and free the calls of peers that
 * vanished.
 */
function checkConnections(m: Manifests): void {
  const config = serverConfig(m);
  assert.ok(
    config.maxConnectionAgeMs > 0,
    "MAX_CONNECTION_AGE_MS is not set: clients would keep their pod for ever, and new pods would get none of them",
  );
  assert.ok(
    config.maxConnectionAgeGraceMs > 0,
    "MAX_CONNECTION_AGE_GRACE_MS is 0: calls in flight would be cut off when a connection ages",
  );
  assert.ok(
    config.keepaliveTimeMs > 0 && config.keepaliveTimeMs <= 300_000,
    `KEEPALIVE_TIME_MS is ${config.keepaliveTimeMs}: a vanished peer's calls would be held for more than 5 minutes`,
  );
}

function checkImage(
  m: Manifests,
  kustomization: Record<string, unknown>,
): void {
  assert.equal(
    m.container.image,
    image,
    `the container runs ${m.container.image}, not ${image}, the image npm run image builds`,
  );
  const images = (kustomization.images ?? []) as { name?: string }[];
  const name = image.slice(0, image.lastIndexOf(":"));
  assert.ok(
    images.some((i) => i.name === name),
    `kustomization.yaml has no images entry named ${name}, so users cannot retarget the Deployment's image`,
  );
}

function checkScaling(m: Manifests): void {
  const d = m.deployment;
  const hpa = m.hpa.spec;
  const target = hpa?.scaleTargetRef;
  assert.deepEqual(
    { apiVersion: target?.apiVersion, kind: target?.kind, name: target?.name },
    { apiVersion: "apps/v1", kind: "Deployment", name: d.metadata?.name },
    `the HorizontalPodAutoscaler scales ${target?.apiVersion} ${target?.kind} ${target?.name}, not the Deployment ${d.metadata?.name}`,
  );
  const replicas = d.spec?.replicas ?? 1;
  const min = hpa?.minReplicas ?? 1;
  const max = hpa?.maxReplicas ?? 0;
  assert.ok(
    min <= replicas && replicas <= max,
    `the HorizontalPodAutoscaler's range ${min}..${max} does not hold the Deployment's ${replicas} replicas`,
  );
  for (const metric of hpa?.metrics ?? []) {
    const resource = metric.resource;
    if (resource?.target.type !== "Utilization") continue;
    assert.ok(
      m.container.resources?.requests?.[resource.name] !== undefined,
      `the HorizontalPodAutoscaler targets ${resource.name} utilisation, a percentage of the request, but the container requests no ${resource.name}`,
    );
  }
  // The budget must let one pod go at the smallest size the autoscaler keeps,
  // or node drains wait for ever.
  const pdb = m.pdb.spec;
  const allowed =
    pdb?.maxUnavailable !== undefined
      ? podsOf(pdb.maxUnavailable, min, "floor")
      : min - podsOf(pdb?.minAvailable ?? 0, min, "ceil");
  assert.ok(
    allowed >= 1,
    `the PodDisruptionBudget allows ${allowed} evictions at ${min} replicas: node drains would block`,
  );
}

/** A PodDisruptionBudget count: a number, or a percentage of `pods` rounded as the disruption controller does. */
function podsOf(
  value: number | string,
  pods: number,
  round: "floor" | "ceil",
): number {
  if (typeof value === "number") return value;
  const percent = Number(value.replace(/%$/, ""));
  return Math[round]((percent * pods) / 100);
}

/** Whether two Gateway API hostnames can match the same host ("*.x" matches any name below x). */
function hostnamesIntersect(a: string, b: string): boolean {
  const matches = (pattern: string, host: string) =>
    pattern.startsWith("*.")
      ? host.endsWith(pattern.slice(1)) || host === pattern
      : host === pattern;
  return matches(a, b) || matches(b, a);
}

/** Whether a Gateway API path match matches `path` (PathPrefix: whole segments). */
function pathMatches(
  match: { type?: string; value?: string },
  path: string,
): boolean {
  const value = match.value ?? "/";
  switch (match.type ?? "PathPrefix") {
    case "Exact":
      return path === value;
    case "PathPrefix": {
      const prefix = value.replace(/\/$/, "");
      return path === prefix || path.startsWith(`${prefix}/`);
    }
    default:
      assert.fail(`path match type ${match.type} is not checked here`);
  }
}

function checkRoutes(m: Manifests): void {
  const service = m.service;
  const servicePorts = (service.spec?.ports ?? []).map((p) => p.port);
  const routes = [...m.grpcRoutes, ...m.httpRoutes];
  assert.ok(routes.length > 0, "no GRPCRoute or HTTPRoute");
  for (const route of routes) {
    for (const rule of route.spec?.rules ?? []) {
      for (const ref of rule.backendRefs ?? []) {
        const what = `${route.kind} ${route.metadata?.name} backendRef ${ref.name}:${ref.port}`;
        assert.ok(
          (ref.kind ?? "Service") === "Service" && (ref.group ?? "") === "",
          `${what} is not a Service`,
        );
        assert.equal(
          ref.name,
          service.metadata?.name,
          `${what} names no Service here`,
        );
        assert.ok(
          ref.port !== undefined && servicePorts.includes(ref.port),
          `${what}: the Service has no port ${ref.port} (it has ${servicePorts.join(", ")})`,
        );
      }
    }
  }
  // Every Greeter procedure reaches the pods through both kinds of route.
  const greeter = servedProcedures().filter(
    (h) => h.service.typeName === Greeter.typeName,
  );
  assert.ok(greeter.length > 0, "the router serves no Greeter procedure");
  for (const h of greeter) {
    for (const route of m.grpcRoutes) {
      const routed = (route.spec?.rules ?? []).some((rule) =>
        (rule.matches ?? [{}]).some(
          (match) =>
            (match.method?.service ?? h.service.typeName) ===
              h.service.typeName &&
            (match.method?.method ?? h.method.name) === h.method.name,
        ),
      );
      assert.ok(
        routed,
        `GRPCRoute ${route.metadata?.name} does not route ${h.service.typeName}/${h.method.name}, which the server serves`,
      );
    }
    for (const route of m.httpRoutes) {
      const routed = (route.spec?.rules ?? []).some((rule) =>
        (rule.matches ?? [{}]).some((match) =>
          pathMatches(match.path ?? {}, h.requestPath),
        ),
      );
      assert.ok(
        routed,
        `HTTPRoute ${route.metadata?.name} does not route ${h.requestPath}, where Connect and gRPC-Web clients call ${h.method.name}`,
      );
    }
  }
  // The Gateway API refuses a GRPCRoute and an HTTPRoute whose hostnames
  // overlap on one listener ("Cross Serving" in its GRPCRoute guide).
  for (const g of m.grpcRoutes) {
    for (const h of m.httpRoutes) {
      const sharedParent = (g.spec?.parentRefs ?? []).some((a) =>
        (h.spec?.parentRefs ?? []).some(
          (b) =>
            a.name === b.name &&
            a.namespace === b.namespace &&
            (a.sectionName === undefined ||
              b.sectionName === undefined ||
              a.sectionName === b.sectionName),
        ),
      );
      if (!sharedParent) continue;
      const gh = g.spec?.hostnames ?? [];
      const hh = h.spec?.hostnames ?? [];
      const overlap =
        gh.length === 0 ||
        hh.length === 0 ||
        gh.some((a) => hh.some((b) => hostnamesIntersect(a, b)));
      assert.ok(
        !overlap,
        `GRPCRoute ${g.metadata?.name} (${gh.join(", ") || "any host"}) and HTTPRoute ${h.metadata?.name} (${hh.join(", ") || "any host"}) overlap on one Gateway: the Gateway API accepts only one of them`,
      );
    }
  }
}

/** The user the image runs as: the Dockerfile's last USER line, uid:gid. */
const imageUser = (() => {
  const users = [
    ...readFileSync(join(repoRoot, "Dockerfile"), "utf8").matchAll(
      /^USER\s+(\S+)\s*$/gm,
    ),
  ];
  return users.at(-1)?.[1] ?? "(none)";
})();

function checkHardening(m: Manifests): void {
  const pod = m.deployment.spec?.template.spec;
  const c = m.container;
  const user = c.securityContext?.runAsUser ?? pod?.securityContext?.runAsUser;
  assert.ok(
    (c.securityContext?.runAsNonRoot ?? pod?.securityContext?.runAsNonRoot) ===
      true,
    "runAsNonRoot is not true",
  );
  assert.ok(
    typeof user === "number" && user > 0,
    `runAsUser ${user}: expected the image's numeric non-root user`,
  );
  const group =
    c.securityContext?.runAsGroup ?? pod?.securityContext?.runAsGroup;
  assert.equal(
    `${user}:${group}`,
    imageUser,
    `runAsUser:runAsGroup ${user}:${group} is not the Dockerfile's USER ${imageUser}`,
  );
  assert.equal(
    c.securityContext?.readOnlyRootFilesystem,
    true,
    "readOnlyRootFilesystem",
  );
  assert.equal(
    c.securityContext?.allowPrivilegeEscalation,
    false,
    "allowPrivilegeEscalation",
  );
  assert.deepEqual(
    c.securityContext?.capabilities?.drop,
    ["ALL"],
    "capabilities.drop",
  );
  assert.equal(
    (c.securityContext?.seccompProfile ?? pod?.securityContext?.seccompProfile)
      ?.type,
    "RuntimeDefault",
    "seccompProfile",
  );
  assert.equal(
    pod?.automountServiceAccountToken,
    false,
    "automountServiceAccountToken",
  );
}

/** Problems with a kustomization's resources against the manifest files beside it. */
function kustomizationProblems(
  resources: readonly string[],
  files: readonly string[],
): string[] {
  return [
    ...resources
      .filter((r) => !files.includes(r))
      .map(
        (r) =>
          `kustomization.yaml lists ${r}, which is not a manifest file here`,
      ),
    ...files
      .filter((f) => !resources.includes(f))
      .map(
        (f) =>
          `${f} is not listed in kustomization.yaml, so kubectl apply -k leaves it out`,
      ),
  ];
}

async function schemaProblems(m: Manifests): Promise<string[]> {
  const problems: string[] = [];
  for (const manifest of m.list) {
    try {
      await validateSchema(manifest);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  return problems;
}

/** The kinds of the objects in `m`, sorted. */
const kindsOf = (m: Manifests) => m.list.map((x) => `${x.object.kind}`).sort();

/** The kinds the base manifests hold, sorted. */
const baseKinds = [
  "Deployment",
  "GRPCRoute",
  "HTTPRoute",
  "HorizontalPodAutoscaler",
  "PodDisruptionBudget",
  "Service",
];

// The manifests as they are.

test("Every manifest is valid against its Kubernetes or Gateway API schema (kubernetes-models, ajv)", async () => {
  const m = await load();
  assert.deepEqual(kindsOf(m), baseKinds);
  assert.deepEqual(await schemaProblems(m), []);
});

test("Every manifest uses only fields that the Kubernetes and Gateway API types have", async (t) => {
  const m = await load();
  assert.deepEqual(await unknownFields(t, m.list), []);
});

test("The kustomization lists every manifest file of deploy/kubernetes, and only files that exist", async () => {
  const kustomization = await readKustomization(dir);
  const resources = (kustomization.resources ?? []) as string[];
  assert.deepEqual(
    kustomizationProblems(resources, await manifestFiles(dir)),
    [],
  );
});

test("kustomize renders the same objects, running the image npm run image builds; its images entry retargets it", async (t) => {
  const m = await load();
  const key = (x: Manifest) => `${x.object.kind}/${x.object.metadata.name}`;
  const rendered = new Manifests(await kustomizeBuild(t, dir));
  assert.deepEqual(rendered.list.map(key).sort(), m.list.map(key).sort());
  assert.deepEqual(await schemaProblems(rendered), []);
  assert.equal(rendered.container.image, image);

  // A user's overlay of their own would do the same: another registry and tag.
  const copy = await mkdtemp(join(tmpdir(), "greeter-kustomize-"));
  t.after(() => rm(copy, { recursive: true, force: true }));
  await cp(dir, copy, { recursive: true });
  const file = join(copy, "kustomization.yaml");
  const kustomization = parse(await readFile(file, "utf8"));
  kustomization.images = [
    {
      name: image.slice(0, image.lastIndexOf(":")),
      newName: "registry.example.com/team/connect-greeter",
      newTag: "1.2.3",
    },
  ];
  await writeFile(file, stringify(kustomization));
  const retargeted = new Manifests(await kustomizeBuild(t, copy));
  assert.equal(
    retargeted.container.image,
    "registry.example.com/team/connect-greeter:1.2.3",
  );
});

test("The overlay of docs/deploying-kubernetes.md renders with kustomize: its namespace, image, Gateway and hostnames replace the base's, and the result still passes the checks", async (t) => {
  const doc = await readFile(
    join(repoRoot, "docs/deploying-kubernetes.md"),
    "utf8",
  );
  const overlay = fences(doc).find(
    (f) => f.lang === "yaml" && f.lines[0] === "# overlay/kustomization.yaml",
  );
  assert.ok(overlay, "the page has an overlay/kustomization.yaml example");
  // The layout the page describes: overlay/ beside deploy/.
  const root = await mkdtemp(join(tmpdir(), "greeter-overlay-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  await cp(dir, join(root, "deploy/kubernetes"), { recursive: true });
  await mkdir(join(root, "overlay"));
  await writeFile(
    join(root, "overlay/kustomization.yaml"),
    `${overlay.lines.join("\n")}\n`,
  );
  const m = new Manifests(await kustomizeBuild(t, join(root, "overlay")));
  assert.deepEqual(await schemaProblems(m), []);
  assert.deepEqual(await unknownFields(t, m.list), []);
  for (const x of m.list) {
    assert.equal(x.object.metadata.namespace, "greeter", manifestLabel(x));
  }
  assert.equal(
    m.container.image,
    "registry.example.com/team/connect-greeter:1.0.0",
  );
  for (const route of [...m.grpcRoutes, ...m.httpRoutes]) {
    assert.deepEqual(route.spec?.parentRefs, [
      { name: "public", namespace: "gateways" },
    ]);
  }
  assert.deepEqual(m.grpcRoutes[0]?.spec?.hostnames, [
    "grpc.greeter.mycompany.com",
  ]);
  assert.deepEqual(m.httpRoutes[0]?.spec?.hostnames, ["greeter.mycompany.com"]);
  checkSelectors(m);
  checkPorts(m);
  checkRoutes(m);
});

test("The Service, the PodDisruptionBudget, the spread constraint and the Deployment's own selector select the Deployment's pods", async () => {
  checkSelectors(await load());
});

test("The container declares the ports the server listens on with the Deployment's environment; the Service targets the API port by name, never metrics; Prometheus is pointed at the admin port", async () => {
  checkPorts(await load());
});

test("Every environment variable of the Deployment is a setting of the server, their values pass loadConfig, and no Service links add others", async () => {
  checkEnv(await load());
});

test("Each probe, sent as the kubelet sends it to a server running the Deployment's settings, gets SERVING, and NOT_SERVING once a drain begins", async (t) => {
  await checkProbes(t, await load());
});

test("terminationGracePeriodSeconds outlasts the preStop pause plus the drain, and the liveness probe does not restart a draining pod", async () => {
  checkGrace(await load());
});

test("The Deployment runs the image npm run image builds, and the kustomization can retarget it", async () => {
  checkImage(await load(), await readKustomization(dir));
});

test("The HorizontalPodAutoscaler scales the Deployment within a range that holds its replicas, on a resource it requests; the PodDisruptionBudget allows an eviction at the minimum", async () => {
  checkScaling(await load());
});

test("The GRPCRoute and the HTTPRoute send every Greeter procedure to the Service's API port, on hostnames that do not overlap", async () => {
  checkRoutes(await load());
});

test("Connections are aged and kept alive: the Deployment sets a maximum connection age with a grace, and keepalive PINGs", async () => {
  checkConnections(await load());
});

test("The pod runs as a numeric non-root user, read-only, without privilege escalation, capabilities or a service account token, under the runtime's seccomp profile", async () => {
  checkHardening(await load());
});

// The same checks, each against manifests broken on purpose: every check can
// fail, and says what is wrong.

interface Breakage {
  /** What is broken, for the test's name. */
  bug: string;
  break(m: Manifests): void;
  check(t: TestContext, m: Manifests): void | Promise<void>;
  /** What the failure must say. */
  says: RegExp;
}

const breakages: Breakage[] = [
  {
    bug: "the container's API port renamed",
    break: (m) => {
      const port = m.container.ports?.find((p) => p.name === "grpc");
      if (port) port.name = "api";
    },
    check: (_t, m) => checkPorts(m),
    says: /Service port grpc: targetPort grpc names no port of the container \(it has api 50051/,
  },
  {
    bug: "PORT set to a port the container does not declare",
    break: (m) => {
      const env = m.container.env?.find((e) => e.name === "PORT");
      if (env) env.value = "8080";
    },
    check: (_t, m) => checkPorts(m),
    says: /the server listens on 8080 \(PORT\), but the container declares no named port 8080/,
  },
  {
    bug: "the Service targeting the metrics port",
    break: (m) => {
      const port = m.service.spec?.ports?.[0];
      if (port) port.targetPort = "metrics";
    },
    check: (_t, m) => checkPorts(m),
    says: /reaches container port metrics 9464, not the API port 50051: the Service must not expose metrics/,
  },
  {
    bug: "a readiness probe asking for a service the health service does not know",
    break: (m) => {
      const probe = m.container.readinessProbe;
      if (probe?.grpc) probe.grpc.service = "helloworld.Greeter";
    },
    check: (t, m) => checkProbes(t, m),
    says: /readinessProbe asks for service "helloworld.Greeter", which the server's health service does not know/,
  },
  {
    bug: "a liveness probe on the metrics port",
    break: (m) => {
      const probe = m.container.livenessProbe;
      if (probe?.grpc) probe.grpc.port = 9464;
    },
    check: (t, m) => checkProbes(t, m),
    says: /livenessProbe probes port 9464, but the server serves health on its API port 50051/,
  },
  {
    bug: "a grace period shorter than the preStop pause plus the drain",
    break: (m) => {
      const pod = m.deployment.spec?.template.spec;
      if (pod) pod.terminationGracePeriodSeconds = 15;
    },
    check: (_t, m) => checkGrace(m),
    says: /terminationGracePeriodSeconds 15 does not outlast the preStop pause \(5 s\) plus the drain/,
  },
  {
    bug: "SHUTDOWN_GRACE_MS raised past the grace period",
    break: (m) => {
      const env = m.container.env?.find((e) => e.name === "SHUTDOWN_GRACE_MS");
      if (env) env.value = "25000";
    },
    check: (_t, m) => checkGrace(m),
    says: /does not outlast the preStop pause \(5 s\) plus the drain \(SHUTDOWN_GRACE_MS 25000 ms/,
  },
  {
    bug: "an environment variable the server does not read",
    break: (m) => {
      m.container.env?.push({ name: "GRACE_MS", value: "10000" });
    },
    check: (_t, m) => checkEnv(m),
    says: /env GRACE_MS is not a setting of the server/,
  },
  {
    bug: "a setting with a value the server refuses",
    break: (m) => {
      const env = m.container.env?.find((e) => e.name === "LOG_LEVEL");
      if (env) env.value = "verbose";
    },
    check: (_t, m) => checkEnv(m),
    says: /the Deployment's environment does not pass the server's loadConfig: LOG_LEVEL \(--log-level\) must be one of/,
  },
  {
    bug: "a field of the wrong type (a port as a string)",
    break: (m) => {
      const port = m.container.ports?.[0];
      if (port) (port as { containerPort: unknown }).containerPort = "50051";
    },
    check: async (_t, m) => {
      const problems = await schemaProblems(m);
      assert.deepEqual(problems, []);
    },
    says: /deployment\.yaml: Deployment connect-greeter: data\/spec\/template\/spec\/containers\/0\/ports\/0\/containerPort must be integer/,
  },
  {
    bug: "a misspelt field (readinesProbe)",
    break: (m) => {
      const c = m.container as IContainer & Record<string, unknown>;
      c.readinesProbe = c.readinessProbe;
      delete c.readinessProbe;
    },
    check: async (t, m) => {
      assert.deepEqual(await unknownFields(t, m.list), []);
    },
    says: /deployment\.yaml: Object literal may only specify known properties, but 'readinesProbe' does not exist in type 'IContainer'/,
  },
  {
    bug: "the image renamed",
    break: (m) => {
      m.container.image = "connect-greeter:latest";
    },
    check: async (_t, m) => checkImage(m, await readKustomization(dir)),
    says: /the container runs connect-greeter:latest, not localhost\/connect-greeter:latest/,
  },
  {
    bug: "Service and Deployment labels that differ",
    break: (m) => {
      const spec = m.service.spec;
      if (spec) spec.selector = { "app.kubernetes.io/name": "greeter" };
    },
    check: (_t, m) => checkSelectors(m),
    says: /Service selector \{"app.kubernetes.io\/name":"greeter"\} does not select the Deployment's pod labels/,
  },
  {
    bug: "an autoscaler aimed at another Deployment",
    break: (m) => {
      const ref = m.hpa.spec?.scaleTargetRef;
      if (ref) ref.name = "greeter";
    },
    check: (_t, m) => checkScaling(m),
    says: /the HorizontalPodAutoscaler scales apps\/v1 Deployment greeter, not the Deployment connect-greeter/,
  },
  {
    bug: "an autoscaler minimum above the replica count",
    break: (m) => {
      const spec = m.hpa.spec;
      if (spec) spec.minReplicas = 4;
    },
    check: (_t, m) => checkScaling(m),
    says: /range 4\.\.12 does not hold the Deployment's 3 replicas/,
  },
  {
    bug: "a disruption budget that allows no eviction",
    break: (m) => {
      const spec = m.pdb.spec;
      if (spec) {
        spec.maxUnavailable = undefined;
        spec.minAvailable = "100%";
      }
    },
    check: (_t, m) => checkScaling(m),
    says: /the PodDisruptionBudget allows 0 evictions at 3 replicas/,
  },
  {
    bug: "a GRPCRoute to a port the Service does not have",
    break: (m) => {
      const ref = m.grpcRoutes[0]?.spec?.rules?.[0]?.backendRefs?.[0];
      if (ref) ref.port = 9464;
    },
    check: (_t, m) => checkRoutes(m),
    says: /GRPCRoute connect-greeter backendRef connect-greeter:9464: the Service has no port 9464/,
  },
  {
    bug: "a GRPCRoute for a service the server does not serve",
    break: (m) => {
      const match = m.grpcRoutes[0]?.spec?.rules?.[0]?.matches?.[0];
      if (match?.method) match.method.service = "helloworld.Greeter";
    },
    check: (_t, m) => checkRoutes(m),
    says: /GRPCRoute connect-greeter does not route Greeter\/SayHello, which the server serves/,
  },
  {
    bug: "an HTTPRoute prefix that misses the procedures",
    break: (m) => {
      const match = m.httpRoutes[0]?.spec?.rules?.[0]?.matches?.[0];
      if (match?.path) match.path.value = "/greeter";
    },
    check: (_t, m) => checkRoutes(m),
    says: /HTTPRoute connect-greeter does not route \/Greeter\/SayHello/,
  },
  {
    bug: "GRPCRoute and HTTPRoute on overlapping hostnames",
    break: (m) => {
      const spec = m.grpcRoutes[0]?.spec;
      if (spec) spec.hostnames = ["*.example.com"];
    },
    check: (_t, m) => checkRoutes(m),
    says: /GRPCRoute connect-greeter \(\*\.example\.com\) and HTTPRoute connect-greeter \(greeter\.example\.com\) overlap on one Gateway/,
  },
  {
    bug: "a root user",
    break: (m) => {
      const sc = m.deployment.spec?.template.spec?.securityContext;
      if (sc) sc.runAsUser = 0;
    },
    check: (_t, m) => checkHardening(m),
    says: /runAsUser 0: expected the image's numeric non-root user/,
  },
  {
    bug: "MAX_CONNECTION_AGE_MS taken out",
    break: (m) => {
      m.container.env = m.container.env?.filter(
        (e) => e.name !== "MAX_CONNECTION_AGE_MS",
      );
    },
    check: (_t, m) => checkConnections(m),
    says: /MAX_CONNECTION_AGE_MS is not set/,
  },
];

for (const b of breakages) {
  test(`Broken on purpose, ${b.bug}: the check fails and says so`, async (t) => {
    const m = (await load()).copy();
    // The unbroken manifests pass this check (the tests above), so a failure is the breakage's.
    b.break(m);
    await assert.rejects(
      async () => b.check(t, m),
      (e: Error) => {
        assert.match(e.message, b.says);
        return true;
      },
    );
  });
}

test("Broken on purpose, a manifest file left out of the kustomization and a listed file missing: both are named", () => {
  assert.deepEqual(
    kustomizationProblems(
      ["deployment.yaml", "service.yaml", "ingress.yaml"],
      ["deployment.yaml", "networkpolicy.yaml", "service.yaml"],
    ),
    [
      "kustomization.yaml lists ingress.yaml, which is not a manifest file here",
      "networkpolicy.yaml is not listed in kustomization.yaml, so kubectl apply -k leaves it out",
    ],
  );
});

test("Broken on purpose, an unquoted on in an env value: read as YAML 1.1, as kubectl reads it, it is a boolean and fails the schema", async () => {
  const text = (await readFile(join(dir, "deployment.yaml"), "utf8")).replace(
    "value: info",
    "value: on",
  );
  assert.notEqual(text, await readFile(join(dir, "deployment.yaml"), "utf8"));
  const m = new Manifests(parseManifests("deployment.yaml", text));
  assert.match(
    (await schemaProblems(m)).join("\n"),
    /containers\/0\/env\/\d+\/value must be string/,
  );
});

// The TLS overlay, deploy/kubernetes-tls: the base with the API port on TLS.

const tlsDir = fileURLToPath(
  new URL("../deploy/kubernetes-tls/", import.meta.url),
);

/** The TLS overlay's mount of the Secret, and the Secret it mounts. */
function tlsMount(m: Manifests): { path: string; secret: string } {
  const pod = m.deployment.spec?.template.spec;
  const mount = (m.container.volumeMounts ?? []).find((v) => v.name === "tls");
  assert.ok(mount, "the container mounts a volume named tls");
  assert.equal(mount.readOnly, true, "the certificate's volume is read-only");
  const volume = (pod?.volumes ?? []).find((v) => v.name === mount.name);
  const secret = volume?.secret?.secretName;
  assert.ok(secret, `volume ${mount.name} is a Secret`);
  return { path: mount.mountPath, secret };
}

/**
 * A copy of `m` whose environment points at a directory of the test's own
 * instead of the Secret's mount, holding a certificate and key under the
 * Secret's key names: what the server reads in the pod, readable here.
 */
async function withSecretFiles(
  t: TestContext,
  m: Manifests,
): Promise<Manifests> {
  const { path } = tlsMount(m);
  const mount = await mkdtemp(join(tmpdir(), "greeter-secret-"));
  t.after(() => rm(mount, { recursive: true, force: true }));
  const pair = selfSignedCert();
  await writeFile(join(mount, "tls.crt"), pair.cert);
  await writeFile(join(mount, "tls.key"), pair.key);
  const copy = m.copy();
  for (const v of copy.container.env ?? []) {
    if (v.value?.startsWith(`${path}/`)) {
      v.value = join(mount, v.value.slice(path.length + 1));
    }
  }
  return copy;
}

/** The probes of the overlay, each an HTTP GET on the admin port. */
function httpProbes(
  m: Manifests,
): [string, { path: string; port: number | string }][] {
  const c = m.container;
  return (
    [
      ["startupProbe", c.startupProbe],
      ["readinessProbe", c.readinessProbe],
      ["livenessProbe", c.livenessProbe],
    ] as const
  ).map(([name, probe]) => {
    assert.equal(probe?.grpc, undefined, `${name}: no gRPC probe under TLS`);
    const get = probe?.httpGet;
    assert.ok(get?.path !== undefined, `${name}: an HTTP GET probe`);
    assert.equal(get.scheme ?? "HTTP", "HTTP", `${name}: plain HTTP`);
    return [name, { path: get.path, port: get.port }];
  });
}

test("The TLS overlay renders with kustomize into valid objects with no unknown fields; the Secret is mounted where TLS_CERT and TLS_KEY point, the probes are HTTP on the admin port, a BackendTLSPolicy covers the Service's port, and the base's checks still pass", async (t) => {
  const m = new Manifests(await kustomizeBuild(t, tlsDir));
  assert.deepEqual(kindsOf(m), ["BackendTLSPolicy", ...baseKinds]);
  assert.deepEqual(await schemaProblems(m), []);
  assert.deepEqual(await unknownFields(t, m.list), []);
  const mounted = await withSecretFiles(t, m);
  checkSelectors(m);
  checkEnv(mounted);
  checkGrace(mounted);
  checkScaling(m);
  checkRoutes(m);
  checkHardening(m);

  const config = serverConfig(mounted);
  const { path, secret } = tlsMount(m);
  assert.equal(secret, "connect-greeter-tls");
  const env = containerEnv(m.container);
  // A kubernetes.io/tls Secret's keys (and cert-manager's).
  assert.equal(env.TLS_CERT, `${path}/tls.crt`);
  assert.equal(env.TLS_KEY, `${path}/tls.key`);
  assert.ok(
    config.tlsReloadMs > 0 && config.tlsReloadMs <= 60_000,
    `TLS_RELOAD_MS ${config.tlsReloadMs}: a renewed certificate is taken within a minute`,
  );
  const pod = m.deployment.spec?.template.spec;
  assert.equal(
    pod?.securityContext?.fsGroup,
    m.container.securityContext?.runAsGroup ?? pod?.securityContext?.runAsGroup,
    "the Secret's files belong to the server's group",
  );
  const admin = (m.container.ports ?? []).find(
    (p) => p.containerPort === config.adminPort,
  );
  for (const [name, probe] of httpProbes(m)) {
    assert.ok(
      probe.port === admin?.name || probe.port === config.adminPort,
      `${name} probes port ${probe.port}, not the admin port ${config.adminPort} (${admin?.name})`,
    );
  }
  const [service] = m.all("Service") as unknown as IService[];
  const servicePort = service?.spec?.ports?.[0];
  assert.equal(
    servicePort?.appProtocol,
    undefined,
    "no kubernetes.io/h2c: the pods speak TLS",
  );
  const policy = m.one("BackendTLSPolicy") as unknown as {
    spec: {
      targetRefs: { kind: string; name: string; sectionName?: string }[];
    };
  };
  assert.deepEqual(policy.spec.targetRefs, [
    {
      group: "",
      kind: "Service",
      name: service?.metadata?.name,
      sectionName: servicePort?.name,
    },
  ]);
});

test("Each probe of the TLS overlay, sent as the kubelet sends it, gets 200 from a server running the overlay's settings (certificate files where the Secret is mounted), whose API port speaks TLS only; readiness turns 503 once a drain begins, liveness stays 200", async (t) => {
  const m = new Manifests(await kustomizeBuild(t, tlsDir));
  const config = serverConfig(await withSecretFiles(t, m));
  assert.ok(config.tls, "the overlay's settings turn TLS on");
  const server = await startConfigured(t, config);
  assert.match(server.url, /^https:/);
  const adminUrl = new URL(server.metricsUrl ?? "").origin;
  // What the base's gRPC probe would do: cleartext HTTP/2 to the API port, refused.
  const health = createClient(
    Health,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }),
  );
  await assert.rejects(health.check({ service: "" }));
  const status = async (probePath: string) =>
    (await fetch(`${adminUrl}${probePath}`)).status;
  for (const [name, probe] of httpProbes(m)) {
    assert.equal(await status(probe.path), 200, `${name} while serving`);
  }
  server.status.set(false);
  const after = Object.fromEntries(
    await Promise.all(
      httpProbes(m).map(
        async ([name, probe]) => [name, await status(probe.path)] as const,
      ),
    ),
  );
  assert.deepEqual(after, {
    startupProbe: 200,
    readinessProbe: 503,
    livenessProbe: 200,
  });
});
