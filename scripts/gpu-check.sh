#!/usr/bin/env bash
# The one prepared GPU check (docs/CUDA.md).
#
#   scripts/gpu-check.sh prepare   here (x86_64, no GPU needed): builds the release binary and
#                                  the GPU test executables into .gpu/ (git-ignored, ≤ 64 MiB),
#                                  with the Vulkan loader for machines that lack libvulkan1.
#   scripts/gpu-check.sh run       on the GPU machine (carry .gpu): every check in turn, each
#                                  with its own time limit, every log under $OUT (default
#                                  .gpu/out), a summary in $OUT/summary.txt. A failing step
#                                  does not stop the others.
#
# Designed to finish in under 8 minutes on an H200: the op check and conformance tests take
# seconds; the mainnet model (a 1.8 GB pool) is drawn a few times, about 3 s each on 16 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
GPU_DIR=.gpu

prepare() {
  set -e
  mkdir -p "$GPU_DIR/bin" "$GPU_DIR/lib"
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  cargo build --release -p powhost
  cp "${CARGO_TARGET_DIR:-target}/release/powhost" "$GPU_DIR/bin/"
  # The test executables of the GPU backends, named <crate>-<test>.
  cargo test --release -p powhost-cuda -p powhost-wgpu --no-run --message-format=json 2>/dev/null \
    | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"]:
        crate = m["package_id"].split("#")[0].rsplit("/", 1)[-1]
        name = crate.replace("powhost-", "") + "-" + m["target"]["name"]
        shutil.copy(m["executable"], sys.argv[1] + "/" + name)
        print("  test executable:", name)
' "$GPU_DIR/bin"
  # The Vulkan loader (the GPU machine has NVIDIA's driver but may lack libvulkan1).
  [ -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ] && cp -L /usr/lib/x86_64-linux-gnu/libvulkan.so.1 "$GPU_DIR/lib/"
  [ -e "$GPU_DIR/lib/libvulkan.so.1" ] || echo "warning: no libvulkan.so.1 here (apt-get install libvulkan1); wgpu on the GPU machine needs its own" >&2
  strip --strip-debug "$GPU_DIR"/bin/* 2>/dev/null || true
  local size
  size=$(du -sm "$GPU_DIR" | cut -f1)
  echo "prepared $GPU_DIR: ${size} MiB"
  [ "$size" -le 64 ] || { echo "error: $GPU_DIR is over the 64 MiB that travels" >&2; exit 1; }
}

run_checks() {
  OUT="${OUT:-$GPU_DIR/out}"
  mkdir -p "$OUT"
  local bin="$GPU_DIR/bin" summary="$OUT/summary.txt"
  : > "$summary"
  export RUST_BACKTRACE=1 XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
  # step NAME LIMIT_S COMMAND...: run, log, time, and record the outcome; never stop the script.
  step() {
    local name="$1" limit="$2"; shift 2
    local start=$SECONDS rc
    if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "$1" ]; then
      echo "SKIP  $name: $1 is not here" | tee -a "$summary"; return
    fi
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; rc=$?
    local verdict=ok
    [ $rc -eq 0 ] || verdict="FAIL (exit $rc$([ $rc -eq 124 ] && echo ', timed out'))"
    # A test that found no device passes saying SKIPPED; powhost itself says "no CUDA device".
    if grep -q 'SKIPPED' "$OUT/$name.log" && [ $rc -eq 0 ]; then
      verdict="skipped: $(grep -m1 -o 'SKIPPED.*' "$OUT/$name.log" | cut -c1-120)"
    elif [ $rc -ne 0 ] && grep -q 'no CUDA device' "$OUT/$name.log"; then
      verdict="skipped: $(grep -m1 -o 'no CUDA device.*' "$OUT/$name.log" | cut -c1-120)"
    fi
    echo "$(printf '%-28s' "$name") $verdict, $((SECONDS - start)) s" | tee -a "$summary"
  }
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi: the GPU steps will skip" | tee -a "$summary"
  # GPU memory in use, every half second, through the whole run.
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -lms 500 > "$OUT/gpu-memory.csv" 2>&1 &
    local smi=$!
  fi

  step cuda-nvrtc          60  "$bin/cuda-nvrtc" --nocapture
  step cuda-op-check      180  "$bin/cuda-op_check" --nocapture
  step cuda-conformance   180  "$bin/cuda-conformance" --nocapture --test-threads 1
  step cuda-selftest       60  "$bin/powhost" selftest --backend cuda
  step cuda-mainnet-golden 120 "$bin/powhost" compare --backends cuda --golden tests/golden/mainnet.json --budget-max 2e-5 --budget-median 2e-5
  # Cold start: process start to the first batch's distances, one mainnet nonce.
  local timer=""; [ -x /usr/bin/time ] && timer="/usr/bin/time -v"
  step cuda-cold-start     60  bash -c "s=\$(date +%s.%N); $timer '$bin/powhost' distances --backend cuda --preset mainnet \
    --block-hash 0000000000000000000000000000000000000000000000000000000000000001 \
    --public-key test_public_key_12345678901234567890 --nonces 0..1 --json \
    && awk -v s=\$s -v e=\$(date +%s.%N) 'BEGIN { printf \"cold start: %.2f s\\n\", e - s }'"
  step cuda-bench-mainnet 150  "$bin/powhost" bench --backend cuda --preset mainnet --nonces 2048
  step cuda-bench-json     90  "$bin/powhost" bench --backend cuda --preset devtest --nonces 20000 --json

  # wgpu on NVIDIA's Vulkan driver, with the carried loader where the machine has none.
  # Without an NVIDIA GPU these are skipped: lavapipe is covered by `cargo test`, and mainnet
  # on it would take hours.
  if ! nvidia-smi -L >/dev/null 2>&1; then
    for name in wgpu-op-check wgpu-conformance wgpu-mainnet-golden wgpu-bench-devtest; do
      echo "$(printf '%-28s' "$name") skipped: no NVIDIA GPU here" | tee -a "$summary"
    done
    [ -n "${smi:-}" ] && kill "$smi" 2>/dev/null
    echo "logs in $OUT"; return
  fi
  if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
    export LD_LIBRARY_PATH="$PWD/$GPU_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
  step wgpu-op-check       120 "$bin/wgpu-op_check" --nocapture
  step wgpu-conformance    180 "$bin/wgpu-conformance" --nocapture --test-threads 1
  step wgpu-selftest        60 "$bin/powhost" selftest --backend wgpu
  step wgpu-mainnet-golden 120 "$bin/powhost" compare --backends wgpu --golden tests/golden/mainnet.json --budget-max 2e-5 --budget-median 2e-5
  step wgpu-bench-devtest   90 "$bin/powhost" bench --backend wgpu --preset devtest --nonces 2000

  [ -n "${smi:-}" ] && kill "$smi" 2>/dev/null
  echo "logs in $OUT; summary:"; cat "$summary"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run_checks ;;
  *) echo "usage: scripts/gpu-check.sh prepare|run (see docs/CUDA.md)" >&2; exit 2 ;;
esac
