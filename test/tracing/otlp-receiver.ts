import { execFile } from "node:child_process";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { promisify } from "node:util";
import {
  createFileRegistry,
  type DescMessage,
  fromBinary,
  fromJson,
  type JsonObject,
  type JsonValue,
  toJson,
} from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { repoRoot } from "../support/child.js";

/** A span as the receiver got it, ids in hex as the W3C trace context writes them. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** Empty for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** As the protocol names it, such as SPAN_KIND_SERVER. */
  readonly kind: string;
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  /** STATUS_CODE_UNSET, STATUS_CODE_OK or STATUS_CODE_ERROR, and a message. */
  readonly status: { readonly code: string; readonly message: string };
  readonly events: readonly { readonly name: string }[];
  readonly startTimeUnixNano: bigint;
  readonly endTimeUnixNano: bigint;
  /** The resource's attributes, such as service.name. */
  readonly resource: Readonly<Record<string, AttributeValue>>;
  /** The instrumentation scope's name. */
  readonly scope: string;
}

export type AttributeValue = string | number | boolean;

/** One export request, as it came. */
export interface ReceivedRequest {
  readonly path: string;
  readonly contentType: string;
  readonly contentEncoding: string | undefined;
  readonly headers: IncomingMessage["headers"];
}

const requestType =
  "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest";
let schema: Promise<DescMessage> | undefined;

/**
 * The OTLP trace messages, from the official .proto files
 * (test/fixtures/opentelemetry-proto) built by the project's buf into a
 * descriptor set: once per test process.
 */
function otlpSchema(): Promise<DescMessage> {
  schema ??= promisify(execFile)(
    join(repoRoot, "node_modules/.bin/buf"),
    ["build", "test/fixtures/opentelemetry-proto", "-o", "-#format=binpb"],
    { cwd: repoRoot, encoding: "buffer", maxBuffer: 16 * 1024 * 1024 },
  ).then(({ stdout }) => {
    const registry = createFileRegistry(
      fromBinary(FileDescriptorSetSchema, stdout),
    );
    const desc = registry.getMessage(requestType);
    if (desc === undefined) {
      throw new Error(`no ${requestType} in the OTLP protos`);
    }
    return desc;
  });
  return schema;
}

/**
 * An OTLP/HTTP collector for tests: a node:http server that takes
 * POST /v1/traces in protobuf (application/x-protobuf) or JSON
 * (application/json), decodes it with the protocol's official definitions,
 * and keeps every span. With `hold`, it reads requests but never answers
 * them, as a collector that hangs.
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly requests: ReceivedRequest[] = [];
  /** Decoding failures: a test expects none. */
  readonly errors: Error[] = [];
  #changed: (() => void)[] = [];

  private constructor(
    readonly server: Server,
    /** The collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it. */
    readonly url: string,
  ) {}

  /** Start one for the test, closed after it. */
  static async start(
    t: TestContext,
    options: { hold?: boolean } = {},
  ): Promise<OtlpReceiver> {
    const request = await otlpSchema();
    const server = createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const receiver = new OtlpReceiver(
      server,
      `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    );
    t.after(() => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    server.on("request", async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const contentType = (req.headers["content-type"] ?? "").split(";")[0];
      receiver.requests.push({
        path: req.url ?? "",
        contentType,
        contentEncoding: req.headers["content-encoding"],
        headers: req.headers,
      });
      if (options.hold) {
        receiver.#notify();
        return;
      }
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      try {
        const body = await inflated(Buffer.concat(chunks), req);
        const message =
          contentType === "application/json"
            ? fromJson(request, hexIdsToBase64(JSON.parse(body.toString())))
            : fromBinary(request, body);
        receiver.spans.push(
          ...spansOf(toJson(request, message, { alwaysEmitImplicit: true })),
        );
      } catch (e) {
        receiver.errors.push(e as Error);
        res.writeHead(400).end();
        receiver.#notify();
        return;
      }
      // An empty ExportTraceServiceResponse: full success.
      res.writeHead(200, { "content-type": contentType });
      res.end(contentType === "application/json" ? "{}" : Buffer.alloc(0));
      receiver.#notify();
    });
    return receiver;
  }

  #taken = 0;

  /**
   * The next span this test has not taken yet, in the order they came: calls
   * made one after the other are exported in that order. Rejects after
   * `timeoutMs`, a failure bound, not a wait.
   */
  async nextSpan(timeoutMs = 10_000): Promise<ReceivedSpan> {
    const [span] = await this.#waitFor(
      () =>
        this.spans.length > this.#taken
          ? this.spans.slice(this.#taken, this.#taken + 1)
          : undefined,
      timeoutMs,
      () => `span number ${this.#taken + 1}`,
    );
    this.#taken++;
    return span as ReceivedSpan;
  }

  /** Resolve once `count` export requests have come, answered or not. */
  async waitForRequests(count: number, timeoutMs = 10_000): Promise<void> {
    await this.#waitFor(
      () => (this.requests.length >= count ? true : undefined),
      timeoutMs,
      () => `${count} export request(s)`,
    );
  }

  #waitFor<T>(
    check: () => T | undefined,
    timeoutMs: number,
    what: () => string,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#changed = this.#changed.filter((f) => f !== onChange);
        reject(
          new Error(
            `no ${what()} in ${timeoutMs} ms; got ${this.spans.length} span(s): ${JSON.stringify(this.spans.map((s) => [s.name, s.attributes]))}; errors: ${this.errors.join("; ")}`,
          ),
        );
      }, timeoutMs);
      const onChange = () => {
        const found = check();
        if (found === undefined) return;
        clearTimeout(timer);
        this.#changed = this.#changed.filter((f) => f !== onChange);
        resolve(found);
      };
      this.#changed.push(onChange);
      onChange();
    });
  }

  #notify(): void {
    for (const f of [...this.#changed]) f();
  }
}

async function inflated(body: Buffer, req: IncomingMessage): Promise<Buffer> {
  if (req.headers["content-encoding"] !== "gzip") return body;
  const { gunzipSync } = await import("node:zlib");
  return gunzipSync(body);
}

/**
 * OTLP/JSON writes trace and span ids in hex, where protobuf's JSON mapping
 * has base64 for bytes (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding):
 * turn them into what fromJson reads.
 */
function hexIdsToBase64(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(hexIdsToBase64);
  if (value === null || typeof value !== "object") return value;
  const out: JsonObject = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] =
      /^(traceId|spanId|parentSpanId)$/.test(key) && typeof v === "string"
        ? Buffer.from(v, "hex").toString("base64")
        : hexIdsToBase64(v);
  }
  return out;
}

/** The spans of an ExportTraceServiceRequest in protobuf's JSON mapping. */
function spansOf(request: JsonValue): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of list(field(request, "resourceSpans"))) {
    const resource = attributesOf(field(field(rs, "resource"), "attributes"));
    for (const ss of list(field(rs, "scopeSpans"))) {
      const scope = String(field(field(ss, "scope"), "name") ?? "");
      for (const s of list(field(ss, "spans"))) {
        const status = field(s, "status");
        spans.push({
          traceId: hex(field(s, "traceId")),
          spanId: hex(field(s, "spanId")),
          parentSpanId: hex(field(s, "parentSpanId")),
          name: String(field(s, "name")),
          kind: String(field(s, "kind")),
          attributes: attributesOf(field(s, "attributes")),
          status: {
            code: String(field(status, "code") ?? "STATUS_CODE_UNSET"),
            message: String(field(status, "message") ?? ""),
          },
          events: list(field(s, "events")).map((e) => ({
            name: String(field(e, "name")),
          })),
          startTimeUnixNano: BigInt(String(field(s, "startTimeUnixNano"))),
          endTimeUnixNano: BigInt(String(field(s, "endTimeUnixNano"))),
          resource,
          scope,
        });
      }
    }
  }
  return spans;
}

function field(
  value: JsonValue | undefined,
  name: string,
): JsonValue | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? value[name]
    : undefined;
}

function list(value: JsonValue | undefined): JsonValue[] {
  return Array.isArray(value) ? value : [];
}

function hex(base64: JsonValue | undefined): string {
  return Buffer.from(String(base64 ?? ""), "base64").toString("hex");
}

/** KeyValue list to a record; an AnyValue's one set field is its value (int64 comes as a string). */
function attributesOf(
  keyValues: JsonValue | undefined,
): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const kv of list(keyValues)) {
    const v = field(kv, "value");
    const key = String(field(kv, "key"));
    const int = field(v, "intValue");
    const set =
      int !== undefined
        ? Number(int)
        : (field(v, "stringValue") ??
          field(v, "boolValue") ??
          field(v, "doubleValue"));
    if (
      typeof set === "string" ||
      typeof set === "number" ||
      typeof set === "boolean"
    ) {
      out[key] = set;
    }
  }
  return out;
}
