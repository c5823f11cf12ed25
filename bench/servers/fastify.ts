/**
 * The Greeter's SayHello as a fastify 5 user writes it: a JSON POST route
 * with a body schema and a response schema, over HTTP/1.1. The benchmark's
 * anchor for Connect JSON unary over HTTP/1.1, which sends it the same
 * request (POST /Greeter/SayHello, {"name":"bench"}).
 *
 * FASTIFY_LOGGER=true turns on fastify's own logger (`logger: true`: pino,
 * writing two lines per request to stdout, which the benchmark reads as it
 * reads connect-greeter's log); anything else runs it without (`logger:
 * false`, fastify's default). Prints "listening on http://127.0.0.1:<port>"
 * once it serves.
 */
import Fastify from "fastify";

const app = Fastify({ logger: process.env.FASTIFY_LOGGER === "true" });

app.post<{ Body: { name: string } }>(
  "/Greeter/SayHello",
  {
    schema: {
      body: {
        type: "object",
        properties: { name: { type: "string" } },
        required: ["name"],
      },
      response: {
        200: {
          type: "object",
          properties: { message: { type: "string" } },
          required: ["message"],
        },
      },
    },
  },
  async (request) => ({ message: `Hello, ${request.body.name}!` }),
);

await app.listen({ port: 0, host: "127.0.0.1" });
const address = app.server.address();
if (address === null || typeof address === "string") {
  throw new Error(`unexpected address ${address}`);
}
console.log(`listening on http://127.0.0.1:${address.port}`);
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => app.close().then(() => process.exit(0)));
}
