#!/usr/bin/env bash
# transit_bench.sh - the transit engine's figures of issue 11, on one custos node over HTTPS.
#
# Starts one TLS node on loopback (lib.sh), mounts KV v2 at secret/ (one secret) and transit
# at transit/, then measures with wrk (wrk_median.sh: RUNS runs of DURATION s, medians):
#   kv2-read-c32        GET  /v1/secret/data/app                   (the yardstick)
#   encrypt-1k-c32      POST /v1/transit/encrypt/bench, 1 KiB plaintext (aes256-gcm96)
#                       → ratio encrypt/kv2-read (issue: >= 0.8)
#   batch1000-c$BATCH_CONNS POST encrypt with batch_input of 1,000 items of 1 KiB
#                       → items/s (rps x 1000) against the single-item rate above
#   sign-ed25519-c32, sign-ecdsa-p256-c32  POST /v1/transit/sign/<key>, 32-byte input
#                       → against `openssl speed` on this machine, one core (the in-process
#                         floor of ../shared/bench/openssl.sh; 2 cores serve custos)
#   kv2-read-c8 quiet   GET the secret at c8 alone, then
#   kv2-read-c8 loaded  the same while a second wrk (c8, lua/transit_load.lua) creates
#                       RSA-4096 keys and signs with an RSA-2048 key (both on the worker
#                       pool) → p99 ratio loaded/quiet (issue: <= 2)
# Figures go to tests/bench/results/transit-<UTC>.txt, which is also printed. The machine
# is shared with other developers' builds and tests: read ratios within one run, not
# absolute figures across runs.
#
# Env: DURATION=10 RUNS=3 THREADS=2 BATCH_CONNS=2 LOAD_CONNS=8 SIG_SECONDS=3
#      CUSTOS_BIN=<repo>/build/custos (skip the build when set) LOG_LEVEL=warn
set -euo pipefail
exec </dev/null
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BATCH_CONNS=${BATCH_CONNS:-2}
LOAD_CONNS=${LOAD_CONNS:-8}
SIG_SECONDS=${SIG_SECONDS:-3}
LOADPID=

bench_start_node
trap 'kill -TERM "$LOADPID" 2>/dev/null || true; bench_cleanup' EXIT
api POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}' >/dev/null
api POST sys/mounts/transit '{"type":"transit"}' >/dev/null
for _ in $(seq 1 50); do # the KV v2 mount upgrades itself before it takes writes
    api PUT secret/data/app '{"data":{"username":"app","password":"s3cr3t-v@lue-0123456789"}}' \
        >/dev/null 2>&1 && break
    sleep 0.1
done
api GET secret/data/app | json_get '["data"]["data"]["password"]' | grep -qx 's3cr3t-v@lue-0123456789'
api POST transit/keys/bench '{}' >/dev/null
api POST transit/keys/ed '{"type":"ed25519"}' >/dev/null
api POST transit/keys/p256 '{"type":"ecdsa-p256"}' >/dev/null
api POST transit/keys/rsa2048 '{"type":"rsa-2048"}' >/dev/null

# Request bodies: 1 KiB of random plaintext; 1,000 of them in one batch; a 32-byte input.
"$PY" - "$WORK" <<'PYEOF'
import base64, json, os, sys
w = sys.argv[1]
pt = base64.b64encode(os.urandom(1024)).decode()
json.dump({"plaintext": pt}, open(w + "/enc.json", "w"))
json.dump({"batch_input": [{"plaintext": base64.b64encode(os.urandom(1024)).decode()}
                           for _ in range(1000)]}, open(w + "/batch.json", "w"))
json.dump({"input": base64.b64encode(os.urandom(32)).decode()}, open(w + "/sign.json", "w"))
PYEOF
# Each workload answers correctly before it is timed.
post_file() { # post_file PATH BODYFILE → body (the batch is too long for an argument)
    curl -sS --fail-with-body --max-time 30 --cacert "$CACERT" -H "X-Vault-Token: $TOKEN" \
        -H 'Content-Type: application/json' --data-binary @"$2" "$ADDR/v1/$1"
}
check() { # check PATH BODYFILE EXPR
    post_file "$1" "$2" | json_get "$3" >/dev/null
}
check transit/encrypt/bench "$WORK/enc.json" '["data"]["ciphertext"]'
[ "$(post_file transit/encrypt/bench "$WORK/batch.json" \
    | json_get '["data"]["batch_results"].__len__()')" = 1000 ]
check transit/sign/ed "$WORK/sign.json" '["data"]["signature"]'
check transit/sign/p256 "$WORK/sign.json" '["data"]["signature"]'

OUT=$(results_file transit)
{
    echo "# shared machine: ~8 developers build and test on these 2 cores at the same time;"
    echo "#   compare the ratios inside this run, not absolute figures across runs"
    echo "rss-after-setup: $(rss)"
} >> "$OUT"

post() { # post LABEL CONNS PATH BODYFILE
    export TR_PATH=/v1/$3 TR_BODY=$4
    run_wrk "$1" "$2" "$ADDR/v1/$3" -H "X-Vault-Token: $TOKEN" \
        -s "$BENCH_HERE/lua/transit_post.lua"
}
field() { # field RESULT-LINE NAME → the number after NAME=
    sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<<"$1"
}

KV32=$(run_wrk kv2-read-c32 32 "$ADDR/v1/secret/data/app" -H "X-Vault-Token: $TOKEN")
ENC32=$(post encrypt-1k-c32 32 transit/encrypt/bench "$WORK/enc.json")
BATCH=$(post "batch1000-c$BATCH_CONNS" "$BATCH_CONNS" transit/encrypt/bench "$WORK/batch.json")
ED=$(post sign-ed25519-c32 32 transit/sign/ed "$WORK/sign.json")
P256=$(post sign-ecdsa-p256-c32 32 transit/sign/p256 "$WORK/sign.json")

# The in-process floor: openssl speed, one core, medians of RUNS (as openssl.sh).
: > "$WORK/sig"
for _ in $(seq 1 "$RUNS"); do
    timeout $((SIG_SECONDS * 8 + 60)) openssl speed -mr -seconds "$SIG_SECONDS" ed25519 ecdsap256 \
        2>/dev/null | awk -F: '/^\+F4:/ && $3==256 {print "ecdsap256", $4}
                               /^\+F6:/ {print "ed25519", $5}' >> "$WORK/sig"
done
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
SSL_ED=$(awk '$1=="ed25519" {print $2}' "$WORK/sig" | median)
SSL_P256=$(awk '$1=="ecdsap256" {print $2}' "$WORK/sig" | median)

# KV read p99 at c8, quiet, then with the RSA load running beside it for the whole series.
QUIET=$(run_wrk kv2-read-c8-quiet 8 "$ADDR/v1/secret/data/app" -H "X-Vault-Token: $TOKEN")
LOAD_SECS=$((DURATION * RUNS + 10))
KEY_PREFIX=load- TR_SIGN_KEY=rsa2048 timeout $((LOAD_SECS + 60)) wrk -t2 -c"$LOAD_CONNS" \
    -d"${LOAD_SECS}s" --timeout 60s --latency -s "$BENCH_HERE/lua/transit_load.lua" \
    -H "X-Vault-Token: $TOKEN" "$ADDR" > "$WORK/load.out" 2>&1 &
LOADPID=$!
sleep 3 # the pool is busy before the first measured run
LOADED=$(run_wrk kv2-read-c8-loaded 8 "$ADDR/v1/secret/data/app" -H "X-Vault-Token: $TOKEN")
wait "$LOADPID" || true
LOADPID=
LOAD_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/load.out")
LOAD_N=$(awk '/requests in/ {print $1}' "$WORK/load.out")
LOAD_NON2XX=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$WORK/load.out")
RSA_KEYS=$(api LIST transit/keys | json_get '["data"]["keys"]' | tr ',' '\n' | grep -c load- || true)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "nan"}'; }
{
    printf '%s\n' "$KV32" "$ENC32" "$BATCH" "$ED" "$P256" "$QUIET" "$LOADED"
    echo "background load: c$LOAD_CONNS, ${LOAD_N:-?} requests (half RSA-4096 key creations, half RSA-2048 signatures) at ${LOAD_RPS:-?}/s, non2xx=${LOAD_NON2XX:-0}, RSA-4096 keys created: $RSA_KEYS"
    echo "openssl-speed-one-core ed25519-sign=${SSL_ED}/s ecdsa-p256-sign=${SSL_P256}/s (${SIG_SECONDS}s x $RUNS, medians)"
    echo "rss-after-runs: $(rss)"
    E=$(field "$ENC32" rps); K=$(field "$KV32" rps); B=$(field "$BATCH" rps)
    echo "SUMMARY encrypt-1k-c32/kv2-read-c32 = $(ratio "$E" "$K") (goal >= 0.8)"
    echo "SUMMARY batch1000 items/s = $(awk -v b="$B" 'BEGIN {printf "%.0f", b * 1000}') vs single-item encrypt/s = $E: $(ratio "$(awk -v b="$B" 'BEGIN {print b * 1000}')" "$E")x"
    echo "SUMMARY sign ed25519 custos/openssl-one-core = $(ratio "$(field "$ED" rps)" "$SSL_ED"), ecdsa-p256 = $(ratio "$(field "$P256" rps)" "$SSL_P256")"
    echo "SUMMARY kv2-read-c8 p99 loaded/quiet = $(ratio "$(field "$LOADED" p99)" "$(field "$QUIET" p99)") (goal <= 2)"
} >> "$OUT"

echo
echo "results: $OUT"
cat "$OUT"
