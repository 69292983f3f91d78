#!/usr/bin/env bash
# Install the Debian 12 packages custos needs to build, run and test.
# Idempotent: only installs what is missing. Runs apt-get as root (or via sudo).
set -euo pipefail

PKGS=(build-essential meson ninja-build pkg-config
      libuv1-dev libraft-dev liblmdb-dev libssl-dev libcjson-dev libhttp-parser-dev
      libcurl4-openssl-dev libarchive-dev check libgpgme-dev gnupg
      openssl curl python3-hvac python3-pytest python3-requests
      haproxy libp11-kit-dev p11-kit softhsm2 iptables faketime lmdb-utils
      libpq-dev postgresql libc-ares-dev dnsmasq-base)
# libp11-kit-dev, p11-kit: seal "pkcs11" (server/seal_pkcs11.c); softhsm2: the HSM its tests use.
# libc-ares-dev: DNS on the loop (lib/dns.c, ACME validation); dnsmasq-base: the DNS server
# its unit tests start (tests/unit/test_acme_validate.c).
# libpq-dev: the database engine's PostgreSQL client; postgresql (15): the server its tests start.
# haproxy: the load balancer of the cluster tests and deploy/cluster.sh.
# lmdb-utils: mdb_stat/mdb_dump for tests/bench/records_bench.sh and test_upgrade_records.py.
# iptables, faketime: the fault campaign (tests/chaos) cuts links between nodes by address
# and skews one node's clock.
# libgpgme-dev, gnupg: PGP-encrypted unseal shares and root tokens (server/pgp.c).
# etcd-server: the replicated-KV yardstick of tests/bench/cluster_bench.sh.
if [ "${CUSTOS_BENCH_DEPS:-0}" = 1 ]; then PKGS+=(wrk nginx etcd-server); fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
