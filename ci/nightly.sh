#!/usr/bin/env bash
# The nightly job (ci/nightly.yml) on one machine: provision the set, `cargo nextest archive`
# once, run each `--partition hash:K/N` of the archive in turn, then one report (HTML, JUnit,
# Markdown summary) with the failures that are new since the previous night's report.
#
#   ci/nightly.sh                       the `nightly` set in 2 partitions
#   RIG_MATRIX=smoke PARTITIONS=3 ci/nightly.sh
#   NIGHTLY_OUT=DIR                     where everything goes (default rig-runs/nightly-<time>)
#   NIGHTLY_BASELINE=FILE               the previous report (default rig-runs/nightly-baseline.json,
#                                       replaced by this night's at the end)
#
# Exit status: that of the cells (non-zero when a cell failed).
set -euo pipefail
cd "$(dirname "$0")/.."
export RIG_MATRIX="${RIG_MATRIX:-nightly}"
partitions="${PARTITIONS:-2}"
out="$(realpath -m "${NIGHTLY_OUT:-rig-runs/nightly-$(date -u +%Y%m%dT%H%M%SZ)}")"
baseline="${NIGHTLY_BASELINE:-rig-runs/nightly-baseline.json}"
mkdir -p "$out"

echo "nightly: set $RIG_MATRIX, $partitions partitions, into $out" >&2
cargo build --quiet --bin rig
rig="$PWD/target/debug/rig"
"$rig" setup --kbuild --tests
"$rig" matrix provision --set "$RIG_MATRIX"
"$rig" matrix list --set "$RIG_MATRIX" --json > "$out/matrix.json"

cargo nextest archive --archive-file "$out/nightly.tar.zst"
status=0
for k in $(seq 1 "$partitions"); do
  echo "nightly: partition $k of $partitions" >&2
  RIG_ARTIFACTS="$out/partition-$k" RIG_BIN="$rig" RIG_NO_SETUP=1 \
    cargo nextest run --archive-file "$out/nightly.tar.zst" --workspace-remap . \
      --profile ci --partition "hash:$k/$partitions" -E 'binary(matrix)' || status=1
  cp target/nextest/ci/junit.xml "$out/partition-$k.junit.xml" 2>/dev/null || true
done

base=()
if [ -f "$baseline" ]; then base=(--baseline "$baseline"); fi
"$rig" report "$out" "${base[@]}" --html "$out/report.html" --junit "$out/rig-junit.xml" \
  --markdown > "$out/summary.md"
# Written beside the folder first: rig report reads every report.json below "$out".
"$rig" report "$out" --json > "$out.summary.json"
mv "$out.summary.json" "$out/summary.json"
mkdir -p "$(dirname "$baseline")"
cp "$out/summary.json" "$baseline"
cat "$out/summary.md"
echo "nightly: report $out/report.html, summary $out/summary.md" >&2
exit $status
