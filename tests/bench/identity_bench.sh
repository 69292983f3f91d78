#!/usr/bin/env bash
# identity_bench.sh - what identity costs a request, on one custos node over HTTPS:
#   kv2-read-plain      GET secret/data/alice/doc with a token whose own policy grants it
#   kv2-read-templated  the same read by alice's userpass token, whose access comes only
#                       from `secret/data/{{identity.entity.name}}/*` attached to a group
#                       two levels above her (alice -> inner -> outer(policy)): every
#                       request resolves her entity and both groups and expands the template
#   approle-login       POST auth/approle/login (find the entity of the alias; one role),
#                       with ENTITIES_SMALL entities in the store, then with ENTITIES_BIG
# Reads run at each connection count of CONNS_LIST, interleaved plain/templated so both
# see the same machine. Figures (and the templated/plain ratio) go to
# tests/bench/results/identity-<UTC>.txt, which is also printed.
#
# Env: DURATION=10 RUNS=3 CONNS_LIST="32" THREADS=2 ENTITIES_SMALL=100
#      ENTITIES_BIG=1000000 (filled with wrk through identity/entity-alias; slow: set lower
#      for a quick run) CUSTOS_BIN=<repo>/build/custos LOG_LEVEL=warn
set -euo pipefail
exec </dev/null
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CONNS_LIST=${CONNS_LIST:-32}
ENTITIES_SMALL=${ENTITIES_SMALL:-100}
ENTITIES_BIG=${ENTITIES_BIG:-1000000}

bench_start_node
api POST sys/mounts/secret '{"type":"kv","options":{"version":"2"}}' >/dev/null
api POST secret/data/alice/doc '{"data":{"owner":"alice","v":"0123456789abcdef"}}' >/dev/null
api PUT sys/policy/plain '{"policy":"path \"secret/data/alice/*\" { capabilities = [\"read\"] }"}' >/dev/null
api PUT sys/policy/tmpl '{"policy":"path \"secret/data/{{identity.entity.name}}/*\" { capabilities = [\"read\"] }"}' >/dev/null
PLAIN_TOKEN=$(api POST auth/token/create '{"policies":["plain"],"ttl":"4h"}' | json_get '["auth"]["client_token"]')

# alice: a userpass login makes her entity; she gets the name the template uses, and her
# access only through outer <- inner <- alice.
api POST sys/auth/userpass '{"type":"userpass"}' >/dev/null
api POST auth/userpass/users/alice '{"password":"bench-pw","token_ttl":"4h"}' >/dev/null
login=$(TOKEN= api POST auth/userpass/login/alice '{"password":"bench-pw"}')
ALICE_TOKEN=$(json_get '["auth"]["client_token"]' <<<"$login")
EID=$(json_get '["auth"]["entity_id"]' <<<"$login")
api POST "identity/entity/id/$EID" '{"name":"alice"}' >/dev/null
INNER=$(api POST identity/group "{\"name\":\"inner\",\"member_entity_ids\":[\"$EID\"]}" | json_get '["data"]["id"]')
api POST identity/group "{\"name\":\"outer\",\"policies\":[\"tmpl\"],\"member_group_ids\":[\"$INNER\"]}" >/dev/null
# both tokens really are limited to what they should be
TOKEN=$ALICE_TOKEN api GET secret/data/alice/doc | json_get '["data"]["data"]["owner"]' | grep -qx alice
TOKEN=$PLAIN_TOKEN api GET secret/data/alice/doc | json_get '["data"]["data"]["owner"]' | grep -qx alice
api POST secret/data/bob/doc '{"data":{"owner":"bob"}}' >/dev/null
if TOKEN=$ALICE_TOKEN api GET secret/data/bob/doc >/dev/null 2>&1; then echo "alice reads bob" >&2; exit 1; fi
if TOKEN=$PLAIN_TOKEN api GET sys/mounts >/dev/null 2>&1; then echo "plain token is not restricted" >&2; exit 1; fi

api POST sys/auth/approle '{"type":"approle"}' >/dev/null
api POST auth/approle/role/bench '{"token_ttl":"1h","secret_id_num_uses":0}' >/dev/null
ROLE_ID=$(api GET auth/approle/role/bench/role-id | json_get '["data"]["role_id"]')
SECRET_ID=$(api POST auth/approle/role/bench/secret-id '{}' | json_get '["data"]["secret_id"]')
ALIAS_ACCESSOR=$(api GET sys/auth | json_get '["data"]["approle/"]["accessor"]')
export ALIAS_ACCESSOR
cat > "$WORK/approle_login.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"role_id":"$ROLE_ID","secret_id":"$SECRET_ID"}'
wrk.headers["Content-Type"] = "application/json"
LUA

# Entities in the store: LISTed once while small (LIST reads every record for key_info),
# then counted from the fills' successful requests.
HAVE=$(api LIST identity/entity/id 2>/dev/null | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["keys"]))' || echo 0)
# fill_to N: create entities (each with an alias on the AppRole mount) up to N.
fill_to() {
    local want=$1 run=0 reqs bad
    while [ "$HAVE" -lt "$want" ]; do
        run=$((run + 1))
        if [ $((want - HAVE)) -lt 2000 ]; then
            for _ in $(seq "$HAVE" $((want - 1))); do
                api POST identity/entity-alias "{\"name\":\"s$run-$RANDOM$RANDOM$RANDOM\",\"mount_accessor\":\"$ALIAS_ACCESSOR\"}" >/dev/null
                HAVE=$((HAVE + 1))
            done
        else
            local secs=$(( (want - HAVE) / 1500 + 1 ))
            [ "$secs" -le 60 ] || secs=60
            FILL_RUN=$run wrk -t2 -c32 -d"${secs}s" --timeout 5s -s "$BENCH_HERE/lua/identity_fill.lua" \
                -H "X-Vault-Token: $TOKEN" "$ADDR" >"$WORK/fill.out" 2>&1 || true
            reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WORK/fill.out")
            bad=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$WORK/fill.out")
            HAVE=$((HAVE + ${reqs:-0} - ${bad:-0}))
        fi
        echo "entities: $HAVE" >&2
    done
}

OUT=$(results_file identity)
echo "rss-after-setup: $(rss)" >> "$OUT"
results=()
for c in $CONNS_LIST; do
    plain=$(run_wrk "custos-kv2-read-plain-c$c" "$c" "$ADDR/v1/secret/data/alice/doc" \
        -H "X-Vault-Token: $PLAIN_TOKEN")
    tmpl=$(run_wrk "custos-kv2-read-templated-2groups-c$c" "$c" "$ADDR/v1/secret/data/alice/doc" \
        -H "X-Vault-Token: $ALICE_TOKEN")
    results+=("$plain" "$tmpl")
    pr=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$plain")
    tr=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$tmpl")
    results+=("ratio-templated/plain-c$c $("$PY" -c "print('%.3f' % ($tr / $pr))")")
done

fill_to "$ENTITIES_SMALL"
n_small=$HAVE
small=$(run_wrk "custos-approle-login-entities$n_small-c32" 32 "$ADDR/v1/auth/approle/login" \
    -s "$WORK/approle_login.lua")
results+=("$small")
fill_to "$ENTITIES_BIG"
n_big=$HAVE
big=$(run_wrk "custos-approle-login-entities$n_big-c32" 32 "$ADDR/v1/auth/approle/login" \
    -s "$WORK/approle_login.lua")
results+=("$big")
sr=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$small")
br=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$big")
results+=("ratio-login-big/small $("$PY" -c "print('%.3f' % ($br / $sr))")")
{
    printf '%s\n' "${results[@]}"
    echo "rss-after-runs: $(rss)"
    echo "storage: $(du -sh "$WORK/data" | cut -f1)"
} >> "$OUT"
cat "$OUT"
