#!/usr/bin/env bash
# `npm test`: the whole suite, the same on a fresh machine as on a used one.
# Installs the Debian packages the tests talk to (test/system-deps.sh), runs on
# a supported Node (scripts/supported-node.sh: PATH's if it is 22 or later,
# else Node 24 from the npm registry; TEST_NODE=22 or 24 picks a line), builds
# the browser page, then runs every test file. Arguments replace the file list.
#
# `npm run test:quick` (--quick): the loop while working. It installs nothing
# and leaves out the files below, running the others two at a time (they wait
# on sockets and child processes as much as they compute).
set -euo pipefail
cd "$(dirname "$0")/.."

# The test files --quick leaves out, each with what it needs.
# Those that need a system service, or a tool test/system-deps.sh installs:
system=(
  balancer       # nginx, HAProxy, ip netns, Python
  bench          # h2load, nginx
  browser        # Chromium
  container      # podman
  interop-python # Python's grpcio
  logging        # h2load
  mtls           # Python's grpcio, buf curl
  peers          # HAProxy, ip netns
  prometheus     # Prometheus
)
# Those that run the project's commands through npm or npx dozens of times, as
# a user does, or load both cores on purpose: each takes most of a core-minute.
commands=(
  adding-a-service # the walkthrough, on a copy of the project
  cli              # npm run client
  docs             # every command in the README and docs/
  floods           # twelve floods against real servers, about a minute
  mutation         # npm run test:mutation, on an example
  security-docs    # docs/security.md's commands: npm, npx, buf curl
)
for name in "${system[@]}" "${commands[@]}"; do
  if [ ! -f "test/$name.test.ts" ]; then
    echo "test/run.sh: test/$name.test.ts, which --quick leaves out, does not exist" >&2
    exit 1
  fi
done

quick=
if [ "${1:-}" = --quick ]; then
  quick=1
  shift
fi
if [ -z "$quick" ]; then bash test/system-deps.sh; fi
bin=$(bash scripts/supported-node.sh "${TEST_NODE:-}")
export PATH="$bin:$PATH"
npm run --silent build:web
if [ -z "$quick" ]; then
  if [ $# -eq 0 ]; then set -- test/*.test.ts; fi
  exec tsx --test --test-reporter=spec "$@"
fi
if [ $# -eq 0 ]; then
  echo "test:quick leaves out ${system[*]} ${commands[*]}: npm test runs them" >&2
  for file in test/*.test.ts; do
    name=$(basename "$file" .test.ts)
    case " ${system[*]} ${commands[*]} " in
      *" $name "*) ;;
      *) set -- "$@" "$file" ;;
    esac
  done
fi
exec tsx --test --test-concurrency=2 --test-reporter=spec "$@"
