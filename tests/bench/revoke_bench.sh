#!/usr/bin/env bash
# revoke_bench.sh - revocation of any size on one custos node over HTTPS (issue 16):
#   a token tree of TREE tokens (A -> FANOUT children -> the rest spread below them) is
#   revoked with auth/token/revoke: time until the ack, time until its storage is clean
#   (100 sampled lease records gone, then the lease prefix lists empty), how many sampled
#   leaves answer 403 right after the ack, and KV read latency (READERS threads reading
#   one secret back to back) during the cleanup against 10 s idle just before;
#   then the same for sys/leases/revoke-prefix (sync=false) over PREFIX_N token leases.
#   Finally KV reads through wrk with an orphan token and with one CHAIN_DEPTH (10)
#   ancestors deep: the cost of the parent-chain check every request makes.
# Figures go to tests/bench/results/revoke-<UTC>.txt, which is also printed. Measurements
# only, never pass/fail.
#
# Env: TREE=100000 FANOUT=100 PREFIX_N=20000 READERS=4 CHAIN_DEPTH=10 CHAIN_CONNS=32
#      DURATION=10 RUNS=3 (wrk) CUSTOS_BIN=<repo>/build/custos
#      LOG_LEVEL=info (the server logs when each revocation job is done)
set -euo pipefail
exec </dev/null
LOG_LEVEL=${LOG_LEVEL:-info}
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export TREE=${TREE:-100000} FANOUT=${FANOUT:-100} PREFIX_N=${PREFIX_N:-20000} READERS=${READERS:-4}

bench_start_node
OUT=$(results_file revoke "one node, raft storage in /tmp, TLS (ECDSA P-256), python requests clients")
echo "# TREE=$TREE FANOUT=$FANOUT PREFIX_N=$PREFIX_N READERS=$READERS" >> "$OUT"
"$PY" "$BENCH_HERE/revoke_bench.py" | tee -a "$OUT"

# What the parent-chain check costs a request: KV reads (wrk, CHAIN_CONNS connections)
# with an orphan token and with a token CHAIN_DEPTH ancestors deep.
CHAIN_DEPTH=${CHAIN_DEPTH:-10} CHAIN_CONNS=${CHAIN_CONNS:-32}
T0=$(api POST auth/token/create '{"policies":["p"],"no_parent":true,"ttl":"4h"}' | json_get '["auth"]["client_token"]')
T=$T0
for _ in $(seq 1 "$CHAIN_DEPTH"); do
    T=$(TOKEN=$T api POST auth/token/create '{"ttl":"4h"}' | json_get '["auth"]["client_token"]')
done
for d in 0 "$CHAIN_DEPTH"; do
    tok=$T0; [ "$d" = 0 ] || tok=$T
    line=$(run_wrk "kv-read-depth$d" "$CHAIN_CONNS" "$ADDR/v1/kv/bench" -H "X-Vault-Token: $tok")
    echo "chain depth $d: $line" | tee -a "$OUT"
done
echo "# rss after: $(rss)" >> "$OUT"
# The server's own figure: a job's end, counted from the revocation (token_revoke.c).
grep -o 'revoke: sys/revoke/[a-z]*/.* done, .*' "$WORK/server.log" | sed 's/^/# server log: /' >> "$OUT" || true
kill -0 "$PID" 2>/dev/null || { echo "custos died" >&2; tail -30 "$WORK/server.log" >&2; exit 1; }
cat "$OUT"
