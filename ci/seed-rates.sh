#!/usr/bin/env bash
# The full measurement behind scenarios/README.md's "Measured rates" table: for every seed
# scenario, its positive control (the known-bad kernel, RUNS_BAD runs, default 10) must be
# caught with the right title, and its negative control (the fixed kernel, RUNS_GOOD runs,
# default 20) must pass. Prints one Markdown table row per (scenario, board, kernel).
# Not part of CI (it takes hours on TCG); the suite's controls are in rig/tests/vm_seeds.rs.
#
#   ci/seed-rates.sh                 # every row
#   ci/seed-rates.sh devlink         # rows whose scenario name contains "devlink"
#   RUNS_BAD=3 RUNS_GOOD=3 ci/seed-rates.sh memory
#   BOARD=x86_64-q35 ci/seed-rates.sh reload # one board's rows only
#   SERIES=6.12 ci/seed-rates.sh     # rig-6.12's kernels (default: rig-7.3, the suite's)
set -euo pipefail
cd "$(dirname "$0")/.."
RIG=${RIG:-target/release/rig}
RUNS_BAD=${RUNS_BAD:-10}
RUNS_GOOD=${RUNS_GOOD:-20}
OUT=${RIG_ARTIFACTS:-rig-runs/seed-rates}
export RIG_ARTIFACTS=$OUT

# The kernel series whose rig kernels are measured: 7.3 (the suite's) or 6.12.
SERIES=${SERIES:-7.3}
K=rig-$SERIES

# Seed 004 rows' matcher (both boards; why: the comment above those rows).
SEED_004_CAUGHT='title:^(sysfs: cannot create duplicate filename in really_probe|WARNING in kernfs_remove_by_name_ns)$'
# Seed 001's oops: 7.3 names the frame `__simple_recursive_removal`, 6.12 `simple_recursive_removal`.
SEED_001_CAUGHT='title:^BUG: unable to handle kernel NULL pointer dereference in (__)?simple_recursive_removal'
# Seed 000's leak, wherever the overlay was applied.
SEED_000_CAUGHT='title:^OF: ERROR: memory leak in /'

# seed | scenario | board | known-bad kernel | fixed kernel (empty: none) | caught when
# (title:REGEX or step:NAME)
ROWS=(
  "000, 002|overlay-devlink-teardown|arm64-virt|$K-known-bad-devlink-wait|$K|$SEED_000_CAUGHT"
  "001|devlink-reload-vs-del|arm64-virt|$K-known-bad-devlink-reload|$K|$SEED_001_CAUGHT"
  "001|devlink-reload-vs-del|x86_64-q35|$K-known-bad-devlink-reload|$K|$SEED_001_CAUGHT"
  "001|devlink-reload-vs-unload|arm64-virt|$K-known-bad-devlink-reload|$K|$SEED_001_CAUGHT"
  "001|devlink-reload-vs-unload|x86_64-q35|$K-known-bad-devlink-reload|$K|$SEED_001_CAUGHT"
  # Seed 003: the stock kernel itself prints the thread's lockdep report (no fixed kernel to
  # run); known-bad-hotplug-lock makes it a real deadlock: the writers never finish (their step
  # fails at the parallel's deadline), and the run stops once the console is dead.
  "003|memory-online-offline-race|arm64-virt|$K||title:^possible deadlock in __kernfs_remove"
  "003|memory-online-offline-race|x86_64-q35|$K||title:^possible deadlock in __kernfs_remove"
  "003 (deadlock)|memory-online-offline-race|arm64-virt|$K-known-bad-hotplug-lock||step:a writer per block"
  "003 (deadlock)|memory-online-offline-race|x86_64-q35|$K-known-bad-hotplug-lock||step:a writer per block"
  "003|memory-dimm-online-offline-race|x86_64-q35|$K||title:^possible deadlock in "
  # Seed 004: a deleted device the late async probe bound shows as a duplicate sysfs link when
  # the next device of that name probes, or as kernfs's warning when its driver link goes.
  "004|probe-remove-ordering|arm64-virt|$K-known-bad-async-probe|$K|$SEED_004_CAUGHT"
  "004 (window)|probe-remove-ordering|arm64-virt||$K-async-probe-window|"
  "004|probe-remove-ordering|x86_64-q35|$K-known-bad-async-probe|$K|$SEED_004_CAUGHT"
  "004 (window)|probe-remove-ordering|x86_64-q35||$K-async-probe-window|"
  "OF unittest|of-unittest|arm64-virt||$K-of-unittest|"
)
if [ "$SERIES" = 6.12 ]; then
  # 6.12 makes no platform devices under a PCI device's node: the PCI row is the old file's.
  ROWS+=("000 (PCI)|pci-overlay-hotunplug|arm64-virt|$K-known-bad-devlink-wait|$K|title:^OF: ERROR: ")
else
  # From 7.3 (6.15+): overlays on x86 too, and through a PCI driver's remove on both boards.
  ROWS+=(
    "000, 002|overlay-devlink-teardown|x86_64-q35|$K-known-bad-devlink-wait|$K|$SEED_000_CAUGHT"
    "000 (PCI)|pci-overlay-driver-hotunplug|arm64-virt|$K-known-bad-devlink-wait|$K|$SEED_000_CAUGHT"
    "000 (PCI)|pci-overlay-driver-hotunplug|x86_64-q35|$K-known-bad-devlink-wait|$K|$SEED_000_CAUGHT"
  )
fi

# run SCENARIO BOARD KERNEL RUNS -> report JSON on stdout (and kept in $OUT, for the titles and
# times per run the table's rows quote)
run() {
  "$RIG" run "scenarios/$1.yaml" --board "$2" --kernel "$3" --repeat "$4" --no-setup --json \
    2>"$OUT/$1-$2-$3.stderr" | tee "$OUT/$1-$2-$3.json" || true
}

# caught JSON MATCHER -> how many repetitions failed the way the matcher says
caught() {
  local kind=${2%%:*} what=${2#*:}
  case $kind in
    title) jq --arg re "$what" '[.repetitions[] | select(.verdict == "fail")
             | select(any(.reports[]; .title | test($re)))] | length' <<<"$1" ;;
    step) jq --arg s "$what" '[.repetitions[] | select(.verdict == "fail")
             | select(any(.step_failures[]; .step == $s))] | length' <<<"$1" ;;
  esac
}

count() { jq --arg v "$2" '[.repetitions[] | select(.verdict == $v)] | length' <<<"$1"; }

mkdir -p "$OUT"
echo "| seed | scenario | board | kernel | runs | result |"
echo "|---|---|---|---|---|---|"
for row in "${ROWS[@]}"; do
  IFS='|' read -r seed scenario board bad good matcher <<<"$row"
  if [ $# -gt 0 ] && [[ $scenario != *"$1"* ]]; then continue; fi
  if [ -n "${BOARD:-}" ] && [ "$board" != "$BOARD" ]; then continue; fi
  if [ -n "$bad" ]; then
    j=$(run "$scenario" "$board" "$bad" "$RUNS_BAD")
    n=$(jq '.repetitions | length' <<<"$j" 2>/dev/null || echo 0)
    k=$(caught "$j" "$matcher" 2>/dev/null || echo 0)
    echo "| $seed | $scenario | $board | $bad | $n | caught $k of $n (${matcher#*:}) |"
  fi
  [ -n "$good" ] || continue
  j=$(run "$scenario" "$board" "$good" "$RUNS_GOOD")
  n=$(jq '.repetitions | length' <<<"$j" 2>/dev/null || echo 0)
  p=$(count "$j" pass 2>/dev/null || echo 0)
  f=$(count "$j" fail 2>/dev/null || echo 0)
  echo "| $seed | $scenario | $board | $good | $n | passed $p of $n, failed $f |"
done
