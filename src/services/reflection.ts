import {
  create,
  createFileRegistry,
  type DescFile,
  type DescService,
  type FileRegistry,
  toBinary,
} from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { ServerReflection as ServerReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

import { quote } from "./quote.js";

/**
 * A reflection request, as both grpc.reflection.v1 and v1alpha define it
 * (the two protos differ only in their package).
 */
export interface ReflectionRequest {
  host: string;
  messageRequest:
    | {
        case:
          | "fileByFilename"
          | "fileContainingSymbol"
          | "allExtensionNumbersOfType"
          | "listServices";
        value: string;
      }
    | {
        case: "fileContainingExtension";
        value: { containingType: string; extensionNumber: number };
      }
    | { case: undefined; value?: undefined };
}

/** The answer to one reflection request, without the fields that echo the request. */
export type ReflectionAnswer =
  | {
      case: "fileDescriptorResponse";
      value: { fileDescriptorProto: Uint8Array[] };
    }
  | {
      case: "allExtensionNumbersResponse";
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | {
      case: "listServicesResponse";
      value: { service: { name: string }[] };
    }
  | {
      case: "errorResponse";
      value: { errorCode: number; errorMessage: string };
    };

/**
 * Register gRPC server reflection, grpc.reflection.v1 and its predecessor
 * v1alpha (still the only one some clients speak), on `router`.
 *
 * What it describes is read from the router itself on the first request, so
 * it is always exactly what the router serves, reflection included, with no
 * second list to keep in step.
 */
export function registerReflection(router: ConnectRouter): void {
  let index: ReflectionIndex | undefined;
  const answer = (req: ReflectionRequest) => {
    index ??= new ReflectionIndex(router.handlers.map((h) => h.service));
    return index.answer(req);
  };
  // v1 and v1alpha differ only in their package, so one generator serves both.
  async function* serverReflectionInfo(
    requests: AsyncIterable<ReflectionRequest>,
  ) {
    for await (const req of requests) {
      yield {
        validHost: req.host,
        originalRequest: req,
        messageResponse: answer(req),
      };
    }
  }
  router.service(ServerReflectionV1, { serverReflectionInfo });
  router.service(ServerReflectionV1alpha, { serverReflectionInfo });
}

/**
 * The descriptors of a set of services and every file they depend on, and the
 * answers to reflection requests about them.
 */
export class ReflectionIndex {
  /** Fully-qualified service names, in the order they were given. */
  readonly services: readonly string[];
  readonly #registry: FileRegistry;
  /** Every symbol a client may ask for (types, fields, enum values, methods...) → the file defining it. */
  readonly #symbols = new Map<string, DescFile>();
  readonly #encoded = new Map<string, Uint8Array>();

  constructor(services: Iterable<DescService>) {
    const unique = [...new Set(services)];
    this.services = unique.map((s) => s.typeName);
    // Dependencies first: a FileDescriptorSet is read in order.
    const files = new Map<string, DescFile>();
    const visit = (file: DescFile) => {
      if (files.has(file.proto.name)) return;
      for (const dep of file.dependencies) visit(dep);
      files.set(file.proto.name, file);
    };
    for (const service of unique) visit(service.file);
    this.#registry = createFileRegistry(
      create(FileDescriptorSetSchema, {
        file: [...files.values()].map((f) => f.proto),
      }),
    );
    for (const desc of this.#registry) {
      this.#symbols.set(desc.typeName, desc.file);
      switch (desc.kind) {
        case "message":
          for (const field of desc.fields) {
            this.#symbols.set(`${desc.typeName}.${field.name}`, desc.file);
          }
          for (const oneof of desc.oneofs) {
            this.#symbols.set(`${desc.typeName}.${oneof.name}`, desc.file);
          }
          break;
        case "enum": {
          // Enum values are scoped like C++ enumerators: siblings of their enum.
          const scope = desc.typeName.slice(0, -desc.name.length);
          for (const value of desc.values) {
            this.#symbols.set(`${scope}${value.name}`, desc.file);
          }
          break;
        }
        case "service":
          for (const method of desc.methods) {
            this.#symbols.set(`${desc.typeName}.${method.name}`, desc.file);
          }
          break;
        case "extension":
          break;
      }
    }
  }

  /** Answer one request; what cannot be answered is an error_response, never a failed stream. */
  answer(req: ReflectionRequest): ReflectionAnswer {
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: { service: this.services.map((name) => ({ name })) },
        };
      case "fileByFilename": {
        const file = this.#registry.getFile(r.value);
        return file
          ? this.#files(file)
          : notFound(`file ${quote(r.value)} not found`);
      }
      case "fileContainingSymbol": {
        const file = this.#symbols.get(stripDot(r.value));
        return file
          ? this.#files(file)
          : notFound(`symbol ${quote(r.value)} not found`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = r.value;
        const message = this.#registry.getMessage(stripDot(containingType));
        if (!message) {
          return notFound(`type ${quote(containingType)} not found`);
        }
        const ext = this.#registry.getExtensionFor(message, extensionNumber);
        return ext
          ? this.#files(ext.file)
          : notFound(
              `extension ${extensionNumber} of ${quote(containingType)} not found`,
            );
      }
      case "allExtensionNumbersOfType": {
        const typeName = stripDot(r.value);
        const message = this.#registry.getMessage(typeName);
        if (!message) {
          return notFound(`type ${quote(r.value)} not found`);
        }
        const numbers: number[] = [];
        for (const desc of this.#registry) {
          if (desc.kind === "extension" && desc.extendee === message) {
            numbers.push(desc.number);
          }
        }
        return {
          case: "allExtensionNumbersResponse",
          value: {
            baseTypeName: typeName,
            extensionNumber: numbers.sort((a, b) => a - b),
          },
        };
      }
      case undefined:
        // A request kind from a newer version of the protocol, or none at all.
        return {
          case: "errorResponse",
          value: {
            errorCode: Code.Unimplemented,
            errorMessage: "unknown or missing message_request",
          },
        };
    }
  }

  /**
   * The file first, then every file it depends on, directly or not, so a
   * client can build the descriptor from this one answer (as grpc-java does;
   * sending each file once per stream, as grpc-go does, saves bytes but
   * breaks clients that do not cache).
   */
  #files(file: DescFile): ReflectionAnswer {
    const seen = new Set<DescFile>();
    const visit = (f: DescFile) => {
      if (seen.has(f)) return;
      seen.add(f);
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return {
      case: "fileDescriptorResponse",
      value: { fileDescriptorProto: [...seen].map((f) => this.#encode(f)) },
    };
  }

  #encode(file: DescFile): Uint8Array {
    let bytes = this.#encoded.get(file.proto.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.#encoded.set(file.proto.name, bytes);
    }
    return bytes;
  }
}

function notFound(message: string): ReflectionAnswer {
  return {
    case: "errorResponse",
    value: { errorCode: Code.NotFound, errorMessage: message },
  };
}

/** Some clients send fully-qualified names with protobuf's leading dot. */
function stripDot(name: string): string {
  return name.startsWith(".") ? name.slice(1) : name;
}
