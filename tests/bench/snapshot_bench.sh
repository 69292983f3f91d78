#!/bin/sh
# Snapshot scale benchmark (not in CI): a 3-node cluster behind haproxy filled to SIZE_MB
# (default 1024; 4096 for the 4 GiB case), then: peak RSS while filling (raft snapshots
# are taken), a follower that catches up by InstallSnapshot (peak RSS of the sender and
# the installer), `snapshot save` and `snapshot restore` through haproxy (MB/s against
# the disk's sequential write rate measured in the same run with dd conv=fdatasync),
# data checked afterwards. Figures go to tests/bench/results/snapshot-<time>.txt.
#   CUSTOS_BIN=$PWD/build/custos tests/bench/snapshot_bench.sh [SIZE_MB]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
size=${1:-1024}
work=$(mktemp -d "${TMPDIR:-/tmp}/custos-snapbench.XXXXXX")
trap 'rm -rf "$work"' EXIT
out="$here/results/snapshot-$(date -u +%Y%m%dT%H%M%SZ).txt"
mkdir -p "$here/results"
: "${CUSTOS_BIN:=$here/../../build/custos}"
export CUSTOS_BIN
/usr/bin/python3 "$here/snapshot_bench.py" "$size" "$work" "$out"
echo "results: $out"
