#!/usr/bin/env bash
# test_db_copy.sh — moving an installation between the backends (`coaphub db copy`) and the
# SQLite online backup (`coaphub db backup`), through the real daemon (docs/operations.md,
# "Backup and restore"). Needs PostgreSQL (COAPHUB_TEST_PG); registered once.
#
# 1. A realistic SQLite installation, built through the daemon's own APIs: devices with token
#    and X.509 credentials, a label and additional info, shared/server/client attributes,
#    telemetry of every type (long, double, bool, string, JSON, edge values) at timestamps
#    far from now (their PostgreSQL partitions are not made ahead), a persistent RPC record,
#    the admin user and the JWT signing key. Its REST answers are recorded (A) and compared
#    byte for byte with the later ones.
# 2. SQLite -> a new PostgreSQL database: exit 0, the printed counts table matches the source;
#    the daemon on PostgreSQL answers exactly as A (device list, each device, credentials,
#    attributes of each scope, time-series keys, latest values and history, the RPC record,
#    the current user), the JWT issued before the copy is still accepted (same signing key),
#    the same password logs in. New rows get new ids there (sequences set past the copy).
# 3. A second copy into the now non-empty database is refused (exit 65), nothing written.
# 4. PostgreSQL -> a new SQLite file: exit 0, counts, the daemon on it answers as PostgreSQL
#    did (B2); a copy over an existing SQLite file is refused alike, and one from a SQLite
#    file that does not exist fails without making it.
# 5. Backup: while a telemetry load runs, `db backup` writes a file that passes
#    PRAGMA integrity_check, and a daemon started on a copy of it serves every point that
#    was acknowledged before the backup began.
export COAPHUB_TEST_BACKEND=postgresql   # lib.sh then requires COAPHUB_TEST_PG and psql
. "$(dirname "$0")/lib.sh"
need sqlite3
need openssl
IT_BACKEND=sqlite                         # phase 1 runs on SQLite
export COAPHUB_RPC_MIN_TIMEOUT_MS=200     # the RPC record below expires quickly
SQLITE_A="$IT_DATA/coaphub.db"
BASE_TS=1700000000000

# ---------------------------------------------------------------------------------------------
# 1. The SQLite installation.
daemon_start
login
JWT_BEFORE=$JWT
declare -A dev_id
out=$(rest POST "/api/device?accessToken=dcTokA" \
    '{"name":"dc-A","type":"thermostat","label":"Label Ä","additionalInfo":{"description":"first","gateway":false}}')
[ "$(http_code)" = 200 ] || fail "create dc-A: HTTP $(http_code): $out"
dev_id[dc-A]=$(jq -r .id.id <<<"$out")
for n in B C; do
    device_create "dc-$n" "dcTok$n"
    dev_id[dc-$n]=$DEV_ID
done
device_create dc-X dcTokX
dev_id[dc-X]=$DEV_ID
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$IT_TMP/x.key" \
    -x509 -days 30 -subj /CN=dc-X -out "$IT_TMP/x.pem" 2>/dev/null || fail "openssl req failed"
register_cert "${dev_id[dc-X]}" "$IT_TMP/x.pem"

# Attributes of each scope (client ones as a device posts them).
attr() {  # attr DEVICE SCOPE JSON
    rest POST "/api/plugins/telemetry/DEVICE/${dev_id[$1]}/attributes/$2" "$3" >/dev/null
    [ "$(http_code)" = 200 ] || fail "attributes $2 of $1: HTTP $(http_code)"
}
attr dc-A SHARED_SCOPE '{"interval":30,"mode":"eco","cfg":{"a":[1,2,{"b":null}]},"on":true}'
attr dc-A SERVER_SCOPE '{"site":"north","floor":3,"ratio":0.1}'
attr dc-B SERVER_SCOPE '{"site":"south"}'
attr dc-X SHARED_SCOPE '{"fw":"1.2.3"}'
coap_expect 2.01 post /api/v1/dcTokA/attributes '{"serial":"SN-1","battery":97.5,"ok":false}'
coap_expect 2.01 post /api/v1/dcTokB/attributes '{"serial":"SN-2","meta":{"x":[1,"y"]}}'

# Telemetry: every type, explicit timestamps, several points per key.
for i in 1 2 3 4 5; do
    b=$([ $((i % 2)) = 0 ] && echo true || echo false)
    for t in A B; do
        coap_expect 2.01 post "/api/v1/dcTok$t/telemetry" \
            "{\"ts\":$((BASE_TS + i * 1000)),\"values\":{\"temp\":$i.25,\"cnt\":$((i * 7)),\"on\":$b,\"s\":\"text $i\",\"j\":{\"i\":$i,\"l\":[1,\"two\"]}}}"
    done
done
coap_expect 2.01 post /api/v1/dcTokC/telemetry \
    "{\"ts\":$BASE_TS,\"values\":{\"big\":9007199254740993,\"neg\":-9223372036854775808,\"tiny\":1.0e-300,\"third\":0.1,\"uni\":\"grüße ✓ \\\"q\\\" \\\\ end\",\"empty\":\"\",\"nested\":{\"a\":{\"b\":{\"c\":[true,false,null]}}}}}"
coap_expect 2.01 post /api/v1/dcTokC/telemetry '{"temp":-40.5,"cnt":0}'   # server time

# A persistent RPC to a device that never asks for it: its record ends EXPIRED.
out=$(rest POST "/api/rpc/oneway/${dev_id[dc-B]}" \
    '{"method":"blink","params":{"n":3,"c":"red"},"persistent":true,"timeout":300}')
[ "$(http_code)" = 200 ] || fail "persistent RPC: HTTP $(http_code): $out"
RPC_ID=$(jq -r .rpcId <<<"$out")
for i in $(seq 1 50); do
    st=$(rest GET "/api/rpc/persistent/$RPC_ID" | jq -r .status)
    [ "$st" != QUEUED ] && [ "$st" != SENT ] && break
    sleep 0.1
done
assert_eq "$st" EXPIRED "persistent RPC record final"

# snapshot DIR: every REST answer the copy must keep, one file each, as the server wrote it
# (compared byte for byte: jq would round 9007199254740993), and pretty-printed beside it
# (.pretty, for reading a difference).
snapshot() {
    local dir=$1 name id keys scope now
    now=$(( $(date +%s) * 1000 + 600000 ))
    mkdir -p "$dir"
    get() {   # get FILE PATH
        rest GET "$2" >"$dir/$1"
        [ "$(http_code)" = 200 ] || fail "snapshot: GET $2: HTTP $(http_code): $(cat "$dir/$1")"
        jq -S . "$dir/$1" >"$dir/$1.pretty" || fail "snapshot: GET $2: not JSON"
    }
    get list "/api/tenant/devices?pageSize=100&page=0&sortProperty=name&sortOrder=ASC"
    while read -r name id; do
        get "$name.device" "/api/device/$id"
        get "$name.credentials" "/api/device/$id/credentials"
        for scope in CLIENT_SCOPE SHARED_SCOPE SERVER_SCOPE; do
            get "$name.attr.$scope" "/api/plugins/telemetry/DEVICE/$id/values/attributes/$scope"
        done
        get "$name.tskeys" "/api/plugins/telemetry/DEVICE/$id/keys/timeseries"
        keys=$(jq -r 'join(",")' "$dir/$name.tskeys")
        if [ -n "$keys" ]; then
            get "$name.latest" \
                "/api/plugins/telemetry/DEVICE/$id/values/timeseries?keys=$keys&useStrictDataTypes=true"
            get "$name.history" \
                "/api/plugins/telemetry/DEVICE/$id/values/timeseries?keys=$keys&startTs=0&endTs=$now&limit=100000&orderBy=ASC&useStrictDataTypes=true"
        fi
    done < <(jq -r '.data[] | "\(.name) \(.id.id)"' "$dir/list")
    get rpc "/api/rpc/persistent/$RPC_ID"
    get user /api/auth/user
}

# same_snapshot A B WHAT [NAME...]: identical answers (but those of the files NAME), or the
# differences and a failure.
same_snapshot() {
    local a=$1 b=$2 what=$3 x=(-x '*.pretty')
    shift 3
    for n in "$@"; do x+=(-x "$n" -x "$n.pretty"); done
    diff -r "${x[@]}" "$a" "$b" >/dev/null || {
        diff -r "${x[@]:2}" "$a" "$b" | grep -v '^diff ' | head -n 60 >&2
        fail "$what: REST answers differ"
    }
    log "ok: $what: $(( $(ls "$a" | grep -vc pretty) - $# )) REST answers identical"
}

daemon_stop
daemon_start   # what was stored, not what the first process held in memory
snapshot "$IT_TMP/snap.A"
A="$IT_TMP/snap.A"
assert_eq "$(jq '.data | length' "$A/list")" 4 "A: four devices"
assert_eq "$(jq -r .credentialsType "$A/dc-X.credentials")" X509_CERTIFICATE \
    "A: dc-X has X.509 credentials"
assert_eq "$(jq -r .credentialsId "$A/dc-A.credentials")" dcTokA "A: dc-A's token"
assert_eq "$(jq -r '.label + "/" + .additionalInfo.description' "$A/dc-A.device")" "Label Ä/first" \
    "A: dc-A's label and additional info"
assert_eq "$(jq -c '[.[].key]' "$A/dc-A.attr.SHARED_SCOPE")" '["cfg","interval","mode","on"]' \
    "A: dc-A's shared attributes"
assert_eq "$(jq -c '[.[].key]' "$A/dc-A.attr.CLIENT_SCOPE")" '["battery","ok","serial"]' \
    "A: dc-A's client attributes"
assert_eq "$(jq -r '.j | length' "$A/dc-A.history")" 5 "A: history of j"
assert_match "$(cat "$A/dc-C.latest")" '"big":\[\{"ts":1700000000000,"value":9007199254740993\}' \
    "A: 2^53+1 kept exactly"
assert_eq "$(jq -r .status "$A/rpc")" EXPIRED "A: the RPC record"
daemon_stop

# check_counts OUT SQL_COUNT_FN: the report has a line per table, source = destination = what
# the source database holds (SQL_COUNT_FN TABLE prints that), and the closing line.
check_counts() {
    local report=$1 count_fn=$2 table src dst extra n_lines=0
    grep -q '^copied: every table' "$report" || fail "no closing line in: $(cat "$report")"
    grep -q MISMATCH "$report" && fail "mismatch in the counts: $(cat "$report")"
    while read -r table src dst extra; do
        [ "$table" = table ] && continue
        [ "$table" = copied: ] && continue
        n_lines=$((n_lines + 1))
        [ -z "$extra" ] || fail "counts line for $table: '$extra'"
        [ "$src" = "$dst" ] || fail "counts of $table: source $src, destination $dst"
        assert_eq "$src" "$("$count_fn" "$table")" "counts: $table has $src rows"
    done <"$report"
    [ "$n_lines" -eq 12 ] || fail "expected 12 tables in the counts, got $n_lines"
}
count_sqlite_a() { sqlite3 -batch "$SQLITE_A" "SELECT COUNT(*) FROM $1"; }
pg_count() { PGCONNECT_TIMEOUT=10 timeout 60 psql "$PG_URL" -XqAt -c "SELECT COUNT(*) FROM $1"; }
pg_counts() {   # every table's count, one line
    local t
    for t in settings app_user device_profile ota_package device device_credentials \
        key_dictionary attribute_kv \
        ts_kv_latest ts_kv ts_kv_log rpc; do printf '%s=%s ' "$t" "$(pg_count "$t")"; done
}

# A crash's leftovers: points still in the telemetry log, of a key nothing else has, in 2001
# (a daemon merges its log at start; this one will be PostgreSQL's, into partitions it makes
# then). As another process would write them.
LOG_TS0=978307200000
sqlite3 -batch "$SQLITE_A" "INSERT INTO key_dictionary(key) VALUES('logged');
    INSERT INTO ts_kv_log(device_id, key_id, ts, long_v)
        SELECT d.id, k.key_id, $LOG_TS0 + v * 1000, 40 + v
        FROM device d, key_dictionary k, (SELECT 1 AS v UNION SELECT 2)
        WHERE d.name = 'dc-C' AND k.key = 'logged'" || fail "cannot write the log rows"
assert_eq "$(sqlite3 -batch "$SQLITE_A" 'SELECT COUNT(*) FROM ts_kv_log')" 2 "SQLite: 2 points in the log"

# ---------------------------------------------------------------------------------------------
# 2. SQLite -> PostgreSQL.
pg_db_create                       # IT_DB: dropped by it_cleanup
PG_URL=$IT_DB_URL
"$COAPHUB_BIN" db copy --from "$SQLITE_A" --to "$PG_URL" >"$IT_TMP/copy1.out" 2>"$IT_TMP/copy1.err"
rc=$?
[ "$rc" = 0 ] || fail "db copy SQLite -> PostgreSQL: exit $rc: $(cat "$IT_TMP/copy1.err")"
pw=${PG_URL#*://*:}; pw=${pw%%@*}
[ -n "$pw" ] && grep -qF -- "$pw" "$IT_TMP/copy1.out" "$IT_TMP/copy1.err" &&
    fail "db copy printed the database password"
cat "$IT_TMP/copy1.out" >&2
check_counts "$IT_TMP/copy1.out" count_sqlite_a
assert_eq "$(pg_count ts_kv_log)" 2 "PostgreSQL: the log copied"

IT_BACKEND=postgresql
IT_DATA="$IT_TMP/data-pg"; mkdir -p "$IT_DATA"
daemon_start
JWT=$JWT_BEFORE                    # no login: the old token must still be accepted
snapshot "$IT_TMP/snap.B"
B="$IT_TMP/snap.B"
same_snapshot "$A" "$B" "SQLite -> PostgreSQL" dc-C.tskeys dc-C.latest dc-C.history
# dc-C: as before, plus the log's points, merged.
assert_eq "$(jq -c 'map(select(. != "logged"))' "$B/dc-C.tskeys")" "$(jq -c . "$A/dc-C.tskeys")" \
    "dc-C's keys, plus logged"
for f in latest history; do
    assert_eq "$(jq -cS 'del(.logged)' "$B/dc-C.$f")" "$(jq -cS . "$A/dc-C.$f")" \
        "dc-C's $f, plus logged"
done
assert_eq "$(jq -c '.logged' "$B/dc-C.history")" \
    "[{\"ts\":$((LOG_TS0 + 1000)),\"value\":41},{\"ts\":$((LOG_TS0 + 2000)),\"value\":42}]" \
    "the log's points in the history"
assert_eq "$(jq -c '.logged' "$B/dc-C.latest")" "[{\"ts\":$((LOG_TS0 + 2000)),\"value\":42}]" \
    "the log's latest point"
assert_eq "$(pg_count ts_kv_log)" 0 "PostgreSQL: the log merged"
login                              # the same password
log "ok: the JWT issued before the copy and the same password work on PostgreSQL"

# New rows after the copy get ids of their own (the copy set the sequences past its rows).
device_create dc-new dcTokNew
dev_id[dc-new]=$DEV_ID
coap_expect 2.01 post /api/v1/dcTokNew/telemetry "{\"ts\":$BASE_TS,\"values\":{\"fresh\":1}}"
coap_expect 2.01 post /api/v1/dcTokA/telemetry "{\"ts\":$((BASE_TS + 9000)),\"values\":{\"newkey\":\"n\",\"temp\":9.5}}"
attr dc-new SERVER_SCOPE '{"added":"after copy"}'
out=$(rest POST "/api/rpc/oneway/${dev_id[dc-new]}" \
    '{"method":"m2","params":{},"persistent":true,"timeout":300}')
[ "$(http_code)" = 200 ] || fail "persistent RPC on PostgreSQL: HTTP $(http_code): $out"
assert_eq "$(pg_count device)" 5 "PostgreSQL: five devices"
assert_eq "$(pg_count "device_credentials WHERE device_id = (SELECT id FROM device WHERE name = 'dc-new')")" 1 \
    "PostgreSQL: the new device's credentials"
assert_eq "$(jq -r '.fresh[0].value' <<<"$(rest GET "/api/plugins/telemetry/DEVICE/${dev_id[dc-new]}/values/timeseries?keys=fresh")")" 1 \
    "PostgreSQL: the new device's telemetry"
for i in $(seq 1 50); do   # the new RPC record settles too
    st=$(rest GET "/api/rpc/persistent/$(jq -r .rpcId <<<"$out")" | jq -r .status)
    [ "$st" != QUEUED ] && [ "$st" != SENT ] && break
    sleep 0.1
done
snapshot "$IT_TMP/snap.B2"
daemon_stop

# ---------------------------------------------------------------------------------------------
# 3. A copy into the non-empty PostgreSQL database is refused, nothing written.
before=$(pg_counts)
"$COAPHUB_BIN" db copy --from "$SQLITE_A" --to "$PG_URL" >"$IT_TMP/copy2.out" 2>"$IT_TMP/copy2.err"
assert_eq "$?" 65 "db copy into a non-empty PostgreSQL database: exit 65"
assert_match "$(cat "$IT_TMP/copy2.err")" 'not empty' "refusal says why"
assert_eq "$(pg_counts)" "$before" "nothing written to the non-empty database"

# ---------------------------------------------------------------------------------------------
# 4. PostgreSQL -> a new SQLite file.
SQLITE_C="$IT_TMP/data-c/coaphub.db"
mkdir -p "$IT_TMP/data-c"
"$COAPHUB_BIN" db copy --from "$PG_URL" --to "$SQLITE_C" >"$IT_TMP/copy3.out" 2>"$IT_TMP/copy3.err"
rc=$?
[ "$rc" = 0 ] || fail "db copy PostgreSQL -> SQLite: exit $rc: $(cat "$IT_TMP/copy3.err")"
cat "$IT_TMP/copy3.out" >&2
check_counts "$IT_TMP/copy3.out" pg_count
assert_eq "$(sqlite3 -batch "$SQLITE_C" 'PRAGMA integrity_check')" ok "the new SQLite file is sound"

# ... and over an existing SQLite database: refused, the file unchanged.
sum_a=$(sha256sum <"$SQLITE_A")
"$COAPHUB_BIN" db copy --from "$PG_URL" --to "$SQLITE_A" >/dev/null 2>"$IT_TMP/copy4.err"
assert_eq "$?" 65 "db copy over an existing SQLite database: exit 65"
assert_eq "$(sha256sum <"$SQLITE_A")" "$sum_a" "the existing SQLite database is unchanged"

# ... and from a SQLite file that does not exist (a typo): an error, no file made on either side.
"$COAPHUB_BIN" db copy --from "$IT_TMP/typo.db" --to "$IT_TMP/never.db" >/dev/null \
    2>"$IT_TMP/copy5.err"
assert_eq "$?" 70 "db copy from a missing SQLite file: exit 70"
[ ! -e "$IT_TMP/typo.db" ] && [ ! -e "$IT_TMP/never.db" ] ||
    fail "db copy from a missing file created $(ls "$IT_TMP"/typo.db "$IT_TMP"/never.db 2>/dev/null)"

IT_BACKEND=sqlite
IT_DATA="$IT_TMP/data-c"
daemon_start
JWT=$JWT_BEFORE
snapshot "$IT_TMP/snap.C"
same_snapshot "$IT_TMP/snap.B2" "$IT_TMP/snap.C" "PostgreSQL -> SQLite"
device_create dc-new2 dcTokNew2
coap_expect 2.01 post /api/v1/dcTokNew2/telemetry '{"x":1}'

# ---------------------------------------------------------------------------------------------
# 5. Backup under load: the load runs on the SQLite daemon of step 4.
echo "$COAP_PORT" >"$IT_TMP/coap_port"
timeout 30 python3 "$IT_DIR/durability_load.py" "$IT_TMP/coap_port" "$IT_TMP/acks" 4 \
    dcTokA dcTokB dcTokC dcTokNew >"$IT_TMP/load.out" 2>&1 &
LOAD=$!
IT_PIDS+=("$LOAD")
sleep 1.5
cp "$IT_TMP/acks" "$IT_TMP/acks.before"   # acknowledged before the backup began
"$COAPHUB_BIN" db backup --from "$IT_DATA/coaphub.db" --to "$IT_TMP/backup.db" \
    >"$IT_TMP/backup.out" 2>&1
rc=$?
[ "$rc" = 0 ] || fail "db backup: exit $rc: $(cat "$IT_TMP/backup.out")"
kill -0 "$LOAD" 2>/dev/null || fail "the load ended before the backup did; it proves nothing"
"$COAPHUB_BIN" db backup --from "$IT_DATA/coaphub.db" --to "$IT_TMP/backup.db" >/dev/null 2>&1
assert_eq "$?" 65 "db backup onto an existing file: exit 65"
"$COAPHUB_BIN" db backup --from "$PG_URL" --to "$IT_TMP/pg.backup" >/dev/null 2>&1
assert_eq "$?" 64 "db backup of PostgreSQL: exit 64 (pg_dump's job)"
wait "$LOAD" || fail "load script failed: $(cat "$IT_TMP/load.out")"
log "load: $(cat "$IT_TMP/load.out")"
n_before=$(wc -l <"$IT_TMP/acks.before")
[ "$n_before" -ge 20 ] || fail "only $n_before points acknowledged before the backup"
assert_eq "$(sqlite3 -batch "$IT_TMP/backup.db" 'PRAGMA integrity_check')" ok \
    "backup passes PRAGMA integrity_check"
daemon_stop

IT_DATA="$IT_TMP/data-restored"
mkdir -p "$IT_DATA"
cp "$IT_TMP/backup.db" "$IT_DATA/coaphub.db"
daemon_start
login
missing=0
for t in A B C New; do
    case $t in New) id=${dev_id[dc-new]} ;; *) id=${dev_id[dc-$t]} ;; esac
    ts_history "$id" v >"$IT_TMP/hist.$t"
    [ "$(http_code)" = 200 ] || fail "history of dcTok$t: HTTP $(http_code)"
    m=$(python3 - "dcTok$t" "$IT_TMP/acks.before" "$IT_TMP/hist.$t" <<'PY'
import json, sys
tok, ack_path, hist_path = sys.argv[1:]
acked = {int(l.split()[1]) for l in open(ack_path) if l.split()[0] == tok}
stored = {int(p["value"]) for p in json.load(open(hist_path))}
print(len(acked - stored), sorted(acked - stored)[:10])
PY
)
    [ "${m%% *}" = 0 ] || { log "dcTok$t: missing from the backup: $m"; missing=$((missing + ${m%% *})); }
done
[ "$missing" -eq 0 ] || fail "$missing points acknowledged before the backup are not in it"
log "ok: the backup holds all $n_before points acknowledged before it began"

it_pass
