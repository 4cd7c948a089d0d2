#!/usr/bin/env bash
# test_power_saving.sh — downlinks to PSM and eDRX devices (spec §4) with a scripted device
# (psm_device.py) that observes, sleeps and wakes, settings made through ThingsBoard's REST:
# a device's deviceData override (PSM), a profile's clientSettings (eDRX), a profile without a
# power mode (the DRX control), and an override changed at run time (the settings cache hears
# of it).
. "$(dirname "$0")/lib.sh"

daemon_start
login

# Windows of 1.5 s keep the test short; the device stays quiet for 2 s, past them.
WINDOW=1500
QUIET=2000

dev_create() {   # dev_create NAME TOKEN BODY-EXTRA -> DEV_ID
    local out
    out=$(rest POST "/api/device?accessToken=$2" "{\"name\":\"$1\",\"type\":\"default\"$3}")
    [ "$(http_code)" = 200 ] || fail "create device $1: HTTP $(http_code): $out"
    DEV_ID=$(jq -r .id.id <<<"$out")
    DEV_JSON=$out
}

RUNS=0
run_device() {   # run_device MODE TOKEN DEVICE_ID
    RUNS=$((RUNS + 1))
    local out="$IT_TMP/device.$RUNS.log"
    log "scripted device: $1"
    timeout 60 python3 "$IT_DIR/psm_device.py" "$COAP_PORT" "$BASE_URL" "$JWT" "$2" "$3" "$1" \
        "$QUIET" >"$out" 2>&1
    local rc=$?
    cat "$out" >&2
    [ $rc = 0 ] || fail "scripted $1 device: $(grep -E 'FAIL|Error' "$out" | tail -n 1)"
}

# --- PSM, from the device's own deviceData (TB's CoapDeviceTransportConfiguration)
PSM_DATA="{\"configuration\":{\"type\":\"DEFAULT\"},\"transportConfiguration\":{\"type\":\"COAP\",\
\"powerMode\":\"PSM\",\"psmActivityTimer\":$WINDOW,\"edrxCycle\":null,\"pagingTransmissionWindow\":null}}"
dev_create psm-1 psmTok1 ",\"deviceData\":$PSM_DATA"
PSM_ID=$DEV_ID
assert_eq "$(jq -r .deviceData.transportConfiguration.powerMode <<<"$DEV_JSON")" PSM \
    "deviceData kept"
run_device psm psmTok1 "$PSM_ID"
log "ok: PSM device: nothing while asleep, one merged update and the RPC after its uplink"

# --- eDRX, from the profile's clientSettings
out=$(rest POST /api/deviceProfile "{\"name\":\"edrx-meters\",\"type\":\"DEFAULT\",\
\"transportType\":\"COAP\",\"profileData\":{\"transportConfiguration\":{\"type\":\"COAP\",\
\"clientSettings\":{\"powerMode\":\"E_DRX\",\"edrxCycle\":20000,\
\"pagingTransmissionWindow\":$WINDOW}}}}")
assert_eq "$(http_code)" 200 "create the eDRX profile"
EDRX_PROF=$(jq -r .id.id <<<"$out")
dev_create edrx-1 edrxTok1 ",\"deviceProfileId\":{\"entityType\":\"DEVICE_PROFILE\",\"id\":\"$EDRX_PROF\"}"
assert_eq "$(jq -r .type <<<"$DEV_JSON")" edrx-meters "device in the eDRX profile"
run_device edrx edrxTok1 "$DEV_ID"
log "ok: eDRX device: the first downlink after the window, the rest after its uplink"

# --- control: the default profile has no power mode (DRX behaviour): everything at once
dev_create drx-1 drxTok1 ""
run_device drx drxTok1 "$DEV_ID"

# --- the PSM device's override changed to DRX through REST: the next downlinks go at once
# (the settings cache was told; the device entry on the shard is still the one from above).
out=$(rest GET "/api/device/$PSM_ID")
body=$(jq -c '.deviceData.transportConfiguration.powerMode = "DRX"' <<<"$out")
rest POST /api/device "$body" >/dev/null
assert_eq "$(http_code)" 200 "save the PSM device as DRX"
run_device drx psmTok1 "$PSM_ID"
log "ok: a changed override applies at once"

it_pass
