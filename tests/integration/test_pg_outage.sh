#!/usr/bin/env bash
# test_pg_outage.sh — PostgreSQL stops, then crashes, under device load (PostgreSQL only).
#
# Five devices post telemetry (each point a unique value with an explicit ts) while the test's
# own PostgreSQL cluster is stopped (pg_ctl stop -m fast) and, in a second round, its
# postmaster is SIGKILLed. During each outage: devices get 5.03 with a Max-Age option, REST
# gets 503 with ThingsBoard's error JSON, /readyz says 503, /healthz 200, the daemon lives on,
# and no request sent after the server was down is answered 2.01 before it is back. After
# each restart (same data dir and port) posts get 2.01 again and /readyz 200 within 5 s. At
# the end every point ever answered 2.01 is in the REST history, and the daemon stops cleanly.
#
# The cluster is the test's own (scripts/pg-test-server.sh start in a temporary directory
# under /tmp, which the server's user can enter): the shared one of COAPHUB_TEST_PG serves
# other tests running in parallel and is never touched here, nor needed.
set -u
export COAPHUB_TEST_BACKEND=postgresql
# lib.sh wants a server for the PostgreSQL variant; ours replaces this before any use.
export COAPHUB_TEST_PG=${COAPHUB_TEST_PG:-postgresql://set-below}
. "$(dirname "$0")/lib.sh"
PGO_SERVER="$IT_DIR/../../scripts/pg-test-server.sh"
PGO_DIR=""

# lib.sh's cleanup (kill the daemon, drop the database, show the log on failure), then ours:
# the cluster goes last, with its log's tail when the test failed.
pgo_cleanup() {
    local rc=$?
    if [ -n "$DAEMON_PID" ]; then
        kill -KILL "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=""
    fi
    if [ -n "$PGO_DIR" ]; then
        if [ "$rc" -ne 0 ] || [ "$IT_FAILED" -ne 0 ]; then
            log "last lines of the test cluster's log:"
            tail -n 15 "$PGO_DIR/server.log" >&2 2>/dev/null
        fi
        IT_DB=""   # it goes with the cluster
        "$PGO_SERVER" stop "$PGO_DIR" || log "warning: could not stop the test cluster in $PGO_DIR"
    fi
    (exit "$rc")
    it_cleanup
}
trap pgo_cleanup EXIT
PGO_DIR=$(mktemp -d /tmp/coaphub-pgo.XXXXXX) || fail "mktemp failed"
"$PGO_SERVER" start "$PGO_DIR" || fail "could not start the test's PostgreSQL cluster"
# shellcheck source=/dev/null
. "$PGO_DIR/env"   # COAPHUB_TEST_PG: our cluster

N_DEV=5
TS0=$(( $(date +%s) * 1000 - 3600000 ))   # an hour ago: ts = TS0 + N, all distinct
OUT="$IT_TMP/answers"                     # every answer: TOKEN N CODE MAX_AGE T_SENT T_ANSWERED
WINDOWS="$IT_TMP/windows"                 # one line per outage: T_DOWN T_RESTART

daemon_start
login
tokens=()
declare -A dev_id
for i in $(seq 0 $((N_DEV - 1))); do
    device_create "pgo-$i" "pgoTok$i"
    dev_id[pgoTok$i]=$DEV_ID
    tokens+=("pgoTok$i")
done
device_create pgo-probe pgoProbe
dev_id[pgoProbe]=$DEV_ID
PROBE_N=0

# probe: one telemetry POST of the probe device; sets PROBE_CODE and PROBE_AGE.
probe() {
    PROBE_N=$((PROBE_N + 1))
    local r
    r=$(python3 "$IT_DIR/outage_load.py" probe "$COAP_PORT" "$OUT" pgoProbe "$PROBE_N" "$TS0")
    PROBE_CODE=${r% *}
    PROBE_AGE=${r#* }
}

now_s() { date +%s.%N; }

# What clients see while the database is down.
check_outage() {
    local what=$1 i
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "$what: the daemon died"
    probe
    [ "$PROBE_CODE" = 5.03 ] || fail "$what: CoAP telemetry answered $PROBE_CODE, expected 5.03"
    [ "$PROBE_AGE" != - ] && [ "$PROBE_AGE" -gt 0 ] ||
        fail "$what: the 5.03 has no Max-Age option (got '$PROBE_AGE')"
    log "ok: $what: CoAP 5.03 with Max-Age $PROBE_AGE"

    # REST: ThingsBoard's error JSON and Retry-After.
    local code body
    code=$(curl -s --max-time 10 -D "$IT_TMP/rest.hdr" -o "$IT_TMP/rest.err" -w '%{http_code}' \
        -H "X-Authorization: Bearer $JWT" "$BASE_URL/api/tenant/devices?pageSize=10&page=0")
    body=$(cat "$IT_TMP/rest.err")
    [ "$code" = 503 ] || fail "$what: REST device list answered $code: $body"
    jq -e '(.status == 503) and (.message | type == "string") and (.errorCode | type == "number")
           and (.timestamp | type == "number") and (keys | length == 4)' \
        <<<"$body" >/dev/null || fail "$what: REST 503 body is not ThingsBoard's error JSON: $body"
    grep -qi '^Retry-After:' "$IT_TMP/rest.hdr" || fail "$what: REST 503 without Retry-After"
    log "ok: $what: REST 503 $body"
    code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "{\"username\":\"$ADMIN_USER\",\"password\":\"$ADMIN_PASSWORD\"}" \
        "$BASE_URL/api/auth/login")
    [ "$code" = 503 ] || fail "$what: login answered $code, expected 503"

    # /readyz asks the database at most once a second: 503 within 3 s; /healthz stays 200.
    for i in $(seq 1 30); do
        code=$(curl -s --max-time 2 -o "$IT_TMP/readyz" -w '%{http_code}' "$BASE_URL/readyz")
        [ "$code" = 503 ] && break
        sleep 0.1
    done
    [ "$code" = 503 ] || fail "$what: /readyz answered $code, expected 503"
    jq -e '.checks.database == "DOWN" and .backend == "postgresql"' "$IT_TMP/readyz" \
        >/dev/null || fail "$what: /readyz body: $(cat "$IT_TMP/readyz")"
    code=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$BASE_URL/healthz")
    [ "$code" = 200 ] || fail "$what: /healthz answered $code during the outage"
    log "ok: $what: /readyz 503, /healthz 200"
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "$what: the daemon died"
}

# After PostgreSQL is back: 2.01 and /readyz 200 within 5 s of it accepting connections.
check_recovery() {
    local what=$1 t0 i ok="" code
    t0=$(date +%s%N)
    for i in $(seq 1 25); do   # each probe waits up to 1 s; the deadline is 5 s
        probe
        [ "$PROBE_CODE" = 2.01 ] && { ok=1; break; }
        [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ] || break
        sleep 0.2
    done
    [ -n "$ok" ] || fail "$what: no 2.01 within 5 s of PostgreSQL being back (last $PROBE_CODE)"
    log "ok: $what: CoAP 2.01 again after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    ok=""
    while [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ]; do
        code=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$BASE_URL/readyz")
        [ "$code" = 200 ] && { ok=1; break; }
        sleep 0.1
    done
    [ -n "$ok" ] || fail "$what: /readyz not 200 within 5 s of PostgreSQL being back ($code)"
    rest GET "/api/tenant/devices?pageSize=10&page=0" >/dev/null
    [ "$(http_code)" = 200 ] || fail "$what: REST device list answered $(http_code) after recovery"
    log "ok: $what: /readyz 200 and REST 200 after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

# outage VERB: stops (halt) or crashes (kill) PostgreSQL under load, checks, restarts, checks.
outage() {
    local verb=$1 down up
    sleep 1.5   # the load runs on a healthy server first
    "$PGO_SERVER" "$verb" "$PGO_DIR" || fail "pg-test-server.sh $verb failed"
    down=$(now_s)
    log "PostgreSQL $verb: $(grep -c ' 2\.01 ' "$OUT") acks so far"
    check_outage "$verb"
    sleep 1   # the load meets the outage for a while
    up=$(now_s)
    echo "$down $up" >>"$WINDOWS"
    "$PGO_SERVER" restart "$PGO_DIR" || fail "pg-test-server.sh restart failed"
    log "PostgreSQL accepts connections again"
    check_recovery "after $verb"
}

python3 "$IT_DIR/outage_load.py" load "$COAP_PORT" "$OUT" "$IT_TMP/load.stop" 60 "$TS0" \
    "${tokens[@]}" >"$IT_TMP/load.out" 2>&1 &
LOAD=$!
IT_PIDS+=("$LOAD")

outage halt
outage kill
sleep 1.5   # and on the recovered server again
touch "$IT_TMP/load.stop"
wait "$LOAD" || fail "load script failed: $(cat "$IT_TMP/load.out")"
log "load answers: $(cat "$IT_TMP/load.out")"

# The answers, all of them: only 2.01, 5.03 (with Max-Age) or none; no 2.01 for a request
# sent while the server was down and answered before it was started again; enough of each
# kind that the test proves something.
python3 - "$OUT" "$WINDOWS" <<'PY' || fail "the answers break the rules (above)"
import sys
answers = [l.split() for l in open(sys.argv[1])]
windows = [tuple(map(float, l.split())) for l in open(sys.argv[2])]
bad = []
per_window = [{"5.03": 0, "2.01": 0} for _ in windows]
for tok, n, code, age, sent, answered in answers:
    sent, answered = float(sent), float(answered)
    if code not in ("2.01", "5.03", "none"):
        bad.append("%s %s answered %s" % (tok, n, code))
    if code == "5.03" and (age == "-" or int(age) <= 0):
        bad.append("%s %s: 5.03 without Max-Age" % (tok, n))
    for i, (down, up) in enumerate(windows):
        if sent >= down and answered <= up:
            per_window[i][code] = per_window[i].get(code, 0) + 1
            if code == "2.01":
                bad.append("%s %s: 2.01 while PostgreSQL was down" % (tok, n))
acks = sum(1 for a in answers if a[2] == "2.01")
after = sum(1 for a in answers if a[2] == "2.01" and float(a[4]) > windows[-1][1])
print("answers %d, acks %d (%d after the last restart), per outage %s"
      % (len(answers), acks, after, per_window), file=sys.stderr)
for i, w in enumerate(per_window):
    if w["5.03"] < 10:
        bad.append("outage %d: only %d 5.03 answers to the load" % (i + 1, w["5.03"]))
if acks < 100 or after < 20:
    bad.append("only %d acks (%d after the last restart): the test proves nothing"
               % (acks, after))
for b in bad[:20]:
    print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
log "ok: 5.03 with Max-Age during both outages, no 2.01 while PostgreSQL was down"

# Every point answered 2.01 — before, during and after the outages — is in the history.
missing=0 total=0
for t in "${tokens[@]}" pgoProbe; do
    ts_history "${dev_id[$t]}" v >"$IT_TMP/hist.$t"
    [ "$(http_code)" = 200 ] || fail "history of $t: HTTP $(http_code)"
    m=$(python3 - "$t" "$OUT" "$IT_TMP/hist.$t" "$TS0" <<'PY'
import json, sys
tok, out_path, hist_path, ts0 = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
acked = {int(a[1]) for a in (l.split() for l in open(out_path)) if a[0] == tok and a[2] == "2.01"}
stored = {int(p["value"]) for p in json.load(open(hist_path)) if p["ts"] == ts0 + int(p["value"])}
lost = sorted(acked - stored)
print(len(lost), len(acked), lost[:10])
PY
)
    read -r n_lost n_acked _ <<<"$m"
    total=$((total + n_acked))
    [ "$n_lost" = 0 ] || { log "$t lost: $m"; missing=$((missing + n_lost)); }
done
[ "$missing" -eq 0 ] || fail "$missing acknowledged telemetry points were lost"
log "ok: all $total acknowledged points are in the history"

# A start while PostgreSQL is not up yet (both started together): coaphub waits for it
# (up to 30 s) instead of exiting, and serves once it is there.
daemon_stop
"$PGO_SERVER" halt "$PGO_DIR" || fail "could not stop PostgreSQL before the start"
( sleep 3; "$PGO_SERVER" restart "$PGO_DIR" >/dev/null 2>&1 ) &
IT_PIDS+=($!)
daemon_start
grep -q "waiting up to 30 s for PostgreSQL" "$IT_LOG" || fail "no 'waiting for PostgreSQL' line"
log "ok: a start before PostgreSQL was up waited for it"
probe
assert_eq "$PROBE_CODE" 2.01 "telemetry after a start that waited for PostgreSQL"

it_pass
