#!/usr/bin/env bash
# kv_bench.sh - KV v1 read and write throughput/latency of one custos node over HTTPS.
#
# Starts one TLS node on loopback (lib.sh), mounts KV v1 at kv/, writes one secret, then
# drives it with wrk (wrk_median.sh: RUNS runs of DURATION s, medians) at each connection
# count of CONNS_LIST:
#   kv-read   GET  /v1/kv/bench/app                       (one existing secret)
#   kv-write  PUT  /v1/kv/bench/w/<unique key>            (lua/kv_write.lua)
# and records the server's RSS (VmRSS/VmHWM). With NGINX=1 it then runs the yardstick,
# ../shared/bench/nginx_ceiling.sh (WORKERS=1, same DURATION/RUNS), when that script
# exists beside the repository. Figures go to tests/bench/results/kv-<UTC>.txt, which is
# also printed.
#
# Env: DURATION=10 RUNS=3 CONNS_LIST="1 32" THREADS=2 VALUE_BYTES=64 NGINX=0
#      CUSTOS_BIN=<repo>/build/custos (skip the build when set) LOG_LEVEL=warn
set -euo pipefail
exec </dev/null
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export VALUE_BYTES=${VALUE_BYTES:-64}
NGINX=${NGINX:-0}

bench_start_node
api POST sys/mounts/kv '{"type":"kv","options":{"version":"1"}}' >/dev/null
api PUT kv/bench/app '{"username":"app","password":"s3cr3t-v@lue-0123456789"}' >/dev/null
READ_BODY=$(api GET kv/bench/app)
json_get '["data"]["password"]' <<<"$READ_BODY" | grep -qx 's3cr3t-v@lue-0123456789'
READ_BYTES=$(printf '%s' "$READ_BODY" | wc -c)

OUT=$(results_file kv)
{
    echo "# read body ${READ_BYTES} B; write value ${VALUE_BYTES} B, unique keys"
    echo "rss-after-setup: $(rss)"
} >> "$OUT"

results=()
for c in $CONNS_LIST; do
    results+=("$(run_wrk "custos-kv-read-c$c" "$c" "$ADDR/v1/kv/bench/app" -H "X-Vault-Token: $TOKEN")")
    results+=("$(run_wrk "custos-kv-write-c$c" "$c" "$ADDR/v1/kv/" -H "X-Vault-Token: $TOKEN" \
        -s "$BENCH_HERE/lua/kv_write.lua")")
done
{
    printf '%s\n' "${results[@]}"
    echo "rss-after-runs: $(rss)"
    KEYS=$(api LIST kv/bench/w/ 2>/dev/null | json_get '["data"]["keys"].__len__()' 2>/dev/null || echo "?")
    echo "keys-written: $KEYS"
} >> "$OUT"

if [ "$NGINX" = 1 ]; then
    CEIL=$BENCH_ROOT/../shared/bench/nginx_ceiling.sh
    if [ -f "$CEIL" ]; then
        bench_stop_node # the yardstick gets the machine to itself, like custos did
        for c in $CONNS_LIST; do
            t=$MAX_THREADS; [ "$t" -le "$c" ] || t=$c
            NP=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
            NS=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
            echo "--- nginx yardstick c$c" >&2
            WORKERS=1 CONNS=$c THREADS=$t HTTP_PORT=$NP HTTPS_PORT=$NS \
                bash "$CEIL" 2>&1 | tee "$WORK/nginx.out" >&2
            grep '^SUMMARY' "$WORK/nginx.out" | sed "s/^SUMMARY /nginx-c$c /" >> "$OUT"
        done
    else
        echo "# NGINX=1 but $CEIL does not exist: no yardstick" >> "$OUT"
    fi
fi

echo
echo "results: $OUT"
cat "$OUT"
