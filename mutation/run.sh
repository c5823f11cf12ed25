#!/usr/bin/env bash
# `npm run test:mutation [-- <group>...] [--incremental]`: Stryker's CLI runs
# each group's configuration (mutation/groups/<group>.mjs; every group unless
# some are named) on a supported Node, as `npm test` runs (Stryker's test
# runner starts `node` from PATH), then their scores go into the README
# (mutation/scores.ts). A group whose score is under its break threshold
# fails the run, after the others have run. --incremental reuses the last
# run's results for mutants whose code and tests did not change. --list
# names the groups. For Stryker's other options, run its CLI on a group's
# configuration: `npx stryker run mutation/groups/<group>.mjs --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
all=$(ls mutation/groups | sed 's/\.mjs$//')
names=()
options=()
for arg in "$@"; do
  case "$arg" in
    --list)
      for g in $all; do echo "$g: $(sed -n '1s|^// ||p' "mutation/groups/$g.mjs")"; done
      exit 0 ;;
    --incremental) options+=("$arg") ;;
    -*) echo "unknown option $arg" >&2; exit 2 ;;
    *)
      if [ ! -f "mutation/groups/$arg.mjs" ]; then
        echo "unknown group $arg; groups: $(echo $all | sed 's/ /, /g')" >&2
        exit 2
      fi
      names+=("$arg") ;;
  esac
done
[ ${#names[@]} -gt 0 ] || read -r -a names <<<"$(echo $all)"
bin=$(bash scripts/supported-node.sh "${TEST_NODE:-}")
export PATH="$bin:$PATH"
npm run --silent build:web
status=0
for g in "${names[@]}"; do
  # A run that stops early writes no report: no score from an older one.
  rm -f "reports/mutation/$g/mutation.json"
  stryker run "mutation/groups/$g.mjs" "${options[@]}" || status=1
done
tsx mutation/scores.ts "${names[@]}"
biome format --write README.md >/dev/null
exit $status
