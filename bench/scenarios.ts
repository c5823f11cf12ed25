/**
 * The benchmark's scenarios: each a protocol, a codec, a kind of call and an
 * HTTP version, and the request its load generator sends, pre-encoded, the
 * same for every server. The probe (bench/probe.ts), the benchmark
 * (bench/run.ts) and the profiler (bench/profile.ts) all take their requests
 * from here.
 */
import {
  grpcFrame,
  requestBytes,
  requestJson,
  streamReplyTexts,
  unaryReplyText,
} from "./wire.js";

/** gRPC needs HTTP/2 (its status is in HTTP trailers); gRPC-Web and Connect speak both. */
export type HttpVersion = "h2" | "h1";
export type Protocol = "grpc" | "grpc-web" | "connect";
export type Codec = "proto" | "json";
/** SayHello, StreamHello (five replies) or Chat (bidi, one reply per message). */
export type Kind = "unary" | "stream" | "chat";

export interface ScenarioSpec {
  protocol: Protocol;
  codec: Codec;
  kind: Kind;
  http: HttpVersion;
}

/**
 * Every scenario, in the order each server runs them: gRPC unary first, so
 * that the peak RSS read after it is the peak under unary load. The names are
 * those BENCH_SCENARIOS takes; the four first keep their older names.
 */
export const scenarios = {
  "grpc-unary": { protocol: "grpc", codec: "proto", kind: "unary", http: "h2" },
  "connect-unary": {
    protocol: "connect",
    codec: "proto",
    kind: "unary",
    http: "h2",
  },
  "connect-json-unary": {
    protocol: "connect",
    codec: "json",
    kind: "unary",
    http: "h2",
  },
  "grpc-web-unary": {
    protocol: "grpc-web",
    codec: "proto",
    kind: "unary",
    http: "h2",
  },
  "connect-unary-h1": {
    protocol: "connect",
    codec: "proto",
    kind: "unary",
    http: "h1",
  },
  "connect-json-unary-h1": {
    protocol: "connect",
    codec: "json",
    kind: "unary",
    http: "h1",
  },
  "grpc-web-unary-h1": {
    protocol: "grpc-web",
    codec: "proto",
    kind: "unary",
    http: "h1",
  },
  stream: { protocol: "grpc", codec: "proto", kind: "stream", http: "h2" },
  "connect-stream": {
    protocol: "connect",
    codec: "proto",
    kind: "stream",
    http: "h2",
  },
  "connect-json-stream": {
    protocol: "connect",
    codec: "json",
    kind: "stream",
    http: "h2",
  },
  "grpc-web-stream": {
    protocol: "grpc-web",
    codec: "proto",
    kind: "stream",
    http: "h2",
  },
  "connect-stream-h1": {
    protocol: "connect",
    codec: "proto",
    kind: "stream",
    http: "h1",
  },
  "connect-json-stream-h1": {
    protocol: "connect",
    codec: "json",
    kind: "stream",
    http: "h1",
  },
  "grpc-web-stream-h1": {
    protocol: "grpc-web",
    codec: "proto",
    kind: "stream",
    http: "h1",
  },
  chat: { protocol: "grpc", codec: "proto", kind: "chat", http: "h2" },
} as const satisfies Record<string, ScenarioSpec>;

export type Scenario = keyof typeof scenarios;
export const allScenarios = Object.keys(scenarios) as Scenario[];

/** The names of the scenarios in a comma list (BENCH_SCENARIOS), checked. */
export function scenarioList(text: string): Scenario[] {
  const names = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const unknown = names.filter((s) => !(s in scenarios));
  if (unknown.length > 0) {
    throw new Error(
      `unknown scenario(s) ${unknown.join(", ")}; known: ${allScenarios.join(", ")}`,
    );
  }
  return names as Scenario[];
}

const protocolNames: Record<Protocol, string> = {
  grpc: "gRPC",
  "grpc-web": "gRPC-Web",
  connect: "Connect",
};
const kindNames: Record<Kind, string> = {
  unary: "unary",
  stream: "StreamHello",
  chat: "bidi Chat",
};

/** How the table names a scenario, e.g. "Connect JSON unary (h1)". */
export function labelOf(key: Scenario): string {
  const s: ScenarioSpec = scenarios[key];
  const codec =
    s.protocol === "connect" ? ` ${s.codec === "json" ? "JSON" : "proto"}` : "";
  return `${protocolNames[s.protocol]}${codec} ${kindNames[s.kind]} (${s.http})`;
}

/** What a scenario's rate counts: calls, or for streams the server's messages. */
export function unitOf(key: Scenario): "req/s" | "msg/s" {
  return scenarios[key].kind === "unary" ? "req/s" : "msg/s";
}

/** Messages a call of the scenario answers with: the rate of a stream counts its messages. */
export function repliesPerCall(key: Scenario): number {
  return scenarios[key].kind === "stream" ? streamReplyTexts.length : 1;
}

/** The replies a call must get, in order (a Chat call's probe sends one message). */
export function expectedReplies(key: Scenario): readonly string[] {
  return scenarios[key].kind === "stream" ? streamReplyTexts : [unaryReplyText];
}

/** A pre-encoded request. */
export interface BenchRequest {
  path: string;
  headers: Record<string, string>;
  body: Uint8Array;
}

const paths: Record<Kind, string> = {
  unary: "/Greeter/SayHello",
  stream: "/Greeter/StreamHello",
  chat: "/Greeter/Chat",
};

/**
 * The request a scenario's load generator sends, with the headers a client of
 * the protocol sends: gRPC's `te: trailers`, gRPC-Web's `x-grpc-web`,
 * Connect's `connect-protocol-version`. Connect unary sends the bare message,
 * Connect streaming and both gRPCs one length-prefixed message.
 */
export function requestOf(key: Scenario): BenchRequest {
  const s: ScenarioSpec = scenarios[key];
  const message = s.codec === "json" ? requestJson() : requestBytes();
  const path = paths[s.kind];
  switch (s.protocol) {
    case "grpc":
      return {
        path,
        headers: { "content-type": "application/grpc", te: "trailers" },
        body: grpcFrame(message),
      };
    case "grpc-web":
      return {
        path,
        headers: {
          "content-type": "application/grpc-web+proto",
          "x-grpc-web": "1",
        },
        body: grpcFrame(message),
      };
    case "connect":
      return s.kind === "unary"
        ? {
            path,
            headers: {
              "content-type": `application/${s.codec}`,
              "connect-protocol-version": "1",
            },
            body: message,
          }
        : {
            path,
            headers: {
              "content-type": `application/connect+${s.codec}`,
              "connect-protocol-version": "1",
            },
            body: grpcFrame(message),
          };
  }
}
