#!/usr/bin/env bash
# Run the fuzz targets (fuzz/, cargo-fuzz on the nightly toolchain), each for a time budget.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]     (default: 300 s, every target)
#
# Needs: `rustup toolchain install nightly` and `cargo install cargo-fuzz`. The corpus grows
# under $FUZZ_OUT (default /tmp/powhost-fuzz), seeded from fuzz/seeds/; crashes land in
# fuzz/artifacts/TARGET/. Each target first runs its seeds and a few inputs more (-runs=16):
# one that crashes there (a setup that fails, such as a plugin the host refuses to load) is
# reported as not started, with the line that says why, and its budget is not spent. Prints one
# line per target: executions, coverage, corpus, crashes; exits 1 if a target did not start.
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

# Whether target $1 starts: its seeds and 16 inputs more run without a crash (in a scratch
# corpus, so the seeds stay as committed). Prints why not when it does not.
starts() {
  local t="$1" scratch log="$out/$1.start.log"
  scratch=$(mktemp -d)
  cp seeds/"$t"/* "$scratch"/ 2>/dev/null || true
  local status=0
  cargo +nightly fuzz run --debug-assertions "$t" "$scratch" -- \
    -runs=16 -timeout=10 -rss_limit_mb=4096 >"$log" 2>&1 || status=$?
  rm -rf "$scratch"
  if [ "$status" -ne 0 ]; then
    local why
    why=$( (grep -m1 -E "panicked at|^error|ERROR:" -A1 "$log" || tail -n 2 "$log") | tr '\n' ' ')
    printf '%-18s did not start (exit %s): %s\n' "$t" "$status" "${why:0:400}"
    printf '%-18s full log: %s\n' "" "$log"
    return 1
  fi
}

not_started=()
printf '%-18s %12s %8s %8s %8s %8s\n' target executions exec/s cov corpus crashes
for t in "${targets[@]}"; do
  if ! starts "$t"; then
    not_started+=("$t")
    continue
  fi
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
if [ ${#not_started[@]} -gt 0 ]; then
  echo "did not start: ${not_started[*]} (their logs: $out/TARGET.start.log)" >&2
  exit 1
fi
