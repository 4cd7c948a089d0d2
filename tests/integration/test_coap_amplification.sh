#!/usr/bin/env bash
# test_coap_amplification.sh — reliability.md C6 (RFC 7252 §11.3, RFC 9175, RFC 7641 §7):
# over plain UDP, every reply to an address that has not proven it receives at its claimed
# address is at most 3x the request that caused it, and the full reply follows a proof.
#   1. coap_amp.py, raw datagrams from fresh loopback addresses: unknown token (4.01, empty),
#      /.well-known/core, a 3 KB shared attribute set block by block (Block2 at a small SZX
#      with an Echo option), malformed requests, a short datagram reusing a MID (no replay),
#      an Observe registration and a large update (CON, one in flight, block 0 only; after
#      the ACK the next one is full size), then the GET carrying the Echo value (full reply).
#   2. coap-client-notls (libcoap 4.3.1, which knows nothing of the guard) GETs the same
#      attribute set from another unverified address and gets the complete JSON.
# The measured figures are printed for docs/RELIABILITY.md.
. "$(dirname "$0")/lib.sh"

metric() { curl -s --max-time 5 "$BASE_URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

need coap-client-notls
daemon_start
login
device_create "amp-1" ampTok01

# 3 KB of shared attributes (60 keys x ~50 B).
attrs=$(python3 -c 'import json; print(json.dumps({"shared_%02d" % i: "v" * 40 for i in range(60)}))')
rest POST "/api/plugins/telemetry/DEVICE/$DEV_ID/attributes/SHARED_SCOPE" "$attrs" >/dev/null
[ "$(http_code)" = 200 ] || fail "set shared attributes: HTTP $(http_code)"
want=$(jq -cS '{shared: .}' <<<"$attrs")

rc=0
out=$(timeout 120 python3 "$IT_DIR/coap_amp.py" "$COAP_PORT" ampTok01 "$BASE_URL" "$JWT" \
    "$DEV_ID") || rc=$?
j() { jq -c "$1" <<<"$out"; }
[ -n "$out" ] || fail "coap_amp.py printed nothing (rc $rc)"
log "replies measured (what, request B, reply B): $(j '.rows')"
log "failures: $(j .failures)"
[ "$rc" = 0 ] || fail "coap_amp.py: $(j .failures)"
got=$(jq -cS '.attributes_json | {shared: .shared}' <<<"$out")
assert_eq "$got" "$want" "unverified block-by-block GET: the whole attribute set"
assert_eq "$(j .mid_replay_replies)" 0 "a short datagram reusing a MID gets no replay"
assert_eq "$(j .echo_len)" 8 "shortened replies carry an 8-byte Echo value"

# 2. libcoap 4.3.1 from an unverified address: Block2 transparently.
before=$(metric 'coaphub_coap_amplification_limited_total{action="block2"}')
coap_expect 2.05 get "/api/v1/ampTok01/attributes" \
    -- -a 127.0.0.5
after=$(metric 'coaphub_coap_amplification_limited_total{action="block2"}')
assert_eq "$(jq -cS '{shared: (.shared | with_entries(select(.key | startswith("shared_"))))}' \
    <<<"$COAP_BODY")" "$want" \
    "coap-client-notls from an unverified address: complete, correct JSON"
[ "$after" -gt "$before" ] || fail "coap-client's GET did not go through the guard"
blocks=$(grep -c 'process incoming 2.05 response' "$IT_TMP/coap.log" || true)
log "coap-client-notls: $blocks blocks of 2.05 for ${#COAP_BODY} bytes; limited replies $before -> $after"

m() { metric "$1"; }
log "metrics: block2=$(m 'coaphub_coap_amplification_limited_total{action="block2"}')" \
    "echo_401=$(m 'coaphub_coap_amplification_limited_total{action="echo_401"}')" \
    "trim=$(m 'coaphub_coap_amplification_limited_total{action="trim"}')" \
    "drop=$(m 'coaphub_coap_amplification_limited_total{action="drop"}')" \
    "verified_echo=$(m 'coaphub_coap_amplification_verified_total{by="echo"}')" \
    "verified_ack=$(m 'coaphub_coap_amplification_verified_total{by="ack"}')" \
    "verified_now=$(m coaphub_coap_amplification_verified_addresses)"
[ "$(m 'coaphub_coap_amplification_verified_total{by="echo"}')" -ge 1 ] || fail "no Echo verification counted"
[ "$(m 'coaphub_coap_amplification_verified_total{by="ack"}')" -ge 1 ] || fail "no ACK verification counted"

printf 'C6 figures: worst unverified reply %s (request %s B, reply %s B, ratio %s); largest unverified reply %s B; after Echo: request %s B -> reply %s B; verified notification %s B\n' \
    "$(j .worst.what)" "$(j .worst.request)" "$(j .worst.reply)" "$(j .worst.ratio)" \
    "$(j .largest_limited_reply)" "$(j .echo_request_bytes)" "$(j .echo_reply_bytes)" \
    "$(j .verified_notification_bytes)"
it_pass
