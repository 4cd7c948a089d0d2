#!/usr/bin/env bash
# test_fleet.sh — the README's fleet walkthrough (issue 14's "done when"), exactly as a person
# would type it: a profile with a provision key made with coaphub-cli, a new device provisioned
# over CoAP with coap-client-notls, telemetry posted as it, a firmware image uploaded and
# assigned to the profile with coaphub-cli, and the scripted device tools/ota-device.sh taking
# the update until it reports UPDATED. Then what a fleet adds: a device provisioned into a profile
# that has firmware already gets the fw_* attributes at once and updates too, and an X.509 device
# provisioned with its certificate takes the same update over DTLS without a token.
. "$(dirname "$0")/lib.sh"
need openssl; need sha256sum; need coap-client-openssl; need coap-client-notls
[ -x "$COAPHUB_CLI" ] || fail "COAPHUB_CLI=$COAPHUB_CLI is not executable"

daemon_start
login
cd "$IT_TMP" || fail "no temp dir"
export COAPHUB_URL="$BASE_URL" COAPHUB_USER="$ADMIN_USER" COAPHUB_PASSWORD="$ADMIN_PASSWORD"
cli() { "$COAPHUB_CLI" "$@" >"$IT_TMP/cli.out" 2>"$IT_TMP/cli.err" || {
    cat "$IT_TMP/cli.err" >&2; fail "coaphub-cli $*"; }; }

# provision NAME [EXTRA JSON MEMBERS] -> PROV (the answer's JSON), asserts 2.01
provision() {
    coap_expect 2.01 post /api/v1/provision \
        "{\"deviceName\":\"$1\",\"provisionDeviceKey\":\"FACTORY_KEY\",\"provisionDeviceSecret\":\"FACTORY_SECRET\"${2:+,$2}}" \
        -- -t application/json
    PROV=$COAP_BODY
    assert_eq "$(jq -r .status <<<"$PROV")" SUCCESS "$1 provisioned"
}
latest() {  # latest DEVICE_ID KEY -> the latest value
    rest GET "/api/plugins/telemetry/DEVICE/$1/values/timeseries?keys=$2" | jq -r ".\"$2\"[0].value"
}
device_id() { rest GET "/api/tenant/device?deviceName=$1" | jq -r .id.id; }

# ---- 1. a profile with a provision key (README: "Provision a device") ----------------------
cli profile add factory --provision-key FACTORY_KEY --provision-secret FACTORY_SECRET
PROFILE=$(awk '{print $2}' "$IT_TMP/cli.out")
assert_eq "$(rest GET "/api/deviceProfile/$PROFILE" | jq -r .provisionType)" \
    ALLOW_CREATE_NEW_DEVICES "the profile lets devices register themselves"

# ---- 2. a new device provisions itself over CoAP and posts telemetry as itself ---------------
provision thermo-4
TOKEN=$(jq -r .credentialsValue <<<"$PROV")
assert_eq "$(jq -r .credentialsType <<<"$PROV")" ACCESS_TOKEN "a token was handed out"
coap_expect 2.01 post "/api/v1/$TOKEN/telemetry" '{"temperature":25}' -- -t application/json
DEV=$(device_id thermo-4)
assert_eq "$(rest GET "/api/device/$DEV" | jq -r .deviceProfileId.id)" "$PROFILE" \
    "thermo-4 is in profile factory"
assert_eq "$(latest "$DEV" temperature)" 25 "its telemetry is stored"

# ---- 3. a firmware image uploaded and assigned to the profile --------------------------------
head -c 300000 /dev/urandom >firmware.bin
SHA=$(sha256sum firmware.bin | cut -d' ' -f1)
cli ota upload --title thermo-fw --version 1.1 --profile factory firmware.bin
grep -q "$SHA" "$IT_TMP/cli.out" || fail "ota upload prints the SHA-256: $(cat "$IT_TMP/cli.out")"
cli ota assign thermo-fw@1.1 --profile factory
assert_eq "$(latest "$DEV" fw_state)" QUEUED "fw_state QUEUED on assignment"

# ---- 4. the scripted device downloads it and reports UPDATED --------------------------------
timeout 120 bash "$COAPHUB_SRC/tools/ota-device.sh" --host 127.0.0.1 --port "$COAP_PORT" \
    --token "$TOKEN" --state "$IT_TMP/dev4" --once >"$IT_TMP/dev4.log" 2>&1 ||
    { cat "$IT_TMP/dev4.log" >&2; fail "ota-device.sh did not update thermo-4"; }
assert_eq "$(latest "$DEV" fw_state)" UPDATED "thermo-4 reports UPDATED"
assert_eq "$(latest "$DEV" current_fw_title)" thermo-fw "thermo-4 runs thermo-fw"
assert_eq "$(sha256sum "$IT_TMP/dev4/firmware.bin" | cut -d' ' -f1)" "$SHA" "the image it got"
states=$(rest GET "/api/plugins/telemetry/DEVICE/$DEV/values/timeseries?keys=fw_state&startTs=0&endTs=$(( $(date +%s) * 1000 + 60000 ))&limit=20&orderBy=ASC" \
    | jq -r '[.fw_state[].value] | join(" ")')
assert_eq "$states" "QUEUED DOWNLOADING DOWNLOADED VERIFIED UPDATING UPDATED" \
    "the whole fw_state progression is stored"
cli telemetry thermo-4 fw_state
grep -q UPDATED "$IT_TMP/cli.out" || fail "coaphub-cli telemetry shows UPDATED"
# A second run finds nothing to do.
timeout 60 bash "$COAPHUB_SRC/tools/ota-device.sh" --host 127.0.0.1 --port "$COAP_PORT" \
    --token "$TOKEN" --state "$IT_TMP/dev4" --once >"$IT_TMP/dev4b.log" 2>&1 ||
    fail "second run of ota-device.sh"
grep -q "nothing to do" "$IT_TMP/dev4b.log" || fail "the device is up to date"

# ---- 5. a device provisioned now, into a profile with firmware, gets it at once -------------
provision thermo-5
TOKEN5=$(jq -r .credentialsValue <<<"$PROV")
coap_expect 2.05 get "/api/v1/$TOKEN5/attributes?sharedKeys=fw_title,fw_version,fw_checksum"
assert_eq "$(jq -r '[.shared.fw_title, .shared.fw_version, .shared.fw_checksum] | join(" ")' \
    <<<"$COAP_BODY")" "thermo-fw 1.1 $SHA" "a provisioned device has its profile's firmware at once"
assert_eq "$(latest "$(device_id thermo-5)" fw_state)" QUEUED "and fw_state QUEUED"

# ---- 6. an X.509 device provisioned with its certificate updates over DTLS, no token ----------
openssl ecparam -name secp256r1 -genkey -noout -out key6.pem 2>/dev/null
openssl req -new -x509 -key key6.pem -nodes -days 30 -subj /CN=thermo-6 -out cert6.pem 2>/dev/null
provision thermo-6 "\"credentialsType\":\"X509_CERTIFICATE\",\"hash\":$(jq -Rs . <cert6.pem)"
DEV6=$(device_id thermo-6)
timeout 180 bash "$COAPHUB_SRC/tools/ota-device.sh" --host 127.0.0.1 --port "$COAPS_PORT" \
    --cert cert6.pem --key key6.pem --state "$IT_TMP/dev6" --once >"$IT_TMP/dev6.log" 2>&1 ||
    { cat "$IT_TMP/dev6.log" >&2; fail "ota-device.sh did not update thermo-6 over DTLS"; }
assert_eq "$(latest "$DEV6" fw_state)" UPDATED "thermo-6 (X.509, DTLS) reports UPDATED"
assert_eq "$(sha256sum "$IT_TMP/dev6/firmware.bin" | cut -d' ' -f1)" "$SHA" "thermo-6's image"

it_pass
