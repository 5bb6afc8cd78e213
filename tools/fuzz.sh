#!/usr/bin/env bash
# Runs the libFuzzer harnesses of fuzz/ (one per parser) under ASan + UBSan.
#   bash tools/fuzz.sh [SECONDS] [HARNESS...]    # default: 60 s each, every harness, one after the other
#   bash tools/fuzz.sh 600 zip pt                # ten minutes each for two of them
# Harnesses: npy trace esft jsonl vllm sglang trtllm pickle pt zip ultraep model topology calibration config.
# Builds them in build-asan/ (tools/asan_build.sh). Seeds: fuzz/seeds/<name>,
# the import fixtures and tests/fixtures/hostile/<name>-*; new coverage goes to $RACKEP_FUZZ_WORK/corpus/<name>
# (default build-asan/fuzz-work), crashes to $RACKEP_FUZZ_WORK/artifacts/<name>/. Exits non-zero on any
# finding (crash, leak, UB, uncaught exception, an allocation over 512 MB, an input running over 10 s).
# RACKEP_FUZZ_SEED=N fixes libFuzzer's random seed (tools/test.sh: 1, so a CI pass explores the same inputs
# first each time); unset, every run draws a new seed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-60}"
shift || true
all=(npy trace esft jsonl vllm sglang trtllm pickle pt zip ultraep model topology calibration config)
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${all[@]}")
build="${RACKEP_ASAN_BUILD:-build-asan}"
work="${RACKEP_FUZZ_WORK:-$build/fuzz-work}"

[ -n "${RACKEP_FUZZ_NO_BUILD:-}" ] ||  # set by tools/test.sh, which has built everything
  RACKEP_ASAN_BUILD="$build" bash tools/asan_build.sh $(printf 'fuzz_%s ' "${targets[@]}")

fx=tests/fixtures/import
# seed DIR PREFIX FILE...: copies FILEs into DIR, each behind the byte PREFIX (octal escape) when given.
seed() {
  local dir="$1" prefix="$2"
  shift 2
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    if [ -n "$prefix" ]; then
      { printf "$prefix"; cat "$f"; } >"$dir/seed-$(basename "$f")"
    else
      cp "$f" "$dir/seed-$(basename "$f")"
    fi
  done
}

failed=()
for t in "${targets[@]}"; do
  seeds="$work/seeds/$t"
  rm -rf "$seeds"
  mkdir -p "$seeds" "$work/corpus/$t" "$work/artifacts/$t"
  seed "$seeds" "" fuzz/seeds/"$t"/* tests/fixtures/hostile/"$t"-*
  case "$t" in
    jsonl) seed "$seeds" "" "$fx"/jsonl/*.jsonl ;;
    vllm) seed "$seeds" '\000' "$fx"/vllm/*.jsonl ;;
    sglang) seed "$seeds" "" "$fx"/sglang/csv/*.csv ;;
    trtllm) seed "$seeds" "" "$fx"/trtllm/*.safetensors ;;
    pt) seed "$seeds" "" "$fx"/sglang/*.pt "$fx"/sglang/*/*.pt ;;
    zip) seed "$seeds" "" "$fx"/ultraep/*.npz "$fx"/sglang/stat/*.pt ;;
    ultraep) seed "$seeds" '\000' "$fx"/ultraep/*.chunk000000.npz; seed "$seeds" '\001' "$fx"/ultraep/*.json ;;
    model) seed "$seeds" "" configs/models/*.json ;;
    topology) seed "$seeds" "" topologies/*.json ;;
    calibration) seed "$seeds" "" configs/calibration/*.json ;;
  esac
  echo "fuzz: $t for ${seconds}s" >&2
  log="$work/$t.log"
  if ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1" \
    "$build/fuzz/fuzz_$t" ${RACKEP_FUZZ_SEED:+-seed="$RACKEP_FUZZ_SEED"} -max_total_time="$seconds" \
    -timeout=10 -malloc_limit_mb=512 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/$t/" "$work/corpus/$t" "$seeds" >"$log" 2>&1; then
    echo "fuzz: $t: no finding ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs)" >&2
  else
    echo "fuzz: $t: FINDING (log $log, input in $work/artifacts/$t/)" >&2
    tail -40 "$log" >&2
    failed+=("$t")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: findings in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} harnesses, ${seconds}s each, no finding" >&2
