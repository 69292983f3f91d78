#!/usr/bin/env bash
# cluster.sh - run a local custos cluster (3 or 5 nodes) on 127.0.0.1, for trying out
# clustering, for tests and for benchmarks.
#
#   deploy/cluster.sh start [-n 3|5] [-dir DIR] [-base-port P] [-tls]
#   deploy/cluster.sh status [-dir DIR]
#   deploy/cluster.sh stop [-dir DIR]
#   deploy/cluster.sh start-node I [-dir DIR]     (re)start node I (1..N) and unseal it
#   deploy/cluster.sh stop-node I [-kill] [-dir DIR]   stop node I (SIGTERM, or SIGKILL)
#
# start, on a fresh DIR (default /tmp/custos-cluster): writes DIR/nI/custos.hcl for every
# node (raft storage in DIR/nI/data, node_id nI, API port P+10*(I-1), cluster port one
# above, a retry_join block for every other node), starts the nodes in the background
# (logs in DIR/nI/server.log, PIDs in DIR/nI/pid), initialises n1 (3 key shares,
# threshold 2; the answer, with the unseal keys and the root token, goes to
# DIR/init.json, mode 0600), unseals n1, lowers autopilot's server_stabilization_time
# (STABILIZATION, default 2s), unseals every other node once it has fetched its join
# challenge, waits until every node is unsealed and the raft configuration has N voters,
# and prints the root token, the keys file and the addresses. With -tls every listener
# uses a self-signed certificate made here (DIR/tls/cert.pem is also the CA to trust).
# If haproxy is installed, it is started in front (deploy/haproxy.cfg filled in as
# DIR/haproxy.cfg, front end on port P+10*N) and routes to the active node only.
# start on a DIR that already holds a stopped cluster (DIR/init.json exists) restarts
# it and unseals every node with the saved keys.
#
# stop sends SIGTERM to every process recorded in DIR (only those, by PID, and only if
# the PID still runs custos/haproxy), then SIGKILL after 10 s. Data stays in DIR; remove
# it yourself. status prints each node's role from sys/health (active, standby, sealed,
# uninitialised, removed, down).
#
# Env: CUSTOS_BIN (default: custos in PATH, else <repo>/build/custos), STABILIZATION=2s,
#      KEY_SHARES=3 KEY_THRESHOLD=2, LOG_LEVEL=info, HAPROXY=auto|0 (0: never start it).
# The unseal keys and the root token in DIR/init.json are real secrets: this is for
# development and testing on one machine, not a production deployment.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
STABILIZATION=${STABILIZATION:-2s}
KEY_SHARES=${KEY_SHARES:-3}
KEY_THRESHOLD=${KEY_THRESHOLD:-2}
LOG_LEVEL=${LOG_LEVEL:-info}
HAPROXY=${HAPROXY:-auto}

STARTING=0
die() {
    echo "cluster.sh: $*" >&2
    if [ "$STARTING" = 1 ]; then
        echo "cluster.sh: processes started so far are left running for inspection;" \
            "logs in $DIR/n*/server.log; clean up with: $0 stop -dir $DIR" >&2
    fi
    exit 1
}
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

CMD=${1:-}
[ -n "$CMD" ] || usage
shift
NODE_ARG=
case "$CMD" in
    start-node|stop-node) NODE_ARG=${1:-}; [ -n "$NODE_ARG" ] || usage; shift ;;
    start|stop|status) ;;
    -h|--help|help) usage 0 ;;
    *) usage ;;
esac
N=3 DIR=/tmp/custos-cluster BASE=8200 TLS=0 KILL=0
while [ $# -gt 0 ]; do
    case "$1" in
        -n) N=${2:?}; shift 2 ;;
        -dir) DIR=${2:?}; shift 2 ;;
        -base-port) BASE=${2:?}; shift 2 ;;
        -tls) TLS=1; shift ;;
        -kill) KILL=1; shift ;;
        -n=*) N=${1#*=}; shift ;;
        -dir=*) DIR=${1#*=}; shift ;;
        -base-port=*) BASE=${1#*=}; shift ;;
        *) usage ;;
    esac
done

# A started cluster remembers its shape, so status/stop/start-node need only -dir.
# (On start, an existing DIR keeps the shape its data was created with.)
if [ -f "$DIR/cluster.env" ]; then
    # shellcheck disable=SC1091
    . "$DIR/cluster.env"
fi
case "$N" in 3|5) ;; *) die "-n must be 3 or 5" ;; esac

api_port() { echo $((BASE + 10 * ($1 - 1))); }
scheme() { [ "$TLS" = 1 ] && echo https || echo http; }
url() { echo "$(scheme)://127.0.0.1:$(api_port "$1")"; }
HAPROXY_PORT=$((BASE + 10 * N))
CURL=(curl -sS --max-time 5)
[ "$TLS" = 1 ] && CURL+=(--cacert "$DIR/tls/cert.pem")

find_bin() {
    if [ -n "${CUSTOS_BIN:-}" ]; then echo "$CUSTOS_BIN"; return; fi
    if command -v custos >/dev/null 2>&1; then command -v custos; return; fi
    echo "$ROOT/build/custos"
}
json_get() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }
health() { # health I -> HTTP status of sys/health, or "down"
    local c
    c=$("${CURL[@]}" --max-time 2 -o /dev/null -w '%{http_code}' "$(url "$1")/v1/sys/health" 2>/dev/null) || c=000
    [ "$c" = 000 ] && echo down || echo "$c"
}
role() {
    case "$1" in
        200) echo active ;; 429) echo standby ;; 503) echo sealed ;;
        501) echo uninitialised ;; 530) echo removed ;; down) echo down ;; *) echo "status $1" ;;
    esac
}
# pid_of FILE NAME: the PID recorded in FILE if that process is alive and runs NAME.
pid_of() {
    local p
    p=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$p" ] && [ -r "/proc/$p/cmdline" ] || return 1
    tr '\0' ' ' < "/proc/$p/cmdline" | grep -q "$2" || return 1
    echo "$p"
}
stop_pid() { # stop_pid PID SIGNAL
    kill "-$2" "$1" 2>/dev/null || return 0
    for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
}
wait_until() { # wait_until SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s
    local secs=$1 what=$2; shift 2
    for _ in $(seq 1 $((secs * 5))); do "$@" && return 0; sleep 0.2; done
    die "timed out after ${secs}s waiting for $what"
}

write_config() { # write_config I
    local i=$1 d="$DIR/n$1" p j joins=""
    p=$(api_port "$i")
    for j in $(seq 1 "$N"); do
        [ "$j" = "$i" ] && continue
        joins+="  retry_join {
    leader_api_addr = \"$(url "$j")\"
"
        [ "$TLS" = 1 ] && joins+="    leader_ca_cert_file = \"$DIR/tls/cert.pem\"
"
        joins+="  }
"
    done
    # Plain HTTP on loopback only: joins over http:// must be allowed explicitly.
    [ "$TLS" = 1 ] || joins+="  unsafe_allow_plaintext_join = true
"
    local tls_lines="  tls_disable     = true"
    [ "$TLS" = 1 ] && tls_lines="  tls_cert_file   = \"$DIR/tls/cert.pem\"
  tls_key_file    = \"$DIR/tls/key.pem\""
    mkdir -p "$d/data"
    cat > "$d/custos.hcl" <<HCL
storage "raft" {
  path    = "$d/data"
  node_id = "n$i"
$joins}
listener "tcp" {
  address         = "127.0.0.1:$p"
  cluster_address = "127.0.0.1:$((p + 1))"
$tls_lines
}
api_addr      = "$(url "$i")"
cluster_addr  = "https://127.0.0.1:$((p + 1))"
disable_mlock = true
log_level     = "$LOG_LEVEL"
HCL
}

start_process() { # start_process I: start node I in the background unless it runs
    local d="$DIR/n$1"
    pid_of "$d/pid" custos >/dev/null && return 0
    # setsid: the node outlives this script and the terminal it was started from.
    setsid "$BIN" server -config="$d/custos.hcl" >>"$d/server.log" 2>&1 < /dev/null &
    echo $! > "$d/pid"
    wait_until 30 "n$1 to answer sys/health (see $d/server.log)" answers "$1"
}
answers() { [ "$(health "$1")" != down ]; }
seal_field() { # seal_field I FIELD
    "${CURL[@]}" "$(url "$1")/v1/sys/seal-status" 2>/dev/null | json_get "[\"$2\"]" 2>/dev/null
}
initialized() { [ "$(seal_field "$1" initialized)" = True ]; }
unsealed() { [ "$(seal_field "$1" sealed)" = False ]; }
submit_keys() { # submit_keys I: the cluster's keys, up to the threshold
    local i=$1 k
    wait_until 30 "n$i to fetch its join challenge" initialized "$i"
    unsealed "$i" && return 0
    for k in $(seq 0 $((KEY_THRESHOLD - 1))); do
        "${CURL[@]}" -o /dev/null -X PUT -H 'Content-Type: application/json' \
            --data "{\"key\":\"$(json_get "[\"keys_base64\"][$k]" < "$DIR/init.json")\"}" \
            "$(url "$i")/v1/sys/unseal"
    done
}
wait_unsealed() {
    wait_until 60 "n$1 to be unsealed (see $DIR/n$1/server.log)" unsealed "$1"
}
unseal() { submit_keys "$1"; wait_unsealed "$1"; }
token() { json_get '["root_token"]' < "$DIR/init.json"; }
active_node() { # prints the index of the node answering 200
    local i
    for i in $(seq 1 "$N"); do [ "$(health "$i")" = 200 ] && { echo "$i"; return 0; }; done
    return 1
}
voters() { # number of voters in the raft configuration, as the active node reports it
    local a
    a=$(active_node) || { echo 0; return; }
    "${CURL[@]}" -H "X-Vault-Token: $(token)" "$(url "$a")/v1/sys/storage/raft/configuration" 2>/dev/null |
        "$PY" -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin)["data"]["config"]["servers"] if s["voter"]))' \
        2>/dev/null || echo 0
}
all_voters() { [ "$(voters)" = "$N" ]; }

make_tls() {
    mkdir -p "$DIR/tls"
    [ -f "$DIR/tls/cert.pem" ] && return 0
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$DIR/tls/key.pem" -out "$DIR/tls/cert.pem" >/dev/null 2>&1
    chmod 600 "$DIR/tls/key.pem"
}

start_haproxy() {
    [ "$HAPROXY" = 0 ] && return 0
    local hp servers="" opts="" bind="127.0.0.1:$HAPROXY_PORT" i
    hp=$(command -v haproxy || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; }) || return 0
    pid_of "$DIR/haproxy.pid" haproxy >/dev/null && return 0
    local standbys=""
    for i in $(seq 1 "$N"); do
        servers+="    server n$i 127.0.0.1:$(api_port "$i")\n"
        standbys+="    server n$i-standby 127.0.0.1:$(api_port "$i") track custos_any/n$i\n"
    done
    if [ "$TLS" = 1 ]; then
        cat "$DIR/tls/cert.pem" "$DIR/tls/key.pem" > "$DIR/tls/haproxy.pem"
        chmod 600 "$DIR/tls/haproxy.pem"
        bind+=" ssl crt $DIR/tls/haproxy.pem"
        opts="ssl verify required ca-file $DIR/tls/cert.pem check-ssl"
    fi
    # Placeholders only outside comment lines (the template's header documents them).
    awk -v dir="$DIR" -v bind="$bind" -v opts="$opts" -v servers="$servers" \
        -v standbys="$standbys" '
        /^[[:space:]]*#/ { print; next }
        { gsub(/@DIR@/, dir); gsub(/@BIND@/, bind); gsub(/@SERVER_OPTS@/, opts)
          if ($0 ~ /@SERVERS@/) { printf "%s", servers; next }
          if ($0 ~ /@STANDBYS@/) { printf "%s", standbys; next }
          print }' "$HERE/haproxy.cfg" > "$DIR/haproxy.cfg"
    "$hp" -c -f "$DIR/haproxy.cfg" >/dev/null || die "haproxy rejected $DIR/haproxy.cfg"
    setsid "$hp" -db -f "$DIR/haproxy.cfg" >>"$DIR/haproxy.log" 2>&1 < /dev/null &
    echo $! > "$DIR/haproxy.pid"
    wait_until 15 "haproxy to route to the active node" haproxy_ok
}
haproxy_ok() {
    [ "$("${CURL[@]}" --max-time 2 -o /dev/null -w '%{http_code}' \
        "$(scheme)://127.0.0.1:$HAPROXY_PORT/v1/sys/health" 2>/dev/null)" = 200 ]
}

ports_free() {
    "$PY" - "$@" <<'PYEOF'
import socket, sys
for p in map(int, sys.argv[1:]):
    s = socket.socket()
    # SO_REUSEADDR as the servers use it: connections of a stopped node in TIME_WAIT do
    # not make its port busy, a listening socket still does.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        sys.exit("port %d on 127.0.0.1 is in use" % p)
    finally:
        s.close()
PYEOF
}

print_summary() {
    local i
    echo
    echo "custos cluster of $N nodes in $DIR"
    for i in $(seq 1 "$N"); do
        printf '  n%s  %-26s cluster 127.0.0.1:%s  %s\n' "$i" "$(url "$i")" \
            $(($(api_port "$i") + 1)) "$(role "$(health "$i")")"
    done
    if pid_of "$DIR/haproxy.pid" haproxy >/dev/null; then
        echo "  haproxy  $(scheme)://127.0.0.1:$HAPROXY_PORT  (routes to the active node)"
    fi
    echo "Unseal keys and root token: $DIR/init.json"
    echo "Root token: $(token)"
    echo
    echo "  export VAULT_ADDR=$(url 1) VAULT_TOKEN=$(token)"
    [ "$TLS" = 1 ] && echo "  export VAULT_CACERT=$DIR/tls/cert.pem"
    echo "  custos operator raft list-peers"
}

cmd_start() {
    BIN=$(find_bin)
    [ -x "$BIN" ] || die "no custos binary at $BIN (build it, or set CUSTOS_BIN)"
    local i ports=()
    for i in $(seq 1 "$N"); do
        pid_of "$DIR/n$i/pid" custos >/dev/null && die "n$i already runs (cluster.sh stop -dir $DIR)"
    done
    for i in $(seq 1 "$N"); do ports+=("$(api_port "$i")" $(($(api_port "$i") + 1))); done
    pid_of "$DIR/haproxy.pid" haproxy >/dev/null || ports+=("$HAPROXY_PORT")
    ports_free "${ports[@]}" || die "pick another -base-port"
    mkdir -p "$DIR"
    chmod 700 "$DIR"
    STARTING=1
    printf 'N=%s\nBASE=%s\nTLS=%s\n' "$N" "$BASE" "$TLS" > "$DIR/cluster.env"
    [ "$TLS" = 1 ] && make_tls
    for i in $(seq 1 "$N"); do write_config "$i"; done
    for i in $(seq 1 "$N"); do start_process "$i"; done
    if [ -f "$DIR/init.json" ]; then
        # After a full stop no node is active until a quorum is unsealed: give every
        # node its keys first, then wait.
        echo "restarting the cluster in $DIR" >&2
        for i in $(seq 1 "$N"); do submit_keys "$i"; done
        for i in $(seq 1 "$N"); do wait_unsealed "$i"; done
    else
        echo "initialising n1" >&2
        (umask 077; "${CURL[@]}" --fail-with-body -X PUT -H 'Content-Type: application/json' \
            --data "{\"secret_shares\":$KEY_SHARES,\"secret_threshold\":$KEY_THRESHOLD}" \
            "$(url 1)/v1/sys/init" > "$DIR/init.json") || die "sys/init failed: $(cat "$DIR/init.json")"
        unseal 1
        wait_until 30 "n1 to become active" active_node >/dev/null
        "${CURL[@]}" --fail-with-body -o /dev/null -X POST -H "X-Vault-Token: $(token)" \
            -H 'Content-Type: application/json' \
            --data "{\"server_stabilization_time\":\"$STABILIZATION\"}" \
            "$(url 1)/v1/sys/storage/raft/autopilot/configuration" ||
            die "setting autopilot's server_stabilization_time failed"
        for i in $(seq 2 "$N"); do echo "unsealing n$i" >&2; unseal "$i"; done
    fi
    wait_until 90 "$N voters in the raft configuration" all_voters
    start_haproxy
    print_summary
}

cmd_status() {
    [ -f "$DIR/cluster.env" ] || die "no cluster in $DIR"
    local i p
    for i in $(seq 1 "$N"); do
        p=$(pid_of "$DIR/n$i/pid" custos || echo -)
        printf 'n%s  pid %-7s %-26s %s\n' "$i" "$p" "$(url "$i")" "$(role "$(health "$i")")"
    done
    if p=$(pid_of "$DIR/haproxy.pid" haproxy); then
        printf 'haproxy  pid %-7s %s://127.0.0.1:%s\n' "$p" "$(scheme)" "$HAPROXY_PORT"
    fi
}

cmd_stop() {
    [ -f "$DIR/cluster.env" ] || die "no cluster in $DIR"
    local i p
    if p=$(pid_of "$DIR/haproxy.pid" haproxy); then stop_pid "$p" TERM; fi
    rm -f "$DIR/haproxy.pid"
    for i in $(seq 1 "$N"); do
        if p=$(pid_of "$DIR/n$i/pid" custos); then stop_pid "$p" TERM; fi
        rm -f "$DIR/n$i/pid"
    done
    echo "stopped; data kept in $DIR"
}

cmd_node() { # start-node / stop-node
    [ -f "$DIR/cluster.env" ] || die "no cluster in $DIR"
    local i=$NODE_ARG p
    [ "$i" -ge 1 ] 2>/dev/null && [ "$i" -le "$N" ] || die "node must be 1..$N"
    if [ "$CMD" = stop-node ]; then
        if p=$(pid_of "$DIR/n$i/pid" custos); then
            if [ "$KILL" = 1 ]; then kill -KILL "$p"; else stop_pid "$p" TERM; fi
        fi
        return 0
    fi
    BIN=$(find_bin)
    write_config "$i"
    start_process "$i"
    unseal "$i"
}

case "$CMD" in
    start) cmd_start ;;
    status) cmd_status ;;
    stop) cmd_stop ;;
    start-node|stop-node) cmd_node ;;
esac
