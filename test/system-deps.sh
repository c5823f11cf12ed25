#!/usr/bin/env bash
# Installs the Debian packages the tests talk to, when they are missing, so that
# `npm test` works the same on a fresh machine as on one that has run it before:
#   chromium         the real browser of the browser page test (driven by playwright-core)
#   python3-grpcio, python3-grpc-tools   Python gRPC and its protoc: the tutorial's own client (interop test)
#   nghttp2-client   h2load, which also speaks raw HTTP/2 for the protocol tests
#   openssl          makes the throwaway certificates of the TLS tests
#   curl             a plain HTTP client of the tests and the docs' commands
#   podman, runc     build and run the container image without a daemon (rootful; runc because
#                    crun fails where cgroups are in hybrid mode); iptables for its published ports
#   debootstrap      makes the local base image when no registry can be reached (deploy/image/base.sh)
#   nginx            the L7 balancer of the balancer tests and bench (its own instances: -p, -c)
#   haproxy          the other L7 balancer of the balancer tests (its own instances: -f)
#   iproute2         ip netns and veth pairs: the balancer tests' replicas as separate hosts
#   prometheus       a real scraper of the metrics, queried over its HTTP API
#   zstd             the Zstandard CLI of docs/calling.md's compressed Connect GET
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
/usr/bin/python3 -c "import grpc" 2>/dev/null || missing+=(python3-grpcio)
/usr/bin/python3 -c "import grpc_tools" 2>/dev/null || missing+=(python3-grpc-tools)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v podman >/dev/null 2>&1 || missing+=(podman)
[ -x /usr/sbin/runc ] || [ -x /usr/bin/runc ] || missing+=(runc)
[ -x /usr/sbin/iptables ] || missing+=(iptables)
[ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
[ -x /usr/sbin/ip ] || [ -x /bin/ip ] || missing+=(iproute2)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
else
  sudo=
fi
echo "test setup: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
# Debian starts a daemon's service on install (nginx on port 80, haproxy); the tests run
# their own instances and want none: a policy-rc.d that refuses every start
# while apt-get runs, unless the machine has one already.
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  own_policy=1
fi
trap 'if [ -n "$own_policy" ]; then $sudo rm -f "$policy"; fi' EXIT
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
# Nor at the next boot.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now nginx haproxy >/dev/null 2>&1 || true
fi
