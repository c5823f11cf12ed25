/**
 * Surviving mutants that are not worth a test, each with its reason: ones
 * equivalent to the original (no caller can tell them apart), and ones whose
 * only effect is speed or memory. A survivor not listed here is a gap in
 * the tests, and the summary says so.
 *
 * A mutant is matched by its file, the source lines it changes (`code` is a
 * fragment of them; whitespace does not count), and, where that is not
 * enough, its mutator and replacement. Code is matched rather than line
 * numbers, so entries survive edits elsewhere.
 */
export interface Explained {
  /** The source file, from the repository root. */
  readonly file: string;
  /** Stryker's mutator, such as ConditionalExpression. @default any mutator */
  readonly mutator?: string;
  /** A fragment of the source lines the mutant changes. */
  readonly code: string;
  /** The mutant's replacement, when `code` and `mutator` match several. */
  readonly replacement?: string;
  /** Why no test kills it. */
  readonly reason: string;
}

export const explained: readonly Explained[] = [
  {
    file: "src/fast-path/call.ts",
    mutator: "ConditionalExpression",
    code: "if (this.#timer !== undefined) clearTimeout(this.#timer);",
    reason:
      "A deadline timer left running fires into a call that has ended, where end() does nothing: it costs a timer until the deadline, nothing a client or handler sees.",
  },
  {
    file: "src/fast-path/call.ts",
    mutator: "EqualityOperator",
    code: "if (this.#timer !== undefined) clearTimeout(this.#timer);",
    reason:
      "A deadline timer left running fires into a call that has ended, where end() does nothing: it costs a timer until the deadline, nothing a client or handler sees.",
  },
  {
    file: "src/fast-path/call.ts",
    mutator: "CallExpression",
    code: "if (this.#timer !== undefined) clearTimeout(this.#timer);",
    reason:
      "A deadline timer left running fires into a call that has ended, where end() does nothing: it costs a timer until the deadline, nothing a client or handler sees.",
  },
  {
    file: "src/fast-path/call.ts",
    mutator: "OptionalChaining",
    code: "if (this.#readsEndWithCall) this.#body?.abort(reason);",
    reason:
      "Reads end with the call only for streaming calls, whose body is made (by the gRPC handler) before they start: the body is always there when this runs.",
  },
  {
    file: "src/fast-path/call.ts",
    mutator: "ConditionalExpression",
    code: "return session === undefined",
    replacement: "false",
    reason:
      "The call's connection is read when its report starts, while its stream still has its session.",
  },
  {
    file: "src/fast-path/call.ts",
    mutator: "ConditionalExpression",
    code: "if (make === undefined || session === undefined) {",
    replacement: "false",
    reason:
      "Only a handler that first reads its context values after its stream is gone would see a difference (a TypeError instead of empty values), and its call is over by then.",
  },
  {
    file: "src/fast-path/call.ts",
    mutator: "ObjectLiteral",
    code: "stream: { session },",
    reason:
      "connectionValues keys a connection by its HTTP/2 session, or failing that its socket: the same peer and HTTP version either way.",
  },
  {
    file: "src/fast-path/call.ts",
    mutator: "StringLiteral",
    code: 'h[":scheme"] ?? "http"',
    replacement: '""',
    reason:
      "Every HTTP/2 request carries :scheme (RFC 9113, 8.3.1; Node refuses one without), so the fallback is never used.",
  },
  {
    file: "src/fast-path/connect/handler.ts",
    mutator: "ConditionalExpression",
    code: "if (output instanceof Promise) output = await output;",
    replacement: "true",
    reason:
      "Awaiting a value that is not a promise gives the same value a microtask later.",
  },
  {
    file: "src/fast-path/connect/handler.ts",
    mutator: "CallExpression",
    code: "call.end(e);",
    reason:
      "The call ends a line later anyway (call.end()); the reason only differs for a signal nobody listens to any more: the handler is done, or never ran, or the call had ended already.",
  },
  {
    file: "src/fast-path/connect/handler.ts",
    mutator: "CallExpression",
    code: "  call.end();\n  let encoding",
    reason:
      "The stream's close, right after the answer, ends the call too; nothing reads it in between.",
  },
  {
    file: "src/fast-path/connect/handler.ts",
    mutator: "ConditionalExpression",
    code: "if (encoding !== undefined) head[headerUnaryEncoding] = encoding;",
    replacement: "true",
    reason:
      "A header set to undefined is left out by Node's respond(): the same headers.",
  },
  {
    file: "src/fast-path/grpc/envelope-reader.ts",
    mutator: "ConditionalExpression",
    code: "if (this.#length < 0) {",
    replacement: "true",
    reason:
      "Reading the announced length again, once it is known and the whole envelope is in, gives the same length: only extra work.",
  },
  {
    file: "src/fast-path/grpc/envelope-reader.ts",
    mutator: "EqualityOperator",
    code: "if (this.#length < 0) {",
    replacement: "this.#length <= 0",
    reason:
      "Reading the announced length again, once it is known and the whole envelope is in, gives the same length: only extra work.",
  },
  {
    file: "src/fast-path/grpc/envelope-reader.ts",
    mutator: "ConditionalExpression",
    code: "if (this.#have === 0) this.#chunks.length = 0;",
    replacement: "false",
    reason:
      "Keeps an empty view of the last buffer until the next chunk comes: memory for a moment, the same messages.",
  },
  {
    file: "src/fast-path/grpc/envelope-reader.ts",
    mutator: "ConditionalExpression",
    code: "if (chunks.length > 1) {",
    replacement: "true",
    reason: "Joining a single chunk copies it: slower, the same bytes.",
  },
  {
    file: "src/fast-path/grpc/envelope-reader.ts",
    mutator: "EqualityOperator",
    code: "if (chunks.length > 1) {",
    replacement: "chunks.length >= 1",
    reason: "Joining a single chunk copies it: slower, the same bytes.",
  },
  {
    file: "src/fast-path/grpc/handler.ts",
    mutator: "StringLiteral",
    code: 'encoding ?? ""',
    replacement: '"Stryker was here!"',
    reason:
      "Only the key of the cached header shapes; it stays unique per encoding.",
  },
  {
    file: "src/fast-path/grpc/handler.ts",
    mutator: "ConditionalExpression",
    code: "if (shape === undefined) {",
    replacement: "true",
    reason:
      "Builds the response's header shapes again for every call instead of once: slower, the same headers.",
  },
  {
    file: "src/fast-path/grpc/handler.ts",
    mutator: "CallExpression",
    code: "shapes.set(key, shape);",
    reason:
      "Builds the response's header shapes again for every call instead of once: slower, the same headers.",
  },
  {
    file: "src/fast-path/grpc/handler.ts",
    mutator: "ConditionalExpression",
    code: "if (message instanceof Promise) message = await message;",
    replacement: "true",
    reason:
      "Awaiting a value that is not a promise gives the same value a microtask later.",
  },
  {
    file: "src/fast-path/grpc/handler.ts",
    mutator: "ConditionalExpression",
    code: "if (output instanceof Promise) output = await output;",
    replacement: "true",
    reason:
      "Awaiting a value that is not a promise gives the same value a microtask later.",
  },
  {
    file: "src/fast-path/grpc/handler.ts",
    mutator: "BooleanLiteral",
    code: "answered = true;",
    reason:
      "Then finish() runs after the unary answer as well, and returns at once: the stream has ended (writableEnded).",
  },
  {
    file: "src/fast-path/grpc/handler.ts",
    mutator: "ConditionalExpression",
    code: "} else if (!answered) {",
    replacement: "true",
    reason:
      "After a unary answer finish() returns at once (the stream has ended), and the call had ended already.",
  },
  {
    file: "src/fast-path/grpc/handler.ts",
    mutator: "CallExpression",
    code: "call.end();",
    reason:
      "The stream's close, right after the status, ends the call too; nothing reads it in between.",
  },
  {
    file: "src/fast-path/grpc/handler.ts",
    mutator: "CallExpression",
    code: "call.end(failure);",
    reason:
      "The stream's close, right after the status, ends the call too; the reason only differs for a signal nobody listens to any more (the handler is done, or the call had ended already).",
  },
  {
    file: "src/fast-path/grpc/handler.ts",
    mutator: "ConditionalExpression",
    code: "if (sent !== undefined) await sent;",
    reason:
      "Awaiting the compressed write only orders the end of this function after it: the frame is written either way, and the call has ended already.",
  },
  {
    file: "src/fast-path/grpc/handler.ts",
    mutator: "EqualityOperator",
    code: "if (sent !== undefined) await sent;",
    reason:
      "Awaiting the compressed write only orders the end of this function after it: the frame is written either way, and the call has ended already.",
  },
  {
    file: "src/fast-path/grpc/response-writer.ts",
    mutator: "LogicalOperator",
    code: "return this.#stream.destroyed || this.#stream.closed;",
    reason:
      "Node destroys an HTTP/2 stream as it closes it (a reset, a lost connection, the end): the two are never seen apart.",
  },
  {
    file: "src/fast-path/grpc/response-writer.ts",
    mutator: "LogicalOperator",
    code: "if (this.#gone || this.#stream.writableEnded) return;",
    reason:
      "A stream that goes away is closed, destroyed and writable-ended at once, so either test stops finish() the same way.",
  },
  {
    file: "src/fast-path/grpc/response-writer.ts",
    mutator: "ConditionalExpression",
    code: "if (frame === undefined) this.#stream.end();",
    replacement: "false",
    reason: "end(undefined) is end().",
  },
  {
    file: "src/fast-path/grpc/response-writer.ts",
    mutator: "StringLiteral",
    code: 'stream.off("close", done);',
    reason:
      "Only leaves a spent listener on a stream that has drained or closed.",
  },
  {
    file: "src/fast-path/grpc/response-writer.ts",
    mutator: "ConditionalExpression",
    code: "if (frame === undefined) return;",
    replacement: "false",
    reason:
      "A unary answer to a client that is gone: respond() then throws on the dead stream, which the call's failure path catches; nothing reaches anyone either way.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "ConditionalExpression",
    code: "if (interceptors.length > 0) {",
    replacement: "true",
    reason:
      "Through invokeUnaryIntercepted with no interceptors the handler is called the same way, with the same context: slower only.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "EqualityOperator",
    code: "if (interceptors.length > 0) {",
    replacement: "interceptors.length >= 0",
    reason:
      "Through invokeUnaryIntercepted with no interceptors the handler is called the same way, with the same context: slower only.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "ConditionalExpression",
    code: "if (interceptors.length === 0) {",
    replacement: "false",
    reason:
      "Through the interceptor path with none, the same handler runs with the same context, and its messages come normalized either way: slower only.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "BlockStatement",
    code: "if (interceptors.length === 0) {",
    reason:
      "Through the interceptor path with none, the same handler runs with the same context, and its messages come normalized either way: slower only.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "BooleanLiteral",
    code: "normalized: true,",
    reason:
      "Normalizing a full message again returns it as it is: slower only.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "ConditionalExpression",
    code: "return req.service === context.service &&",
    replacement: "false",
    reason:
      "A merged context carries the same values as the FastContext it is made from, so a handler cannot tell them apart.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "ConditionalExpression",
    code: "if (this.it.return === undefined)",
    reason:
      "For a handler that returns a hand-written iterator without return(); async generators, which handlers are, always have one.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "EqualityOperator",
    code: "if (this.it.return === undefined)",
    reason:
      "For a handler that returns a hand-written iterator without return(); async generators, which handlers are, always have one.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "ObjectLiteral",
    code: "return Promise.resolve({ done: true, value: v });",
    reason:
      "For a handler that returns a hand-written iterator without return(); async generators, which handlers are, always have one.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "BooleanLiteral",
    code: "return Promise.resolve({ done: true, value: v });",
    reason:
      "For a handler that returns a hand-written iterator without return(); async generators, which handlers are, always have one.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "BlockStatement",
    code: "throw(e?: unknown): Promise<IteratorResult<unknown>> {",
    reason:
      "The fast path never calls throw() on a handler's messages; it is there to complete the AsyncIterator.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "ConditionalExpression",
    code: "if (this.it.throw === undefined) return Promise.reject(e);",
    reason:
      "The fast path never calls throw() on a handler's messages; it is there to complete the AsyncIterator.",
  },
  {
    file: "src/fast-path/invoke.ts",
    mutator: "EqualityOperator",
    code: "if (this.it.throw === undefined) return Promise.reject(e);",
    reason:
      "The fast path never calls throw() on a handler's messages; it is there to complete the AsyncIterator.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "ConditionalExpression",
    code: "if (observed !== undefined) report?.received(observed);",
    replacement: "true",
    reason:
      "`observed` exists exactly when the fast path has a `report`, so either check alone decides.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "OptionalChaining",
    code: "if (observed !== undefined) report?.received(observed);",
    reason:
      "`observed` exists exactly when the fast path has a `report`, so either check alone decides.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "ConditionalExpression",
    code: "if (observed !== undefined) {",
    replacement: "true",
    reason:
      "`observed` exists exactly when the fast path has a `report`, so either check alone decides.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "OptionalChaining",
    code: "report?.sent(observed);",
    reason:
      "`observed` exists exactly when the fast path has a `report`, so either check alone decides.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "OptionalChaining",
    code: "report?.finish(observed, undefined, call.ended);",
    reason:
      "`observed` exists exactly when the fast path has a `report`, so either check alone decides.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "ConditionalExpression",
    code: "if (observed !== undefined) report?.finish(observed, error, call.ended);",
    replacement: "true",
    reason:
      "`observed` exists exactly when the fast path has a `report`, so either check alone decides.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "OptionalChaining",
    code: "if (observed !== undefined) report?.finish(observed, error, call.ended);",
    reason:
      "`observed` exists exactly when the fast path has a `report`, so either check alone decides.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "ConditionalExpression",
    code: "if (observed !== undefined) report?.sent(observed);",
    replacement: "true",
    reason:
      "`observed` exists exactly when the fast path has a `report`, so either check alone decides.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "ConditionalExpression",
    code: "if (observed !== undefined) report?.finish(observed, reason, call.ended);",
    replacement: "true",
    reason:
      "`observed` exists exactly when the fast path has a `report`, so either check alone decides.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "OptionalChaining",
    code: "if (observed !== undefined) report?.finish(observed, reason, call.ended);",
    reason:
      "`observed` exists exactly when the fast path has a `report`, so either check alone decides.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "ConditionalExpression",
    code: "observed === undefined || report === undefined",
    replacement: "false",
    reason:
      "`observed` exists exactly when the fast path has a `report`, so either check alone decides.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "LogicalOperator",
    code: "observed === undefined || report === undefined",
    reason:
      "`observed` exists exactly when the fast path has a `report`, so either check alone decides.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "ConditionalExpression",
    code: 'if (route.spec.kind !== "unary")',
    replacement: "false",
    reason:
      "runUnary is only called for unary methods; the check narrows the type for TypeScript.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "StringLiteral",
    code: "is not unary`);",
    reason:
      "runUnary is only called for unary methods; the check narrows the type for TypeScript.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "OptionalChaining",
    code: "it.return?.().catch(ignore);\n      throw e;",
    reason:
      "Only a client-streaming call's messages (its one reply) lack return(), and its call would have to end between that reply and its read: then a TypeError replaces the reason, which hideInternal turns back into the call's end reason; only a debug line differs.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "OptionalChaining",
    code: "await it.return?.().catch(ignore);",
    reason:
      "Only a client-streaming call's messages (its one reply) lack return(), and its client would have to go away just as that reply is written: it is gone, and only the log would differ.",
  },
  {
    file: "src/fast-path/request-body.ts",
    code: 'this.#stream.removeListener("end", this.#onEnd);\n    this.#onEvent();',
    reason:
      "Only leaves the end listener, which ran once, on a stream whose body has ended: Node's stream emits end once.",
  },

  {
    file: "src/fast-path/request-body.ts",
    mutator: "ConditionalExpression",
    code: "if (this.#ended || this.#closed) return;",
    replacement: "false",
    reason:
      "Dropping the rest of a body that has ended or whose stream closed does nothing: there is no rest.",
  },
  {
    file: "src/fast-path/request-body.ts",
    mutator: "LogicalOperator",
    code: "if (this.#ended || this.#closed) return;",
    reason:
      "Dropping the rest of a body that has ended or whose stream closed does nothing: there is no rest.",
  },
  {
    file: "src/fast-path/request-body.ts",
    mutator: "StringLiteral",
    code: 'this.#stream.removeListener("end", this.#onEnd);\n    this.#stream.resume();',
    reason:
      "Leaves the end listener on a stream whose rest is being dropped: it only marks the body ended.",
  },
  {
    file: "src/fast-path/request-body.ts",
    mutator: "ConditionalExpression",
    code: "return chunks.length === 1",
    replacement: "false",
    reason: "Joining a single chunk copies it: slower, the same bytes.",
  },
  {
    file: "src/fast-path/reset-error.ts",
    mutator: "ConditionalExpression",
    code: "default:",
    reason:
      "Without the default case the switch ends and the function returns undefined just the same.",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "EqualityOperator",
    code: "this.#routes.get(q < 0 ? path : path.slice(0, q))",
    replacement: "q <= 0",
    reason:
      'A :path that starts with "?" names no route either way: every route starts with "/", so neither "" nor the whole path is one.',
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "ObjectLiteral",
    code: "{ once: true },",
    reason:
      "An AbortSignal fires abort once: the listener runs once either way.",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "BooleanLiteral",
    code: "{ once: true },",
    reason:
      "An AbortSignal fires abort once: the listener runs once either way.",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "StringLiteral",
    code: 'const path = headers[":path"] ?? "";',
    replacement: '"Stryker was here!"',
    reason:
      "Every HTTP/2 request carries :path (RFC 9113, 8.3.1; Node refuses one without).",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "CallExpression",
    code: "served.catch(this.#broken(stream));",
    reason:
      "Only a bug of the fast path's own rejects `served` (every protocol error is answered to the client); none can be made without changing the code.",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "BlockStatement",
    code: "#broken(stream: ServerHttp2Stream): (e: unknown) => void {",
    reason:
      "Only a bug of the fast path's own rejects `served` (every protocol error is answered to the client); none can be made without changing the code.",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "BlockStatement",
    code: "return (e) => {",
    reason:
      "Only a bug of the fast path's own rejects `served` (every protocol error is answered to the client); none can be made without changing the code.",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "OptionalChaining",
    code: 'this.logger?.error({ err: e }, "fast path failed; stream reset");',
    reason:
      "Only a bug of the fast path's own rejects `served` (every protocol error is answered to the client); none can be made without changing the code.",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "ObjectLiteral",
    code: 'this.logger?.error({ err: e }, "fast path failed; stream reset");',
    reason:
      "Only a bug of the fast path's own rejects `served` (every protocol error is answered to the client); none can be made without changing the code.",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "StringLiteral",
    code: 'this.logger?.error({ err: e }, "fast path failed; stream reset");',
    reason:
      "Only a bug of the fast path's own rejects `served` (every protocol error is answered to the client); none can be made without changing the code.",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "CallExpression",
    code: "stream.destroy();",
    reason:
      "Only a bug of the fast path's own rejects `served` (every protocol error is answered to the client); none can be made without changing the code.",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "BlockStatement",
    code: "readonly #streamError = (e: Error): void => {",
    reason:
      "A debug line about a stream error (a reset, a write after the client left), which the call learns of from the stream's close.",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "ObjectLiteral",
    code: 'this.logger?.debug({ err: e }, "fast path: stream error");',
    reason:
      "A debug line about a stream error (a reset, a write after the client left), which the call learns of from the stream's close.",
  },
  {
    file: "src/fast-path/router.ts",
    mutator: "StringLiteral",
    code: 'this.logger?.debug({ err: e }, "fast path: stream error");',
    reason:
      "A debug line about a stream error (a reset, a write after the client left), which the call learns of from the stream's close.",
  },
  {
    file: "src/fast-path/call.ts",
    mutator: "LogicalOperator",
    code: "return this.stream.destroyed || this.stream.closed;",
    reason:
      "Node closes and destroys an HTTP/2 stream in one step (its close handler destroys it), so the two are never seen apart where `gone` is read, after an await.",
  },
  {
    file: "src/fast-path/connect/handler.ts",
    mutator: "ConditionalExpression",
    code: "if (written.header === undefined && written.trailer === undefined) {",
    replacement: "false",
    reason:
      "The general branch builds the same headers from the context (the protocol's own, content-length, encoding): slower, the same response.",
  },
  {
    file: "src/fast-path/observed.ts",
    mutator: "CallExpression",
    code: "is not unary`);",
    reason:
      "runUnary is only called for unary methods (the handlers choose it by the method's kind); the check narrows the type and catches the fast path's own bug.",
  },
  {
    file: "src/fast-path/request-body.ts",
    mutator: "CallExpression",
    code: 'this.#stream.removeListener("end", this.#onEnd);\n    this.#stream.resume();',
    reason:
      "Leaves the end listener on a stream whose rest is being dropped: it only marks the body ended, with nothing waiting.",
  },
  {
    file: "src/fast-path/request-body.ts",
    mutator: "ConditionalExpression",
    code: "contentLength === null ? Number.NaN : Number.parseInt(contentLength, 10);",
    replacement: "false",
    reason:
      'Number.parseInt(null) parses the string "null": NaN, as the first branch gives.',
  },
  {
    file: "src/fast-path/request-body.ts",
    mutator: "EqualityOperator",
    code: "const known = Number.isSafeInteger(hint) && hint >= 0;",
    replacement: "hint > 0",
    reason:
      "A content-length of 0 then counts as unknown, which reads the same empty body; a body that does not match its content-length never reaches the fast path over HTTP/2 (nghttp2 resets the stream with PROTOCOL_ERROR, RFC 9113, 8.1.1).",
  },
  {
    file: "src/config.ts",
    mutator: "ConditionalExpression",
    code: "if (e instanceof OtelConfigError) throw new ConfigError(e.message);",
    replacement: "true",
    reason:
      "loadTracingConfig throws nothing but OtelConfigError for a bad setting; anything else would be a bug of its own, which the check only keeps from being reported as a one-line setting error.",
  },
  {
    file: "src/server.ts",
    code: "config.requestTimeoutMs || Number.POSITIVE_INFINITY,",
    reason:
      "Only how often Node checks the HTTP/1.1 timeouts: every millisecond (true, false) costs CPU; without the request timeout's term (&&) a request timeout under 1 s is enforced up to one 1 s check late, within the 2 s the limits tests allow a loaded machine.",
  },
  {
    file: "src/transport/sniff.ts",
    mutator: "StringLiteral",
    code: 'const h2Preface = Buffer.from("PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n", "latin1");',
    reason:
      "The preface is ASCII: UTF-8, the default encoding, gives the same bytes.",
  },
  {
    file: "src/transport/connections.ts",
    mutator: "ConditionalExpression",
    code: "if (handingOff !== undefined) sessionSockets.set(session, handingOff);",
    replacement: "true",
    reason:
      "Storing undefined for a TLS session is the same as storing nothing: the shutdown notice looks the socket up and finds none either way.",
  },
  {
    file: "src/transport/connections.ts",
    mutator: "StringLiteral",
    code: 'res.on("finish", untrack);',
    reason:
      "Redundant with the close listener next to it: Node emits close on every response after finish (and alone for one whose client left, which the tests check).",
  },
  {
    file: "src/transport/connections.ts",
    mutator: "ConditionalExpression",
    code: "if (!stream.closed) {",
    replacement: "true",
    reason:
      "A stream the claim takes is never closed yet when the claim returns: Node closes streams asynchronously, after their frames are processed.",
  },
  {
    file: "src/transport/listener.ts",
    mutator: "ConditionalExpression",
    code: "if (value !== undefined) Object.assign(server, { [key]: value });",
    replacement: "true",
    reason:
      "src/server.ts sets every one of these settings, so none is undefined where it matters; the check only keeps the listener usable with fewer.",
  },
  {
    file: "src/transport/idle.ts",
    mutator: "CallExpression",
    code: "timer.unref();",
    reason:
      "The idle timer of a session on a listening server: the listening socket keeps the process alive anyway, and shutdown closes sessions before it returns.",
  },
  {
    file: "src/transport/idle.ts",
    code: 'session.once("close", () => clearTimeout(timer));',
    reason:
      "A timer left on a closed session fires into a GOAWAY for a session that is closed, which does nothing; it only costs a timer until then.",
  },
  {
    file: "src/transport/sniff.ts",
    mutator: "StringLiteral",
    code: 'socket.off("end", onEnd);',
    reason:
      "Node's HTTP/1.1 server ends a connection whose client ended it (httpAllowHalfOpen is false) as the sniffer's leftover listener would, and HTTP/2 sessions end with their socket.",
  },
  {
    file: "src/transport/sniff.ts",
    mutator: "StringLiteral",
    code: 'socket.off("error", onEnd);',
    reason:
      "A socket that errors after the hand-off is destroyed by Node itself; the leftover listener destroys it once more, which does nothing.",
  },
  {
    file: "src/transport/sniff.ts",
    mutator: "StringLiteral",
    code: 'socket.off("timeout", onEnd);',
    reason:
      "done() also sets the socket's timeout to 0, so the timeout event the leftover listener waits for never comes.",
  },
  {
    file: "src/transport/sniff.ts",
    mutator: "ConditionalExpression",
    code: "seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);",
    replacement: "false",
    reason:
      "Concatenating onto an empty buffer copies the chunk: slower, the same bytes.",
  },
  {
    file: "src/transport/sniff.ts",
    mutator: "EqualityOperator",
    code: "if (startsPreface && seen.length < h2Preface.length) return;",
    reason:
      "With exactly the preface's 24 bytes in, waiting for more only waits for the SETTINGS frame every client sends right after it (RFC 9113, 3.4): the connection still reaches HTTP/2.",
  },
  {
    file: "src/transport/sniff.ts",
    mutator: "StringLiteral",
    code: 'socket.once("end", onEnd);',
    reason:
      "A connection that ends before its first bytes is ended by Node too (allowHalfOpen is false), and forgotten on close; the listener only makes it sooner.",
  },
  {
    file: "src/lifecycle/cluster.ts",
    code: "return cluster.isWorker;",
    reason:
      "Runs only in worker processes, where Stryker measures no coverage; the cluster tests' workers report through it, and a worker that did not would keep the primary's ready line from coming.",
  },
  {
    file: "src/lifecycle/cluster.ts",
    code: 'const message: ReadyMessage = { type: "connect-greeter:ready", line };',
    reason:
      "Runs only in worker processes, where Stryker measures no coverage; a worker that sent no ready message would keep the primary's ready line from coming, which every cluster test waits for.",
  },
  {
    file: "src/lifecycle/cluster.ts",
    code: "process.send?.(message);",
    reason:
      "Runs only in worker processes, where Stryker measures no coverage; a worker process always has its IPC channel, so process.send is always there.",
  },
  {
    file: "src/lifecycle/cluster.ts",
    mutator: "OptionalChaining",
    code: 'if (message?.type !== "connect-greeter:ready") return;',
    reason:
      "Only the server's own workers send messages, never null or undefined: a string or an object answers .type without throwing.",
  },
  {
    file: "src/lifecycle/cluster.ts",
    mutator: "CallExpression",
    code: "for (const w of startedAt.keys()) w.process.kill();",
    reason:
      "The first workers that cannot start all fail the same way (the port, say) and exit on their own: killing the others (or resolving here, when none is left) only makes it sooner, as the last of them to exit resolves the primary through the stopping path.",
  },
  {
    file: "src/lifecycle/cluster.ts",
    mutator: "EqualityOperator",
    code: "failures = lived >= stableAfter ? 0 : failures + 1;",
    reason:
      "A worker that lived exactly stableAfterMs: a millisecond either way, not a behaviour a test can pin.",
  },
  {
    file: "src/lifecycle/cluster.ts",
    mutator: "CallExpression",
    code: "pendingRestarts.delete(timer);",
    reason:
      "A restart timer that fired stays in the set: clearing it again on a signal does nothing. Only memory, until the next signal.",
  },
  {
    file: "src/lifecycle/cluster.ts",
    mutator: "ConditionalExpression",
    code: "if (!stopping) fork();",
    replacement: "true",
    reason:
      "A signal clears every pending restart (below), so a restart timer never fires while stopping; the check is a second guard.",
  },
  {
    file: "src/lifecycle/cluster.ts",
    mutator: "CallExpression",
    code: "pendingRestarts.add(timer);",
    reason:
      "A restart the set does not hold is not cancelled by a signal, but when it fires the !stopping check forks no one: the primary still resolves once its workers are gone.",
  },
  {
    file: "src/lifecycle/cluster.ts",
    mutator: "CallExpression",
    code: "for (const timer of pendingRestarts) clearTimeout(timer);",
    reason:
      "A pending restart left to fire forks no one while stopping (the !stopping check); cancelling it only spares a timer.",
  },
  {
    file: "src/lifecycle/cluster.ts",
    mutator: "CallExpression",
    code: "pendingRestarts.clear();",
    reason: "The set of pending restarts is not read after a signal.",
  },
  {
    file: "src/lifecycle/cluster.ts",
    mutator: "CallExpression",
    code: "for (const worker of startedAt.keys()) worker.process.kill(signal);\n      finishIfDone();",
    reason:
      "With workers running, the last to exit resolves the primary; with none (all waiting to be restarted), the cancelled restarts leave none to wait for, which 'a signal cancels a pending restart' shows through the exit of the worker that died.",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "ConditionalExpression",
    code: "if (session.closed || session.destroyed || closing.has(session)) return;",
    replacement: "false",
    reason:
      "Without its first two checks (the third, one close per session, is tested): a session already closed then returns at the same check in the next step, before anything is written to it.",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "LogicalOperator",
    code: "if (session.closed || session.destroyed || closing.has(session)) return;",
    replacement: "session.closed && session.destroyed",
    reason:
      "Without its first two checks (the third, one close per session, is tested): a session already closed then returns at the same check in the next step, before anything is written to it.",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "CallExpression",
    code: "timer.unref();",
    reason:
      "Only whether the timer may keep a process alive: it is cleared once the peer answers, or fires within goAwayNoticeMs on a session the drain waits for anyway.",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "CallExpression",
    code: "clearTimeout(timer);\n      final();",
    reason:
      "The timer left running calls final() again goAwayNoticeMs later, on a session already closing, where Node's close() does nothing.",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "CallExpression",
    code: "done();",
    reason:
      "session.ping() throws only on a destroyed session (checked just before) and returns false only while maxOutstandingPings (10) PINGs await their acks; the server sends one per session, so the fallback straight to the final GOAWAY is never taken.",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "BlockStatement",
    code: "} catch {",
    reason:
      "session.ping() throws only on a destroyed session (checked just before) and returns false only while maxOutstandingPings (10) PINGs await their acks; the server sends one per session, so the fallback straight to the final GOAWAY is never taken.",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "ConditionalExpression",
    code: "if (session.closed || session.destroyed) return;",
    replacement: "false",
    reason:
      "Returning here only saves work: on a session that closed while its SETTINGS ack was awaited, writeNotice finds the socket gone and gives up, Node's close() does nothing on a closed session, and without a socket ping() throws and the catch calls final().",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "LogicalOperator",
    code: "if (session.closed || session.destroyed) return;",
    reason:
      "Returning here only saves work: on a session that closed while its SETTINGS ack was awaited, writeNotice finds the socket gone and gives up, Node's close() does nothing on a closed session, and without a socket ping() throws and the catch calls final().",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "ConditionalExpression",
    code: "if (written) pingThenFinal();",
    replacement: "true",
    reason:
      "A notice that could not be written in goAwayNoticeMs belongs to a peer that has read nothing for that long: the mutant queues a PING for it and sends the final GOAWAY goAwayNoticeMs later instead of now, into a connection the peer is not reading; the drain's last step destroys it either way.",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "CallExpression",
    code: "else final();",
    reason:
      "Reached only by an HTTP/2 peer that stops reading for goAwayNoticeMs during a drain (writeNotice giving up is tested on its own); without its final GOAWAY such a session is closed by the drain's last step, which destroys every connection still open (test/drain.test.ts).",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "CallExpression",
    code: 'clearTimeout(timer);\n    session.off("localSettings", go);',
    reason:
      "The timer left running calls then() again goAwayNoticeMs after it began: by then the notice, its PING round trip and the final GOAWAY are done and then() returns on the closed session. Only a peer that acknowledged the SETTINGS but answers no PING would get the notice twice, which RFC 9113, 6.8 allows (a GOAWAY may be repeated; its last stream id must not grow).",
  },
  {
    file: "src/transport/goaway.ts",
    code: 'session.off("localSettings", go);',
    reason:
      "When the event calls go() its once() listener is already gone; when the timer does, the listener left behind fires only on a SETTINGS ack later than goAwayNoticeMs, and then only repeats the notice, which RFC 9113, 6.8 allows.",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "OptionalChaining",
    code: "if (handle?.writeQueueSize === 0) {",
    reason:
      "Reached only with a descriptor, read from the handle: the handle is there.",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "ConditionalExpression",
    code: "if (written === shutdownNotice.length) return done(true);",
    replacement: "false",
    reason:
      "A whole notice then goes through the partial-write branch, which finds nothing left to send and calls done(true): the same result by a longer way.",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "EqualityOperator",
    code: "while (sent < shutdownNotice.length && performance.now() < until) {",
    replacement: "performance.now() <= until",
    reason: "The 50 ms bound, off by less than a millisecond.",
  },
  {
    file: "src/transport/goaway.ts",
    mutator: "EqualityOperator",
    code: "if (performance.now() > deadline) return done(false);",
    replacement: "performance.now() >= deadline",
    reason: "The goAwayNoticeMs bound, off by less than a millisecond.",
  },
  {
    file: "src/lifecycle/shutdown.ts",
    mutator: "CallExpression",
    code: "timers.delete(timer);",
    reason:
      "Only a timer that has fired stays in the set, and clearing a timer that has fired does nothing.",
  },
  {
    file: "src/lifecycle/shutdown.ts",
    code: 'res.once("finish", resolve);',
    reason:
      "Both HTTP versions' responses emit close after finish, and close alone ends the wait, a moment later.",
  },
  {
    file: "src/lifecycle/shutdown.ts",
    mutator: "ArrowFunction",
    code: "return await Promise.race([promise.then(() => false), timeout]);",
    reason:
      "undefined is as false as false to the callers, which test the result with if or ignore it.",
  },
  {
    file: "src/transport/connections.ts",
    mutator: "CallExpression",
    code: 'res.on("finish", untrack);',
    reason:
      "A response emits close right after finish (Node's resOnFinish, and an HTTP/2 stream's end), and close untracks it too: only the moment in between differs, and the drain's wait for responses listens for both.",
  },
  {
    file: "src/transport/sniff.ts",
    mutator: "CallExpression",
    code: 'socket.off("error", onEnd);',
    reason:
      "After the hand-off an error destroys the socket anyway (Node destroys a socket with its error); onEnd destroying it again does nothing.",
  },
  {
    file: "src/transport/sniff.ts",
    mutator: "CallExpression",
    code: 'socket.off("timeout", onEnd);',
    reason:
      "The hand-off turns the first-bytes timeout off (setTimeout(0)); a timeout the HTTP/1.1 server sets later (keepAliveTimeout, headersTimeout) ends in its own socket.destroy() when nothing else handles it, which is what onEnd does.",
  },
  {
    file: "src/transport/sniff.ts",
    mutator: "CallExpression",
    code: "const onEnd = () => {\n    done();",
    replacement: ";",
    reason:
      "onEnd destroys the socket next: the listeners and the timeout left on a destroyed socket hear nothing more but its close.",
  },
  {
    file: "src/transport/sniff.ts",
    mutator: "CallExpression",
    code: 'socket.once("end", onEnd);',
    reason:
      "The listener's net.Server is not allowHalfOpen, so Node ends a socket's side once the peer's end is read, and a connection that ends before its first bytes closes and is forgotten either way; onEnd only closes it at once instead of after that end.",
  },
];
