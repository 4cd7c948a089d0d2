#!/usr/bin/env bash
# test_rest_basics.sh — REST auth, error JSON shape, device CRUD and credentials (spec §8.1–§8.4).
. "$(dirname "$0")/lib.sh"

daemon_start

# --- authentication (§8.1) and the error JSON shape (§8.2)
out=$(rest POST /api/auth/login "{\"username\":\"$ADMIN_USER\",\"password\":\"wrong\"}")
assert_eq "$(http_code)" 401 "bad password -> 401"
assert_eq "$(jq -r .errorCode <<<"$out")" 10 "bad password errorCode"
assert_eq "$(jq -r .status <<<"$out")" 401 "error JSON .status"
assert_match "$(jq -r .message <<<"$out")" '.' "error JSON .message present"
assert_match "$(jq -r .timestamp <<<"$out")" '^[0-9]{12,}$' "error JSON .timestamp in ms"

out=$(rest GET '/api/tenant/devices?pageSize=10&page=0')
assert_eq "$(http_code)" 401 "no JWT -> 401"
assert_eq "$(jq -r .errorCode <<<"$out")" 10 "no JWT errorCode"
JWT="not.a.jwt"
rest GET '/api/tenant/devices?pageSize=10&page=0' >/dev/null
assert_eq "$(http_code)" 401 "garbage JWT -> 401"
JWT=""

login

# --- devices (§8.3)
device_create "Thermostat A" tokA1
A=$DEV_ID
out=$(rest GET "/api/device/$A")
assert_eq "$(http_code)" 200 "get device"
assert_eq "$(jq -r .name <<<"$out")" "Thermostat A" "device name"
assert_eq "$(jq -r .id.entityType <<<"$out")" DEVICE "device entityType"
assert_eq "$(jq -r .type <<<"$out")" default "device type"
assert_match "$(jq -r .createdTime <<<"$out")" '^[0-9]{12,}$' "device createdTime"

device_create "Sensor B" tokB1
B=$DEV_ID
out=$(rest GET '/api/tenant/devices?pageSize=10&page=0')
assert_eq "$(http_code)" 200 "list devices"
assert_eq "$(jq -r .totalElements <<<"$out")" 2 "list totalElements"
assert_eq "$(jq -r '[.data[].name] | sort | join(",")' <<<"$out")" "Sensor B,Thermostat A" \
    "list names"
assert_eq "$(jq -r .hasNext <<<"$out")" false "list hasNext"
out=$(rest GET '/api/tenant/devices?pageSize=1&page=0')
assert_eq "$(jq -r '.data | length' <<<"$out")" 1 "pageSize=1 gives one device"
assert_eq "$(jq -r .hasNext <<<"$out")" true "pageSize=1 hasNext"

out=$(rest GET '/api/tenant/devices?deviceName=Thermostat%20A')
assert_eq "$(http_code)" 200 "get by name"
assert_eq "$(jq -r .id.id <<<"$out")" "$A" "by-name id"
rest GET '/api/tenant/devices?deviceName=nope' >/dev/null
assert_eq "$(http_code)" 404 "unknown name -> 404"

out=$(rest POST /api/device '{"name":"Thermostat A","type":"default"}')
assert_eq "$(http_code)" 400 "duplicate name -> 400"
assert_eq "$(jq -r .status <<<"$out")" 400 "duplicate name error JSON"

out=$(rest GET /api/device/784f394c-42b6-435a-983c-b7beff2784f9)
assert_eq "$(http_code)" 404 "unknown device id -> 404"
assert_eq "$(jq -r .errorCode <<<"$out")" 32 "404 errorCode"
rest GET /api/device/not-a-uuid >/dev/null
assert_eq "$(http_code)" 400 "malformed UUID -> 400"

# --- credentials (§8.4)
cred=$(rest GET "/api/device/$A/credentials")
assert_eq "$(http_code)" 200 "get credentials"
assert_eq "$(jq -r .credentialsType <<<"$cred")" ACCESS_TOKEN "credentials type"
assert_eq "$(jq -r .credentialsId <<<"$cred")" tokA1 "credentials token"
assert_eq "$(jq -r .deviceId.id <<<"$cred")" "$A" "credentials deviceId"

coap_expect 2.01 post /api/v1/tokA1/telemetry '{"t":1}'
upd=$(jq -c '.credentialsId = "tokA2"' <<<"$cred")
out=$(rest POST /api/device/credentials "$upd")
assert_eq "$(http_code)" 200 "update token"
assert_eq "$(jq -r .credentialsId <<<"$out")" tokA2 "updated token echoed"
assert_eq "$(rest GET "/api/device/$A/credentials" | jq -r .credentialsId)" tokA2 \
    "updated token read back"
coap_expect 4.01 post /api/v1/tokA1/telemetry '{"t":2}'
coap_expect 2.01 post /api/v1/tokA2/telemetry '{"t":3}'

out=$(rest POST /api/device/credentials "$(jq -c 'del(.id) | .credentialsId = "tokX"' <<<"$cred")")
assert_eq "$(http_code)" 400 "credentials update without id -> 400"

credB=$(rest GET "/api/device/$B/credentials")
out=$(rest POST /api/device/credentials "$(jq -c '.credentialsId = "tokA2"' <<<"$credB")")
assert_eq "$(http_code)" 400 "token of another device -> 400"
assert_eq "$(jq -r .status <<<"$out")" 400 "duplicate token error JSON"
rest POST "/api/device?accessToken=tokB1" '{"name":"C","type":"default"}' >/dev/null
assert_eq "$(http_code)" 400 "create with a taken token -> 400"
assert_eq "$(rest GET '/api/tenant/devices?deviceName=C' >/dev/null; http_code)" 404 \
    "failed create left no device"

# X.509 (§8.4, §6.2): PEM in, SHA3-256 hex id and single-line Base64 value out.
openssl ecparam -name secp256r1 -genkey -noout -out "$IT_TMP/key.pem" 2>/dev/null
openssl req -new -x509 -key "$IT_TMP/key.pem" -subj /CN=x -days 2 -out "$IT_TMP/cert.pem" \
    2>/dev/null || fail "openssl could not make a certificate"
cred=$(rest GET "/api/device/$A/credentials")
x509=$(jq -c --rawfile pem "$IT_TMP/cert.pem" \
    '.credentialsType = "X509_CERTIFICATE" | .credentialsValue = $pem | del(.credentialsId)' \
    <<<"$cred")
out=$(rest POST /api/device/credentials "$x509")
assert_eq "$(http_code)" 200 "X.509 update"
assert_eq "$(jq -r .credentialsType <<<"$out")" X509_CERTIFICATE "X.509 type"
assert_match "$(jq -r .credentialsId <<<"$out")" '^[0-9a-f]{64}$' "X.509 credentialsId is hex SHA3"
der_b64=$(openssl x509 -in "$IT_TMP/cert.pem" -outform DER | base64 -w0)
assert_eq "$(jq -r .credentialsValue <<<"$out")" "$der_b64" "X.509 value is single-line Base64"
want_id=$(printf '%s' "$der_b64" | openssl dgst -sha3-256 -r | cut -d' ' -f1)
assert_eq "$(jq -r .credentialsId <<<"$out")" "$want_id" "credentialsId = SHA3-256(Base64 DER)"
coap_expect 4.01 post /api/v1/tokA2/telemetry '{"t":4}'

bad=$(jq -c '.credentialsValue = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"' \
    <<<"$(rest GET "/api/device/$A/credentials")")
out=$(rest POST /api/device/credentials "$bad")
assert_eq "$(http_code)" 400 "bad PEM -> 400"
assert_eq "$(jq -r .status <<<"$out")" 400 "bad PEM error JSON"
assert_eq "$(rest GET "/api/device/$A/credentials" | jq -r .credentialsId)" "$want_id" \
    "bad PEM left the certificate in place"

# --- delete
rest DELETE "/api/device/$A" >/dev/null
assert_eq "$(http_code)" 200 "delete device"
rest GET "/api/device/$A" >/dev/null
assert_eq "$(http_code)" 404 "deleted device -> 404"
rest GET "/api/device/$A/credentials" >/dev/null
assert_match "$(http_code)" '^40[04]$' "deleted device has no credentials"
assert_eq "$(rest GET '/api/tenant/devices?pageSize=10&page=0' | jq -r .totalElements)" 1 \
    "list after delete"
coap_expect 2.01 post /api/v1/tokB1/telemetry '{"t":5}'

it_pass
