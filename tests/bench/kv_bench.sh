#!/usr/bin/env bash
# kv_bench.sh - KV v1 read and write throughput/latency of one custos node over HTTPS.
#
# Builds custos, starts one node in a fresh /tmp directory with a TLS listener on
# 127.0.0.1 (self-signed ECDSA P-256 certificate), initialises and unseals it (1 share),
# mounts KV v1 at kv/, writes one secret, then drives it with wrk (wrk_median.sh beside
# this script: RUNS runs of DURATION s, medians) at each connection count of CONNS_LIST:
#   kv-read   GET  /v1/kv/bench/app                       (one existing secret)
#   kv-write  PUT  /v1/kv/bench/w/<unique key>            (lua/kv_write.lua)
# and records the server's RSS (VmRSS/VmHWM). With NGINX=1 it then runs the yardstick,
# ../shared/bench/nginx_ceiling.sh (WORKERS=1, same DURATION/RUNS, c32 and c1), when that
# script exists beside the repository. Figures go to tests/bench/results/kv-<UTC>.txt,
# which is also printed. Everything is stopped by PID and the tmp dir removed at exit.
#
# Env: DURATION=10 RUNS=3 CONNS_LIST="1 32" THREADS=2 VALUE_BYTES=64 NGINX=0
#      CUSTOS_BIN=<repo>/build/custos (skip the build when set) LOG_LEVEL=warn
set -euo pipefail
exec </dev/null

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export DURATION=${DURATION:-10} RUNS=${RUNS:-3}
CONNS_LIST=${CONNS_LIST:-"1 32"}
MAX_THREADS=${THREADS:-2}
export VALUE_BYTES=${VALUE_BYTES:-64}
NGINX=${NGINX:-0}
LOG_LEVEL=${LOG_LEVEL:-warn}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
need() { # need CMD PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    [ -x "/usr/sbin/$1" ] && return 0
    echo "installing $2" >&2
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$2" >/dev/null
}
need wrk wrk
need openssl openssl
need curl curl

if [ -z "${CUSTOS_BIN:-}" ]; then
    echo "building custos" >&2
    "$ROOT/scripts/build.sh"
    CUSTOS_BIN=$ROOT/build/custos
fi
[ -x "$CUSTOS_BIN" ] || { echo "no custos binary at $CUSTOS_BIN" >&2; exit 1; }

WORK=$(mktemp -d /tmp/custos-bench.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port P with P and P+1 free on 127.0.0.1 (API and cluster port).
PORT=$("$PY" - <<'PYEOF'
import socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(100):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p < 65535 and free(p + 1):
        print(p); break
PYEOF
)
[ -n "$PORT" ] || { echo "no free port" >&2; exit 1; }
ADDR=https://127.0.0.1:$PORT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1
mkdir -p "$WORK/data"
cat > "$WORK/custos.hcl" <<EOF
storage "raft" {
  path    = "$WORK/data"
  node_id = "bench-1"
}
listener "tcp" {
  address         = "127.0.0.1:$PORT"
  cluster_address = "127.0.0.1:$((PORT + 1))"
  tls_cert_file   = "$WORK/cert.pem"
  tls_key_file    = "$WORK/key.pem"
}
api_addr      = "$ADDR"
cluster_addr  = "https://127.0.0.1:$((PORT + 1))"
disable_mlock = true
log_level     = "$LOG_LEVEL"
EOF

"$CUSTOS_BIN" server -config="$WORK/custos.hcl" >"$WORK/server.log" 2>&1 &
PID=$!

api() { # api METHOD PATH [JSON] -> body on stdout; fails on non-2xx
    local method=$1 path=$2 data=${3:-}
    local args=(-sS --fail-with-body --max-time 10 --cacert "$WORK/cert.pem" -X "$method")
    [ -n "${TOKEN:-}" ] && args+=(-H "X-Vault-Token: $TOKEN")
    [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data "$data")
    curl "${args[@]}" "$ADDR/v1/$path"
}
health_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$WORK/cert.pem" \
        "$ADDR/v1/sys/health" 2>/dev/null || true
}
wait_code() { # wait_code CODE SECONDS
    local c=
    for _ in $(seq 1 $(($2 * 20))); do
        kill -0 "$PID" 2>/dev/null || { echo "custos exited:" >&2; tail -30 "$WORK/server.log" >&2; exit 1; }
        c=$(health_code)
        [ "$c" = "$1" ] && return 0
        sleep 0.05
    done
    echo "custos: sys/health is '$c', wanted $1, after $2 s" >&2; tail -30 "$WORK/server.log" >&2
    exit 1
}
json_get() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

wait_code 501 30
INIT=$(api PUT sys/init '{"secret_shares":1,"secret_threshold":1}')
KEY=$(json_get '["keys_base64"][0]' <<<"$INIT")
TOKEN=$(json_get '["root_token"]' <<<"$INIT")
api PUT sys/unseal "{\"key\":\"$KEY\"}" >/dev/null
wait_code 200 30
api POST sys/mounts/kv '{"type":"kv","options":{"version":"1"}}' >/dev/null
api PUT kv/bench/app '{"username":"app","password":"s3cr3t-v@lue-0123456789"}' >/dev/null
READ_BODY=$(api GET kv/bench/app)
json_get '["data"]["password"]' <<<"$READ_BODY" | grep -qx 's3cr3t-v@lue-0123456789'
READ_BYTES=$(printf '%s' "$READ_BODY" | wc -c)
VERSION=$("$CUSTOS_BIN" version 2>/dev/null | head -1 || true)
[ -n "$VERSION" ] || VERSION=$(json_get '["version"]' <<<"$(api GET sys/seal-status)")

rss() { awk '/^(VmRSS|VmHWM):/ {printf "%s %s %s  ", $1, $2, $3}' "/proc/$PID/status"; }

mkdir -p "$HERE/results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$HERE/results/kv-$STAMP.txt
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=
if [ -n "$(GIT_OPTIONAL_LOCKS=0 git -C "$ROOT" status --porcelain 2>/dev/null)" ]; then DIRTY=+dirty; fi
{
    echo "# custos KV v1 benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# host: $(nproc) cores, $(uname -sr); $(openssl version)"
    echo "# custos: $VERSION, commit $COMMIT$DIRTY, one node, raft storage in /tmp, TLS (ECDSA P-256), log_level=$LOG_LEVEL"
    echo "# wrk: d=${DURATION}s runs=$RUNS (medians), keep-alive; read body ${READ_BYTES} B; write value ${VALUE_BYTES} B, unique keys"
    echo "rss-after-setup: $(rss)"
} > "$OUT"

results=()
for c in $CONNS_LIST; do
    t=$MAX_THREADS; [ "$t" -le "$c" ] || t=$c
    for op in read write; do
        label="custos-kv-$op-c$c"
        args=(-H "X-Vault-Token: $TOKEN")
        url="$ADDR/v1/kv/bench/app"
        if [ "$op" = write ]; then args+=(-s "$HERE/lua/kv_write.lua"); url="$ADDR/v1/kv/"; fi
        echo "--- $label" >&2
        CONNS=$c THREADS=$t "$HERE/wrk_median.sh" "$label" "$url" "${args[@]}" | tee "$WORK/wrk.out" >&2
        kill -0 "$PID" 2>/dev/null || { echo "custos died during $label" >&2; tail -30 "$WORK/server.log" >&2; exit 1; }
        results+=("$(tail -1 "$WORK/wrk.out")")
    done
done
{
    printf '%s\n' "${results[@]}"
    echo "rss-after-runs: $(rss)"
    KEYS=$(TOKEN=$TOKEN api LIST kv/bench/w/ 2>/dev/null | json_get '["data"]["keys"].__len__()' 2>/dev/null || echo "?")
    echo "keys-written: $KEYS"
} >> "$OUT"

if [ "$NGINX" = 1 ]; then
    CEIL=$ROOT/../shared/bench/nginx_ceiling.sh
    if [ -x "$CEIL" ] || [ -f "$CEIL" ]; then
        # stop custos first: the yardstick gets the machine to itself, like custos did
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
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
