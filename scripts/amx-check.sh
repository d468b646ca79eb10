#!/usr/bin/env bash
# The AMX GEMM path's checks, for a machine whose processor has AMX tiles (Intel Sapphire
# Rapids or later: `amx_tile` and `amx_bf16` in /proc/cpuinfo). Nothing here can be skipped:
# POWHOST_REQUIRE_BACKENDS=amx turns every "SKIPPED: AMX unavailable" into a failure.
#
#   scripts/amx-check.sh     the tile kernel against its emulation, the goldens on the tiles,
#                            `compare` on devtest, then `bench` on both GEMM paths (text and
#                            JSON under $OUT, default target/amx-check).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/amx-check}
mkdir -p "$OUT"
if ! grep -qw amx_tile /proc/cpuinfo || ! grep -qw amx_bf16 /proc/cpuinfo; then
  echo "this processor lists no amx_tile/amx_bf16 in /proc/cpuinfo: it cannot run the AMX path" >&2
  exit 1
fi
grep -m1 'model name' /proc/cpuinfo | tee "$OUT/cpu.txt"
export POWHOST_REQUIRE_BACKENDS=amx
cargo test --release -p powhost-cpu -- --nocapture 2>&1 | tee "$OUT/tests-cpu.txt"
cargo test --release -p powhost --test cpu_gemm 2>&1 | tee "$OUT/tests-host.txt"
cargo build --release -p powhost
bin=${CARGO_TARGET_DIR:-target}/release/powhost
"$bin" compare --backends cpu --cpu-gemm amx --golden tests/golden/forward_devtest.json \
  | tee "$OUT/compare-devtest-amx.txt"
for path in f32 amx; do
  for preset in devtest cpu-bench; do
    "$bin" bench --backend cpu --cpu-gemm "$path" --preset "$preset" --json \
      | tee "$OUT/bench-$preset-$path.json"
  done
done
