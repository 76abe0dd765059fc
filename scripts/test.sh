#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test suite (unit,
# integration, interop, fuzz corpus replay). Ends with "N passed, N failed",
# counting Catch2 test cases individually and every other test as one.
# Usage: scripts/test.sh [meson test args...]   e.g. scripts/test.sh --suite unit
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
BUILD=${BUILD_DIR:-build}
if [ ! -f "$BUILD/build.ninja" ]; then
  # -O2 like debugoptimized, without debug info: a fifth less compile time
  # for the same code under test (asserts stay on: NDEBUG only in release).
  meson setup "$BUILD" -Doptimization=2 -Ddebug=false >/dev/null
fi
echo "== build ($BUILD)"
ninja -C "$BUILD"

echo "== tests"
set +e
meson test -C "$BUILD" --print-errorlogs --num-processes 2 "$@"
rc=$?
set -e
python3 scripts/test-summary.py "$BUILD/meson-logs/testlog.json"
sum_rc=$?
if [ $rc -ne 0 ] || [ $sum_rc -ne 0 ]; then exit 1; fi
