import * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { HelloReplySchema } from "../gen/helloworld_pb.js";
import { benchName, grpcFrame, requestBytes } from "./wire.js";

/** A benchmark scenario's call, as the load generators send it. */
export type ProbeKind = "grpc-unary" | "connect-unary" | "stream" | "chat";

const expected: Record<ProbeKind, string[]> = {
  "grpc-unary": [`Hello, ${benchName}!`],
  "connect-unary": [`Hello, ${benchName}!`],
  stream: [0, 1, 2, 3, 4].map((i) => `Hello ${benchName}, message ${i}`),
  chat: [`Hello, ${benchName}!`],
};

/**
 * Make one call the way the load generator will and check the answer, so a
 * benchmark never reports the speed of an error (h2load only sees HTTP status
 * 200, not grpc-status).
 */
export async function probe(
  url: string,
  kind: ProbeKind,
  headers: Record<string, string> = {},
): Promise<void> {
  const session = http2.connect(url);
  try {
    const isGrpc = kind !== "connect-unary";
    const path =
      kind === "stream"
        ? "/Greeter/StreamHello"
        : kind === "chat"
          ? "/Greeter/Chat"
          : "/Greeter/SayHello";
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": isGrpc ? "application/grpc" : "application/proto",
      ...(isGrpc ? { te: "trailers" } : {}),
      ...headers,
    });
    const body = isGrpc ? grpcFrame(requestBytes()) : requestBytes();
    stream.end(body);
    const chunks: Buffer[] = [];
    let status = 0;
    let grpcStatus: string | undefined;
    stream.on("response", (headers) => {
      status = Number(headers[":status"]);
      grpcStatus ??= headers["grpc-status"] as string | undefined;
    });
    stream.on("trailers", (trailers) => {
      grpcStatus = trailers["grpc-status"] as string | undefined;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    await new Promise<void>((resolve, reject) => {
      const bound = setTimeout(
        () => reject(new Error(`${kind} probe timed out`)),
        10_000,
      );
      stream.once("close", () => {
        clearTimeout(bound);
        resolve();
      });
      stream.once("error", reject);
    });
    const data = Buffer.concat(chunks);
    const messages: string[] = [];
    if (isGrpc) {
      for (let i = 0; i + 5 <= data.length; ) {
        const len = data.readUInt32BE(i + 1);
        messages.push(
          fromBinary(HelloReplySchema, data.subarray(i + 5, i + 5 + len))
            .message,
        );
        i += 5 + len;
      }
    } else {
      messages.push(fromBinary(HelloReplySchema, data).message);
    }
    const ok =
      status === 200 &&
      (!isGrpc || grpcStatus === "0") &&
      JSON.stringify(messages) === JSON.stringify(expected[kind]);
    if (!ok) {
      throw new Error(
        `${kind} probe of ${url} got HTTP ${status}, grpc-status ${grpcStatus}, messages ${JSON.stringify(messages)}`,
      );
    }
  } finally {
    session.close();
  }
}
