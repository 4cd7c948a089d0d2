#!/usr/bin/env bash
# test_profiles.sh — device profiles over REST as ThingsBoard's DeviceProfileController, and
# `coaphub-cli profile ...`: the default profile of the first start; create, get, list (paging,
# textSearch, sort), update, set default, delete with ThingsBoard's refusals; provisioning
# validation (key and secret, unique key, X.509 CA chain and its hash, CN regex); devices
# getting their profile from deviceProfileId, from type (made when missing) or the default; the
# profiles surviving a restart.
. "$(dirname "$0")/lib.sh"

need jq
need openssl
[ -x "$COAPHUB_CLI" ] || fail "COAPHUB_CLI=$COAPHUB_CLI is not executable"
daemon_start
login

# expect_error STATUS MESSAGE WHAT: the last answer was ThingsBoard's error JSON with both.
expect_error() {
    assert_eq "$(http_code)" "$1" "$3: status"
    assert_eq "$(jq -r .message <"$IT_TMP/rest.body")" "$2" "$3: message"
    assert_eq "$(jq -r .status <"$IT_TMP/rest.body")" "$1" "$3: error JSON status"
}
# profile_create JSON -> sets PROF (the answer) and PROF_ID
profile_create() {
    PROF=$(rest POST /api/deviceProfile "$1")
    [ "$(http_code)" = 200 ] || fail "create profile: HTTP $(http_code): $PROF"
    PROF_ID=$(jq -r .id.id <<<"$PROF")
}

# --- the default profile exists from the first start
out=$(rest GET /api/deviceProfileInfo/default)
assert_eq "$(http_code)" 200 "default profile info"
assert_eq "$(jq -r .name <<<"$out")" default "default profile is named default"
assert_eq "$(jq -c '[keys[]]' <<<"$out")" \
    '["defaultDashboardId","id","image","name","tenantId","transportType","type"]' \
    "DeviceProfileInfo has ThingsBoard's fields"
assert_eq "$(jq -r .id.entityType <<<"$out")" DEVICE_PROFILE "info id entityType"
DEF=$(jq -r .id.id <<<"$out")
out=$(rest GET "/api/deviceProfile/$DEF")
assert_eq "$(http_code)" 200 "get default profile"
assert_eq "$(jq -r .default <<<"$out")" true "default flag"
assert_eq "$(jq -r '.type + "/" + .transportType + "/" + .provisionType' <<<"$out")" \
    DEFAULT/DEFAULT/DISABLED "default profile types"
assert_eq "$(jq -r '.profileData.configuration.type + "/" +
    .profileData.transportConfiguration.type + "/" +
    .profileData.provisionConfiguration.type' <<<"$out")" DEFAULT/DEFAULT/DISABLED \
    "default profileData"
assert_eq "$(jq -r .tenantId.entityType <<<"$out")" TENANT "tenantId"
assert_match "$(jq -r .createdTime <<<"$out")" '^[0-9]{12,}$' "createdTime"

# A device made before any profile work (and without a type) has the default profile.
out=$(rest POST /api/device '{"name":"plain-1"}')
assert_eq "$(http_code)" 200 "device without type"
assert_eq "$(jq -r .deviceProfileId.id <<<"$out")" "$DEF" "device gets the default profile"
assert_eq "$(jq -r .deviceProfileId.entityType <<<"$out")" DEVICE_PROFILE "deviceProfileId type"
assert_eq "$(jq -r .type <<<"$out")" default "type is the profile's name"
assert_eq "$(jq -r '.deviceData.transportConfiguration.type' <<<"$out")" DEFAULT "deviceData"
assert_eq "$(jq -r '.firmwareId' <<<"$out")" null "no firmware"
PLAIN=$(jq -r .id.id <<<"$out")

# --- create a CoAP profile with provisioning
COAP_BODY='{"name":"coap-prov","description":"sensors","type":"DEFAULT","transportType":"COAP",
 "provisionType":"ALLOW_CREATE_NEW_DEVICES","provisionDeviceKey":"key-1",
 "profileData":{"configuration":{"type":"DEFAULT"},
  "transportConfiguration":{"type":"COAP","coapDeviceTypeConfiguration":{"coapDeviceType":"DEFAULT",
    "transportPayloadTypeConfiguration":{"transportPayloadType":"JSON"}},
    "clientSettings":{"powerMode":"PSM","psmActivityTimer":10000,"edrxCycle":null,
     "pagingTransmissionWindow":10000}},
  "provisionConfiguration":{"type":"ALLOW_CREATE_NEW_DEVICES","provisionDeviceSecret":"secret-1"}}}'
profile_create "$COAP_BODY"
COAP=$PROF_ID
assert_eq "$(jq -r .default <<<"$PROF")" false "new profile is not the default"
assert_eq "$(jq -r .provisionDeviceKey <<<"$PROF")" key-1 "provisionDeviceKey"
assert_eq "$(jq -r .profileData.provisionConfiguration.provisionDeviceSecret <<<"$PROF")" \
    secret-1 "provisionDeviceSecret"
assert_eq "$(jq -c .profileData.transportConfiguration.clientSettings <<<"$PROF")" \
    '{"powerMode":"PSM","psmActivityTimer":10000,"edrxCycle":null,"pagingTransmissionWindow":10000}' \
    "clientSettings kept"
out=$(rest GET "/api/deviceProfile/$COAP")
assert_eq "$(jq -S -c 'del(.version)' <<<"$out")" "$(jq -S -c 'del(.version)' <<<"$PROF")" \
    "get returns what save answered"

# --- validation, with ThingsBoard's messages
rest POST /api/deviceProfile '{"description":"x"}' >/dev/null
expect_error 400 "Device profile name should be specified!" "no name"
rest POST /api/deviceProfile '{"name":"p-nokey","provisionType":"ALLOW_CREATE_NEW_DEVICES",
  "profileData":{"provisionConfiguration":{"type":"ALLOW_CREATE_NEW_DEVICES",
  "provisionDeviceSecret":"s"}}}' >/dev/null
expect_error 400 "Provision device key should be specified!" "provisioning without key"
rest POST /api/deviceProfile '{"name":"p-nosecret","provisionDeviceKey":"k9",
  "profileData":{"provisionConfiguration":{"type":"CHECK_PRE_PROVISIONED_DEVICES"}}}' >/dev/null
expect_error 400 "Provision device secret should be specified!" "provisioning without secret"
rest POST /api/deviceProfile "$(jq -c '.name="coap-2"' <<<"$COAP_BODY")" >/dev/null
expect_error 400 "Device profile with such provision device key already exists!" "same key"
rest POST /api/deviceProfile "$(jq -c '.provisionDeviceKey="key-2"' <<<"$COAP_BODY")" >/dev/null
expect_error 400 "Device profile with such name already exists!" "same name"
rest POST /api/deviceProfile "$(jq -c '.name="pm" | .provisionDeviceKey="key-3" |
    .profileData.transportConfiguration.clientSettings.powerMode="SLEEPY"' <<<"$COAP_BODY")" \
    >/dev/null
assert_eq "$(http_code)" 400 "unknown powerMode"
rest POST /api/deviceProfile '{"name":"tt","transportType":"COAP",
  "profileData":{"transportConfiguration":{"type":"DEFAULT"}}}' >/dev/null
assert_eq "$(http_code)" 400 "transportType and transportConfiguration.type disagree"
rest POST /api/deviceProfile '{"name":"d2","default":true}' >/dev/null
expect_error 400 "Another default device profile is present in scope of current tenant!" \
    "a second default"
rest POST /api/deviceProfile '{"name":' >/dev/null
assert_eq "$(http_code)" 400 "broken JSON"
rest GET /api/deviceProfile/784f394c-42b6-435a-983c-b7beff2784f9 >/dev/null
assert_eq "$(http_code)" 404 "unknown profile -> 404"
assert_eq "$(jq -r .errorCode <"$IT_TMP/rest.body")" 32 "404 errorCode"
rest GET /api/deviceProfile/not-a-uuid >/dev/null
assert_eq "$(http_code)" 400 "malformed id -> 400"

# --- X.509 chain provisioning: the CA PEM is checked, its hash becomes the key
cd "$IT_TMP"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -x509 \
    -days 30 -subj /CN=fleet-ca -out ca.pem 2>/dev/null || fail "openssl: CA"
cd - >/dev/null
want_hash=$(openssl x509 -in "$IT_TMP/ca.pem" -outform DER | base64 -w0 |
    openssl dgst -sha3-256 -r | cut -d' ' -f1)
x509_body() {  # x509_body NAME SECRET REGEX
    jq -n --arg n "$1" --arg s "$2" --arg r "$3" '{name:$n, provisionType:"X509_CERTIFICATE_CHAIN",
      profileData:{provisionConfiguration:{type:"X509_CERTIFICATE_CHAIN", provisionDeviceSecret:$s,
      certificateRegExPattern:$r, allowCreateNewDevicesByX509Certificate:true}}}'
}
rest POST /api/deviceProfile "$(x509_body chain-bad "not a certificate" '(.*)')" >/dev/null
assert_eq "$(http_code)" 400 "bad CA PEM -> 400"
assert_match "$(jq -r .message <"$IT_TMP/rest.body")" '^Invalid CA certificate: ' "bad PEM message"
rest POST /api/deviceProfile "$(x509_body chain-key "$(cat "$IT_TMP/ca.pem" "$IT_TMP/ca.key")" \
    '(.*)')" >/dev/null
assert_eq "$(http_code)" 400 "CA PEM with its private key -> 400"
rest POST /api/deviceProfile "$(x509_body chain-re "$(cat "$IT_TMP/ca.pem")" '([a-')" >/dev/null
assert_eq "$(http_code)" 400 "regex that does not compile -> 400"
assert_match "$(jq -r .message <"$IT_TMP/rest.body")" '^Invalid certificateRegExPattern' \
    "bad regex message"
profile_create "$(x509_body chain "$(cat "$IT_TMP/ca.pem")" '^dev-(.*)$')"
CHAIN=$PROF_ID
assert_eq "$(jq -r .provisionDeviceKey <<<"$PROF")" "$want_hash" \
    "provisionDeviceKey = SHA3-256 of the CA certificate"
assert_eq "$(jq -r .provisionType <<<"$PROF")" X509_CERTIFICATE_CHAIN "provisionType"
assert_eq "$(jq -r .profileData.provisionConfiguration.provisionDeviceSecret <<<"$PROF" |
    openssl x509 -noout -subject 2>/dev/null)" "subject=CN = fleet-ca" "CA kept as PEM"
assert_eq "$(jq -r .profileData.provisionConfiguration.certificateRegExPattern <<<"$PROF")" \
    '^dev-(.*)$' "CN regex kept"
rest POST /api/deviceProfile "$(x509_body chain-2 "$(cat "$IT_TMP/ca.pem")" '(.*)')" >/dev/null
expect_error 400 "Device profile with such certificate already exists!" "same CA twice"

# --- update: full replacement, version checked
upd=$(rest GET "/api/deviceProfile/$COAP" | jq -c '.description="changed" | .name="coap-prov-2"')
out=$(rest POST /api/deviceProfile "$upd")
assert_eq "$(http_code)" 200 "update"
assert_eq "$(jq -r .id.id <<<"$out")" "$COAP" "update keeps the id"
assert_eq "$(jq -r '.name + "/" + .description' <<<"$out")" "coap-prov-2/changed" "updated"
v1=$(jq -r .version <<<"$upd")
assert_eq "$(jq -r .version <<<"$out")" "$((v1 + 1))" "version bumped"
rest POST /api/deviceProfile "$upd" >/dev/null
assert_eq "$(http_code)" 409 "stale version -> 409"

# --- list: paging, textSearch, sort
profile_create '{"name":"alpha"}'
ALPHA=$PROF_ID
profile_create '{"name":"zeta","description":"last"}'
out=$(rest GET '/api/deviceProfiles?pageSize=2&page=0&sortProperty=name&sortOrder=ASC')
assert_eq "$(http_code)" 200 "list"
assert_eq "$(jq -r '[.data[].name] | join(",")' <<<"$out")" "alpha,chain" "page 0 by name"
assert_eq "$(jq -r '.totalElements, .totalPages, .hasNext' <<<"$out" | paste -sd,)" "5,3,true" \
    "paging numbers"
out=$(rest GET '/api/deviceProfiles?pageSize=2&page=2&sortProperty=name&sortOrder=ASC')
assert_eq "$(jq -r '([.data[].name] | join(",")) + " " + (.hasNext|tostring)' <<<"$out")" \
    "zeta false" "last page"
out=$(rest GET '/api/deviceProfiles?pageSize=10&page=0&sortProperty=name&sortOrder=DESC')
assert_eq "$(jq -r '.data[0].name' <<<"$out")" zeta "DESC"
out=$(rest GET '/api/deviceProfiles?pageSize=10&page=0&textSearch=COAP')
assert_eq "$(jq -r '[.data[].name] | join(",")' <<<"$out")" coap-prov-2 "textSearch (prefix, any case)"
rest GET '/api/deviceProfiles?pageSize=10&sortProperty=bogus' >/dev/null
assert_eq "$(http_code)" 400 "unknown sort property"
rest GET '/api/deviceProfiles' >/dev/null
assert_eq "$(http_code)" 400 "pageSize required"
out=$(rest GET '/api/deviceProfileInfos?pageSize=10&page=0&transportType=COAP')
assert_eq "$(jq -r '([.data[].name] | join(",")) + " " + (.totalElements|tostring)' <<<"$out")" \
    "coap-prov-2 1" "infos filtered by transportType"
assert_eq "$(jq -r '.data[0] | has("profileData")' <<<"$out")" false "infos are DeviceProfileInfo"
out=$(rest GET "/api/deviceProfileInfo/$COAP")
assert_eq "$(jq -r .transportType <<<"$out")" COAP "info by id"
out=$(rest GET /api/deviceProfile/names)
assert_eq "$(jq -r '[.[].name] | join(",")' <<<"$out")" "alpha,chain,coap-prov-2,default,zeta" \
    "profile names, sorted"
assert_eq "$(jq -r '.[] | select(.name=="default") | .id.id' <<<"$out")" "$DEF" "names carry ids"
out=$(rest GET '/api/deviceProfile/names?activeOnly=true')
assert_eq "$(jq -r '[.[].name] | join(",")' <<<"$out")" "default" "activeOnly: profiles in use"

# --- set default
out=$(rest POST "/api/deviceProfile/$ALPHA/default")
assert_eq "$(http_code)" 200 "set default"
assert_eq "$(jq -r '.name + " " + (.default|tostring)' <<<"$out")" "alpha true" "answer is the profile"
assert_eq "$(rest GET /api/deviceProfileInfo/default | jq -r .id.id)" "$ALPHA" "new default"
assert_eq "$(rest GET "/api/deviceProfile/$DEF" | jq -r .default)" false "old default cleared"
out=$(rest POST /api/device '{"name":"plain-2"}')
assert_eq "$(jq -r '.type + " " + .deviceProfileId.id' <<<"$out")" "alpha $ALPHA" \
    "a device without type gets the new default"
rest DELETE "/api/deviceProfile/$ALPHA" >/dev/null
expect_error 400 "Deletion of Default Device Profile is prohibited!" "delete the default"

# --- devices and their profiles
out=$(rest POST /api/device '{"name":"foo-1","type":"foo"}')
assert_eq "$(http_code)" 200 "device with a new type"
FOO_DEV=$(jq -r .id.id <<<"$out")
FOO=$(jq -r .deviceProfileId.id <<<"$out")
prof=$(rest GET "/api/deviceProfile/$FOO")
assert_eq "$(http_code)" 200 "type foo made profile foo"
assert_eq "$(jq -r '.name + " " + (.default|tostring)' <<<"$prof")" "foo false" "profile foo"
out=$(rest POST /api/device '{"name":"foo-2","type":"foo"}')
assert_eq "$(jq -r .deviceProfileId.id <<<"$out")" "$FOO" "same type, same profile"
out=$(rest POST /api/device "{\"name\":\"c-1\",\"type\":\"ignored\",
  \"deviceProfileId\":{\"entityType\":\"DEVICE_PROFILE\",\"id\":\"$COAP\"},
  \"deviceData\":{\"configuration\":{\"type\":\"DEFAULT\"},\"transportConfiguration\":{\"type\":\"COAP\",
  \"powerMode\":\"E_DRX\",\"edrxCycle\":81000,\"pagingTransmissionWindow\":5000}}}")
assert_eq "$(http_code)" 200 "device with deviceProfileId"
assert_eq "$(jq -r '.type + " " + .deviceProfileId.id' <<<"$out")" "coap-prov-2 $COAP" \
    "deviceProfileId wins over type"
assert_eq "$(jq -c .deviceData.transportConfiguration <<<"$out")" \
    '{"type":"COAP","powerMode":"E_DRX","psmActivityTimer":null,"edrxCycle":81000,"pagingTransmissionWindow":5000}' \
    "deviceData override kept"
C1=$(jq -r .id.id <<<"$out")
assert_eq "$(rest GET '/api/deviceProfiles?pageSize=10&textSearch=ignored' | jq -r .totalElements)" \
    0 "no profile made from a type that lost to deviceProfileId"
rest POST /api/device '{"name":"c-2","deviceProfileId":{"entityType":"DEVICE_PROFILE",
  "id":"784f394c-42b6-435a-983c-b7beff2784f9"}}' >/dev/null
expect_error 400 "Device is referencing non existing device profile!" "unknown deviceProfileId"
rest POST /api/device '{"name":"c-3","deviceData":{"transportConfiguration":{"type":"COAP",
  "psmActivityTimer":-1}}}' >/dev/null
assert_eq "$(http_code)" 400 "negative timer in deviceData"

# Moving a device to another profile by update (the UI sends the whole device back).
dev=$(rest GET "/api/device/$PLAIN" | jq -c ".deviceProfileId.id=\"$FOO\"")
out=$(rest POST /api/device "$dev")
assert_eq "$(jq -r '.type + " " + .deviceProfileId.id' <<<"$out")" "foo $FOO" "device moved to foo"
out=$(rest GET "/api/tenant/deviceInfos?pageSize=10&page=0&deviceProfileId=$FOO&sortProperty=name&sortOrder=ASC")
assert_eq "$(http_code)" 200 "deviceInfos by profile"
assert_eq "$(jq -r '[.data[].name] | join(",")' <<<"$out")" "foo-1,foo-2,plain-1" "devices of foo"
assert_eq "$(jq -r '.data[0].deviceProfileName + " " + (.data[0].active|tostring)' <<<"$out")" \
    "foo false" "DeviceInfo fields"
assert_eq "$(rest GET '/api/tenant/devices?pageSize=10&page=0&type=foo' | jq -r .totalElements)" \
    3 "devices?type= still filters"

rest DELETE "/api/deviceProfile/$FOO" >/dev/null
expect_error 400 "The device profile referenced by the devices cannot be deleted!" \
    "delete a profile in use"
# Renaming a profile renames its devices' type.
out=$(rest POST /api/deviceProfile "$(rest GET "/api/deviceProfile/$FOO" | jq -c '.name="foo-renamed"')")
assert_eq "$(http_code)" 200 "rename profile"
assert_eq "$(rest GET "/api/device/$FOO_DEV" | jq -r .type)" foo-renamed "device type follows"
for d in $(rest GET "/api/tenant/deviceInfos?pageSize=10&page=0&deviceProfileId=$FOO" |
        jq -r '.data[].id.id'); do
    rest DELETE "/api/device/$d" >/dev/null
    assert_eq "$(http_code)" 200 "delete device of foo"
done
rest DELETE "/api/deviceProfile/$FOO" >/dev/null
assert_eq "$(http_code)" 200 "delete an unused profile"
rest GET "/api/deviceProfile/$FOO" >/dev/null
assert_eq "$(http_code)" 404 "deleted profile is gone"

# --- the CLI
export COAPHUB_URL="$BASE_URL" COAPHUB_USER="$ADMIN_USER" COAPHUB_PASSWORD="$ADMIN_PASSWORD"
cli() { "$COAPHUB_CLI" "$@" >"$IT_TMP/cli.out" 2>"$IT_TMP/cli.err"; CLI_RC=$?; }
expect_rc() {  # expect_rc RC WHAT -- ARGS...
    local want=$1 what=$2; shift 3
    cli "$@"
    [ "$CLI_RC" = "$want" ] || { cat "$IT_TMP/cli.err" >&2; fail "$what: exit $CLI_RC, want $want"; }
    log "ok: $what (exit $want)"
}
for v in "profile" "profile list" "profile show" "profile add" "profile set" "profile delete" \
         "profile default"; do
    # shellcheck disable=SC2086
    expect_rc 0 "help for '$v'" -- $v --help
    grep -q usage "$IT_TMP/cli.out" || fail "no usage text for '$v'"
done
"$COAPHUB_CLI" --help | grep -q 'profile add NAME' || fail "coaphub-cli --help names profile add"
expect_rc 0 "profile add" -- profile add cli-prov --provision-key ck1 --provision-secret cs1 \
    --power-mode psm --psm-activity-timer 20000 --description "from the CLI"
assert_match "$(cat "$IT_TMP/cli.out")" '^cli-prov [0-9a-f-]{36}$' "add prints name and id"
CLI_P=$(awk '{print $2}' "$IT_TMP/cli.out")
out=$(rest GET "/api/deviceProfile/$CLI_P")
assert_eq "$(jq -r '[.provisionType, .provisionDeviceKey, .profileData.provisionConfiguration.provisionDeviceSecret,
    .transportType, .profileData.transportConfiguration.clientSettings.powerMode,
    (.profileData.transportConfiguration.clientSettings.psmActivityTimer|tostring), .description] | join(" ")' <<<"$out")" \
    "ALLOW_CREATE_NEW_DEVICES ck1 cs1 COAP PSM 20000 from the CLI" "CLI-made profile"
expect_rc 65 "profile add with a taken key" -- profile add cli-prov-2 --provision-key ck1 \
    --provision-secret x
assert_eq "$(cat "$IT_TMP/cli.err")" \
    "error: create device profile: Device profile with such provision device key already exists! (HTTP 400)" \
    "server message on stderr"
expect_rc 64 "bad --strategy" -- profile add p --strategy sometimes
expect_rc 64 "bad timer" -- profile add p --power-mode psm --psm-activity-timer soon
expect_rc 0 "profile set" -- profile set cli-prov --strategy check-pre-provisioned \
    --power-mode edrx --edrx-cycle 81920 --paging-window 2560
out=$(rest GET "/api/deviceProfile/$CLI_P")
assert_eq "$(jq -r '[.provisionType, .provisionDeviceKey,
    .profileData.transportConfiguration.clientSettings.powerMode,
    (.profileData.transportConfiguration.clientSettings.edrxCycle|tostring),
    (.profileData.transportConfiguration.clientSettings.psmActivityTimer|tostring)] | join(" ")' <<<"$out")" \
    "CHECK_PRE_PROVISIONED_DEVICES ck1 E_DRX 81920 20000" "set changes only what it names"
expect_rc 65 "same CA as profile chain" -- profile add cli-chain --ca-cert "$IT_TMP/ca.pem"
rest DELETE "/api/deviceProfile/$CHAIN" >/dev/null
assert_eq "$(http_code)" 200 "delete chain profile"
expect_rc 0 "profile add x509 (CA free again)" -- profile add cli-chain --ca-cert "$IT_TMP/ca.pem" \
    --cn-regex '^dev-(.*)$'
expect_rc 0 "profile show x509" -- profile show cli-chain
assert_match "$(cat "$IT_TMP/cli.out")" "caCertificateHash: +$want_hash" "show: CA hash"
assert_match "$(cat "$IT_TMP/cli.out")" 'cnRegex: +\^dev-\(\.\*\)\$' "show: CN regex"
expect_rc 0 "profile list" -- profile list
assert_match "$(grep '^alpha ' "$IT_TMP/cli.out")" '^alpha +yes +DEFAULT +DISABLED' "list row"
expect_rc 0 "profile list --json --search cli" -- --json profile list --search cli
assert_eq "$(jq -r '[.[].name] | join(",")' "$IT_TMP/cli.out")" "cli-chain,cli-prov" "--search"
expect_rc 0 "device add --profile" -- device add cli-dev --profile cli-prov --token cliDevTok
assert_eq "$(rest GET '/api/tenant/devices?deviceName=cli-dev' | jq -r .deviceProfileId.id)" \
    "$CLI_P" "device add --profile sets deviceProfileId"
expect_rc 66 "device add --profile unknown" -- device add cli-dev-2 --profile nope
expect_rc 64 "--type with --profile" -- device add cli-dev-3 --profile cli-prov --type x
expect_rc 0 "profile default" -- profile default cli-prov
assert_eq "$(rest GET /api/deviceProfileInfo/default | jq -r .name)" cli-prov "CLI made it default"
expect_rc 65 "delete the default" -- profile delete cli-prov
assert_eq "$(cat "$IT_TMP/cli.err")" \
    "error: delete device profile: Deletion of Default Device Profile is prohibited! (HTTP 400)" "message"
expect_rc 0 "profile default back" -- profile default alpha
expect_rc 65 "delete a profile in use" -- profile delete cli-prov
expect_rc 66 "show unknown" -- profile show nope
expect_rc 0 "profile delete" -- profile delete zeta
expect_rc 66 "deleted is gone" -- profile show zeta

# --- restart: everything above is in the database; devices from before profiles (schema 2:
# no profile_id) join the profile named as their type, "default" for those made before
out=$(rest POST /api/device "{\"name\":\"old-1\",\"deviceProfileId\":{\"id\":\"$DEF\"}}")
OLD1=$(jq -r .id.id <<<"$out")
out=$(rest POST /api/device '{"name":"old-2","type":"legacy-type"}')
OLD2=$(jq -r .id.id <<<"$out")
daemon_stop
it_sql "UPDATE device SET profile_id = NULL WHERE name IN ('old-1', 'old-2')" >/dev/null ||
    fail "could not make devices look older than profiles"
it_sql "DELETE FROM device_profile WHERE name = 'legacy-type'" >/dev/null ||
    fail "could not remove profile legacy-type"
daemon_start
login
out=$(rest GET "/api/device/$OLD1")
assert_eq "$(jq -r '.type + " " + .deviceProfileId.id' <<<"$out")" "default $DEF" \
    "a device from before profiles joins profile default"
out=$(rest GET "/api/device/$OLD2")
assert_eq "$(jq -r .type <<<"$out")" legacy-type "a device of another type joins its own profile"
assert_eq "$(rest GET "/api/deviceProfile/$(jq -r .deviceProfileId.id <<<"$out")" | jq -r .name)" \
    legacy-type "that profile was made at start"
assert_eq "$(rest GET /api/deviceProfileInfo/default | jq -r .id.id)" "$ALPHA" "default survives"
out=$(rest GET "/api/device/$C1")
assert_eq "$(jq -r '.deviceProfileId.id + " " + .deviceData.transportConfiguration.powerMode' <<<"$out")" \
    "$COAP E_DRX" "device profile and deviceData survive"
assert_eq "$(rest GET "/api/deviceProfile/$COAP" | jq -r .profileData.transportConfiguration.clientSettings.powerMode)" \
    PSM "profile data survives"

it_pass
