#!/usr/bin/env bash
# `npm run image`: builds the Dockerfile with podman as localhost/connect-greeter:latest
# on a host that may reach no container registry.
#
# The base image (build argument NODE_IMAGE) is, in order: $NODE_IMAGE when set;
# the official node:24-bookworm-slim when present or pullable; else a local
# stand-in made once by base.sh and reused after. Plain `docker build .` needs
# none of this.
#
# Environment:
#   IMAGE       the tag to build (default localhost/connect-greeter:latest)
#   NODE_IMAGE  the base image to build on (default: chosen as above)
#   IIDFILE     when set, the built image's ID is written there (tags can move
#               under concurrent builds; an ID cannot)
#   NODE_EXTRA_CA_CERTS  a CA bundle the npm registry is reached through
#               (default /etc/ssl/certs/ca-certificates.crt when it exists),
#               mounted into the build's npm steps
#   PODMAN_RUNTIME  the OCI runtime (default runc: crun fails on hosts with
#               cgroups in hybrid mode)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
podman=(podman --runtime "${PODMAN_RUNTIME:-runc}")
image=${IMAGE:-localhost/connect-greeter:latest}
official=docker.io/library/node:24-bookworm-slim
local_base=localhost/connect-greeter-node:24-bookworm

base=${NODE_IMAGE:-}
if [ -z "$base" ]; then
  if podman image exists "$official"; then
    base=$official
  elif podman image exists "$local_base"; then
    base=$local_base
  elif timeout 120 podman pull -q "$official" >/dev/null 2>&1; then
    base=$official
  else
    echo "image: $official cannot be pulled; making a local base image" >&2
    base=$("$here/base.sh" "$local_base")
  fi
fi

args=(build --network host --tag "$image" --build-arg "NODE_IMAGE=$base" --file "$root/Dockerfile")
ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$ca" ]; then
  # The registry may be reached through a proxy whose CA only the host trusts:
  # Node adds the certificates of NODE_EXTRA_CA_CERTS to its own.
  args+=(--volume "$ca:/etc/ssl/certs/ca-certificates.crt:ro"
    --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt)
fi
if [ -n "${IIDFILE:-}" ]; then
  args+=(--iidfile "$IIDFILE")
fi

echo "image: building $image on $base" >&2
"${podman[@]}" "${args[@]}" "$root" >&2
echo "$image"
