#!/usr/bin/env bash
# Run the fuzz targets (fuzz/, cargo-fuzz on the nightly toolchain), each for a time budget.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]     (default: 300 s, every target)
#
# Needs: `rustup toolchain install nightly` and `cargo install cargo-fuzz`. The corpus grows
# under $FUZZ_OUT (default /tmp/powhost-fuzz), seeded from fuzz/seeds/; crashes land in
# fuzz/artifacts/TARGET/. Prints one line per target: executions, coverage, corpus, crashes.
# Results and how they were measured: docs/RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

budget="${1:-300}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(runpod_request validator_request node_body nonce_list params plugin_host)
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/powhost-fuzz-target}"
out="${FUZZ_OUT:-/tmp/powhost-fuzz}"
mkdir -p "$out"

# Release code with debug assertions: integer overflow panics, as it should be found.
cargo +nightly fuzz build --debug-assertions

printf '%-18s %12s %8s %8s %8s %8s\n' target executions exec/s cov corpus crashes
for t in "${targets[@]}"; do
  corpus="$out/corpus/$t"
  mkdir -p "$corpus"
  cp -n seeds/"$t"/* "$corpus"/ 2>/dev/null || true
  log="$out/$t.log"
  # -timeout: one input running 10 s is a hang; -rss_limit_mb: a huge allocation is a crash.
  set +e
  cargo +nightly fuzz run --debug-assertions "$t" "$corpus" -- \
    -max_total_time="$budget" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    >"$log" 2>&1
  set -e
  # (A run that did not start leaves "?" here; its log says why.)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$( (grep -oE 'cov: [0-9]+' "$log" || true) | tail -1 | grep -oE '[0-9]+' || echo "?")
  files=$(find "$corpus" -type f | wc -l)
  crashes=0
  if [ -d "artifacts/$t" ]; then crashes=$(find "artifacts/$t" -type f | wc -l); fi
  printf '%-18s %12s %8s %8s %8s %8s\n' "$t" "$execs" "$speed" "$cov" "$files" "$crashes"
done
