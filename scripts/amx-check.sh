#!/usr/bin/env bash
# The AMX GEMM path's checks, for a machine whose processor has AMX tiles (Intel Sapphire
# Rapids or later: `amx_tile` and `amx_bf16` in /proc/cpuinfo). Nothing here can be skipped:
# POWHOST_REQUIRE_BACKENDS=amx turns every "SKIPPED: AMX unavailable" into a failure.
#
#   scripts/amx-check.sh     the tile kernel against its emulation, the goldens on the tiles,
#                            the GEMM's parts timed per shape (`--bench amx_gemm`),
#                            `compare` on devtest, `bench` on both GEMM paths, then one mainnet
#                            nonce on each path with its wall time and peak memory (text and
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
# Where the AMX GEMM's time goes per shape: splitting, packing, the driver, the tiles.
cargo bench -p powhost-cpu --bench amx_gemm 2>&1 | tee "$OUT/amx-gemm-parts.json"
cargo build --release -p powhost
bin=${CARGO_TARGET_DIR:-target}/release/powhost
"$bin" compare --backends cpu --cpu-gemm amx --golden tests/golden/forward_devtest.json \
  | tee "$OUT/compare-devtest-amx.txt"
for path in f32 amx; do
  for preset in devtest cpu-bench; do
    "$bin" bench --backend cpu --cpu-gemm "$path" --preset "$preset" --rounds 5 --json \
      | tee "$OUT/bench-$preset-$path.json"
  done
done
# One mainnet nonce (the validator's unit of work; the goal is <= 20 s and < 2 GB on the
# tiles): the whole command, pool and model build included, on each path.
for path in amx f32; do
  cmd=("$bin" distances --backend cpu --preset mainnet --block-hash 0000000000000000000000000000000000000000000000000000000000000001
    --public-key test_public_key_12345678901234567890 --nonces 0)
  if [ -x /usr/bin/time ]; then
    POWHOST_CPU_GEMM=$path /usr/bin/time -v "${cmd[@]}" > "$OUT/mainnet-$path.txt" 2> "$OUT/mainnet-$path.time"
    grep -E 'Elapsed|Maximum resident' "$OUT/mainnet-$path.time" | sed "s/^/mainnet $path: /"
  else
    SECONDS=0
    POWHOST_CPU_GEMM=$path "${cmd[@]}" > "$OUT/mainnet-$path.txt"
    echo "mainnet $path: ${SECONDS} s (install 'time' for the peak memory)"
  fi
done
