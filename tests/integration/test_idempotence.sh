#!/usr/bin/env bash
# test_idempotence.sh — reliability.md S5: points retransmitted and replayed with the same ts
# after a restart (clean stop and kill -9), when the deduplication cache that would have
# caught them is gone. ThingsBoard's ts_kv key (device, key, ts) decides: the row count does
# not move and the last value written wins. Counted through the API (the history): a replayed
# point may sit in the telemetry log (ts_kv_log) until the merge folds it into ts_kv by that
# key, and readers let the newest log row win (src/store/merge.c), so raw row counts are only
# printed.
. "$(dirname "$0")/lib.sh"

daemon_start
login
device_create "idem-1" idemTok1
D=$DEV_ID
TS0=1700000000000

# send MID VALUE [TS]: one CON POST from a fresh socket, raw, so the same MID can be replayed
# byte for byte after a restart; prints the response code.
send() {
    python3 - "$COAP_PORT" "$IT_DIR" "$1" "$2" "${3:-$TS0}" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import coap_raw as c
port, mid, value, ts = int(sys.argv[1]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
body = ('{"ts":%d,"values":{"k":%s}}' % (ts, value)).encode()
opts = c.path_options("/api/v1/idemTok1/telemetry") + [(c.CONTENT_FORMAT, c.uint_opt(50))]
msg = c.encode(c.CON, c.POST, mid, b"\x5e\x01", opts, body)
r = c.exchange(c.udp_socket(), port, msg)
print("none" if r is None else r["code"])
PY
}
rows() {   # points in the history of k
    ts_history "$D" k | jq length
}
raw_rows() {
    it_sql "SELECT (SELECT COUNT(*) FROM ts_kv) || ' in ts_kv, ' ||
            (SELECT COUNT(*) FROM ts_kv_log) || ' in ts_kv_log'"
}
value_at() {   # the values stored at ts $1, as a JSON array
    ts_history "$D" k | jq -c --argjson ts "$1" '[.[] | select(.ts == $ts) | .value]'
}

assert_eq "$(send 4660 1)" 2.01 "first point"
assert_eq "$(send 4661 10 $(( TS0 + 1 )))" 2.01 "second point"
BASE_ROWS=$(rows)
assert_eq "$BASE_ROWS" 2 "two points in the history"

# 1. The same datagram again after a clean restart: processed again (the dedup cache is gone),
#    stored over itself.
daemon_stop
daemon_start
assert_eq "$(send 4660 1)" 2.01 "replay after a clean restart"
assert_eq "$(rows)" "$BASE_ROWS" "rows after the replay"
assert_eq "$(value_at $TS0)" '[1]' "value after the replay"

# 2. A retransmission with the same ts and a new value after kill -9: the last value wins.
daemon_kill9
daemon_start
assert_eq "$(send 4662 2)" 2.01 "same ts, new value after kill -9"
assert_eq "$(rows)" "$BASE_ROWS" "rows after the new value"
assert_eq "$(value_at $TS0)" '[2]' "the last value wins"

# 3. Replays of both points many times, with old and new MIDs, across one more kill -9.
for i in 1 2 3; do
    assert_eq "$(send $(( 4660 + i )) 3)" 2.01 "replay $i"
    assert_eq "$(send 4661 10 $(( TS0 + 1 )))" 2.01 "replay $i of the second point"
done
daemon_kill9
daemon_start
assert_eq "$(rows)" "$BASE_ROWS" "rows after replays and kill -9"
assert_eq "$(value_at $TS0)" '[3]' "the last replayed value is kept"
assert_eq "$(value_at $(( TS0 + 1 )))" '[10]' "the second point unchanged"
log "ok: S5: 2 points written 10 times across 1 clean restart and 2 kill -9: $(rows) points in the history, the last value of each kept (raw: $(raw_rows))"
it_pass
