#!/usr/bin/env bash
# Provisions what rig's test suite needs, before the tests run (nextest setup script):
# host packages via apt (rig setup), then every kernel + initramfs the VM tests boot. Everything is
# cached by content (~/.cache/rig), so on a machine that ran it once this takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."
rig() { cargo run --quiet --bin rig -- "$@"; }
rig setup --kbuild --tests
for board in x86_64-q35 arm64-virt; do
  for kernel in ${RIG_TEST_KERNELS:-debian-6.1 rig-6.12}; do
    rig fetch --no-setup --board "$board" --kernel "$kernel" >/dev/null
  done
done
# The positive control for overlay teardown (an incremental build on top of rig-6.12's).
if [ -z "${RIG_TEST_KERNELS:-}" ]; then
  rig fetch --no-setup --board arm64-virt --kernel rig-6.12-known-bad-devlink-wait >/dev/null
fi
