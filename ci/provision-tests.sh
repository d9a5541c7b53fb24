#!/usr/bin/env bash
# Provisions what rig's test suite needs, before the tests run (nextest setup script):
# host packages via apt (rig setup), then every kernel + initramfs the VM tests boot. Everything is
# cached by content (~/.cache/rig), so on a machine that ran it once this takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."
# RIG_BIN: a built rig to use (the nightly's runners have the binary, not a build).
rig() {
  if [ -n "${RIG_BIN:-}" ]; then "$RIG_BIN" "$@"; else cargo run --quiet --bin rig -- "$@"; fi
}
rig setup --kbuild --tests
for board in x86_64-q35 arm64-virt; do
  for kernel in ${RIG_TEST_KERNELS:-debian-6.1 rig-7.3}; do
    rig fetch --no-setup --board "$board" --kernel "$kernel" >/dev/null
  done
done
# The flavors of the suite's kernel (rig-7.3; rig-6.12 stays buildable but the suite does not
# build it) that the tests boot: known-bad-devlink-wait on both boards (vm_kbuild, vm_speed,
# vm_overlays_x86, the matrix's controls); devlink-reload, async-probe, async-probe-window,
# hotplug-lock and of-unittest on arm64 (rig/tests/vm_seeds.rs).
# Each rebuilds a few files on top of rig-7.3's build. Flavors no test of the default run boots
# are not built here (scenarios/README.md, "What CI builds"): kasan and kobject-release (full
# builds, as long as the base build each per arch; rig/tests/vm_flavors.rs boots them on
# request), and the other x86 flavors.
if [ -z "${RIG_TEST_KERNELS:-}" ]; then
  rig fetch --no-setup --board x86_64-q35 --kernel rig-7.3-known-bad-devlink-wait >/dev/null
  for flavor in known-bad-devlink-wait known-bad-devlink-reload known-bad-async-probe async-probe-window known-bad-hotplug-lock of-unittest; do
    rig fetch --no-setup --board arm64-virt --kernel "rig-7.3-$flavor" >/dev/null
  done
fi
# The matrix set the suite's matrix tests run (RIG_MATRIX, default smoke): everything its cells
# boot, with progress.
rig matrix provision --no-setup --set "${RIG_MATRIX:-smoke}"
# check-jsonschema (PyPI) validates ci/nightly.yml and report.json files, in a venv of its own.
tools="${RIG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rig}/tools"
if ! "$tools/venv/bin/check-jsonschema" --version >/dev/null 2>&1; then
  echo "provision-tests: installing check-jsonschema from PyPI into $tools/venv" >&2
  mkdir -p "$tools"
  if ! python3 -m venv "$tools/venv" 2>/dev/null; then
    apt-get install -y -q python3-venv >&2 && python3 -m venv "$tools/venv"
  fi
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check check-jsonschema >&2
fi
