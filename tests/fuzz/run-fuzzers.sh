#!/usr/bin/env bash
# Builds the S2 libFuzzer drivers with clang (libFuzzer + ASan + UBSan) and
# runs them in parallel for a given time.
#
#   tests/fuzz/run-fuzzers.sh [SECONDS] [OUT_DIR] [DRIVER...]
#
# SECONDS defaults to 600 per driver; OUT_DIR (default build-fuzz) receives
# the binaries, a working corpus per driver (seeded from tests/fuzz/corpus),
# crash artifacts and one log per driver. Drivers default to all three:
# block_decode stream_decode roundtrip frame. Runs under `nice`. Exits non-zero if
# any driver found a crash; new interesting inputs stay in OUT_DIR/corpus-*
# (copy small ones into tests/fuzz/corpus/ to keep them as regression seeds).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
secs="${1:-600}"
out="${2:-$root/build-fuzz}"
shift $(( $# > 2 ? 2 : $# ))
drivers=("$@")
[ ${#drivers[@]} -gt 0 ] || drivers=(block_decode stream_decode roundtrip frame)
CXX="${CXX:-clang++}"
flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=all -I"$root/daemon")
mkdir -p "$out"
srcs=("$root"/daemon/codec/*.cpp "$root/daemon/util/status.cpp" "$root/daemon/link/wire.cpp" "$root/daemon/link/frame.cpp")

for d in "${drivers[@]}"; do
  echo "build fuzz_$d"
  nice "$CXX" "${flags[@]}" "$here/fuzz_$d.cpp" "${srcs[@]}" -o "$out/fuzz_$d"
done

pids=()
for d in "${drivers[@]}"; do
  mkdir -p "$out/corpus-$d" "$out/artifacts-$d"
  cp -n "$here/corpus/$d"/* "$out/corpus-$d/" 2>/dev/null || true
  nice "$out/fuzz_$d" "$out/corpus-$d" \
      -max_total_time="$secs" -max_len=70000 -rss_limit_mb=2048 -timeout=20 \
      -print_final_stats=1 -artifact_prefix="$out/artifacts-$d/" \
      >"$out/fuzz_$d.log" 2>&1 &
  pids+=($!)
  echo "started fuzz_$d (pid $!), log $out/fuzz_$d.log"
done

rc=0
for i in "${!pids[@]}"; do
  d="${drivers[$i]}"
  if wait "${pids[$i]}"; then status=ok; else status=FAILED; rc=1; fi
  execs=$(grep -E '^stat::number_of_executed_units' "$out/fuzz_$d.log" | awk '{print $2}')
  crashes=$(find "$out/artifacts-$d" -type f | wc -l)
  echo "fuzz_$d: $status, executions=${execs:-?}, artifacts=$crashes, corpus=$(ls "$out/corpus-$d" | wc -l)"
done
exit $rc
