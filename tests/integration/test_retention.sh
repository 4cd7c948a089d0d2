#!/usr/bin/env bash
# test_retention.sh — telemetry retention (--ts-ttl, ThingsBoard's SQL_TTL_TS_TS_KEY_VALUE_TTL)
# on the real daemon, on either backend (docs/operations.md, "Retention").
#
# Phase 1, --ts-ttl 0 (the default: kept forever): two devices post points 10, 5 and 4 days
# old, 2 days old and a minute old, under several keys; all are stored (on PostgreSQL in DAYS
# partitions made on demand) and still there after a few retention intervals.
# Phase 2, the same data with --ts-ttl 259200 (3 days), --ttl-interval 1000: within a bounded
# wait the points older than 3 days are gone from the REST history, the newer ones stay, and
# the latest values stay (retention never removes them, as ThingsBoard), even of a key that
# has only old points. Under the API: PostgreSQL dropped the old day partitions of ts_kv
# (ts_kv_YYYY_MM_DD) and kept the recent ones; SQLite has no old row left in ts_kv. An old
# point posted while the server runs goes the same way.
#
# The options go in through their environment variables (COAPHUB_TS_TTL, ...), which the
# daemon reads as it reads the flags; lib.sh's daemon_start passes no extra flags.
. "$(dirname "$0")/lib.sh"

DAY=86400000
NOW=$(( $(date +%s) * 1000 ))
OLD_TS=( $((NOW - 10 * DAY)) $((NOW - 5 * DAY)) $((NOW - 4 * DAY - 3600000)) )
NEW_TS=( $((NOW - 2 * DAY)) $((NOW - 60000)) )
export COAPHUB_TS_PARTITIONING=DAYS COAPHUB_TTL_INTERVAL_MS=1000 COAPHUB_TS_TTL=0

daemon_start
login
declare -A dev_id
for d in retA retB; do
    device_create "$d" "${d}Tok"
    dev_id[$d]=$DEV_ID
done

# post DEVICE TS I: keys t (a number), s (a string) at TS; "old" only on old points.
post() {
    local extra=""
    [ "$4" = old ] && extra=",\"old\":$3"
    coap_expect 2.01 post "/api/v1/${1}Tok/telemetry" \
        "{\"ts\":$2,\"values\":{\"t\":$3.5,\"s\":\"v$3\"$extra}}"
}
i=0
for d in retA retB; do
    for ts in "${OLD_TS[@]}"; do i=$((i + 1)); post "$d" "$ts" "$i" old; done
    for ts in "${NEW_TS[@]}"; do i=$((i + 1)); post "$d" "$ts" "$i" new; done
done

# history_ts DEVICE KEY -> the points' timestamps, ascending, comma-separated
history_ts() {
    ts_history "${dev_id[$1]}" "$2" | jq -r '[.[].ts] | map(tostring) | join(",")'
}
join_ts() { local IFS=,; echo "$*"; }
ALL=$(join_ts "${OLD_TS[@]}" "${NEW_TS[@]}")
RECENT=$(join_ts "${NEW_TS[@]}")
OLD=$(join_ts "${OLD_TS[@]}")

# The day partitions (PostgreSQL) of the points' days.
part_name() {
    [[ $1 =~ ^[0-9]+$ ]] || { echo "part_name: '$1' is not a timestamp" >&2; echo "?"; return; }
    date -u -d "@$(( $1 / 1000 ))" +ts_kv_%Y_%m_%d
}
partitions() {
    it_sql "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'ts_kv' ORDER BY 1"
}
# wait_merged: the telemetry log is empty (the points are in ts_kv), bounded 10 s.
wait_merged() {
    local i
    for i in $(seq 1 100); do
        [ "$(it_sql 'SELECT COUNT(*) FROM ts_kv_log')" = 0 ] && return 0
        sleep 0.1
    done
    fail "the telemetry log was not merged within 10 s"
}
# old_rows: ts_kv rows older than 3 days (either backend).
old_rows() { it_sql "SELECT COUNT(*) FROM ts_kv WHERE ts < $((NOW - 3 * DAY))"; }

check_all_there() {
    local d
    for d in retA retB; do
        assert_eq "$(history_ts "$d" t)" "$ALL" "$1: $d history of t, all points"
        assert_eq "$(history_ts "$d" s)" "$ALL" "$1: $d history of s, all points"
        assert_eq "$(history_ts "$d" old)" "$OLD" "$1: $d history of old, all points"
    done
}

# --- phase 1: --ts-ttl 0 keeps everything
check_all_there "ttl 0"
wait_merged
assert_eq "$(old_rows)" 18 "ttl 0: the old points are rows of ts_kv"
if [ "$IT_BACKEND" = postgresql ]; then
    parts=$(partitions)
    for ts in "${OLD_TS[@]}" "${NEW_TS[@]}"; do
        grep -qx "$(part_name "$ts")" <<<"$parts" ||
            fail "ttl 0: no partition $(part_name "$ts") in: $(tr '\n' ' ' <<<"$parts")"
    done
    log "ok: ttl 0: DAYS partitions made for every point's day"
fi
sleep 2.5   # more than two --ttl-interval: nothing may go
check_all_there "ttl 0, later"
grep -q 'retention:' "$IT_LOG" && fail "ttl 0: the log mentions retention: $(grep 'retention:' "$IT_LOG")"
daemon_stop

# --- phase 2: --ts-ttl 3 days
export COAPHUB_TS_TTL=259200
daemon_start
login
grep -q 'retention: points older than 259200 s are removed every 1000 ms' "$IT_LOG" ||
    fail "the daemon did not start retention"

# wait_gone DEVICE...: until no device has a point older than 3 days in t, s or old (<= 15 s).
wait_gone() {
    local i d k left
    for i in $(seq 1 30); do
        left=0
        for d in "$@"; do
            for k in t s old; do
                ts_history "${dev_id[$d]}" "$k" >"$IT_TMP/h.json"
                [ "$(http_code)" = 200 ] || fail "history of $d $k: HTTP $(http_code)"
                left=$((left + $(jq "[.[] | select(.ts < $((NOW - 3 * DAY)))] | length" \
                    "$IT_TMP/h.json")))
            done
        done
        [ "$left" = 0 ] && { log "ok: old points gone after ~$((i / 2)) s"; return 0; }
        sleep 0.5
    done
    fail "$left points older than the TTL still in the history after 15 s"
}
check_recent() {
    local d out
    for d in retA retB; do
        assert_eq "$(history_ts "$d" t)" "$RECENT" "$1: $d history of t, recent points only"
        assert_eq "$(history_ts "$d" s)" "$RECENT" "$1: $d history of s, recent points only"
        assert_eq "$(history_ts "$d" old)" "" "$1: $d history of old, empty"
        # Latest values stay, however old (ThingsBoard keeps ts_kv_latest).
        out=$(rest GET "/api/plugins/telemetry/DEVICE/${dev_id[$d]}/values/timeseries?keys=t,s,old")
        [ "$(http_code)" = 200 ] || fail "latest of $d: HTTP $(http_code)"
        assert_eq "$(jq -r '.t[0].ts' <<<"$out")" "${NEW_TS[1]}" "$1: $d latest t"
        assert_eq "$(jq -r '.s[0].ts' <<<"$out")" "${NEW_TS[1]}" "$1: $d latest s"
        assert_eq "$(jq -r '.old[0].ts' <<<"$out")" "${OLD_TS[2]}" "$1: $d latest of old stays"
    done
}
# check_under WHAT [MORE_OLD_TS...]: what is left under the API.
check_under() {
    local what=$1; shift
    assert_eq "$(old_rows)" 0 "$what: no row older than the TTL in ts_kv"
    assert_eq "$(it_sql "SELECT COUNT(*) FROM ts_kv WHERE ts >= $((NOW - 3 * DAY))")" 8 \
        "$what: the recent rows of ts_kv stay"
    if [ "$IT_BACKEND" = postgresql ]; then
        local parts ts
        parts=$(partitions)
        for ts in "${OLD_TS[@]}" "$@"; do
            grep -qx "$(part_name "$ts")" <<<"$parts" &&
                fail "$what: partition $(part_name "$ts") was not dropped"
        done
        for ts in "${NEW_TS[@]}"; do
            grep -qx "$(part_name "$ts")" <<<"$parts" ||
                fail "$what: partition $(part_name "$ts") of recent points is gone"
        done
        grep -q 'retention: dropped partition' "$IT_LOG" || fail "no 'dropped partition' log line"
        log "ok: $what: old day partitions dropped, recent ones kept ($(tr '\n' ' ' <<<"$parts"))"
    else
        grep -q 'retention: removed' "$IT_LOG" || fail "no 'retention: removed' log line"
    fi
}
wait_gone retA retB
check_recent "ttl 3 d"
check_under "ttl 3 d"

# An old point posted while retention runs: stored (2.01), then removed by a later run.
LATE=$((NOW - 8 * DAY))
coap_expect 2.01 post /api/v1/retATok/telemetry "{\"ts\":$LATE,\"values\":{\"t\":99}}"
wait_gone retA
check_recent "ttl 3 d, late old point"
check_under "ttl 3 d, late old point" "$LATE"

it_pass
