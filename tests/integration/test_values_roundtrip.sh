#!/usr/bin/env bash
# test_values_roundtrip.sh — issue 12's property: random values (bools, longs with their edge
# values, doubles that look like integers, exponent forms, strings with escapes and unicode,
# nested JSON) stored through CoAP and through REST read back identically through CoAP
# (attribute GET, Observe notification), REST (attribute list, latest time series typed and
# as text) and the web UI's events, as ThingsBoard's typing rules predict (spec §5, §8.5).
# The work is in values_prop.py; it prints its seed (VALUES_PROP_SEED reruns one) and fails
# when it proves nothing.
. "$(dirname "$0")/lib.sh"

daemon_start
login
device_create "values-prop" valuesTok1

COAP_PORT=$COAP_PORT BASE_URL=$BASE_URL JWT=$JWT DEV_ID=$DEV_ID DEV_TOKEN=valuesTok1 \
    timeout 400 python3 "$IT_DIR/values_prop.py" >"$IT_TMP/prop.out" 2>&1
rc=$?
cat "$IT_TMP/prop.out" >&2
[ "$rc" -eq 0 ] || fail "values round trip failed (rc=$rc)"
log "ok: $(grep -E '^values_prop: (checked|PASS)' "$IT_TMP/prop.out" | tr '\n' ' ')"

it_pass
