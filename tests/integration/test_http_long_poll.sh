#!/usr/bin/env bash
# test_http_long_poll.sh — the HTTP device API's long polls with curl, as ThingsBoard's
# DeviceApiController answers them: GET /api/v1/{token}/attributes/updates released by a REST
# shared-attribute change, a deletion and an OTA assignment (fw_* attributes); GET
# /api/v1/{token}/rpc released by a REST RPC call (and one pending before the poll); 408 on
# timeout; 401 for an unknown token; 403 when the device is deleted, 408 when its credentials
# change; the caps (503 with Retry-After beyond them, REST still served), a client hang-up
# freeing its slot, the /metrics gauge, and a clean stop with a poll open.
. "$(dirname "$0")/lib.sh"
need curl
need jq

# Small caps so the test can fill them: 3 polls in all, 2 per device.
export COAPHUB_HTTP_LONG_POLL_MAX=3 COAPHUB_HTTP_LONG_POLL_PER_DEVICE=2
daemon_start
login
device_create "poll-1" pollTok1
D1=$DEV_ID
device_create "poll-2" pollTok2
D2=$DEV_ID

now_ms() { date +%s%3N; }

# poll_start NAME PATH -> a curl in the background; status and seconds in $IT_TMP/NAME.code,
# body in $IT_TMP/NAME.body, Retry-After and other headers in $IT_TMP/NAME.hdr.
poll_start() {
    curl -s --max-time 40 -D "$IT_TMP/$1.hdr" -o "$IT_TMP/$1.body" -w '%{http_code}' \
        "$BASE_URL$2" >"$IT_TMP/$1.code" 2>/dev/null &
    POLL_PID=$!
    IT_PIDS+=("$POLL_PID")
}

# polls_open KIND -> the gauge coaphub_http_long_polls{kind=KIND} from /metrics
polls_open() {
    curl -s --max-time 5 "$BASE_URL/metrics" |
        sed -n "s/^coaphub_http_long_polls{kind=\"$1\"} \([0-9]*\)$/\1/p"
}

# wait_polls KIND N: the server holds N polls of KIND (<= 10 s); the poll is registered in
# the hub then, so a change made after this cannot be missed.
wait_polls() {
    local i
    for i in $(seq 1 100); do
        [ "$(polls_open "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    fail "expected $2 open $1 polls, /metrics says $(polls_open "$1")"
}

# wait_pid PID SECONDS: the background curl ended within SECONDS.
wait_pid() {
    local i
    for i in $(seq 1 $(($2 * 20))); do
        kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
        sleep 0.05
    done
    fail "poll still open after $2 s"
}

ATTR1="/api/plugins/telemetry/DEVICE/$D1"
UPD1="/api/v1/pollTok1/attributes/updates"

# ---- released by a shared-attribute change ----------------------------------------------------
poll_start upd "$UPD1?timeout=20000"
P=$POLL_PID
wait_polls attributes 1
t0=$(now_ms)
rest POST "$ATTR1/attributes/SHARED_SCOPE" '{"target":22,"mode":"eco"}' >/dev/null
assert_eq "$(http_code)" 200 "shared attribute saved"
wait_pid "$P" 3
dt=$(($(now_ms) - t0))
assert_eq "$(cat "$IT_TMP/upd.code")" 200 "attributes/updates answered 200"
assert_eq "$(jq -c -S . "$IT_TMP/upd.body")" '{"mode":"eco","target":22}' \
    "the poll carries the changed shared attributes"
[ "$dt" -lt 2000 ] || fail "poll released ${dt} ms after the change (want < 2 s)"
grep -qi '^content-type: application/json' "$IT_TMP/upd.hdr" || fail "answer is not JSON"
log "ok: attributes/updates released by the REST change in ${dt} ms"
wait_polls attributes 0

# ---- released by a deletion ---------------------------------------------------------------------
poll_start del "$UPD1?timeout=20000"
P=$POLL_PID
wait_polls attributes 1
rest DELETE "$ATTR1/SHARED_SCOPE?keys=target" >/dev/null
assert_eq "$(http_code)" 200 "shared attribute deleted"
wait_pid "$P" 3
assert_eq "$(cat "$IT_TMP/del.code")" 200 "deletion answered 200"
assert_eq "$(jq -c . "$IT_TMP/del.body")" '{"deleted":["target"]}' "the poll carries the deletion"
log "ok: attributes/updates released by a deletion"

# ---- timeout: other scopes do not release it; 408 without a body --------------------------------
poll_start to "$UPD1?timeout=1500"
P=$POLL_PID
wait_polls attributes 1
t0=$(now_ms)
rest POST "$ATTR1/attributes/SERVER_SCOPE" '{"srv":1}' >/dev/null
assert_eq "$(http_code)" 200 "server attribute saved"
wait_pid "$P" 5
dt=$(($(now_ms) - t0))
assert_eq "$(cat "$IT_TMP/to.code")" 408 "timeout answered 408 (ThingsBoard: REQUEST_TIMEOUT)"
assert_eq "$(stat -c %s "$IT_TMP/to.body")" 0 "408 has no body"
[ "$dt" -ge 1000 ] || fail "timeout=1500 answered after only ${dt} ms"
log "ok: a server-scope change does not release it; timeout -> 408 after ${dt} ms"

out=$(rest GET "$UPD1?timeout=soon")
assert_eq "$(http_code) ${#out}" "400 0" "timeout that is not a number -> 400, no body"

# ---- unknown token ------------------------------------------------------------------------------
out=$(rest GET "/api/v1/noSuchToken/attributes/updates?timeout=1000")
assert_eq "$(http_code) ${#out}" "401 0" "unknown token on attributes/updates -> 401, no body"
rest GET "/api/v1/noSuchToken/rpc?timeout=1000" >/dev/null
assert_eq "$(http_code)" 401 "unknown token on rpc -> 401"
log "ok: unknown token -> 401"

# ---- released by an OTA assignment (fw_* shared attributes) -------------------------------------
PROFILE=$(rest GET /api/deviceProfileInfo/default | jq -r .id.id)
out=$(rest POST /api/otaPackage "{\"title\":\"fw-p\",\"version\":\"1.0\",\"type\":\"FIRMWARE\",
    \"deviceProfileId\":{\"entityType\":\"DEVICE_PROFILE\",\"id\":\"$PROFILE\"}}")
assert_eq "$(http_code)" 200 "OTA package created ($out)"
PKG=$(jq -r .id.id <<<"$out")
head -c 4096 /dev/urandom >"$IT_TMP/fw.bin"
SHA=$(sha256sum "$IT_TMP/fw.bin" | cut -d' ' -f1)
curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "X-Authorization: Bearer $JWT" \
    -F "file=@$IT_TMP/fw.bin" \
    "$BASE_URL/api/otaPackage/$PKG?checksumAlgorithm=SHA256&checksum=$SHA" >"$IT_TMP/http_code"
assert_eq "$(http_code)" 200 "firmware image uploaded"
poll_start ota "$UPD1?timeout=20000"
P=$POLL_PID
wait_polls attributes 1
dev=$(rest GET "/api/device/$D1")
rest POST /api/device "$(jq -c --arg id "$PKG" '.firmwareId={entityType:"OTA_PACKAGE",id:$id}' \
    <<<"$dev")" >/dev/null
assert_eq "$(http_code)" 200 "firmware assigned to the device"
wait_pid "$P" 3
assert_eq "$(cat "$IT_TMP/ota.code")" 200 "OTA assignment released the poll"
assert_eq "$(jq -r '[.fw_title,.fw_version,.fw_checksum]|join(" ")' "$IT_TMP/ota.body")" \
    "fw-p 1.0 $SHA" "the poll carries the fw_* shared attributes"
log "ok: attributes/updates released by an OTA assignment"

# ---- rpc: released by a REST RPC call, then the reply -------------------------------------------
poll_start rpc "/api/v1/pollTok1/rpc?timeout=20000"
P=$POLL_PID
wait_polls rpc 1
curl -s --max-time 30 -o "$IT_TMP/call.body" -w '%{http_code}' \
    -H "X-Authorization: Bearer $JWT" -H 'Content-Type: application/json' \
    --data-binary '{"method":"setGpio","params":{"pin":7,"value":1},"timeout":5000}' \
    "$BASE_URL/api/plugins/rpc/twoway/$D1" >"$IT_TMP/call.code" 2>/dev/null &
CALL=$!
IT_PIDS+=("$CALL")
wait_pid "$P" 3
assert_eq "$(cat "$IT_TMP/rpc.code")" 200 "rpc poll answered 200"
assert_eq "$(jq -c '{method,params}' "$IT_TMP/rpc.body")" \
    '{"method":"setGpio","params":{"pin":7,"value":1}}' "the poll carries the RPC"
RID=$(jq -r .id "$IT_TMP/rpc.body")
[[ "$RID" =~ ^[0-9]+$ ]] || fail "RPC id is not a number: $(cat "$IT_TMP/rpc.body")"
log "ok: rpc poll released by a REST two-way call (id $RID)"
# The reply endpoint (POST /api/v1/{token}/rpc/{id}) belongs to the rest of the HTTP device
# API: with it the REST call returns the device's reply, without it the call times out.
rcode=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    --data-binary '{"result":"ok"}' "$BASE_URL/api/v1/pollTok1/rpc/$RID")
wait_pid "$CALL" 10
if [ "$rcode" = 200 ]; then
    assert_eq "$(cat "$IT_TMP/call.code")" 200 "two-way REST call answered"
    assert_eq "$(jq -c . "$IT_TMP/call.body")" '{"result":"ok"}' "the REST call returns the reply"
    log "ok: reply over POST /api/v1/{token}/rpc/{id} reached the REST caller"
else
    assert_eq "$(cat "$IT_TMP/call.code")" 408 "delivered but unanswered two-way call -> 408"
    log "note: POST /api/v1/{token}/rpc/{id} answered $rcode (not here yet): call timed out"
fi

# An RPC sent while no poll is open waits in the hub; the next poll takes it at once, and the
# one-way call completes when it is handed over.
curl -s --max-time 30 -o "$IT_TMP/ow.body" -w '%{http_code}' \
    -H "X-Authorization: Bearer $JWT" -H 'Content-Type: application/json' \
    --data-binary '{"method":"reboot","params":{},"timeout":10000}' \
    "$BASE_URL/api/plugins/rpc/oneway/$D1" >"$IT_TMP/ow.code" 2>/dev/null &
CALL=$!
IT_PIDS+=("$CALL")
sleep 0.5
t0=$(now_ms)
out=$(rest GET "/api/v1/pollTok1/rpc?timeout=5000")
dt=$(($(now_ms) - t0))
assert_eq "$(http_code)" 200 "poll after the call took the pending RPC"
assert_eq "$(jq -r .method <<<"$out")" reboot "the pending RPC's method"
[ "$dt" -lt 2000 ] || fail "pending RPC taken after ${dt} ms (want at once)"
wait_pid "$CALL" 5
assert_eq "$(cat "$IT_TMP/ow.code")" 200 "one-way call completes once the poll took it"
rest GET "/api/v1/pollTok1/rpc?timeout=500" >/dev/null
assert_eq "$(http_code)" 408 "no RPC -> 408"
log "ok: a pending RPC is taken by the next poll; none -> 408"

# ---- caps: 2 per device, 3 in all; REST keeps working ------------------------------------------
poll_start c1 "$UPD1?timeout=20000"; C1=$POLL_PID
poll_start c2 "/api/v1/pollTok1/rpc?timeout=20000"; C2=$POLL_PID
wait_polls attributes 1
wait_polls rpc 1
out=$(rest GET "$UPD1?timeout=20000")
assert_eq "$(http_code)" 503 "a third poll of one device -> 503 ($out)"
assert_match "$(jq -r .message <<<"$out")" 'for this device' "per-device cap message"
poll_start c3 "/api/v1/pollTok2/attributes/updates?timeout=20000"; C3=$POLL_PID
wait_polls attributes 2
curl -s -D "$IT_TMP/cap.hdr" -o "$IT_TMP/cap.body" -w '%{http_code}' --max-time 10 \
    "$BASE_URL/api/v1/pollTok2/rpc?timeout=20000" >"$IT_TMP/http_code"
assert_eq "$(http_code)" 503 "a poll beyond the global cap -> 503"
assert_eq "$(jq -r '[.status,.errorCode]|join(" ")' "$IT_TMP/cap.body")" "503 2" \
    "503 carries ThingsBoard's error JSON"
grep -qi '^retry-after: [0-9]' "$IT_TMP/cap.hdr" || fail "503 without Retry-After"
rest GET "/api/device/$D1" >/dev/null
assert_eq "$(http_code)" 200 "REST is served while the polls are full"
refused=$(curl -s "$BASE_URL/metrics" | sed -n 's/^coaphub_http_long_polls_refused_total //p')
assert_eq "$refused" 2 "/metrics counts the refused polls"
log "ok: caps -> 503 with Retry-After; REST still answers"
# Release them all: an attribute change each, and an RPC.
rest POST "$ATTR1/attributes/SHARED_SCOPE" '{"x":1}' >/dev/null
rest POST "/api/plugins/telemetry/DEVICE/$D2/attributes/SHARED_SCOPE" '{"y":2}' >/dev/null
curl -s -o /dev/null --max-time 10 -H "X-Authorization: Bearer $JWT" \
    -H 'Content-Type: application/json' --data-binary '{"method":"m","params":{},"timeout":5000}' \
    "$BASE_URL/api/plugins/rpc/oneway/$D1"
for p in "$C1" "$C2" "$C3"; do wait_pid "$p" 3; done
assert_eq "$(cat "$IT_TMP/c1.code") $(cat "$IT_TMP/c2.code") $(cat "$IT_TMP/c3.code")" \
    "200 200 200" "all capped polls released"
wait_polls attributes 0
wait_polls rpc 0

# ---- a flood of 40 idle pollers: 2 hold (device cap), the rest get 503 at once ----------------
flood=()
for i in $(seq 1 40); do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 "$BASE_URL$UPD1?timeout=20000" \
        >"$IT_TMP/flood.$i" 2>/dev/null &
    flood+=($!)
    IT_PIDS+=($!)
done
for i in $(seq 1 100); do   # <= 10 s: 38 answered
    [ "$(cat "$IT_TMP"/flood.* 2>/dev/null | grep -c '^503$')" -ge 38 ] && break
    sleep 0.1
done
assert_eq "$(cat "$IT_TMP"/flood.* | grep -c '^503$')" 38 "38 of 40 flooding pollers refused"
wait_polls attributes 2
rest GET "/api/device/$D1" >/dev/null
assert_eq "$(http_code)" 200 "REST is served during the flood"
rest POST "$ATTR1/attributes/SHARED_SCOPE" '{"flood":1}' >/dev/null
for p in "${flood[@]}"; do wait_pid "$p" 3; done
assert_eq "$(cat "$IT_TMP"/flood.* | sort | uniq -c | tr -s ' ' | tr '\n' ';')" \
    " 2 200; 38 503;" "the 2 held polls were released by the change"
log "ok: a flood of pollers is refused at once, REST unaffected"

# ---- a client that hangs up frees its slot at once --------------------------------------------
curl -s -o /dev/null --max-time 1 "$BASE_URL$UPD1?timeout=20000" || true
wait_polls attributes 0
log "ok: a hung-up poll left no slot behind"

# ---- credentials changed: the session ends (408), the new token polls, the old one is 401 ------
poll_start cred "/api/v1/pollTok2/rpc?timeout=20000"
P=$POLL_PID
wait_polls rpc 1
cred=$(rest GET "/api/device/$D2/credentials")
rest POST /api/device/credentials "$(jq -c '.credentialsId = "pollTok2b"' <<<"$cred")" >/dev/null
assert_eq "$(http_code)" 200 "device 2's token changed"
wait_pid "$P" 3
assert_eq "$(cat "$IT_TMP/cred.code")" 408 "a credentials change ends the poll with 408"
rest GET "/api/v1/pollTok2/rpc?timeout=300" >/dev/null
assert_eq "$(http_code)" 401 "the old token is refused"
rest GET "/api/v1/pollTok2b/rpc?timeout=300" >/dev/null
assert_eq "$(http_code)" 408 "the new token polls"
log "ok: credentials change -> 408; the new token works"

# ---- device deleted: 403 "Device was deleted!" --------------------------------------------------
poll_start gone "/api/v1/pollTok2b/attributes/updates?timeout=20000"
P=$POLL_PID
wait_polls attributes 1
rest DELETE "/api/device/$D2" >/dev/null
assert_eq "$(http_code)" 200 "device 2 deleted"
wait_pid "$P" 3
assert_eq "$(cat "$IT_TMP/gone.code") $(cat "$IT_TMP/gone.body")" "403 Device was deleted!" \
    "a deleted device's poll ends as ThingsBoard's does"
log "ok: device deletion -> 403"

# ---- a poll open at shutdown does not hold the daemon -------------------------------------------
poll_start last "$UPD1?timeout=20000"
P=$POLL_PID
wait_polls attributes 1
t0=$(now_ms)
daemon_stop
wait_pid "$P" 3
# Ended at once: 503, or a closed connection when libmicrohttpd's stop (which shuts every
# connection's socket) overtakes the answer.
assert_match "$(cat "$IT_TMP/last.code")" '^(503|000)$' "a poll open at shutdown ends with the server"
dt=$(($(now_ms) - t0))
[ "$dt" -lt 5000 ] || fail "stop took ${dt} ms with a poll open"
log "ok: stopped in ${dt} ms with a poll open ($(cat "$IT_TMP/last.code"))"
log "PASS"
exit 0
