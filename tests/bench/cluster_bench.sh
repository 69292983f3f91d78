#!/usr/bin/env bash
# cluster_bench.sh - a 3-node custos cluster beside a 3-member etcd cluster, on this box.
#
# custos (deploy/cluster.sh: 3 nodes on loopback, retry_join, haproxy in front):
#   kv-write   PUT /v1/kv/<unique key> on the active node, KV v1, VALUE_BYTES value
#              (lua/kv_write.lua), at each connection count of CONNS_LIST, with wrk
#              (wrk_median.sh: RUNS runs of DURATION s, medians) - replicated writes
#   fill       first, on the fresh cluster: FILL unique secrets (lua/kv_fill.lua, c32),
#              then the RSS (VmRSS, RssAnon, RssFile = LMDB's mapped pages) of every node
#              once all replicas report the same digest
#   failover   FAILOVER_TRIALS times: kill -9 the active node, time until a write through
#              haproxy succeeds (polled every POLL_MS), restart + unseal the node, wait
#              until it is a standby again; the median is reported
# The client talks plain HTTP to the nodes (TLS=1: HTTPS), to compare with etcd's JSON
# gateway, which is plain HTTP here; node-to-node raft traffic is mutual TLS in custos
# either way (the cluster port has no plain mode), and plain HTTP in etcd.
# etcd (../shared/bench/etcd_cluster.sh, the yardstick runner): the same wrk settings and
# value size against its v3 JSON gateway (/v3/kv/put, unique keys, on the leader), its
# member RSS, and its failover (kill -9 leader -> put via a survivor succeeds). It runs
# after custos is stopped, so each gets the machine to itself.
# Figures and ratios go to tests/bench/results/cluster-<UTC>.txt, which is also printed.
#
# Env: DURATION=10 RUNS=3 CONNS_LIST="1 32" THREADS=2 VALUE_BYTES=256 FILL=100000
#      FILL_ROUND_S=5 FAILOVER_TRIALS=5 POLL_MS=20 TLS=0 LOG_LEVEL=warn
#      SKIP_CUSTOS=1 / SKIP_ETCD=1 (run one half only, e.g. to dry-run the yardstick)
#      CUSTOS_BIN=<repo>/build/custos (skip the build when set)
set -euo pipefail
exec </dev/null
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export VALUE_BYTES=${VALUE_BYTES:-256}
FILL=${FILL:-100000}
FAILOVER_TRIALS=${FAILOVER_TRIALS:-5}
POLL_MS=${POLL_MS:-20}
TLS=${TLS:-0}
SKIP_CUSTOS=${SKIP_CUSTOS:-0}
SKIP_ETCD=${SKIP_ETCD:-0}
CLUSTER=$BENCH_ROOT/deploy/cluster.sh
ETCD=$(cd "$BENCH_ROOT/.." && pwd)/shared/bench/etcd_cluster.sh
N=3

need wrk wrk
need curl curl
need openssl openssl
now_ms() { date +%s%3N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

WORK=$(mktemp -d /tmp/custos-cbench.XXXXXX)
CDIR=$WORK/cluster
cluster_cleanup() {
    if [ -f "$CDIR/cluster.env" ]; then
        CUSTOS_BIN=${CUSTOS_BIN:-} "$CLUSTER" stop -dir "$CDIR" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cluster_cleanup EXIT
trap 'exit 130' INT TERM

# A base port B with B..B+10*N+1 all free (the layout of deploy/cluster.sh).
pick_base() {
    "$PY" - "$1" <<'PYEOF'
import random, socket, sys
span = int(sys.argv[1])
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    b = random.randrange(20000, 60000 - span)
    if all(free(p) for p in range(b, b + span)):
        print(b); break
PYEOF
}

SCHEME=http
[ "$TLS" = 1 ] && SCHEME=https
SETUP="3 nodes on loopback (deploy/cluster.sh), raft storage in /tmp, client over plain HTTP, raft over mutual TLS"
[ "$TLS" = 1 ] && SETUP="3 nodes on loopback (deploy/cluster.sh), raft storage in /tmp, client over HTTPS (ECDSA P-256), raft over mutual TLS"
OUT=$(CUSTOS_BIN=${CUSTOS_BIN:-$BENCH_ROOT/build/custos} results_file cluster "$SETUP")
echo "# value ${VALUE_BYTES} B, unique keys; etcd: same wrk settings through its JSON gateway" >> "$OUT"

node_url() { echo "$SCHEME://127.0.0.1:$((BASE + 10 * ($1 - 1)))"; }
node_health() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 1 --cacert "$CACERT" \
        "$(node_url "$1")/v1/sys/health" 2>/dev/null || true
}
active() { # index of the node answering 200, waiting up to 30 s
    local i
    for _ in $(seq 1 300); do
        for i in $(seq 1 $N); do [ "$(node_health "$i")" = 200 ] && { echo "$i"; return 0; }; done
        sleep 0.1
    done
    echo "no active node" >&2; return 1
}
digest_line() { # "applied_index digest" of node I
    curl -s --max-time 2 --cacert "$CACERT" -H "X-Vault-Token: $TOKEN" \
        "$(node_url "$1")/v1/sys/storage/raft/digest" |
        json_get '["data"]["applied_index"], d["data"]["digest"]' 2>/dev/null || echo "? $1"
}
converged() { # all nodes report the same applied index and digest
    local i first="" d
    for i in $(seq 1 $N); do
        d=$(digest_line "$i")
        [ -z "$first" ] && first=$d
        [ "$d" = "$first" ] || return 1
    done
}
wait_converged() {
    for _ in $(seq 1 600); do converged && return 0; sleep 0.1; done
    echo "replicas did not converge within 60 s" >&2; return 1
}
node_rss() {
    local i out=""
    for i in $(seq 1 $N); do
        out+="n$i: $(awk '/^(VmRSS|VmHWM|RssAnon|RssFile):/ {printf "%s %s %s ", $1, $2, $3}' "/proc/$(cat "$CDIR/n$i/pid")/status") "
    done
    echo "$out"
}

run_custos() {
    if [ -z "${CUSTOS_BIN:-}" ]; then
        echo "building custos" >&2
        "$BENCH_ROOT/scripts/build.sh"
        CUSTOS_BIN=$BENCH_ROOT/build/custos
    fi
    export CUSTOS_BIN LOG_LEVEL
    need haproxy haproxy
    BASE=$(pick_base $((10 * N + 2)))
    [ -n "$BASE" ] || { echo "no free port range" >&2; exit 1; }
    local tls_flag=()
    [ "$TLS" = 1 ] && tls_flag=(-tls)
    LOG_LEVEL=$LOG_LEVEL STABILIZATION=1s "$CLUSTER" start -n $N -dir "$CDIR" -base-port "$BASE" \
        "${tls_flag[@]}" >&2
    TOKEN=$(json_get '["root_token"]' < "$CDIR/init.json")
    CACERT=/etc/ssl/certs/ca-certificates.crt
    [ "$TLS" = 1 ] && CACERT=$CDIR/tls/cert.pem
    local a
    a=$(active)
    ADDR=$(node_url "$a")
    # shellcheck disable=SC2034 # lib.sh run_wrk checks that this process stays alive
    PID=$(cat "$CDIR/n$a/pid")
    export ADDR TOKEN CACERT
    api POST sys/mounts/kv '{"type":"kv","options":{"version":"1"}}' >/dev/null
    echo "rss-after-setup: $(node_rss)" >> "$OUT"

    # The fill runs first, on fresh nodes, so "RSS after 100k secrets" means exactly
    # that (the throughput runs below add hundreds of thousands of keys).
    # wrk runs for its whole -d even when every thread has stopped, so the fill goes in
    # rounds of FILL_ROUND_S seconds, each under its own prefix, counted after each round.
    echo "--- fill: $FILL secrets" >&2
    local t0 t1 keys=0 r=0 left
    t0=$(now_ms)
    while [ "$keys" -lt "$FILL" ] && [ "$r" -lt 500 ]; do
        r=$((r + 1))
        left=$((FILL - keys))
        FILL_PER_THREAD=$(((left + 1) / 2)) KEY_PREFIX="fill/r$r/" timeout 120 \
            wrk -t2 -c32 -d"${FILL_ROUND_S:-5}s" --timeout 10s -H "X-Vault-Token: $TOKEN" \
            -s "$BENCH_HERE/lua/kv_fill.lua" "$ADDR/v1/kv/" >/dev/null
        keys=$((keys + $(api LIST "kv/fill/r$r/" | json_get '["data"]["keys"].__len__()')))
        echo "fill round $r: $keys secrets" >&2
    done
    t1=$(now_ms)
    wait_converged
    {
        echo "fill: $keys secrets under kv/fill/ in $((t1 - t0)) ms (c32, $r rounds), replicas converged"
        echo "rss-after-fill: $(node_rss)"
    } >> "$OUT"

    local results=() c
    for c in $CONNS_LIST; do
        results+=("$(KEY_PREFIX="bench/c$c/" run_wrk "custos3-kv-write-c$c" "$c" "$ADDR/v1/kv/" \
            -H "X-Vault-Token: $TOKEN" -s "$BENCH_HERE/lua/kv_write.lua")")
    done
    printf '%s\n' "${results[@]}" >> "$OUT"

    local fo=() t ok pid new code
    local hap=$SCHEME://127.0.0.1:$((BASE + 10 * N))
    for t in $(seq 1 "$FAILOVER_TRIALS"); do
        a=$(active)
        sleep 1
        pid=$(cat "$CDIR/n$a/pid")
        t0=$(now_ms)
        kill -KILL "$pid"
        ok=""
        while [ $(( $(now_ms) - t0 )) -lt 30000 ]; do
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 0.5 --cacert "$CACERT" \
                -X PUT -H "X-Vault-Token: $TOKEN" -H 'Content-Type: application/json' \
                --data "{\"trial\":\"$t\"}" "$hap/v1/kv/failover" 2>/dev/null || true)
            case "$code" in 2??) ok=1; break ;; esac
            sleep "$(awk -v m="$POLL_MS" 'BEGIN {printf "%.3f", m/1000}')"
        done
        t1=$(now_ms)
        [ -n "$ok" ] || { echo "no write through haproxy within 30 s of killing n$a" >&2; exit 1; }
        new=$(active)
        echo "failover trial $t: killed active n$a, write via haproxy ok after $((t1 - t0)) ms, new active n$new" | tee -a "$OUT" >&2
        fo+=("$((t1 - t0))")
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        "$CLUSTER" start-node "$a" -dir "$CDIR" >&2
        for _ in $(seq 1 300); do [ "$(node_health "$a")" = 429 ] && break; sleep 0.1; done
        [ "$(node_health "$a")" = 429 ] || { echo "n$a did not come back as a standby" >&2; exit 1; }
        wait_converged
    done
    echo "failover: write_unavailable_ms=$(printf '%s\n' "${fo[@]}" | median) (median of $FAILOVER_TRIALS; trials: ${fo[*]}; kill -9 active -> write through haproxy ok)" >> "$OUT"
    "$CLUSTER" stop -dir "$CDIR" >&2
}

run_etcd() {
    if [ ! -f "$ETCD" ]; then
        echo "# $ETCD not found: no etcd yardstick" >> "$OUT"
        return 0
    fi
    local eb
    eb=$(pick_base 6)
    echo "--- etcd yardstick" >&2
    # GET_CONNS=" ": no range runs (a blank, since an empty value means the default).
    MEMBERS=3 BASE_PORT=$eb DURATION=$DURATION RUNS=$RUNS THREADS=$MAX_THREADS \
        PUT_CONNS="$CONNS_LIST" GET_CONNS=" " FAILOVER_TRIALS=$FAILOVER_TRIALS \
        POLL_MS=$POLL_MS VALUE_BYTES=$VALUE_BYTES bash "$ETCD" 2>&1 | tee "$WORK/etcd.out" >&2
    grep '^SUMMARY' "$WORK/etcd.out" | sed 's/^SUMMARY /etcd: /' >> "$OUT"
}

# Ratios custos/etcd from the lines above: throughput per concurrency, c1 p50 latency,
# failover median.
ratios() {
    "$PY" - "$OUT" <<'PYEOF'
import re, sys
text = open(sys.argv[1]).read()
cu = {int(c): (float(r), float(p)) for c, r, p in
      re.findall(r"RESULT custos3-kv-write-c(\d+) rps=([\d.]+) p50=([\d.]+)ms", text)}
et = {int(c): (float(r), float(p)) for r, p, c in
      re.findall(r"etcd: etcd members=3 op=put rps=([\d.]+) p50=([\d.]+)ms.* c=(\d+)", text)}
out = []
for c in sorted(set(cu) & set(et)):
    out.append("ratio c%d: write rps custos/etcd = %.2f, p50 custos/etcd = %.2f"
               % (c, cu[c][0] / et[c][0], cu[c][1] / et[c][1]))
fc = re.search(r"^failover: write_unavailable_ms=([\d.]+)", text, re.M)
fe = re.search(r"op=failover write_unavailable_ms=([\d.]+)", text)
if fc and fe:
    out.append("ratio failover: custos/etcd = %.2f (%s ms vs %s ms)"
               % (float(fc.group(1)) / float(fe.group(1)), fc.group(1), fe.group(1)))
print("\n".join(out))
PYEOF
}

[ "$SKIP_CUSTOS" = 1 ] || run_custos
[ "$SKIP_ETCD" = 1 ] || run_etcd
ratios >> "$OUT"

echo
echo "results: $OUT"
cat "$OUT"
