#!/usr/bin/env bash
# pki_bench.sh - PKI issuance, OCSP and CRL figures of one custos node over HTTPS.
#
# Starts one TLS node on loopback (lib.sh), mounts pki/ with an ECDSA P-256 root, then
# drives it with wrk (wrk_median.sh: RUNS runs of DURATION s, medians) at each connection
# count of CONNS_LIST:
#   pki-issue-ec   POST /v1/pki/issue/ec  (P-256 key and leaf, role no_store=true)
#   pki-ocsp       GET  /v1/pki/ocsp/<base64 request for one leaf>
# then, beside wrk, RSA-2048 issuance (key on the worker pool) run by CURL_RSA requests in
# parallel while a KV read series runs (pki-kv-read-during-rsa: compare its p99 with
# kv-read alone), and the time of crl/rotate with N_REVOKED revoked certificates.
# With FLOOR=1 it runs ../shared/bench/openssl.sh first and records its
# "issue ecp256-by-ecp256" line (the in-process floor, per core).
# Figures go to tests/bench/results/pki-<UTC>.txt, which is also printed.
#
# Env: DURATION=10 RUNS=3 CONNS_LIST="32" THREADS=2 N_REVOKED=1000 CURL_RSA=8 FLOOR=0
#      CUSTOS_BIN=<repo>/build/custos (skip the build when set) LOG_LEVEL=warn
set -euo pipefail
exec </dev/null
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N_REVOKED=${N_REVOKED:-1000}
CURL_RSA=${CURL_RSA:-8}
FLOOR=${FLOOR:-0}

OUT=$(results_file pki)
if [ "$FLOOR" = 1 ] && [ -f "$BENCH_ROOT/../shared/bench/openssl.sh" ]; then
    bash "$BENCH_ROOT/../shared/bench/openssl.sh" 2>/dev/null | grep -i 'issue' >> "$OUT" || true
fi

bench_start_node
api POST sys/mounts/pki '{"type":"pki","config":{"max_lease_ttl":"87600h"}}' >/dev/null
api POST sys/mounts/kv '{"type":"kv","options":{"version":"1"}}' >/dev/null
api PUT kv/bench/app '{"password":"x"}' >/dev/null
api POST pki/root/generate/internal \
    '{"common_name":"bench root","ttl":"8760h","key_type":"ec"}' | json_get '["data"]["certificate"]' > "$WORK/ca.pem"
api POST pki/roles/ec '{"allow_any_name":true,"key_type":"ec","ttl":"1h","no_store":true}' >/dev/null
api POST pki/roles/stored '{"allow_any_name":true,"key_type":"ec","ttl":"1h"}' >/dev/null
api POST pki/roles/rsa '{"allow_any_name":true,"key_type":"rsa","key_bits":2048,"ttl":"1h","no_store":true}' >/dev/null
api POST pki/issue/stored '{"common_name":"ocsp.example"}' | json_get '["data"]["certificate"]' > "$WORK/leaf.pem"
openssl ocsp -issuer "$WORK/ca.pem" -cert "$WORK/leaf.pem" -no_nonce -reqout "$WORK/ocsp.der" >/dev/null 2>&1

results=()
for c in $CONNS_LIST; do
    results+=("$(BODY='{"common_name":"bench.example"}' run_wrk "custos-pki-issue-ec-c$c" "$c" \
        "$ADDR/v1/pki/issue/ec" -H "X-Vault-Token: $TOKEN" -s "$BENCH_HERE/lua/pki_post.lua")")
    results+=("$(run_wrk "custos-pki-ocsp-c$c" "$c" "$ADDR/v1/pki/ocsp/$(base64 -w0 "$WORK/ocsp.der")")")
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

# CRL rebuild with N_REVOKED revoked certificates (auto_rebuild: revocations do not rebuild)
api POST pki/config/crl '{"auto_rebuild":true}' >/dev/null
for i in $(seq "$N_REVOKED"); do
    sn=$(api POST pki/issue/stored '{"common_name":"r.example"}' | json_get '["data"]["serial_number"]')
    api POST pki/revoke "{\"serial_number\":\"$sn\"}" >/dev/null
done
t0=$(date +%s.%N); api GET pki/crl/rotate >/dev/null; t1=$(date +%s.%N)
results+=("crl-rotate-with-$N_REVOKED-revoked: $(echo "$t1 - $t0" | bc) s")
{
    printf '%s\n' "${results[@]}"
    echo "rss-after-runs: $(rss)"
} >> "$OUT"
cat "$OUT"
