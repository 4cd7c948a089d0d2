#!/usr/bin/env bash
# test_blockwise_dedup.sh — RFC 7959 Block1 upload of a 20 KiB telemetry body, and RFC 7252
# §4.5 deduplication: a CON replayed with the same MID from the same socket is answered with
# the same response and stored once.
. "$(dirname "$0")/lib.sh"

daemon_start
login
device_create "bw-1" bwTok1
D=$DEV_ID

# --- Block1: 20 KiB in 64-byte and in 1024-byte blocks
python3 -c '
import json
print(json.dumps({"bw": 1, "blob": "x" * 20480}), end="")' >"$IT_TMP/big.json"
[ "$(stat -c %s "$IT_TMP/big.json")" -gt 20480 ] || fail "payload generation"
coap_expect 2.01 post /api/v1/bwTok1/telemetry -- -b 64 -f "$IT_TMP/big.json"
out=$(rest GET "/api/plugins/telemetry/DEVICE/$D/values/timeseries?keys=bw,blob")
assert_eq "$(jq -r '.bw[0].value' <<<"$out")" 1 "Block1 body stored (small key)"
assert_eq "$(jq -r '.blob[0].value | length' <<<"$out")" 20480 "Block1 body stored whole"
sed 's/"bw": 1/"bw": 2/' "$IT_TMP/big.json" >"$IT_TMP/big2.json"
coap_expect 2.01 post /api/v1/bwTok1/telemetry -- -b 1024 -f "$IT_TMP/big2.json"
assert_eq "$(rest GET "/api/plugins/telemetry/DEVICE/$D/values/timeseries?keys=bw" \
    | jq -r '.bw[0].value')" 2 "Block1 with 1024-byte blocks"

# --- duplicate CON: same bytes, same MID, same source port, twice
out=$(python3 - "$COAP_PORT" "$IT_DIR" <<'PY'
import sys, time
sys.path.insert(0, sys.argv[2])
import coap_raw as c
port = int(sys.argv[1])
s = c.udp_socket()
msg = c.encode(c.CON, c.POST, 0x4d2e, b"\x0a\x0b",
               c.path_options("/api/v1/bwTok1/telemetry"), b'{"dup":1}')
r1 = c.exchange(s, port, msg)
time.sleep(0.2)              # a second store would get a different server timestamp
r2 = c.exchange(s, port, msg)
def show(r):
    return "none" if r is None else "%s/%d/%s/%s" % (r["code"], r["type"], r["mid"], r["token"].hex())
print(show(r1), show(r2))
PY
)
log "dedup responses: $out"
read -r r1 r2 <<<"$out"
assert_match "$r1" '^2\.01/' "first CON -> 2.01"
assert_eq "$r2" "$r1" "replayed CON gets the same response"
sleep 0.5
assert_eq "$(ts_history "$D" dup | jq 'length')" 1 "duplicate stored exactly once"

# a new MID with the same payload is a new message and is stored again
python3 - "$COAP_PORT" "$IT_DIR" <<'PY' || fail "second message"
import sys
sys.path.insert(0, sys.argv[2])
import coap_raw as c
s = c.udp_socket()
r = c.exchange(s, int(sys.argv[1]), c.encode(c.CON, c.POST, 0x4d2f, b"\x0c",
               c.path_options("/api/v1/bwTok1/telemetry"), b'{"dup":1}'))
sys.exit(0 if r and r["code"] == "2.01" else 1)
PY
assert_eq "$(ts_history "$D" dup | jq 'length')" 2 "new MID stored again"

it_pass
