#!/usr/bin/env bash
# `npm run test:mutation`: mutation testing (mutation/run.ts) on a supported
# Node, as `npm test` runs (scripts/supported-node.sh); Stryker's test runner
# starts `node` from PATH. Arguments go to mutation/run.ts (group names,
# --incremental, --list).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(bash scripts/supported-node.sh "${TEST_NODE:-}")
export PATH="$bin:$PATH"
npm run --silent build:web
exec tsx mutation/run.ts "$@"
