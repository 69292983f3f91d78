#!/usr/bin/env bash
# Runs every libFuzzer target in tests/fuzz (or the ones named) over its seed corpus, one at
# a time, and writes one results file for the whole run under tests/fuzz/results/: per
# target the executions reached, the wall time, exec/s, coverage (cov:/ft: of libFuzzer's
# last status line), the corpus size and the crashes found.
#
#   tests/fuzz/run.sh [-n RUNS] [-t SECONDS] [-m] [-o FILE] [-B DIR] [-a ARGS] [-N] [TARGET...]
#
#   -n RUNS     stop a target after RUNS executions (libFuzzer -runs=); default 100000
#   -t SECONDS  stop a target after SECONDS at most (-max_total_time=); default 300
#   -m          afterwards merge (-merge=1, edges only) the inputs that add coverage into the
#               seed corpus tests/fuzz/corpus/TARGET (review and commit them)
#   -o FILE     results file (default tests/fuzz/results/run-<UTC date>.md); an existing
#               file gets the new rows appended (one long run made of several invocations)
#   -B DIR      build directory (default build-fuzz); configured with clang + libFuzzer +
#               ASan/UBSan if it does not exist, and always (re)compiled
#   -a ARGS     extra libFuzzer arguments, e.g. "-fork=1 -ignore_crashes=1" to keep going
#               past crashes (each is still saved and counted)
#   -N          do not configure or compile (the binaries in DIR are used as they are)
#   TARGET      hcl, policy, http, ... (the part after fuzz_); default: every fuzz_*.c here
#
# Every target runs under `nice -n 10`. Crashes are kept in DIR/fuzz-artifacts/TARGET/;
# turn each into a regression input in tests/fuzz/corpus/TARGET and a unit test.
# Exit status: 0 when no target crashed or failed to start, 1 otherwise.
set -uo pipefail
exec </dev/null
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RUNS=100000 SECS=300 MERGE=0 OUT="" BUILD=build-fuzz NOBUILD=0 EXTRA=""
while getopts "n:t:mo:B:Na:h" o; do
    case $o in
    n) RUNS=$OPTARG ;;
    t) SECS=$OPTARG ;;
    m) MERGE=1 ;;
    o) OUT=$OPTARG ;;
    B) BUILD=$OPTARG ;;
    N) NOBUILD=1 ;;
    a) EXTRA=$OPTARG ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
cd "$ROOT" || exit 1

if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=()
    for f in "$HERE"/fuzz_*.c; do
        t=$(basename "$f" .c); TARGETS+=("${t#fuzz_}")
    done
fi

if [ "$NOBUILD" = 0 ]; then
    if [ ! -f "$BUILD/build.ninja" ]; then
        CC=clang meson setup "$BUILD" -Dfuzz=true -Db_sanitize=address,undefined \
            -Db_lundef=false || exit 1
    fi
    nice -n 10 meson compile -C "$BUILD" $(printf 'tests/fuzz/fuzz_%s ' "${TARGETS[@]}") ||
        exit 1
fi

mkdir -p "$HERE/results"
[ -n "$OUT" ] || OUT="$HERE/results/run-$(date -u +%Y%m%d-%H%M%S).md"
[ -s "$OUT" ] || {
    echo "# Fuzz run $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')," \
        "host: $(nproc) cores (shared), $(clang --version | head -1), ASan+UBSan," \
        "one target at a time under nice -n 10."
    echo
    echo "| target | limits | executions | seconds | exec/s | cov | ft | corpus | crashes | result |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
} >"$OUT"

STATUS=0
for t in "${TARGETS[@]}"; do
    exe="$BUILD/tests/fuzz/fuzz_$t"
    seed="$HERE/corpus/$t"
    work="$BUILD/fuzz-corpus/$t"
    art="$BUILD/fuzz-artifacts/$t/"
    log="$BUILD/fuzz-logs/$t.log"
    mkdir -p "$seed" "$work" "$art" "$(dirname "$log")"
    echo "=== fuzz_$t: up to $RUNS runs or ${SECS}s (log $log)"
    before=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
        -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    start=$(date +%s.%N)
    # The work dir comes first: new units are written there, the seed dir stays as committed.
    # -rss_limit_mb/-timeout: a slow or runaway input is a finding too, not a hung run.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
        nice -n 10 "$exe" -runs="$RUNS" -max_total_time="$SECS" -print_final_stats=1 \
        -timeout=25 -rss_limit_mb=2048 -artifact_prefix="$art" $EXTRA "$work" "$seed" >"$log" 2>&1
    rc=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
    after=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
        -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    crashes=$((after - before))
    # Figures: executions and exec/s from the final stats, cov/ft/corp from the last status line.
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
    # libFuzzer prints 0 exec/s for a run under a second: use the wall time instead.
    if [ "${eps:-0}" = 0 ] && [ -n "$execs" ]; then
        eps=$(awk -v n="$execs" -v a="$start" -v b="$(date +%s.%N)" \
            'BEGIN { printf "%.0f", n / (b - a) }')
    fi
    corp=$(find "$work" "$seed" -maxdepth 1 -type f -printf '%f\n' | sort -u | wc -l)
    if [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $rc, see $log)"
        STATUS=1
    fi
    printf '| fuzz_%s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" \
        "-runs=$RUNS -max_total_time=$SECS${EXTRA:+ $EXTRA}" "${execs:-?}" \
        "$secs" "${eps:-?}" "${cov:-?}" "${ft:-?}" "$corp" "$crashes" "$result" >>"$OUT"
    echo "    $result: ${execs:-?} runs in ${secs}s, cov ${cov:-?} ft ${ft:-?}, $crashes crashes"
    if [ "$MERGE" = 1 ] && [ "$crashes" -eq 0 ]; then
        nice -n 10 "$exe" -merge=1 -use_counters=0 -timeout=25 "$seed" "$work" >>"$log" 2>&1 ||
            echo "    merge into $seed failed (see $log)"
    fi
done
echo "results: $OUT"
exit $STATUS
