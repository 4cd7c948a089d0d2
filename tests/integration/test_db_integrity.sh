#!/usr/bin/env bash
# test_db_integrity.sh — a damaged SQLite database is never served as if whole (SQLite only).
#
# The test makes a database with the real server (3,000 points through the HTTP device API),
# stops it, and flips 200 bytes in the pages of ts_kv (found with SQLite's dbstat table):
# 1. with --db-integrity-check false (COAPHUB_DB_INTEGRITY_CHECK) the server starts, and the
#    first read that meets the damage is logged once, with the recovery command; the history
#    answers 500 with ThingsBoard's error JSON, never a partial 200; /readyz is 503 with reason
#    "database corrupt"; devices get 5.03 with Max-Age, not 2.01;
# 2. with the default check (PRAGMA quick_check at open) the server refuses to start: exit
#    status 1, a message naming the database, quick_check's finding and the recovery command;
# 3. the recovery command the message and docs/operations.md give (sqlite3 DB .dump, its
#    ROLLBACK turned into COMMIT, into DB.recovered, moved in place) gives a database the server
#    starts on again, ready, taking points.
set -u
. "$(dirname "$0")/lib.sh"
[ "$IT_BACKEND" = sqlite ] || fail "SQLite only (quick_check and .recover are SQLite's)"
need sqlite3

DB="$IT_DATA/coaphub.db"
TOKEN=integrityTok
N=3000
TS0=$(( $(date +%s) * 1000 - 86400000 ))

daemon_start
login
device_create integrity "$TOKEN"
python3 -c "import json; print(json.dumps([{'ts': $TS0 + i, 'values': {'t': i}} for i in range($N)]))" \
    >"$IT_TMP/points.json"
code=$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "@$IT_TMP/points.json" "$BASE_URL/api/v1/$TOKEN/telemetry")
assert_eq "$code" 200 "HTTP device API: $N points"
assert_eq "$(ts_history "$DEV_ID" t | jq length)" "$N" "history before the damage"
daemon_stop   # the log is merged into ts_kv and the WAL checkpointed on a clean stop

# 200 bytes flipped in ts_kv's pages: each page's type byte and cell count first (SQLite must
# notice those), then bytes spread over the pages' bodies.
pages=$(sqlite3 "$DB" "SELECT pageno FROM dbstat WHERE name = 'ts_kv' ORDER BY pageno" | tr '\n' ' ')
psize=$(sqlite3 "$DB" "PRAGMA page_size")
[ -n "$pages" ] || fail "no ts_kv pages in dbstat"
python3 - "$DB" "$psize" $pages <<'PY' || fail "flipping bytes failed"
import random, sys
path, psize, pages = sys.argv[1], int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
rnd = random.Random(17)
offs = []
for p in pages:
    base = (p - 1) * psize
    offs += [base, base + 3, base + 4]
while len(offs) < 200:
    p = rnd.choice(pages)
    offs.append((p - 1) * psize + rnd.randrange(8, psize))
offs = sorted(set(offs[:200]))
with open(path, "r+b") as f:
    for o in offs:
        f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0xFF]))
print("flipped %d bytes in %d pages" % (len(offs), len(pages)), file=sys.stderr)
PY
log "damaged ts_kv's $(wc -w <<<"$pages") pages"

# ---- 1. served without the check: found at run time --------------------------------------
COAPHUB_DB_INTEGRITY_CHECK=false daemon_start
corrupt_lines() { grep -c 'is corrupt (a statement met a damaged page)' "$IT_LOG"; }
for i in 1 2 3; do
    out=$(ts_history "$DEV_ID" t 2>/dev/null)
    out=$(cat "$IT_TMP/rest.body")
    assert_eq "$(http_code)" 500 "history that meets the damage ($i)"
    jq -e '(.status == 500) and (.message | type == "string") and (.errorCode | type == "number")
           and (.timestamp | type == "number")' <<<"$out" >/dev/null ||
        fail "history 500 is not ThingsBoard's error JSON: $out"
done
assert_eq "$(corrupt_lines)" 1 "corruption logged once"
grep -qF "sqlite3 $DB .dump | sed" "$IT_LOG" || fail "the corruption line has no recovery command"
code=$(curl -s --max-time 5 -o "$IT_TMP/readyz" -w '%{http_code}' "$BASE_URL/readyz")
assert_eq "$code" 503 "/readyz after corruption"
assert_eq "$(jq -r .reason "$IT_TMP/readyz")" "database corrupt" "/readyz reason"
coap post "/api/v1/$TOKEN/telemetry" '{"t":-1}'
assert_eq "$COAP_CODE" 5.03 "a device's point once the database is known corrupt"
grep -Eq 'Max-Age:[0-9]+' "$IT_TMP/coap.log" || fail "5.03 without Max-Age"
daemon_stop

# ---- 2. the check at open refuses it -------------------------------------------------------
echo "=== start $(date +%T) (corrupt, default check)" >>"$IT_LOG"
timeout 60 "$COAPHUB_BIN" --data-dir "$IT_DATA" --bind 127.0.0.1 --http-bind 127.0.0.1 \
    --coap-port "$COAP_PORT" --coaps-port "$COAPS_PORT" --http-port "$HTTP_PORT" \
    </dev/null >"$IT_TMP/refused.log" 2>&1
rc=$?
cat "$IT_TMP/refused.log" >>"$IT_LOG"
assert_eq "$rc" 1 "exit status on a corrupt database"
grep -q "cannot start: database $DB is corrupt (quick_check: " "$IT_TMP/refused.log" ||
    fail "no 'cannot start ... corrupt (quick_check' message"
grep -qF "refusing to start; stop the server and recover it: sqlite3 $DB .dump | sed '\$s/^ROLLBACK; -- due to errors\$/COMMIT;/' | sqlite3 $DB.recovered" \
    "$IT_TMP/refused.log" || fail "no recovery command in the refusal"
log "ok: refused: $(grep -m1 'cannot start' "$IT_TMP/refused.log" | cut -c1-160)"
check_sanitizers

# ---- 3. the documented recovery --------------------------------------------------------------
sqlite3 "$DB" .dump 2>/dev/null | sed '$s/^ROLLBACK; -- due to errors$/COMMIT;/' |
    sqlite3 "$DB.recovered" || fail "the recovery (sqlite3 .dump) failed"
assert_eq "$(sqlite3 "$DB.recovered" 'PRAGMA integrity_check')" ok "the recovered file's integrity"
mv "$DB.recovered" "$DB" && rm -f "$DB-wal" "$DB-shm"
daemon_start
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$BASE_URL/readyz")
assert_eq "$code" 200 "/readyz after recovery"
n=$(ts_history "$DEV_ID" t | jq length)
assert_eq "$(http_code)" 200 "history after recovery"
log "recovered $n of $N points"
coap_expect 2.01 post "/api/v1/$TOKEN/telemetry" '{"t":-2}'
it_pass
