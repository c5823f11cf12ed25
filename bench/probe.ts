/**
 * Make one call of a scenario the way its load generator will and check the
 * answer, so that a benchmark never reports the speed of an error: h2load
 * only sees the HTTP status, and gRPC, gRPC-Web and Connect streams answer
 * HTTP 200 whatever their outcome (gRPC in its trailers, gRPC-Web and Connect
 * streams in the body's last frame).
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { HelloReplySchema } from "../gen/helloworld_pb.js";
import {
  type BenchRequest,
  expectedReplies,
  requestOf,
  type Scenario,
  type ScenarioSpec,
  scenarios,
} from "./scenarios.js";
import {
  connectEndStreamFlag,
  grpcWebTrailersFlag,
  splitFrames,
} from "./wire.js";

/** An HTTP answer, whole. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  trailers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** What an answer says: the replies' texts, and "ok" or what went wrong. */
export interface Reading {
  messages: string[];
  outcome: string;
}

/** Call `url` with a scenario's request (and `headers`, such as a token) and throw unless the answer is the right one. */
export async function probe(
  url: string,
  key: Scenario,
  headers: Record<string, string> = {},
): Promise<void> {
  const spec: ScenarioSpec = scenarios[key];
  const base = requestOf(key);
  const request = { ...base, headers: { ...base.headers, ...headers } };
  const answer = await (spec.http === "h2" ? callH2 : callH1)(url, request);
  let reading: Reading;
  try {
    reading = readAnswer(spec, answer);
  } catch (e) {
    reading = { messages: [], outcome: `unreadable body: ${e}` };
  }
  const expected = expectedReplies(key);
  if (
    answer.status !== 200 ||
    reading.outcome !== "ok" ||
    JSON.stringify(reading.messages) !== JSON.stringify(expected)
  ) {
    throw new Error(
      `${key} probe of ${url} got HTTP ${answer.status}, ${reading.outcome}, messages ${JSON.stringify(reading.messages)} (expected ${JSON.stringify(expected)})`,
    );
  }
}

/** Read an answer by its protocol's rules. */
export function readAnswer(spec: ScenarioSpec, answer: Answer): Reading {
  const decode = (data: Buffer) =>
    spec.codec === "json"
      ? fromJsonString(HelloReplySchema, data.toString("utf8")).message
      : fromBinary(HelloReplySchema, data).message;
  if (
    spec.protocol === "connect" &&
    (spec.kind === "unary" || spec.kind === "get")
  ) {
    // A Connect unary error is a non-200 status with a JSON error body.
    return answer.status === 200
      ? { messages: [decode(answer.body)], outcome: "ok" }
      : { messages: [], outcome: `error ${answer.body.toString("utf8")}` };
  }
  const frames = splitFrames(answer.body);
  const messages = frames
    .filter((f) => f.flags === 0)
    .map((f) => decode(f.data));
  const last = frames[frames.length - 1];
  if (spec.protocol === "grpc") {
    // Trailers, or the headers of a trailers-only answer.
    const status =
      answer.trailers["grpc-status"] ?? answer.headers["grpc-status"];
    return {
      messages,
      outcome: status === "0" ? "ok" : `grpc-status ${status}`,
    };
  }
  if (spec.protocol === "grpc-web") {
    const trailers =
      last !== undefined && last.flags & grpcWebTrailersFlag
        ? last.data.toString("latin1")
        : undefined;
    const status =
      trailers === undefined
        ? answer.headers["grpc-status"]
        : /^grpc-status:\s*(\d+)\s*$/im.exec(trailers)?.[1];
    return {
      messages,
      outcome: status === "0" ? "ok" : `grpc-status ${status}`,
    };
  }
  if (last === undefined || !(last.flags & connectEndStreamFlag)) {
    return { messages, outcome: "no end-of-stream message" };
  }
  const end = JSON.parse(last.data.toString("utf8")) as { error?: unknown };
  return {
    messages,
    outcome:
      end.error === undefined ? "ok" : `error ${JSON.stringify(end.error)}`,
  };
}

function callH2(url: string, request: BenchRequest): Promise<Answer> {
  const session = http2.connect(url);
  const stream = session.request({
    ":method": request.body === undefined ? "GET" : "POST",
    ":path": request.path,
    ...request.headers,
  });
  stream.end(request.body);
  const answer: Answer = {
    status: 0,
    headers: {},
    trailers: {},
    body: Buffer.alloc(0),
  };
  const chunks: Buffer[] = [];
  stream.on("response", (headers) => {
    answer.status = Number(headers[":status"]);
    answer.headers = headers;
  });
  stream.on("trailers", (trailers) => {
    answer.trailers = trailers;
  });
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  return bounded(
    request,
    new Promise<Answer>((resolve, reject) => {
      stream.once("close", () =>
        resolve({ ...answer, body: Buffer.concat(chunks) }),
      );
      stream.once("error", reject);
      session.once("error", reject);
    }),
  ).finally(() => session.close());
}

function callH1(url: string, request: BenchRequest): Promise<Answer> {
  const req = http.request(`${url}${request.path}`, {
    method: request.body === undefined ? "GET" : "POST",
    headers:
      request.body === undefined
        ? request.headers
        : { ...request.headers, "content-length": request.body.length },
    agent: false,
  });
  req.end(request.body);
  return bounded(
    request,
    new Promise<Answer>((resolve, reject) => {
      req.once("error", reject);
      req.once("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.once("error", reject);
        res.once("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            trailers: res.trailers,
            body: Buffer.concat(chunks),
          }),
        );
      });
    }),
  ).finally(() => req.destroy());
}

/** An answer within 10 s, or an error naming the call. */
function bounded(
  request: BenchRequest,
  answer: Promise<Answer>,
): Promise<Answer> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`probe of ${request.path} timed out after 10 s`)),
      10_000,
    );
  });
  return Promise.race([answer, timeout]).finally(() => clearTimeout(timer));
}
