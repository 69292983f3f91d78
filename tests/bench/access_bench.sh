#!/usr/bin/env bash
# access_bench.sh - access-control throughput of one custos node over HTTPS:
#   token-create   POST /v1/auth/token/create       (root token; each request a new token)
#   approle-login  POST /v1/auth/approle/login       (one role, unlimited secret-id uses)
#   kv2-read       GET  /v1/secret/data/app          (KV v2, token with a read policy)
#   kv2-write      POST /v1/secret/data/w/<unique>   (KV v2, lua/kv2_write.lua)
# at each connection count of CONNS_LIST, with wrk (wrk_median.sh medians). The KV v2
# reads use a non-root token, so the ACL check is in the measured path.
# Figures go to tests/bench/results/access-<UTC>.txt, which is also printed.
#
# Env: DURATION=10 RUNS=3 CONNS_LIST="1 32" THREADS=2 VALUE_BYTES=64
#      CUSTOS_BIN=<repo>/build/custos (skip the build when set) LOG_LEVEL=warn
set -euo pipefail
exec </dev/null
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export VALUE_BYTES=${VALUE_BYTES:-64}

bench_start_node
api POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}' >/dev/null
api POST secret/data/app '{"data":{"username":"app","password":"s3cr3t-v@lue-0123456789"}}' >/dev/null
api PUT sys/policy/bench '{"policy":"path \"secret/data/*\" { capabilities = [\"create\", \"read\", \"update\"] }"}' >/dev/null
APP_TOKEN=$(api POST auth/token/create '{"policies":["bench"],"ttl":"4h"}' | json_get '["auth"]["client_token"]')
api POST sys/auth/approle '{"type":"approle"}' >/dev/null
api POST auth/approle/role/bench '{"token_policies":["bench"],"token_ttl":"1h","secret_id_num_uses":0}' >/dev/null
ROLE_ID=$(api GET auth/approle/role/bench/role-id | json_get '["data"]["role_id"]')
SECRET_ID=$(api POST auth/approle/role/bench/secret-id '{}' | json_get '["data"]["secret_id"]')
# the read path really goes through the ACL: the app token may read, and not list sys/
TOKEN=$APP_TOKEN api GET secret/data/app | json_get '["data"]["data"]["password"]' | grep -qx 's3cr3t-v@lue-0123456789'
if TOKEN=$APP_TOKEN api GET sys/mounts >/dev/null 2>&1; then echo "bench token is not restricted" >&2; exit 1; fi

cat > "$WORK/token_create.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"policies":["bench"],"ttl":"1h"}'
wrk.headers["Content-Type"] = "application/json"
LUA
cat > "$WORK/approle_login.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"role_id":"$ROLE_ID","secret_id":"$SECRET_ID"}'
wrk.headers["Content-Type"] = "application/json"
LUA

OUT=$(results_file access)
echo "rss-after-setup: $(rss)" >> "$OUT"
results=()
for c in $CONNS_LIST; do
    results+=("$(run_wrk "custos-token-create-c$c" "$c" "$ADDR/v1/auth/token/create" \
        -H "X-Vault-Token: $TOKEN" -s "$WORK/token_create.lua")")
    results+=("$(run_wrk "custos-approle-login-c$c" "$c" "$ADDR/v1/auth/approle/login" \
        -s "$WORK/approle_login.lua")")
    results+=("$(run_wrk "custos-kv2-read-c$c" "$c" "$ADDR/v1/secret/data/app" \
        -H "X-Vault-Token: $APP_TOKEN")")
    results+=("$(run_wrk "custos-kv2-write-c$c" "$c" "$ADDR/v1/secret/" \
        -H "X-Vault-Token: $APP_TOKEN" -s "$BENCH_HERE/lua/kv2_write.lua")")
done
{
    printf '%s\n' "${results[@]}"
    echo "rss-after-runs: $(rss)"
} >> "$OUT"

echo
echo "results: $OUT"
cat "$OUT"
