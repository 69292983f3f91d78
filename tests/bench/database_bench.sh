#!/usr/bin/env bash
# database_bench.sh - database/creds/:role per second against a direct PostgreSQL client.
#
# Starts a throwaway PostgreSQL 15 (initdb + postgres in /tmp, as `nobody` when run as
# root, on a free loopback port) and one TLS custos node (lib.sh); mounts the database
# engine with max_open_connections=32 and a role whose creation statement is one
# CREATE ROLE … LOGIN PASSWORD … VALID UNTIL …, then measures
#   custos-creds-cN   GET /v1/database/creds/bench with wrk (wrk_median.sh), each request
#                     a new user, its password generated, its lease written through raft;
#   direct-cN         pgbench running the same CREATE ROLE (a fresh name each time) over
#                     N connections, the work custos delegates, with nothing around it;
# at each connection count of CONNS_LIST, and the ratio custos/direct. Figures go to
# tests/bench/results/database-<UTC>.txt, which is also printed.
#
# Env: DURATION=10 RUNS=3 CONNS_LIST="1 32" THREADS=2 CUSTOS_BIN=<repo>/build/custos
set -euo pipefail
exec </dev/null
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/postgres" ] || { echo "needs PostgreSQL 15 (apt-get install postgresql)" >&2; exit 1; }
need pgbench postgresql-client

bench_start_node
PGDIR=$(mktemp -d /tmp/custos-bench-pg.XXXXXX)
PGPID=
pg_cleanup() {
    if [ -n "$PGPID" ] && kill -0 "$PGPID" 2>/dev/null; then
        kill -INT "$PGPID"
        for _ in $(seq 50); do kill -0 "$PGPID" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -rf "$PGDIR"
    bench_cleanup
}
trap pg_cleanup EXIT
chmod 755 "$PGDIR"
RUNAS=()
if [ "$(id -u)" -eq 0 ]; then chown nobody "$PGDIR"; RUNAS=(runuser -u nobody --); fi
PGPASS=pg-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$PGPASS" > "$PGDIR/pw"
[ -z "${RUNAS[*]}" ] || chown nobody "$PGDIR/pw"
"${RUNAS[@]}" "$PGBIN/initdb" -D "$PGDIR/data" -U postgres -A scram-sha-256 --pwfile "$PGDIR/pw" \
    -E UTF8 --locale=C --no-sync >/dev/null
rm -f "$PGDIR/pw"
PGPORT=$(free_port_pair)
# exec: the PID we hold is the postmaster's own (runuser execs it), stopped by it at exit.
"${RUNAS[@]}" "$PGBIN/postgres" -D "$PGDIR/data" -p "$PGPORT" -k "$PGDIR" \
    -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off \
    >"$PGDIR/postgres.log" 2>&1 &
PGPID=$!
for _ in $(seq 100); do
    pg_isready -q -h 127.0.0.1 -p "$PGPORT" && break
    sleep 0.2
done
export PGPASSWORD=$PGPASS PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=postgres

api POST sys/mounts/database '{"type":"database"}' >/dev/null
api PUT database/config/pg "{\"plugin_name\":\"postgresql-database-plugin\",
  \"connection_url\":\"postgresql://{{username}}:{{password}}@127.0.0.1:$PGPORT/postgres?sslmode=disable\",
  \"username\":\"postgres\",\"password\":\"$PGPASS\",\"allowed_roles\":[\"*\"],
  \"max_open_connections\":32}" >/dev/null
STMT="CREATE ROLE \\\"{{name}}\\\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
api PUT database/roles/bench "{\"db_name\":\"pg\",\"default_ttl\":\"1h\",\"creation_statements\":[\"$STMT\"]}" >/dev/null
api GET database/creds/bench | json_get '["data"]["username"]' >/dev/null

# The direct client: the same statement, a fresh name per transaction, no custos.
cat > "$PGDIR/direct.sql" <<'SQL'
\set n random(1, 2000000000)
CREATE ROLE "d-:client_id-:n" WITH LOGIN PASSWORD 'Aa1-bench-direct-pw0' VALID UNTIL '2100-01-01 00:00:00+0000';
SQL

OUT=$(results_file database "one node, raft storage in /tmp, TLS (ECDSA P-256); PostgreSQL 15 on loopback, fsync=off, max_open_connections=32")
results=()
for c in $CONNS_LIST; do
    results+=("$(run_wrk "custos-creds-c$c" "$c" "$ADDR/v1/database/creds/bench" -H "X-Vault-Token: $TOKEN")")
    t=$MAX_THREADS; [ "$t" -le "$c" ] || t=$c
    echo "--- direct-c$c" >&2
    best=
    for _ in $(seq "$RUNS"); do
        tps=$(pgbench -n -M simple -c "$c" -j "$t" -T "$DURATION" -f "$PGDIR/direct.sql" 2>&1 |
            awk '/^tps = / {print int($3); exit}')
        echo "direct-c$c run: $tps tps" >&2
        best="$best $tps"
    done
    med=$(printf '%s\n' $best | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    results+=("direct-c$c median_rps=$med")
done
{
    printf '%s\n' "${results[@]}"
    for c in $CONNS_LIST; do
        cr=$(printf '%s\n' "${results[@]}" | grep "RESULT custos-creds-c$c " | grep -o 'rps=[0-9.]*' | head -1 | cut -d= -f2)
        dr=$(printf '%s\n' "${results[@]}" | grep "^direct-c$c " | cut -d= -f2)
        if [ -n "$cr" ] && [ -n "$dr" ] && [ "$dr" != 0 ]; then
            echo "ratio-c$c custos/direct = $(awk -v a="$cr" -v b="$dr" 'BEGIN {printf "%.2f", a/b}')"
        fi
    done
    echo "rss-after-runs: $(rss)"
} >> "$OUT"
echo
echo "results: $OUT"
cat "$OUT"
