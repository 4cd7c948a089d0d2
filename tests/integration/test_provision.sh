#!/usr/bin/env bash
# test_provision.sh — devices that provision themselves over CoAP (spec §3.9) with real
# clients: profiles made over REST with each strategy (ALLOW_CREATE_NEW_DEVICES,
# CHECK_PRE_PROVISIONED_DEVICES, DISABLED), coap-client-notls and coap-client-openssl (one-way
# DTLS) posting to /api/v1/provision. Checked: ThingsBoard's bodies and codes for SUCCESS,
# NOT_FOUND and FAILURE; a generated token, a preset one and a certificate as credentials; the
# provisionState attribute; a name or token taken; a pre-provisioned device provisioned twice
# (the second is refused); malformed requests (4.00, no body). And that what provisioning hands
# out works at once: the token posts telemetry, the certificate posts over DTLS.
. "$(dirname "$0")/lib.sh"
need openssl; need coap-client-openssl

cd "$IT_TMP" || fail "no tmp dir"
daemon_start
login

# profile_create NAME PROVISION_TYPE KEY SECRET -> sets PROFILE_ID
profile_create() {
    local body out
    body=$(jq -nc --arg n "$1" --arg t "$2" --arg k "$3" --arg s "$4" '{
        name: $n, type: "DEFAULT", transportType: "DEFAULT", provisionType: $t,
        provisionDeviceKey: $k,
        profileData: {configuration: {type: "DEFAULT"},
                      transportConfiguration: {type: "DEFAULT"},
                      provisionConfiguration: {type: $t, provisionDeviceSecret: $s}}}')
    out=$(rest POST /api/deviceProfile "$body")
    [ "$(http_code)" = 200 ] || fail "create profile $1: HTTP $(http_code): $out"
    PROFILE_ID=$(printf '%s' "$out" | jq -r .id.id)
}
# provision JSON [-- client args]: POST /api/v1/provision over plain CoAP; COAP_CODE/COAP_BODY
# (coap-client writes the body of a 4.xx answer to its log as "4.00 BODY", not to -o's file)
provision() {
    coap POST /api/v1/provision "$@"
    if [ -z "$COAP_BODY" ]; then
        COAP_BODY=$(grep -m1 -E '^[45]\.[0-9]{2} ' "$IT_TMP/coap.log" | sed -E 's/^[45]\.[0-9]{2} ?//')
    fi
}
# expect_status CODE STATUS WHAT: the last answer's code and its "status" member
expect_status() {
    assert_eq "$COAP_CODE" "$1" "$3: code"
    assert_eq "$(jq -r .status <<<"$COAP_BODY")" "$2" "$3: status"
}
req() {  # req NAME KEY SECRET [extra jq assignments] -> request JSON
    jq -nc --arg n "$1" --arg k "$2" --arg s "$3" \
        "{deviceName: \$n, provisionDeviceKey: \$k, provisionDeviceSecret: \$s}${4:+ | $4}"
}
# device_by_name NAME -> the device JSON (HTTP code in http_code)
device_by_name() { rest GET "/api/tenant/devices?deviceName=$(jq -rn --arg n "$1" '$n|@uri')"; }
server_attr() {  # server_attr DEVICE_ID KEY -> value
    rest GET "/api/plugins/telemetry/DEVICE/$1/values/attributes/SERVER_SCOPE?keys=$2" \
        | jq -r '.[0].value // empty'
}

# ---- nothing configured: NOT_FOUND -----------------------------------------------------------
provision "$(req dev-x nokey nosecret)"
expect_status 4.00 NOT_FOUND "unknown provision key"
assert_eq "$(jq -r .errorMsg <<<"$COAP_BODY")" "Provision data was not found!" "NOT_FOUND message"

# ---- ALLOW_CREATE_NEW_DEVICES ------------------------------------------------------------------
profile_create "factory" ALLOW_CREATE_NEW_DEVICES "key-factory" "secret-factory"
FACTORY=$PROFILE_ID
provision "$(req dev-a key-factory wrong-secret)"
expect_status 4.00 NOT_FOUND "wrong secret"
device_by_name dev-a >/dev/null
assert_eq "$(http_code)" 404 "no device made by a wrong secret"

provision "$(req dev-a key-factory secret-factory)"
expect_status 2.01 SUCCESS "new device, generated token"
assert_eq "$(jq -r .credentialsType <<<"$COAP_BODY")" ACCESS_TOKEN "credentialsType"
TOKEN_A=$(jq -r .credentialsValue <<<"$COAP_BODY")
assert_match "$TOKEN_A" '^[A-Za-z0-9]{20}$' "generated token: 20 alphanumerics"
assert_eq "$(jq -c 'keys_unsorted' <<<"$COAP_BODY")" '["credentialsValue","credentialsType","status"]' \
    "SUCCESS body members, in ThingsBoard's order"
DEV=$(device_by_name dev-a)
assert_eq "$(http_code)" 200 "provisioned device exists"
A=$(jq -r .id.id <<<"$DEV")
assert_eq "$(jq -r .deviceProfileId.id <<<"$DEV")" "$FACTORY" "device is in the profile"
assert_eq "$(server_attr "$A" provisionState)" provisioned "provisionState attribute"
# The token works at once.
coap_expect 2.01 POST "/api/v1/$TOKEN_A/telemetry" '{"temperature":21}'
assert_eq "$(ts_history "$A" temperature | jq -r '.[].value')" 21 "telemetry as the new device"

provision "$(req dev-a key-factory secret-factory)"
expect_status 4.00 FAILURE "the name exists"
assert_eq "$(jq -r .errorMsg <<<"$COAP_BODY")" "Failed to provision device!" "FAILURE message"

# A preset token, and the same token again for another name.
provision "$(req dev-b key-factory secret-factory '.credentialsType="ACCESS_TOKEN" | .token="presetTok'"$$"'"')"
expect_status 2.01 SUCCESS "preset token"
assert_eq "$(jq -r .credentialsValue <<<"$COAP_BODY")" "presetTok$$" "the preset token is the credential"
coap_expect 2.01 POST "/api/v1/presetTok$$/telemetry" '{"temperature":22}'
provision "$(req dev-c key-factory secret-factory '.token="presetTok'"$$"'"')"
expect_status 4.00 FAILURE "a token taken by another device"
device_by_name dev-c >/dev/null
assert_eq "$(http_code)" 404 "no device left behind by a taken token"

# No name: a random one (ThingsBoard: 20 alphanumerics).
provision "$(jq -nc '{provisionDeviceKey: "key-factory", provisionDeviceSecret: "secret-factory"}')"
expect_status 2.01 SUCCESS "no deviceName"
TOKEN_R=$(jq -r .credentialsValue <<<"$COAP_BODY")
coap_expect 2.01 POST "/api/v1/$TOKEN_R/telemetry" '{"n":1}'
NAMES=$(rest GET "/api/tenant/devices?pageSize=100&page=0" | jq -r '.data[].name')
grep -Eqx '[A-Za-z0-9]{20}' <<<"$NAMES" || fail "no device with a random 20-character name: $NAMES"
log "ok: random device name"

# X.509: the device sends its certificate, which becomes its credential.
openssl ecparam -out dev-x.key -name prime256v1 -genkey 2>/dev/null
openssl req -new -key dev-x.key -x509 -nodes -days 30 -out dev-x.pem -subj "/CN=dev-x" 2>/dev/null
provision "$(req dev-x key-factory secret-factory '.credentialsType="X509_CERTIFICATE"' \
    | jq -c --rawfile pem dev-x.pem '.hash=$pem')"
expect_status 2.01 SUCCESS "X509_CERTIFICATE"
assert_eq "$(jq -r .credentialsType <<<"$COAP_BODY")" X509_CERTIFICATE "credentialsType X.509"
B64=$(grep -v -- ----- dev-x.pem | tr -d '\n')
assert_eq "$(jq -r .credentialsValue <<<"$COAP_BODY")" "$B64" "credentialsValue: Base64 DER"
X=$(device_by_name dev-x | jq -r .id.id)
assert_eq "$(rest GET "/api/device/$X/credentials" | jq -r .credentialsType)" X509_CERTIFICATE \
    "stored credentials"
# ... and the device posts over DTLS with it at once.
timeout 20 coap-client-openssl -v 7 -B 10 -c dev-x.pem -j dev-x.key -m POST -t application/json \
    -e '{"temperature":23}' "coaps://127.0.0.1:$COAPS_PORT/api/v1/telemetry" >x.log 2>&1
grep -Eq 'process incoming 2\.01 response' x.log || { tail -n 20 x.log >&2; fail "X.509 POST"; }
assert_eq "$(ts_history "$X" temperature | jq -r '.[].value')" 23 "telemetry over DTLS as the provisioned certificate"
# A certificate that is not one: FAILURE, nothing created.
provision "$(req dev-y key-factory secret-factory '.credentialsType="X509_CERTIFICATE" | .hash="bm90IGEgY2VydA=="')"
expect_status 4.00 FAILURE "garbage certificate"
# MQTT_BASIC cannot serve a CoAP device.
provision "$(req dev-m key-factory secret-factory '.credentialsType="MQTT_BASIC" | .username="u" | .password="p"')"
expect_status 4.00 FAILURE "MQTT_BASIC"

# Over DTLS (one-way: no client certificate) the same endpoint answers the same way.
timeout 20 coap-client-openssl -v 7 -B 10 -m POST -o dtls.body -e "$(req dev-d key-factory secret-factory)" \
    "coaps://127.0.0.1:$COAPS_PORT/api/v1/provision" >d.log 2>&1
grep -Eq 'process incoming 2\.01 response' d.log || { tail -n 20 d.log >&2; fail "provision over DTLS"; }
assert_eq "$(jq -r .status dtls.body)" SUCCESS "provisioned over DTLS"

# ---- malformed requests: 4.00 without a body ---------------------------------------------------
for body in 'not json' '[1,2]' '{"provisionDeviceKey":"key-factory"}' \
        "$(req dev-z key-factory secret-factory '.credentialsType="PSK"')"; do
    provision "$body"
    assert_eq "$COAP_CODE" 4.00 "malformed request $body"
    assert_eq "$COAP_BODY" "" "no body for $body"
done
# An empty key or secret is ThingsBoard's NOT_FOUND.
provision "$(req dev-z '' secret-factory)"
expect_status 4.00 NOT_FOUND "empty provision key"

# ---- DISABLED ---------------------------------------------------------------------------------------
profile_create "closed" DISABLED "key-closed" "secret-closed"
provision "$(req dev-e key-closed secret-closed)"
expect_status 4.00 NOT_FOUND "provisioning disabled"

# ---- CHECK_PRE_PROVISIONED_DEVICES ------------------------------------------------------------
profile_create "preprov" CHECK_PRE_PROVISIONED_DEVICES "key-pre" "secret-pre"
out=$(rest POST "/api/device?accessToken=preTok$$" '{"name":"pre-1","type":"preprov"}')
assert_eq "$(http_code)" 200 "pre-provisioned device created over REST"
P=$(jq -r .id.id <<<"$out")
provision "$(req pre-1 key-pre wrong)"
expect_status 4.00 NOT_FOUND "pre-provisioned: wrong secret"
provision "$(req pre-1 key-pre secret-pre)"
expect_status 2.01 SUCCESS "pre-provisioned device, first time"
assert_eq "$(jq -r .credentialsValue <<<"$COAP_BODY")" "preTok$$" "its existing token is answered"
assert_eq "$(server_attr "$P" provisionState)" provisioned "provisionState after provisioning"
coap_expect 2.01 POST "/api/v1/preTok$$/telemetry" '{"temperature":24}'
provision "$(req pre-1 key-pre secret-pre)"
expect_status 4.00 FAILURE "pre-provisioned device, second time"
provision "$(req pre-unknown key-pre secret-pre)"
expect_status 4.00 FAILURE "no such pre-provisioned device"
provision "$(req dev-a key-pre secret-pre)"
expect_status 4.00 FAILURE "a device of another profile"

it_pass
