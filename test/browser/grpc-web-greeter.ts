/**
 * The Greeter's client for Google's grpc-web runtime (the npm package
 * `grpc-web`), as protoc-gen-grpc-web generates it from helloworld.proto:
 * one MethodDescriptor per method and a client that calls the runtime's
 * rpcCall and serverStreaming. Written out here because
 * protoc-gen-grpc-web's binary cannot be had through npm (its npm package
 * downloads it from GitHub in an install script; docs/calling.md says
 * more), with the messages serialized by this project's protobuf-es code
 * where generated code would use google-protobuf's classes.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type ClientReadableStream,
  GrpcWebClientBase,
  type Metadata,
  MethodDescriptor,
  MethodType,
  type RpcError,
} from "grpc-web";
import {
  type HelloReply,
  HelloReplySchema,
  type HelloRequest,
  HelloRequestSchema,
} from "../../gen/helloworld_pb.js";

/** grpc-web's two modes: "text" (grpcwebtext, its default) and "binary" (grpcweb). */
export type Format = "text" | "binary";

// The classes a descriptor names; grpc-web only reads the functions below.
class Request {}
class Reply {}

const serialize = (req: HelloRequest) => toBinary(HelloRequestSchema, req);
const deserialize = (bytes: Uint8Array) => fromBinary(HelloReplySchema, bytes);

const sayHelloDescriptor = new MethodDescriptor<HelloRequest, HelloReply>(
  "/Greeter/SayHello",
  MethodType.UNARY,
  Request as never,
  Reply as never,
  serialize,
  deserialize,
);

const streamHelloDescriptor = new MethodDescriptor<HelloRequest, HelloReply>(
  "/Greeter/StreamHello",
  MethodType.SERVER_STREAMING,
  Request as never,
  Reply as never,
  serialize,
  deserialize,
);

/** The Greeter's unary and server-streaming methods, the ones a browser can call. */
export class GreeterClient {
  readonly #client: GrpcWebClientBase;
  readonly #hostname: string;

  constructor(hostname: string, format: Format) {
    this.#hostname = hostname;
    this.#client = new GrpcWebClientBase({ format });
  }

  sayHello(
    name: string,
    callback: (err: RpcError | null, res: HelloReply) => void,
    metadata: Metadata = {},
  ): ClientReadableStream<HelloReply> {
    return this.#client.rpcCall(
      `${this.#hostname}/Greeter/SayHello`,
      create(HelloRequestSchema, { name }),
      metadata,
      sayHelloDescriptor,
      callback,
    );
  }

  streamHello(
    name: string,
    metadata: Metadata = {},
  ): ClientReadableStream<HelloReply> {
    return this.#client.serverStreaming(
      `${this.#hostname}/Greeter/StreamHello`,
      create(HelloRequestSchema, { name }),
      metadata,
      streamHelloDescriptor,
    );
  }
}
