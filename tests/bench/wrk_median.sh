#!/usr/bin/env bash
# wrk_median.sh - run wrk RUNS times against one loopback URL, report medians.
# (Copy of ../shared/bench/wrk_median.sh, the yardstick scripts' runner, so that the
# project's benchmark and the yardstick use the very same wrk settings and parsing.)
#
# Usage: tests/bench/wrk_median.sh LABEL URL [extra wrk args, e.g. -s script.lua -H 'X-Vault-Token: t']
# Env:   DURATION=10 (s per run)  CONNS=32  THREADS=2  RUNS=3  TIMEOUT=5s
#
# Only loopback URLs (127.0.0.0/8, localhost, [::1]) are accepted.  Each run
# is bounded by wrk's own -d plus a hard timeout.  Prints one line per run
# and a final line:
#   RESULT LABEL rps=<median> p50=<median>ms p99=<median>ms errors=<sum> non2xx=<sum> c=.. t=.. d=..s runs=..
set -euo pipefail

DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
TIMEOUT=${TIMEOUT:-5s}
[ "$#" -ge 2 ] || { echo "usage: $0 LABEL URL [wrk args...]" >&2; exit 2; }
LABEL=$1; URL=$2; shift 2

case "$URL" in
    http://127.*|https://127.*|http://localhost[:/]*|https://localhost[:/]*|http://\[::1\]*|https://\[::1\]*) ;;
    *) echo "refusing non-loopback URL: $URL" >&2; exit 2 ;;
esac
if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
[ "$THREADS" -le "$CONNS" ] || THREADS=$CONNS

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# wrk prints latencies as e.g. 812.00us, 1.23ms, 2.01s: convert to ms.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000} else if (v ~ /m$/) {sub(/m$/,"",v); v*=60000}; printf "%.3f\n", v}'; }

rps=(); p50=(); p99=(); errs=0; non2xx=0
for i in $(seq 1 "$RUNS"); do
    out=$(timeout $((DURATION + 60)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout "$TIMEOUT" --latency "$@" "$URL" 2>&1) || {
        echo "wrk failed (run $i):" >&2; echo "$out" >&2; exit 1; }
    r=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    a=$(awk '$1=="50%" {print $2}' <<<"$out" | to_ms)
    b=$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)
    e=$(awk '/Socket errors:/ {gsub(",",""); s=0; for (i=1;i<=NF;i++) if ($i ~ /^[0-9]+$/) s+=$i; print s}' <<<"$out")
    n=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    e=${e:-0}; n=${n:-0}
    echo "run $i: $LABEL rps=$r p50=${a}ms p99=${b}ms errors=$e non2xx=$n"
    rps+=("$r"); p50+=("$a"); p99+=("$b"); errs=$((errs + e)); non2xx=$((non2xx + n))
done
echo "RESULT $LABEL rps=$(printf '%s\n' "${rps[@]}" | median) p50=$(printf '%s\n' "${p50[@]}" | median)ms p99=$(printf '%s\n' "${p99[@]}" | median)ms errors=$errs non2xx=$non2xx c=$CONNS t=$THREADS d=${DURATION}s runs=$RUNS"
