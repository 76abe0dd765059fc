#!/usr/bin/env bash
# S2 benchmark: Isthmus vs reference Go s2 (default, better) vs libsnappy.
#   scripts/bench-s2.sh [bench-s2.py options: --reps N --size BYTES --corpora ... --frames ...]
# Configures a release build in $BUILD_DIR (default build-bench-s2), builds only
# the benchmark's targets and runs tests/bench/bench-s2.py. Results (Markdown
# table, raw JSON) land in $BUILD_DIR/bench-s2/. Not part of the test suite.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench-s2}"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$root" --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C "$build" tests/bench/s2_bench tests/bench/corpusgen tests/interop/s2ref tests/interop/snappyref >/dev/null
exec python3 "$root/tests/bench/bench-s2.py" \
  --corpusgen "$build/tests/bench/corpusgen" --isthmus "$build/tests/bench/s2_bench" \
  --s2ref "$build/tests/interop/s2ref" --snappyref "$build/tests/interop/snappyref" \
  --out "$build/bench-s2" "$@"
