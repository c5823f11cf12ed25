#!/usr/bin/env bash
# `npm test`: the whole suite, the same on a fresh machine as on a used one.
# Installs the Debian packages the tests talk to (test/system-deps.sh), runs on
# a supported Node (scripts/supported-node.sh: PATH's if it is 22 or later,
# else Node 24 from the npm registry; TEST_NODE=22 or 24 picks a line), builds
# the browser page, then runs every test file. Arguments replace the file list.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/system-deps.sh
bin=$(bash scripts/supported-node.sh "${TEST_NODE:-}")
export PATH="$bin:$PATH"
npm run --silent build:web
if [ $# -eq 0 ]; then set -- test/*.test.ts; fi
exec tsx --test --test-reporter=spec "$@"
