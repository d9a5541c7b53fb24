#!/usr/bin/env bash
# For each failure that is new since the previous night, finds the first bad kernel commit with
# `rig bisect` between the last good and the first bad revision of the kernel tree the nightly
# tests, and prints a Markdown section per failure (for $GITHUB_STEP_SUMMARY or a local run).
#
#   ci/nightly-bisect.sh SUMMARY.json TREE LAST_GOOD FIRST_BAD
#
# SUMMARY.json is `rig report DIRS --baseline PREVIOUS --json` (its `new_failures` list of
# {cell: BOARD::KERNEL::SCENARIO, title}); TREE the kernel git tree; LAST_GOOD the revision the
# previous night passed on; FIRST_BAD the revision tonight failed on. RIG_BIN picks the binary.
# Exit status: 0 when every bisect named a culprit, 1 when one was inconclusive or failed.
set -euo pipefail
cd "$(dirname "$0")/.."
summary=$1 tree=$2 good=$3 bad=$4
rig="${RIG_BIN:-target/debug/rig}"
status=0
count=$(jq '.new_failures // [] | length' "$summary")
if [ "$count" -eq 0 ]; then
  echo "No new failures: nothing to bisect."
  exit 0
fi
echo "## Bisects of the $count new failure(s) ($good..$bad)"
for i in $(seq 0 $((count - 1))); do
  cell=$(jq -r ".new_failures[$i].cell" "$summary")
  title=$(jq -r ".new_failures[$i].title" "$summary")
  board=${cell%%::*}
  scenario=${cell##*::}
  echo
  echo "### $title ($board, $scenario)"
  echo
  echo '```'
  rc=0
  log="${TMPDIR:-/tmp}/rig-nightly-bisect-$i.log"
  "$rig" bisect --tree "$tree" --good "$good" --bad "$bad" --board "$board" \
    --scenario "scenarios/$scenario.yaml" --title "$title" 2> "$log" || rc=$?
  if [ "$rc" -ne 0 ]; then tail -n 20 "$log"; fi
  echo '```'
  case $rc in
    0) ;;
    1) echo "Inconclusive (exit 1)."; status=1 ;;
    2) echo "The endpoints do not behave (exit 2): see above."; status=1 ;;
    *) echo "rig could not bisect (exit $rc)."; status=1 ;;
  esac
done
exit $status
