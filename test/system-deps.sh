#!/usr/bin/env bash
# Installs the Debian packages the tests talk to, when they are missing, so that
# `npm test` works the same on a fresh machine as on one that has run it before:
#   chromium         the real browser of the browser page test (driven by playwright-core)
#   python3-grpcio, python3-grpc-tools   Python gRPC and its protoc: the tutorial's own client (interop test)
#   nghttp2-client   h2load, which also speaks raw HTTP/2 for the protocol tests
#   openssl          makes the throwaway self-signed certificate of the TLS tests
#   prometheus       a real scraper of the metrics, queried over its HTTP API
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
/usr/bin/python3 -c "import grpc" 2>/dev/null || missing+=(python3-grpcio)
/usr/bin/python3 -c "import grpc_tools" 2>/dev/null || missing+=(python3-grpc-tools)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
else
  sudo=
fi
echo "test setup: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
