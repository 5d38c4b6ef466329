#!/usr/bin/env bash
# run_fuzzer.sh FUZZER SECONDS SEED_DIR: runs a libFuzzer target for SECONDS from the checked-in
# seeds, keeping what it finds in a scratch corpus (the seeds stay as they are), and prints
# the number of executions. Exits non-zero on a crash, a leak or a sanitizer report.
set -euo pipefail
fuzzer=$(realpath "$1") seconds=$2 seeds=$(realpath "$3")
[ -x "$fuzzer" ] || { echo "$fuzzer is not built (make fuzz builds it)" >&2; exit 1; }
[ -d "$seeds" ] || { echo "$seeds: no seed corpus" >&2; exit 1; }
scratch=$(mktemp -d /tmp/tlscache-fuzz-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/corpus"
cd "$scratch"  # crash-* reproducers land here and are printed below
status=0
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -max_len=20000 "$scratch/corpus" "$seeds" >"$scratch/log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  tail -n 60 "$scratch/log"
  for crash in "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-*; do
    [ -e "$crash" ] && { echo "reproducer $crash:"; od -A x -t x1z "$crash" | head -n 20; }
  done
  exit "$status"
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/log")
echo "$(basename "$fuzzer"): $runs executions in ${seconds}s, no crash"
