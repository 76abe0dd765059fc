#!/usr/bin/env bash
# Soak: random faults (kill -9, SIGSTOP, restarts, link drops, stalls, slow
# links, cuts) on a local three-region mesh under continuous publishing, then
# every replica compared with the leader's stream message for message.
#   scripts/soak.sh [--minutes M (10)] [--seed N] [--rate MSGS_PER_S (800)]
#                   [--recovery-limit S (120)] [--only TEXT] [--keep]
# Builds isthmusd, the fault proxy and isthmus-soak in $BUILD_DIR (default:
# build-soak, its own build, so that rebuilding build/ meanwhile cannot swap
# the daemon a fault restarts; -O2 with asserts on, like the test build) and
# runs it. Summary on stdout, ending in "soak: PASS", "soak: FAIL: ..." or
# "soak: INTERRUPTED ..." (Ctrl-C);
# exit status 0 (pass), 1 (fail or Ctrl-C), 2 (bad option), 3 (install or
# build failed). Not part of the test suite (docs/benchmarks.md, "Soak").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-soak}"
{
  if [ ! -f "$build/build.ninja" ]; then
    "$root/scripts/install-deps.sh"
    meson setup "$build" "$root" -Doptimization=2 -Ddebug=false
  fi
  ninja -C "$build" daemon/isthmusd tests/tools/faultproxy/faultproxy tests/soak/isthmus-soak
} >&2 || { echo "soak.sh: install or build failed (above)" >&2; exit 3; }
export ISTHMUS_BUILD_DIR="$build" ISTHMUS_SOURCE_DIR="$root"
exec "$build/tests/soak/isthmus-soak" "$@"
