#!/usr/bin/env bash
# records_bench.sh - bytes on disk per service token and per lease (issue 16, small records).
#
# Starts one TLS node (lib.sh) and measures the LMDB "data" B-tree (mdb_stat: branch +
# leaf + overflow pages x page size) before and after:
#   1. N service tokens made by auth/token/create (children of the root token, policy
#      default, ttl 768h): each has an entry, an accessor index entry, a parent index
#      entry and a lease;
#   2. M PKI certificates issued with generate_lease (no_store): each adds a secret lease
#      and its owner index entry (and nothing else: the certificate is not stored).
# The page delta divided by the count is the real cost on disk, B-tree fill included; the
# per-class lines (records_analyze.py classes) give key and value bytes per record kind.
# Figures go to tests/bench/results/records-<UTC>.txt (and records.txt, the latest),
# which is also printed.
#
# Env: N=20000 M=2000 CUSTOS_BIN=<repo>/build/custos (skip the build when set)
set -euo pipefail
exec </dev/null
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${N:-20000}
M=${M:-2000}
need mdb_stat lmdb-utils
AN="$PY $BENCH_HERE/records_analyze.py"

bench_start_node
OUT=$(results_file records)
read -r p0 _ < <($AN pages "$WORK/data")
$AN fill "$ADDR" "$CACERT" "$TOKEN" "$N"
sleep 1
read -r p1 _ < <($AN pages "$WORK/data")
$AN classes "$WORK/data" > "$WORK/classes1"
$AN leases "$ADDR" "$CACERT" "$TOKEN" "$M"
sleep 1
read -r p2 _ < <($AN pages "$WORK/data")
$AN classes "$WORK/data" > "$WORK/classes2"
{
    echo "# N=$N service tokens (auth/token/create, policy default, ttl 768h), then M=$M"
    echo "# PKI certificates with generate_lease and no_store (a secret lease + owner index)"
    echo "# bytes = LMDB data B-tree pages x page size (mdb_stat), delta / count"
    echo "bytes-per-token: $(( (p1 - p0) / N ))"
    echo "bytes-per-secret-lease: $(( (p2 - p1) / M ))"
    echo "# per record class after the tokens: class count avg-key avg-value avg-total(k+v+10)"
    awk '{ printf "class %s %d key %.0f value %.0f total %.0f\n", $1, $2, $3/$2, $4/$2, ($3+$4)/$2+10 }' "$WORK/classes1"
    echo "# after the leases:"
    awk '$1=="secret-lease"||$1=="lease-owner" { printf "class %s %d key %.0f value %.0f total %.0f\n", $1, $2, $3/$2, $4/$2, ($3+$4)/$2+10 }' "$WORK/classes2"
    echo "rss: $(rss)"
} >> "$OUT"
cp "$OUT" "$BENCH_HERE/results/records.txt"
cat "$OUT"
