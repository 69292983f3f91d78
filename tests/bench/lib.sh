# lib.sh - shared set-up for the custos benchmarks (sourced, not run).
#
# bench_start_node: builds custos unless CUSTOS_BIN is set, starts one node in a fresh
# /tmp directory with a TLS listener on 127.0.0.1 (self-signed ECDSA P-256), initialises
# and unseals it (1 share), and exports ADDR, TOKEN (root), PID, WORK, CACERT.
# Everything is stopped by PID and the directory removed at exit (trap set here).
# Also: api METHOD PATH [JSON], json_get EXPR, rss, results_file NAME, run_wrk LABEL URL ARGS.

BENCH_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=$(cd "$BENCH_HERE/../.." && pwd)
export DURATION=${DURATION:-10} RUNS=${RUNS:-3}
CONNS_LIST=${CONNS_LIST:-"1 32"}
MAX_THREADS=${THREADS:-2}
LOG_LEVEL=${LOG_LEVEL:-warn}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
PID=
WORK=

if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
need() { # need CMD PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    [ -x "/usr/sbin/$1" ] && return 0
    echo "installing $2" >&2
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$2" >/dev/null
}

bench_cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
}

bench_stop_node() {
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
}

# A port P with P and P+1 free on 127.0.0.1 (API and cluster port).
free_port_pair() {
    "$PY" - <<'PYEOF'
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
}

api() { # api METHOD PATH [JSON] -> body on stdout; fails on non-2xx
    local method=$1 path=$2 data=${3:-}
    local args=(-sS --fail-with-body --max-time 10 --cacert "$CACERT" -X "$method")
    [ -n "${TOKEN:-}" ] && args+=(-H "X-Vault-Token: $TOKEN")
    [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data "$data")
    curl "${args[@]}" "$ADDR/v1/$path"
}
health_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$CACERT" \
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
rss() { awk '/^(VmRSS|VmHWM):/ {printf "%s %s %s  ", $1, $2, $3}' "/proc/$PID/status"; }

bench_start_node() {
    need wrk wrk
    need openssl openssl
    need curl curl
    if [ -z "${CUSTOS_BIN:-}" ]; then
        echo "building custos" >&2
        "$BENCH_ROOT/scripts/build.sh"
        CUSTOS_BIN=$BENCH_ROOT/build/custos
    fi
    [ -x "$CUSTOS_BIN" ] || { echo "no custos binary at $CUSTOS_BIN" >&2; exit 1; }
    WORK=$(mktemp -d /tmp/custos-bench.XXXXXX)
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    local port
    port=$(free_port_pair)
    [ -n "$port" ] || { echo "no free port" >&2; exit 1; }
    ADDR=https://127.0.0.1:$port
    CACERT=$WORK/cert.pem
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$WORK/key.pem" -out "$CACERT" >/dev/null 2>&1
    mkdir -p "$WORK/data"
    cat > "$WORK/custos.hcl" <<HCL
storage "raft" {
  path    = "$WORK/data"
  node_id = "bench-1"
}
listener "tcp" {
  address         = "127.0.0.1:$port"
  cluster_address = "127.0.0.1:$((port + 1))"
  tls_cert_file   = "$CACERT"
  tls_key_file    = "$WORK/key.pem"
}
api_addr      = "$ADDR"
cluster_addr  = "https://127.0.0.1:$((port + 1))"
disable_mlock = true
log_level     = "$LOG_LEVEL"
HCL
    "$CUSTOS_BIN" server -config="$WORK/custos.hcl" >"$WORK/server.log" 2>&1 &
    PID=$!
    wait_code 501 30
    local init key
    init=$(api PUT sys/init '{"secret_shares":1,"secret_threshold":1}')
    key=$(json_get '["keys_base64"][0]' <<<"$init")
    TOKEN=$(json_get '["root_token"]' <<<"$init")
    api PUT sys/unseal "{\"key\":\"$key\"}" >/dev/null
    wait_code 200 30
    export ADDR TOKEN CACERT
}

# results_file NAME [SETUP]: prints the path of a new results file with the common
# header; SETUP describes what was measured (default: the one-node TLS set-up above).
results_file() {
    mkdir -p "$BENCH_HERE/results"
    local out version commit dirty=
    out=$BENCH_HERE/results/$1-$(date -u +%Y%m%dT%H%M%SZ).txt
    version=$("$CUSTOS_BIN" version 2>/dev/null | head -1 || true)
    commit=$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(GIT_OPTIONAL_LOCKS=0 git -C "$BENCH_ROOT" status --porcelain 2>/dev/null)" ]; then dirty=+dirty; fi
    {
        echo "# custos $1 benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "# host: $(nproc) cores, $(uname -sr); $(openssl version)"
        echo "# custos: $version, commit $commit$dirty, ${2:-one node, raft storage in /tmp, TLS (ECDSA P-256)}, log_level=$LOG_LEVEL"
        echo "# wrk: d=${DURATION}s runs=$RUNS (medians), keep-alive"
    } > "$out"
    echo "$out"
}

# run_wrk LABEL CONNS URL [wrk args...]: one wrk_median.sh series; prints its RESULT line.
run_wrk() {
    local label=$1 c=$2 url=$3; shift 3
    local t=$MAX_THREADS
    [ "$t" -le "$c" ] || t=$c
    echo "--- $label" >&2
    local cpu0 cpu1
    cpu0=$(cpu_ticks "$PID")
    CONNS=$c THREADS=$t "$BENCH_HERE/wrk_median.sh" "$label" "$url" "$@" | tee "$WORK/wrk.out" >&2
    cpu1=$(cpu_ticks "$PID")
    kill -0 "$PID" 2>/dev/null || { echo "custos died during $label" >&2; tail -30 "$WORK/server.log" >&2; exit 1; }
    # The server's CPU time per request (user+system, all its threads, over the runs):
    # on a shared, busy machine throughput swings with the neighbours' load, but the CPU
    # a request costs does not, so ratios of this figure are the robust comparison.
    local line; line=$(tail -1 "$WORK/wrk.out")
    local rps; rps=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$line")
    echo "$line $("$PY" -c "
import sys
ticks, hz, rps, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3] or 0), float(sys.argv[4])
reqs = rps * secs
print('cpu_us_per_req=%.1f' % (ticks / hz * 1e6 / reqs) if reqs else 'cpu_us_per_req=nan')
" $((cpu1 - cpu0)) "$(getconf CLK_TCK)" "$rps" $(( ${DURATION:-10} * ${RUNS:-3} )))"
}

# utime + stime of a process, in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}
