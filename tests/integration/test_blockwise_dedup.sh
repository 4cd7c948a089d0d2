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

# --- duplicate CON: same bytes, same MID, same source port, three times (0, 0.2 s, 2 s): the
# answers must be the same bytes and the handler must run once (coaphub_coap_requests_total
# +1, coaphub_coap_duplicates_total +2). Prints the measured figures (reliability row C1).
metric() { curl -s --max-time 5 "$BASE_URL/metrics" | awk -v m="coaphub_$1" '$1 == m {s += $2} END {print s + 0}'; }
req0=$(metric coap_requests_total)
dup0=$(metric coap_duplicates_total)
out=$(python3 - "$COAP_PORT" "$IT_DIR" <<'PY'
import sys, time
sys.path.insert(0, sys.argv[2])
import coap_raw as c
port = int(sys.argv[1])
s = c.udp_socket(timeout=5)
msg = c.encode(c.CON, c.POST, 0x4d2e, b"\x0a\x0b",
               c.path_options("/api/v1/bwTok1/telemetry"), b'{"dup":1}')
answers = []
start = time.monotonic()
for at in (0.0, 0.2, 2.0):       # a second store would get a different server timestamp
    time.sleep(max(0.0, start + at - time.monotonic()))
    t = time.monotonic()
    s.sendto(msg, ("127.0.0.1", port))
    data = None
    while True:                  # the ACK for this MID (piggybacked: it carries the code)
        try:
            d, _ = s.recvfrom(2048)
        except OSError:
            break
        r = c.decode(d)
        if r and r["type"] == c.ACK and r["mid"] == 0x4d2e:
            data = d
            break
    answers.append((at, data, (time.monotonic() - t) * 1000))
r = c.decode(answers[0][1]) if answers[0][1] else None
print("%s %s %d %s" % ("none" if r is None else r["code"],
                       "same" if all(a[1] == answers[0][1] for a in answers) else "differ",
                       len(answers[0][1] or b""),
                       ",".join("%.1f" % a[2] for a in answers)))
PY
)
read -r code same nbytes ms <<<"$out"
assert_eq "$code" 2.01 "first CON -> 2.01 piggybacked"
assert_eq "$same" same "replayed CON gets the same response bytes"
sleep 0.5
assert_eq "$(ts_history "$D" dup | jq 'length')" 1 "duplicate stored exactly once"
dreq=$(( $(metric coap_requests_total) - req0 ))
ddup=$(( $(metric coap_duplicates_total) - dup0 ))
assert_eq "$dreq $ddup" "1 2" "handler ran once (requests +1), two duplicates answered from cache"
log "C1 figure: CON sent 3 times (0, 0.2, 2 s, same MID and port): $nbytes-byte ACK 2.01 identical" \
    "each time, answered in $ms ms; coap_requests_total +$dreq, coap_duplicates_total +$ddup," \
    "1 stored row"

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
