# syntax=docker/dockerfile:1
# The connect-greeter container image: `docker build -t connect-greeter .`
# (here, without a registry: `npm run image`, see deploy/image/build.sh).

# Node 24 LTS on Debian 12, the official image; fully qualified so that podman
# and buildah, which have no default registry for short names, resolve it too.
ARG NODE_IMAGE=docker.io/library/node:24-bookworm-slim

# Compile TypeScript to dist/ and bundle the browser page into dist/web, with
# the dev dependencies (tsc, tsx, esbuild) that stay in this stage.
FROM ${NODE_IMAGE} AS build
# Extra CA certificates for npm's registry connections (Node reads the variable
# at start-up), for builds behind a TLS-intercepting proxy; empty by default.
ARG NODE_EXTRA_CA_CERTS=
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY gen gen
COPY src src
COPY web web
RUN npm run build

# The production dependencies alone, installed apart so that neither npm's
# cache nor the dev dependencies reach the image.
FROM ${NODE_IMAGE} AS deps
ARG NODE_EXTRA_CA_CERTS=
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and not writable by the server's user: the server writes no
# file (logs go to stdout), so the root filesystem may be mounted read-only.
# package.json is read at run time: it makes dist/ ES modules ("type") and
# marks the root the browser page is served from.
COPY package.json ./
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/dist dist
# The official image's entrypoint is a shell script that execs its arguments;
# without it, nothing stands between the runtime and node.
ENTRYPOINT []
# Numeric, so that Kubernetes' runAsNonRoot can verify it is not root without
# reading /etc/passwd (1000 is the official image's "node" user).
USER 1000:1000
# API: gRPC, gRPC-Web, Connect and health (PORT). Admin: GET /metrics (ADMIN_PORT).
EXPOSE 50051 9464
# Exec form, so that node is PID 1 and gets SIGTERM itself: it drains
# (health NOT_SERVING, GOAWAY, grace period) and exits 0. No npm, no shell.
# --max-semi-space-size=16 (MiB) caps V8's young generation, which V8 sizes
# from the machine's memory and grows further under load: peak RSS under
# load falls by about a third for the same CPU per call
# (docs/performance.md). npm start and the benchmark run the same
# flags (test/start.test.ts, bench/image-command.ts).
CMD ["node", "--max-semi-space-size=16", "dist/src/main.js"]
