#!/usr/bin/env bash
# test_http_device_api.sh — ThingsBoard's HTTP device API on the web port (issue 15 point 1),
# driven with curl as devices and scripts call it: telemetry read back over REST, attributes
# posted and read, client-side RPC getCurrentTime, a server-side RPC taken over CoAP Observe
# and answered over HTTP, another taken by the HTTP long poll and answered over HTTP, claim,
# provisioning, firmware download (whole and in chunks, SHA-256 checked), ThingsBoard's
# 401/400/404 answers, and activity (transport "http"; inactive after the timeout).
. "$(dirname "$0")/lib.sh"
need sha256sum

# Devices quiet for 5 s go inactive, so the end of the test sees an HTTP device time out.
export COAPHUB_INACTIVITY_TIMEOUT_MS=5000
daemon_start
login
cd "$IT_TMP" || fail "no temp dir"

# dev METHOD PATH [BODY] -> body on stdout, status in $IT_TMP/http_code. No JWT: the token in
# the path is the device's credential.
dev() {
    local args=(-s -X "$1" --max-time 30 -o "$IT_TMP/dev.body" -w '%{http_code}')
    [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
    curl "${args[@]}" "$BASE_URL$2" >"$IT_TMP/http_code" 2>/dev/null || echo 000 >"$IT_TMP/http_code"
    cat "$IT_TMP/dev.body"
}
# expect CODE WHAT: the last answer's status
expect() { assert_eq "$(http_code)" "$1" "$2"; log "ok: $2 -> $1"; }

device_create http-1 httpTok1
D=$DEV_ID

# ---- telemetry (§3.1): 200 only after the commit, then readable over REST -----------------------
# The README's curl form of the seed's telemetry post.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d '{"temperature":43}' "$BASE_URL/api/v1/httpTok1/telemetry")
assert_eq "$code" 200 "README curl telemetry post"
assert_eq "$(ts_history "$D" temperature | jq -c '[.[].value]')" '[43]' \
    "the point is readable over REST right after the 200"
dev POST /api/v1/httpTok1/telemetry '{"ts":1700000000000,"values":{"hum":"55","on":true,"t":21.5}}' >/dev/null
expect 200 "telemetry with ts"
assert_eq "$(ts_history "$D" hum | jq -c '.[0]')" '{"ts":1700000000000,"value":55}' \
    "client ts kept, \"55\" typed as a number (type cast, as CoAP)"
dev POST /api/v1/httpTok1/telemetry '[{"a":1},{"ts":1700000000001,"values":{"a":2}}]' >/dev/null
expect 200 "telemetry array"
assert_eq "$(ts_history "$D" a | jq -c '[.[].value]|sort')" '[1,2]' "array of points stored"
dev POST /api/v1/httpTok1/telemetry '{}' >/dev/null
expect 200 "empty telemetry object"

# ---- errors as ThingsBoard: plain status codes, empty bodies ---------------------------------------
out=$(dev POST /api/v1/noSuchToken/telemetry '{"x":1}')
expect 401 "unknown token"
assert_eq "$out" "" "401 has an empty body"
out=$(dev POST /api/v1/httpTok1/telemetry '{"x":')
expect 400 "bad JSON"
assert_eq "$out" "" "400 has an empty body"
dev POST /api/v1/httpTok1/telemetry '' >/dev/null
expect 400 "no body"
dev POST /api/v1/noSuchToken/telemetry '{"x":' >/dev/null
expect 401 "unknown token with bad JSON: authentication first"
dev GET /api/v1/httpTok1/telemetry >/dev/null
expect 405 "GET telemetry"

# ---- attributes (§3.2, §3.3) --------------------------------------------------------------------
dev POST /api/v1/httpTok1/attributes '{"fw":"v1.0","count":3}' >/dev/null
expect 200 "client attributes posted"
out=$(dev GET /api/v1/httpTok1/attributes)
expect 200 "GET attributes (none shared yet)"
assert_eq "$(jq -c -S . <<<"$out")" '{"client":{"count":3,"fw":"v1.0"}}' "client attributes read back"
rest POST "/api/plugins/telemetry/DEVICE/$D/attributes/SHARED_SCOPE" '{"mode":"eco","lim":5}' >/dev/null
assert_eq "$(http_code)" 200 "shared attributes set over REST"
out=$(dev GET "/api/v1/httpTok1/attributes?clientKeys=fw&sharedKeys=mode")
expect 200 "GET attributes with keys"
assert_eq "$(jq -c -S . <<<"$out")" '{"client":{"fw":"v1.0"},"shared":{"mode":"eco"}}' \
    "clientKeys/sharedKeys select keys of each scope"
out=$(dev GET "/api/v1/httpTok1/attributes?sharedKeys=lim,mode")
assert_eq "$(jq -c -S . <<<"$out")" '{"shared":{"lim":5,"mode":"eco"}}' "sharedKeys only"
out=$(dev GET "/api/v1/httpTok1/attributes?clientKeys=nope")
expect 200 "GET attributes of a key that does not exist"
assert_eq "$out" "{}" "nothing found is {} (ThingsBoard's empty response)"
rest GET "/api/plugins/telemetry/DEVICE/$D/values/attributes/CLIENT_SCOPE?keys=fw" >"$IT_TMP/a.json"
assert_eq "$(jq -c '.[0].value' "$IT_TMP/a.json")" '"v1.0"' "client attribute readable over REST"
dev POST /api/v1/httpTok1/attributes '[1]' >/dev/null
expect 400 "attributes must be an object"

# ---- client-side RPC (§3.7), the same built-ins as CoAP ---------------------------------------------
before=$(( $(date +%s) * 1000 ))
out=$(dev POST /api/v1/httpTok1/rpc '{"method":"getCurrentTime","params":{}}')
expect 200 "client RPC getCurrentTime"
t=$(jq -r .time <<<"$out")
[ "$t" -ge "$before" ] && [ "$t" -le $(( before + 60000 )) ] || fail "getCurrentTime: $out"
out=$(dev POST /api/v1/httpTok1/rpc '{"method":"reboot","params":{}}')
expect 404 "unsupported client RPC"
assert_eq "$(jq -r .error <<<"$out")" "Unsupported client-side RPC method: reboot" \
    "the same answer as CoAP's 4.04"
dev POST /api/v1/httpTok1/rpc '{"params":1}' >/dev/null
expect 400 "client RPC without method"

# ---- server-side RPC: taken over CoAP Observe, answered over HTTP (§3.5, §3.6) ----------------
RPC="$IT_TMP/rpc.obs"
observe_start /api/v1/httpTok1/rpc 40 "$RPC"
wait_for_file_match "$RPC.log" 'process incoming 2\.03 response' 10 \
    || fail "RPC Observe registration not answered with 2.03"
curl -s --max-time 30 -o "$IT_TMP/call.body" -w '%{http_code}' -X POST \
    -H "X-Authorization: Bearer $JWT" -H 'Content-Type: application/json' \
    --data-binary '{"method":"setGpio","params":{"pin":7},"timeout":20000}' \
    "$BASE_URL/api/plugins/rpc/twoway/$D" >"$IT_TMP/call.code" 2>/dev/null &
CALL_PID=$!
IT_PIDS+=("$CALL_PID")
wait_for_file_match "$RPC" '"setGpio"' 10 || fail "the device did not receive the RPC"
id=$(grep -m1 '"setGpio"' "$RPC" | jq -r .id)
dev POST "/api/v1/httpTok1/rpc/$id" '{"result":"ok","pin":7}' >/dev/null
expect 200 "RPC reply over HTTP"
wait "$CALL_PID" 2>/dev/null
assert_eq "$(cat "$IT_TMP/call.code")" 200 "the REST caller got an answer"
assert_eq "$(jq -c -S . "$IT_TMP/call.body")" '{"pin":7,"result":"ok"}' \
    "the REST caller got the device's HTTP reply"
dev POST /api/v1/httpTok1/rpc/12345 '{"late":true}' >/dev/null
expect 200 "reply to an unknown RPC id (ThingsBoard: accepted)"
dev POST /api/v1/httpTok1/rpc/abc '{}' >/dev/null
expect 400 "non-integer RPC id"
dev POST "/api/v1/httpTok1/rpc/$id" 'not json' >/dev/null
expect 400 "RPC reply that is not JSON"

# ---- claim (§3.8) -------------------------------------------------------------------------------
dev POST /api/v1/httpTok1/claim '{"secretKey":"s3cr3t","durationMs":60000}' >/dev/null
expect 200 "claim"
cd_json=$(rest GET "/api/plugins/telemetry/DEVICE/$D/values/attributes/SERVER_SCOPE?keys=claimingData" \
    | jq -r '.[0].value | if type=="string" then . else tojson end')
assert_eq "$(jq -r .secretKey <<<"$cd_json")" s3cr3t "claimingData.secretKey stored"
exp=$(jq -r .expirationTime <<<"$cd_json")
[ "$exp" -gt $(( $(date +%s) * 1000 )) ] || fail "claim expiration $exp not in the future"
dev POST /api/v1/httpTok1/claim >/dev/null
expect 200 "claim without a body (ThingsBoard: body optional)"

# ---- activity: the device is active, last seen over HTTP --------------------------------------
st=$(rest GET "/api/coaphub/devices/status?ids=$D")
assert_eq "$(jq -r --arg d "$D" '.[$d].active' <<<"$st")" true "device active after HTTP requests"
# the last request may have been CoAP (the observer); an HTTP request makes it http again
dev POST /api/v1/httpTok1/telemetry '{"z":1}' >/dev/null
st=$(rest GET "/api/coaphub/devices/status?ids=$D")
assert_eq "$(jq -r --arg d "$D" '.[$d].transport' <<<"$st")" http "status shows transport http"
la=$(rest GET "/api/plugins/telemetry/DEVICE/$D/values/attributes/SERVER_SCOPE?keys=lastActivityTime,active" \
    | jq -c 'map({(.key): .value}) | add')
assert_eq "$(jq -r .active <<<"$la")" true "active attribute written"
[ "$(jq -r .lastActivityTime <<<"$la")" -ge "$before" ] || fail "lastActivityTime not written: $la"

# ---- provisioning over HTTP (§3.9): ThingsBoard answers 200 with the status in the body -------
body=$(jq -nc '{name: "http-prov", type: "DEFAULT", transportType: "DEFAULT",
    provisionType: "ALLOW_CREATE_NEW_DEVICES", provisionDeviceKey: "hk",
    profileData: {configuration: {type: "DEFAULT"}, transportConfiguration: {type: "DEFAULT"},
                  provisionConfiguration: {type: "ALLOW_CREATE_NEW_DEVICES",
                                           provisionDeviceSecret: "hs"}}}')
rest POST /api/deviceProfile "$body" >/dev/null
assert_eq "$(http_code)" 200 "provisioning profile created"
out=$(dev POST /api/v1/provision '{"deviceName":"http-new","provisionDeviceKey":"hk","provisionDeviceSecret":"hs"}')
expect 200 "provision"
assert_eq "$(jq -r '.status + " " + .credentialsType' <<<"$out")" "SUCCESS ACCESS_TOKEN" "provisioned"
NEWTOK=$(jq -r .credentialsValue <<<"$out")
dev POST "/api/v1/$NEWTOK/telemetry" '{"born":1}' >/dev/null
expect 200 "the provisioned token posts telemetry over HTTP"
out=$(dev POST /api/v1/provision '{"deviceName":"http-x","provisionDeviceKey":"hk","provisionDeviceSecret":"wrong"}')
expect 200 "provision with a wrong secret"
assert_eq "$(jq -r .status <<<"$out")" NOT_FOUND "wrong secret -> NOT_FOUND in the body"
dev POST /api/v1/provision 'not json' >/dev/null
expect 400 "provision body that is not JSON"

# ---- firmware over HTTP (§3.10) ---------------------------------------------------------------------
dev GET "/api/v1/httpTok1/firmware?title=fw-h&version=1" >/dev/null
expect 404 "no firmware assigned"
IMG=$IT_TMP/fw-h.bin
head -c 300000 /dev/urandom >"$IMG"
SHA=$(sha256sum "$IMG" | cut -d' ' -f1)
PROFILE=$(rest GET /api/deviceProfileInfo/default | jq -r .id.id)
out=$(rest POST /api/otaPackage "{\"title\":\"fw-h\",\"version\":\"1\",\"type\":\"FIRMWARE\",
    \"deviceProfileId\":{\"entityType\":\"DEVICE_PROFILE\",\"id\":\"$PROFILE\"}}")
PKG=$(jq -r .id.id <<<"$out")
curl -s -o /dev/null -w '%{http_code}' --max-time 60 -H "X-Authorization: Bearer $JWT" \
    -F "file=@$IMG" "$BASE_URL/api/otaPackage/$PKG?checksumAlgorithm=SHA256&checksum=$SHA" \
    >"$IT_TMP/http_code"
expect 200 "image uploaded"
prof=$(rest GET "/api/deviceProfile/$PROFILE")
rest POST /api/deviceProfile "$(jq -c --arg id "$PKG" \
    '.firmwareId={entityType:"OTA_PACKAGE",id:$id}' <<<"$prof")" >/dev/null
expect 200 "firmware assigned to the default profile"

curl -s -D "$IT_TMP/fw.h" -o "$IT_TMP/fw.bin" -w '%{http_code}' \
    "$BASE_URL/api/v1/httpTok1/firmware?title=fw-h&version=1" >"$IT_TMP/http_code"
expect 200 "firmware download"
assert_eq "$(sha256sum "$IT_TMP/fw.bin" | cut -d' ' -f1)" "$SHA" "downloaded image SHA-256"
assert_match "$(tr -d '\r' <"$IT_TMP/fw.h")" 'Content-Disposition: attachment;filename=fw-h.bin' \
    "Content-Disposition attachment"
# in chunks of 65536, as ThingsBoard's HTTP OTA clients fetch
: >"$IT_TMP/chunks.bin"
for c in 0 1 2 3 4; do
    curl -s -o "$IT_TMP/c.bin" -w '%{http_code}' \
        "$BASE_URL/api/v1/httpTok1/firmware?title=fw-h&version=1&size=65536&chunk=$c" \
        >"$IT_TMP/http_code"
    expect 200 "chunk $c"
    cat "$IT_TMP/c.bin" >>"$IT_TMP/chunks.bin"
done
assert_eq "$(stat -c %s "$IT_TMP/c.bin")" $(( 300000 - 4 * 65536 )) "last chunk is the rest"
assert_eq "$(sha256sum "$IT_TMP/chunks.bin" | cut -d' ' -f1)" "$SHA" "chunks reassemble to the image"
curl -s -o "$IT_TMP/c.bin" -w '%{http_code}' \
    "$BASE_URL/api/v1/httpTok1/firmware?title=fw-h&version=1&size=65536&chunk=5" >"$IT_TMP/http_code"
expect 200 "chunk past the end"
assert_eq "$(stat -c %s "$IT_TMP/c.bin")" 0 "a chunk past the end is empty (ThingsBoard)"
dev GET "/api/v1/httpTok1/firmware?title=other&version=1" >/dev/null
expect 400 "wrong title"
dev GET "/api/v1/httpTok1/firmware?title=fw-h" >/dev/null
expect 400 "version missing"
dev GET "/api/v1/httpTok1/firmware?title=fw-h&version=1&size=x" >/dev/null
expect 400 "size not an integer"
dev GET "/api/v1/httpTok1/software?title=fw-h&version=1" >/dev/null
expect 404 "no software assigned"
dev GET "/api/v1/noSuchToken/firmware?title=fw-h&version=1" >/dev/null
expect 401 "firmware with an unknown token"

# ---- inactivity: an HTTP device that stops sending goes inactive (spec §9) --------------------
device_create http-2 httpTok2
D2=$DEV_ID
dev POST /api/v1/httpTok2/telemetry '{"x":1}' >/dev/null
expect 200 "telemetry of a second device"
assert_eq "$(rest GET "/api/coaphub/devices/status?ids=$D2" | jq -r --arg d "$D2" '.[$d].active')" \
    true "second device active"
# The whole server-side RPC round over HTTP: the device long-polls GET /rpc, the REST caller
# gets the reply the device posts to /rpc/{id}.
curl -s --max-time 30 -o "$IT_TMP/call2.body" -w '%{http_code}' -X POST \
    -H "X-Authorization: Bearer $JWT" -H 'Content-Type: application/json' \
    --data-binary '{"method":"ping","params":{},"timeout":20000}' \
    "$BASE_URL/api/plugins/rpc/twoway/$D2" >"$IT_TMP/call2.code" 2>/dev/null &
CALL_PID=$!
IT_PIDS+=("$CALL_PID")
out=$(dev GET "/api/v1/httpTok2/rpc?timeout=10000")
expect 200 "RPC long poll"
assert_eq "$(jq -r .method <<<"$out")" ping "the poll carries the RPC"
dev POST "/api/v1/httpTok2/rpc/$(jq -r .id <<<"$out")" '{"pong":true}' >/dev/null
expect 200 "reply posted over HTTP"
wait "$CALL_PID" 2>/dev/null
assert_eq "$(cat "$IT_TMP/call2.code") $(jq -c . "$IT_TMP/call2.body")" '200 {"pong":true}' \
    "REST caller got the reply of an all-HTTP device"

# A deleted device's entry goes without writes (the sweeper must not touch it).
rest DELETE "/api/device/$D" >/dev/null
assert_eq "$(http_code)" 200 "first device deleted"
dev POST /api/v1/httpTok1/telemetry '{"x":1}' >/dev/null
expect 401 "a deleted device's token"
inactive=""
for _ in $(seq 1 100); do   # 10 s at most: 5 s timeout + the 1 s sweep; the write is async
    la=$(rest GET "/api/plugins/telemetry/DEVICE/$D2/values/attributes/SERVER_SCOPE?keys=active,lastDisconnectTime" \
        | jq -c 'map({(.key): .value}) | add')
    if [ "$(jq -r .active <<<"$la")" = false ]; then inactive=1; break; fi
    sleep 0.1
done
[ -n "$inactive" ] || fail "the quiet HTTP device never went inactive ($la)"
[ "$(jq -r .lastDisconnectTime <<<"$la")" -gt 0 ] || fail "lastDisconnectTime not written: $la"
assert_eq "$(rest GET "/api/coaphub/devices/status?ids=$D2" | jq -r --arg d "$D2" '.[$d].active')" \
    false "live status inactive"
log "ok: a quiet HTTP device goes inactive with lastDisconnectTime"

it_pass
