#!/usr/bin/env bash
# test_health.sh — liveness and readiness as an orchestrator sees them (operations.md, O2):
# /healthz and /readyz answer without a token, /readyz names its checks and the backend, and
# /metrics carries the same database check; plus the database options refused or masked
# before the daemon starts (--database, --ts-partitioning, --print-config).
. "$(dirname "$0")/lib.sh"

# --- configuration checked before anything starts
out=$("$COAPHUB_BIN" --data-dir "$IT_DATA" --database 'mysql://u:pw@db/x' --check-config 2>&1)
assert_eq "$?" 64 "--database that is not PostgreSQL -> exit 64"
assert_match "$out" 'must be a PostgreSQL URL' "--database error says why"
out=$("$COAPHUB_BIN" --data-dir "$IT_DATA" --ts-partitioning WEEKS --check-config 2>&1)
assert_eq "$?" 64 "--ts-partitioning WEEKS -> exit 64"
assert_match "$out" 'DAYS, MONTHS, YEARS or INDEFINITE' "--ts-partitioning error lists the values"
out=$(SPRING_DATASOURCE_PASSWORD=pw2 "$COAPHUB_BIN" --data-dir "$IT_DATA" \
    --database 'postgresql://tb:pw1@db:5432/thingsboard?sslmode=require' \
    --ts-partitioning days --print-config)
assert_match "$out" 'url = postgresql://tb:\*{8}@db:5432/thingsboard\?sslmode=require' \
    "--print-config masks the URL's password"
assert_match "$out" 'ts_key_value_partitioning = DAYS' "partitioning in canonical case"
if grep -Eq 'pw1|pw2' <<<"$out"; then fail "--print-config shows a database password"; fi
log "ok: no database password in --print-config"

daemon_start

# --- liveness and readiness: public, JSON
out=$(rest GET /healthz)
assert_eq "$(http_code)" 200 "/healthz"
assert_eq "$(jq -r .status <<<"$out")" UP "/healthz status"
out=$(rest GET /readyz)
assert_eq "$(http_code)" 200 "/readyz on SQLite"
assert_eq "$(jq -r .status <<<"$out")" UP "/readyz status"
assert_eq "$(jq -r .checks.server <<<"$out")" UP "/readyz server check"
assert_eq "$(jq -r .checks.database <<<"$out")" UP "/readyz database check"
assert_eq "$(jq -r .backend <<<"$out")" "$IT_BACKEND" "/readyz backend"
rest POST /readyz '{}' >/dev/null
assert_eq "$(http_code)" 404 "POST /readyz is no route"

# --- the same check in /metrics
metrics=$(curl -s --max-time 5 "$BASE_URL/metrics")
assert_match "$metrics" $'\ncoaphub_storage_up\\{backend="'"$IT_BACKEND"'"\\} 1\n' \
    "coaphub_storage_up{backend=\"$IT_BACKEND\"} 1"
assert_match "$metrics" '# TYPE coaphub_storage_up gauge' "coaphub_storage_up is a gauge"

# --- O2: the whole exposition passes Prometheus's own linter, after some traffic so that the
# labelled series exist (requests, refusals, a login)
login
device_create health-1 healthTok1
coap_expect 2.01 post /api/v1/healthTok1/telemetry '{"t":1}'
coap_expect 4.01 post /api/v1/noSuchTok/telemetry '{"t":1}'
promtool=$("$COAPHUB_SRC/scripts/promtool.sh" 2>"$IT_TMP/promtool.log" | tail -n 1) || promtool=""
if [ -x "$promtool" ]; then
    curl -s --max-time 5 "$BASE_URL/metrics" >"$IT_TMP/metrics.txt"
    "$promtool" check metrics <"$IT_TMP/metrics.txt" >"$IT_TMP/promtool.out" 2>&1 || {
        cat "$IT_TMP/promtool.out" >&2; fail "promtool check metrics found problems"; }
    log "ok: promtool check metrics: clean ($(grep -c '^# TYPE' "$IT_TMP/metrics.txt") metric families, $(grep -vc '^#' "$IT_TMP/metrics.txt") samples)"
else
    # scripts/test.sh fetches it before the tests; a hand run without apt lists may not.
    cat "$IT_TMP/promtool.log" >&2
    log "SKIP (this check only): promtool could not be fetched (scripts/promtool.sh)"
fi

it_pass
