#!/usr/bin/env bash
# pki_bench.sh - PKI issuance, OCSP and CRL figures of one custos node over HTTPS.
#
# Starts one TLS node on loopback (lib.sh), mounts pki/ with an ECDSA P-256 root, then
# drives it with wrk (wrk_median.sh: RUNS runs of DURATION s, medians) at each connection
# count of CONNS_LIST:
#   pki-issue-ec   POST /v1/pki/issue/ec  (P-256 key and leaf, role no_store=true)
#   pki-ocsp-get   GET  /v1/pki/ocsp/<base64 request for one leaf>
#   pki-ocsp-post  POST /v1/pki/ocsp (application/ocsp-request)
# then, beside wrk, RSA-2048 issuance (key on the worker pool) run by CURL_RSA requests in
# parallel while a KV read series runs (pki-kv-read-during-rsa: compare its p99 with
# kv-read alone), and the time of crl/rotate with N_REVOKED revoked certificates (made
# through the API by wrk: issue a stored certificate, revoke it by its serial, at c32;
# the KV read latency while the CRL is rebuilt shows whether the rebuild blocks the loop).
# With FLOOR=1 it runs ../shared/bench/openssl.sh first and records its "issue" lines
# (the in-process floor, per core); with POOL=1 it also measures pki-issue-ec on a second
# node that makes EC leaves on the worker pool (CUSTOS_PKI_ISSUE_ON_POOL=1) instead of
# inline on the loop. Figures go to tests/bench/results/pki-<UTC>.txt, which is also
# printed.
#
# Env: DURATION=10 RUNS=3 CONNS_LIST="1 32" THREADS=2 N_REVOKED=1000 CURL_RSA=8 FLOOR=0 POOL=0
#      FLOOR_DIR=<repo>/../shared/bench
#      CUSTOS_BIN=<repo>/build/custos (skip the build when set) LOG_LEVEL=warn
set -euo pipefail
exec </dev/null
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N_REVOKED=${N_REVOKED:-1000}
CURL_RSA=${CURL_RSA:-8}
FLOOR=${FLOOR:-0}
POOL=${POOL:-0}

# The yardstick scripts live beside the repository (../shared/bench); a worktree elsewhere
# names them with FLOOR_DIR.
FLOOR_DIR=${FLOOR_DIR:-$BENCH_ROOT/../shared/bench}
OUT=$(results_file pki)
if [ "$FLOOR" = 1 ]; then
    [ -f "$FLOOR_DIR/openssl.sh" ] || { echo "no $FLOOR_DIR/openssl.sh (set FLOOR_DIR)" >&2; exit 1; }
    bash "$FLOOR_DIR/openssl.sh" 2>/dev/null | grep -i 'issue' | grep -v SUMMARY >> "$OUT" || true
    FLOOR_BIN=$(mktemp /tmp/crypto_keygen.XXXXXX)
    cc -O2 -o "$FLOOR_BIN" "$FLOOR_DIR/crypto_keygen.c" -lcrypto
fi
# The in-process EC issue floor again, right after a custos series (the machine's load
# changes): prints its rate per core.
floor_now() {
    "$FLOOR_BIN" 5 1 100000 | sed -n 's/^issue ecp256-by-ecp256: .* rate=\([0-9.]*\).*/\1/p'
}

pki_setup() {
    api POST sys/mounts/pki '{"type":"pki","config":{"max_lease_ttl":"87600h"}}' >/dev/null
    api POST sys/mounts/kv '{"type":"kv","options":{"version":"1"}}' >/dev/null
    api PUT kv/bench/app '{"password":"x"}' >/dev/null
    api POST pki/root/generate/internal \
        '{"common_name":"bench root","ttl":"8760h","key_type":"ec"}' | json_get '["data"]["certificate"]' > "$WORK/ca.pem"
    api POST pki/roles/ec '{"allow_any_name":true,"key_type":"ec","ttl":"1h","no_store":true}' >/dev/null
    api POST pki/roles/stored '{"allow_any_name":true,"key_type":"ec","ttl":"1h"}' >/dev/null
    api POST pki/roles/rsa '{"allow_any_name":true,"key_type":"rsa","key_bits":2048,"ttl":"1h","no_store":true}' >/dev/null
}

results=()
if [ "$POOL" = 1 ]; then
    CUSTOS_PKI_ISSUE_ON_POOL=1 bench_start_node
    pki_setup
    for c in $CONNS_LIST; do
        results+=("$(BODY='{"common_name":"bench.example"}' run_wrk "custos-pki-issue-ec-on-pool-c$c" "$c" \
            "$ADDR/v1/pki/issue/ec" -H "X-Vault-Token: $TOKEN" -s "$BENCH_HERE/lua/pki_post.lua")")
    done
    bench_cleanup
    PID= WORK=
fi

bench_start_node
pki_setup
api POST pki/issue/stored '{"common_name":"ocsp.example"}' | json_get '["data"]["certificate"]' > "$WORK/leaf.pem"
openssl ocsp -issuer "$WORK/ca.pem" -cert "$WORK/leaf.pem" -no_nonce -reqout "$WORK/ocsp.der" >/dev/null 2>&1

for c in $CONNS_LIST; do
    results+=("$(BODY='{"common_name":"bench.example"}' run_wrk "custos-pki-issue-ec-c$c" "$c" \
        "$ADDR/v1/pki/issue/ec" -H "X-Vault-Token: $TOKEN" -s "$BENCH_HERE/lua/pki_post.lua")")
    if [ "$FLOOR" = 1 ]; then
        f=$(floor_now)
        r=$(sed -n 's/.* rps=\([0-9.]*\) .*/\1/p' <<<"${results[-1]}")
        results+=("floor-after-issue-ec-c$c: in-process issue ecp256-by-ecp256 ${f}/s per core; custos/floor = $(echo "scale=2; $r / $f" | bc)")
    fi
    results+=("$(run_wrk "custos-pki-ocsp-get-c$c" "$c" "$ADDR/v1/pki/ocsp/$(base64 -w0 "$WORK/ocsp.der")")")
    results+=("$(OCSP_DER="$WORK/ocsp.der" run_wrk "custos-pki-ocsp-post-c$c" "$c" "$ADDR/v1/pki/ocsp" \
        -s "$BENCH_HERE/lua/pki_ocsp_post.lua")")
done
results+=("$(run_wrk "custos-kv-read-c32" 32 "$ADDR/v1/kv/bench/app" -H "X-Vault-Token: $TOKEN")")
# RSA-2048 issuance beside KV reads: keys are made on the worker pool, reads keep their p99
( end=$((SECONDS + DURATION * RUNS + 2)); n=0
  while [ $SECONDS -lt $end ]; do
      for _ in $(seq "$CURL_RSA"); do
          curl -sk -o /dev/null -H "X-Vault-Token: $TOKEN" -d '{"common_name":"r.example"}' \
              "$ADDR/v1/pki/issue/rsa" &
      done; wait; n=$((n + CURL_RSA))
  done; echo "$n" > "$WORK/rsa.count" ) &
RSA_PID=$!
results+=("$(run_wrk "custos-kv-read-during-rsa-c32" 32 "$ADDR/v1/kv/bench/app" -H "X-Vault-Token: $TOKEN")")
wait "$RSA_PID" || true
results+=("rsa-2048-issued-during-kv-series: $(cat "$WORK/rsa.count" 2>/dev/null || echo ?)")

# CRL rebuild with N_REVOKED revoked certificates (auto_rebuild: revocations do not rebuild).
# wrk issues and revokes at c32 in rounds of 10 s until N_REVOKED are revoked.
api POST pki/config/crl '{"auto_rebuild":true}' >/dev/null
t0=$(date +%s.%N); done_n=0; fails=0
while [ "$done_n" -lt "$N_REVOKED" ]; do
    left=$((N_REVOKED - done_n))
    per=$(( (left + 1) / 2 ))
    out=$(N_PER_THREAD=$per TOKEN=$TOKEN timeout 100 wrk -t2 -c32 -d10s --timeout 10s \
        -s "$BENCH_HERE/lua/pki_revoke_fill.lua" "$ADDR" 2>&1 || true)
    r=$(awk '/^REVOKED/ {print $2}' <<<"$out"); f=$(awk '/^REVOKED/ {print $4}' <<<"$out")
    [ -n "$r" ] || { echo "fill failed: $out" >&2; break; }
    done_n=$((done_n + r)); fails=$((fails + f))
    [ "$r" -gt 0 ] || break
done
t1=$(date +%s.%N)
results+=("revoked-via-api: $done_n in $(echo "$t1 - $t0" | bc) s (issue+revoke pairs at c32; failed answers: $fails)")
# KV reads beside the rebuild: a rebuild that blocks the loop shows as their max latency.
wrk -t2 -c32 -d8s --latency "$ADDR/v1/kv/bench/app" -H "X-Vault-Token: $TOKEN" > "$WORK/kv-crl.out" 2>&1 &
KV_PID=$!
sleep 2
t0=$(date +%s.%N); api GET pki/crl/rotate >/dev/null; t1=$(date +%s.%N)
wait "$KV_PID" || true
results+=("crl-rotate-with-$done_n-revoked: $(echo "$t1 - $t0" | bc) s")
crl_bytes=$(curl -sk "$ADDR/v1/pki/crl" | wc -c)
results+=("crl-der-bytes: $crl_bytes")
results+=("kv-read-c32-during-crl-rotate (8 s series): $(awk '/Requests\/sec/ {print "rps=" $2} /^ +99%/ {print "p99=" $2} /^ +Latency +[0-9]/ {print "max=" $4}' "$WORK/kv-crl.out" | tr '\n' ' ')")
{
    printf '%s\n' "${results[@]}"
    echo "rss-after-runs: $(rss)"
} >> "$OUT"
[ -z "${FLOOR_BIN:-}" ] || rm -f "$FLOOR_BIN"
cat "$OUT"
