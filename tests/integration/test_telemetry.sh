#!/usr/bin/env bash
# test_telemetry.sh — telemetry shapes and typing over CoAP, read back over REST (spec §3.1–§3.3,
# §5, §8.5); client attributes and attribute GET with clientKeys/sharedKeys.
. "$(dirname "$0")/lib.sh"

daemon_start
login
device_create "tele-1" teleTok1
D=$DEV_ID
TP=/api/v1/teleTok1/telemetry
latest() {  # latest KEY [strict] -> raw JSON body
    rest GET "/api/plugins/telemetry/DEVICE/$D/values/timeseries?keys=$1${2:+&useStrictDataTypes=true}"
}

# --- shapes (§3.1)
coap_expect 2.01 post "$TP" '{"temperature":25,"humidity":60}'
out=$(latest temperature,humidity)
assert_eq "$(http_code)" 200 "latest read"
assert_eq "$(jq -r '.temperature[0].value' <<<"$out")" 25 "object: temperature"
assert_eq "$(jq -r '.humidity[0].value | type' <<<"$out")" string "values are strings by default"
now_ms=$(( $(date +%s) * 1000 ))
ts=$(jq -r '.temperature[0].ts' <<<"$out")
[ $(( now_ms - ts )) -lt 60000 ] && [ $(( ts - now_ms )) -lt 60000 ] \
    || fail "server timestamp $ts is not near now ($now_ms)"

coap_expect 2.01 post "$TP" '{"ts":1451649600512,"values":{"pressure":1013}}'
out=$(latest pressure)
assert_eq "$(jq -r '.pressure[0].ts' <<<"$out")" 1451649600512 "{ts,values}: client ts kept"
assert_eq "$(jq -r '.pressure[0].value' <<<"$out")" 1013 "{ts,values}: value"

coap_expect 2.01 post "$TP" '[{"k1":"v1"},{"ts":1451649600513,"values":{"k2":true}}]'
assert_eq "$(latest k1 | jq -r '.k1[0].value')" v1 "array: plain element"
out=$(latest k2 strict)
assert_eq "$(jq -r '.k2[0].ts' <<<"$out")" 1451649600513 "array: ts element"
assert_eq "$(jq -c '.k2[0].value' <<<"$out")" true "array: boolean typed"

coap_expect 2.01 post "$TP" '{speed:25}'
assert_eq "$(latest speed | jq -r '.speed[0].value')" 25 "unquoted key accepted"

coap_expect 2.01 post "$TP" '{"nk":null,"nn":7}'
keys=$(rest GET "/api/plugins/telemetry/DEVICE/$D/keys/timeseries")
assert_eq "$(jq -r 'index("nk")' <<<"$keys")" null "null value skipped"
assert_match "$(jq -r 'index("nn")' <<<"$keys")" '^[0-9]+$' "sibling of null stored"

coap_expect 2.01 post "$TP" '{"dbl":42.0,"lng":73}'
assert_eq "$(latest dbl | jq -r '.dbl[0].value')" 42.0 "42.0 stays 42.0"
assert_match "$(latest dbl strict)" '"value":42\.0[^0-9]' "42.0 strict keeps the fraction"
assert_eq "$(latest lng strict | jq -c '.lng[0].value')" 73 "73 is a long"

coap_expect 2.01 post "$TP" '{"sn":"43","ss":"abc"}'
out=$(latest sn,ss strict)
assert_eq "$(jq -r '.sn[0].value | type' <<<"$out")" number "\"43\" typed as number (strict)"
assert_eq "$(jq -r '.sn[0].value' <<<"$out")" 43 "\"43\" value"
assert_eq "$(jq -r '.ss[0].value | type' <<<"$out")" string "\"abc\" stays string"

for bad in '[1,2]' '"x"' '{"ts":1,"values":5}' '{"a":1' ''; do
    coap_expect 4.00 post "$TP" "$bad"
done

# --- history: limit, orderBy, aggregation (§8.5)
base=1700000000000
for i in 1 2 3 4 5; do
    coap_expect 2.01 post "$TP" "{\"ts\":$((base + i)),\"values\":{\"c\":$i}}"
done
H="/api/plugins/telemetry/DEVICE/$D/values/timeseries?keys=c&startTs=$base&endTs=$((base + 10))"
out=$(rest GET "$H&limit=3&orderBy=DESC")
assert_eq "$(http_code)" 200 "history read"
assert_eq "$(jq -r '[.c[].value] | join(",")' <<<"$out")" 5,4,3 "history limit=3 DESC"
assert_eq "$(jq -r '[.c[].ts] | join(",")' <<<"$out")" "$((base+5)),$((base+4)),$((base+3))" \
    "history timestamps"
out=$(rest GET "$H&limit=2&orderBy=ASC")
assert_eq "$(jq -r '[.c[].value] | join(",")' <<<"$out")" 1,2 "history limit=2 ASC"
out=$(rest GET "$H&interval=100&agg=AVG&limit=10")
assert_eq "$(jq -r '.c | length' <<<"$out")" 1 "AVG: one bucket"
assert_eq "$(jq -r '.c[0].value | tonumber' <<<"$out")" 3 "AVG of 1..5"
out=$(rest GET "$H&interval=100&agg=COUNT&limit=10")
assert_eq "$(jq -r '.c[0].value | tonumber' <<<"$out")" 5 "COUNT of 1..5"
out=$(rest GET "$H&interval=100&agg=MAX&limit=10")
assert_eq "$(jq -r '.c[0].value | tonumber' <<<"$out")" 5 "MAX of 1..5"

# --- client attributes (§3.2) and attribute GET (§3.3)
AP=/api/v1/teleTok1/attributes
coap_expect 2.01 post "$AP" '{"fw":"v1.0","n":5}'
out=$(rest GET "/api/plugins/telemetry/DEVICE/$D/values/attributes/CLIENT_SCOPE")
assert_eq "$(http_code)" 200 "client attributes read"
assert_eq "$(jq -r '.[] | select(.key=="fw") | .value' <<<"$out")" v1.0 "client attr fw"
assert_eq "$(jq -c '.[] | select(.key=="n") | .value' <<<"$out")" 5 "client attr n typed"
coap_expect 4.00 post "$AP" '[{"a":1}]'

rest POST "/api/plugins/telemetry/DEVICE/$D/attributes/SHARED_SCOPE" '{"s1":22,"s2":"eco"}' >/dev/null
assert_eq "$(http_code)" 200 "shared attributes saved"

coap_expect 2.05 get "$AP?clientKeys=fw&sharedKeys=s1"
assert_eq "$(jq -c -S . <<<"$COAP_BODY")" '{"client":{"fw":"v1.0"},"shared":{"s1":22}}' \
    "GET clientKeys+sharedKeys"
coap_expect 2.05 get "$AP?sharedKeys=s2"
assert_eq "$(jq -c -S . <<<"$COAP_BODY")" '{"shared":{"s2":"eco"}}' "GET only sharedKeys"
coap_expect 2.05 get "$AP?clientKeys=n,nope"
assert_eq "$(jq -c -S . <<<"$COAP_BODY")" '{"client":{"n":5}}' "GET clientKeys, one missing"
coap_expect 2.05 get "$AP"
assert_eq "$(jq -c -S . <<<"$COAP_BODY")" \
    '{"client":{"fw":"v1.0","n":5},"shared":{"s1":22,"s2":"eco"}}' "GET without keys = all"
coap_expect 4.04 get "$AP?clientKeys=nope&sharedKeys=nada"

# A1: access tokens, known or not, never reach the log, even at this run's --log-level debug.
coap_expect 4.01 post /api/v1/unknownTok9/telemetry '{"a":1}'
if grep -n -e teleTok1 -e unknownTok9 "$IT_LOG" >&2; then
    fail "an access token appears in the server log"
fi
log "ok: no access token in the server's debug log ($(wc -l <"$IT_LOG") lines)"

it_pass
