#!/usr/bin/env bash
# Replication benchmark: Isthmus (two isthmusd, TLS+S2) against native NATS
# mirroring (JetStream domains over a leafnode) and the JetStream publish
# ceiling, side by side in one run; see docs/benchmarks.md.
#   scripts/bench-replication.sh [bench-replication.py options: --reps N --kinds 128,json ...]
# Configures a release build in $BUILD_DIR (default build-bench-repl), builds
# only what the benchmark runs (isthmusd, isthmus-loadgen, faultproxy) and runs
# tests/bench/bench-replication.py (about 10 minutes with the defaults).
# Results (Markdown table, raw JSON) land in $BUILD_DIR/bench-replication/.
# Not part of the test suite.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench-repl}"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$root" --buildtype=release -Db_ndebug=true >/dev/null
fi
ninja -C "$build" daemon/isthmusd tests/tools/loadgen/isthmus-loadgen tests/tools/faultproxy/faultproxy >/dev/null
exec python3 "$root/tests/bench/bench-replication.py" --build "$build" \
  --out "$build/bench-replication" "$@"
