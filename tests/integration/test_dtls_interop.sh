#!/usr/bin/env bash
# test_dtls_interop.sh — the DTLS interop matrix (reliability D7, issue #3 §5):
# coap-client-openssl and coap-client-gnutls with client keys P-256, P-384 and RSA-2048, each
# registered to its own device, must get 2.01 for a telemetry POST with AES-128-CCM-8 and with
# AES-128-GCM (the server offers one suite per round); `openssl s_client -dtls1_2`
# completes with ECDHE-ECDSA-AES128-CCM8 (RFC 7252's mandatory suite) and AES128-GCM, and
# `gnutls-cli --udp` completes; a restart with an RSA server key serves ECDHE-RSA-GCM; SIGHUP
# swaps the server certificate for new handshakes while a live session keeps working.
. "$(dirname "$0")/lib.sh"
need openssl; need coap-client-openssl; need coap-client-gnutls

coaps() {   # CLIENT METHOD PATH PAYLOAD [args...]: sets COAP_CODE
    local client=$1 method=$2 path=$3 payload=$4; shift 4
    timeout 20 "coap-client-$client" -v 7 -B 10 -m "$method" -t application/json -e "$payload" \
        "$@" "coaps://127.0.0.1:$COAPS_PORT$path" >"$IT_TMP/coaps.log" 2>&1
    COAP_CODE=$(grep -Eo 'process incoming [0-9]\.[0-9]{2} response' "$IT_TMP/coaps.log" \
        | tail -n 1 | awk '{print $3}')
    [ -n "$COAP_CODE" ] || COAP_CODE=none
}
# s_client_cipher CIPHER [args...] -> prints the negotiated cipher ("none" if no handshake)
s_client_cipher() {
    local c=$1; shift
    timeout 15 openssl s_client -dtls1_2 -connect "127.0.0.1:$COAPS_PORT" -cipher "$c" "$@" \
        </dev/null >"$IT_TMP/s_client.log" 2>&1
    local got
    got=$(grep -Eo 'Cipher is [A-Z0-9-]+' "$IT_TMP/s_client.log" | head -n 1 | awk '{print $3}')
    # The cipher is printed even when an alert ends the handshake after the last flight.
    grep -q 'SSL alert number' "$IT_TMP/s_client.log" && got=none
    echo "${got:-none}"
}

cd "$IT_TMP" || fail "no tmp dir"
daemon_start
login

# ---- client key types x libcoap builds -------------------------------------------------------------
openssl ecparam -out p256.key -name secp256r1 -genkey 2>/dev/null
openssl ecparam -out p384.key -name secp384r1 -genkey 2>/dev/null
openssl genrsa -out rsa.key 2048 2>/dev/null
for k in p256 p384 rsa; do
    openssl req -new -key "$k.key" -x509 -nodes -days 30 -out "$k.pem" -subj "/CN=dev-$k"
    device_create "dev-$k" "tok$k$RANDOM$RANDOM"
    [ "$k" = p256 ] && P256_DEV=$DEV_ID
    eval "DEV_$k=$DEV_ID"
    register_cert "$DEV_ID" "$k.pem"
done
# Every libcoap client x every client key x each of the two suite families. coap-client cannot
# choose a suite, so the server offers exactly one per round (--dtls-ciphers): a 2.01 proves
# that client, key and suite interoperate.
daemon_stop
for suite in ECDHE-ECDSA-AES128-CCM8 ECDHE-ECDSA-AES128-GCM-SHA256; do
    COAPHUB_DTLS_CIPHERS=$suite daemon_start
    for k in p256 p384 rsa; do
        for client in openssl gnutls; do
            coaps "$client" POST /api/v1/telemetry "{\"$client$suite\":1}" -c "$k.pem" -j "$k.key"
            [ "$COAP_CODE" = 2.01 ] || { tail -n 20 "$IT_TMP/coaps.log" >&2; fail "$client/$k/$suite: got $COAP_CODE"; }
            log "ok: coap-client-$client, $k client key, $suite -> 2.01"
        done
    done
    daemon_stop
done
daemon_start
login
for k in p256 p384 rsa; do
    eval "dev=\$DEV_$k"
    for client in openssl gnutls; do
        for suite in ECDHE-ECDSA-AES128-CCM8 ECDHE-ECDSA-AES128-GCM-SHA256; do
            n=$(ts_history "$dev" "$client$suite" | jq length)
            assert_eq "$n" 1 "dev-$k stored the $client/$suite point"
        done
    done
done

# ---- cipher suites with openssl s_client, with and without a client certificate ------------------
assert_eq "$(s_client_cipher ECDHE-ECDSA-AES128-CCM8 -cert p256.pem -key p256.key)" \
    ECDHE-ECDSA-AES128-CCM8 "s_client CCM-8 with a P-256 client certificate"
assert_eq "$(s_client_cipher ECDHE-ECDSA-AES128-GCM-SHA256 -cert p384.pem -key p384.key)" \
    ECDHE-ECDSA-AES128-GCM-SHA256 "s_client AES128-GCM with a P-384 client certificate"
assert_eq "$(s_client_cipher ECDHE-ECDSA-AES256-GCM-SHA384 -cert rsa.pem -key rsa.key)" \
    ECDHE-ECDSA-AES256-GCM-SHA384 "s_client AES256-GCM with an RSA client certificate"
assert_eq "$(s_client_cipher ECDHE-ECDSA-AES128-CCM8)" ECDHE-ECDSA-AES128-CCM8 \
    "s_client CCM-8 one-way"
# A CBC suite is not offered by the server: the handshake fails cleanly.
assert_eq "$(s_client_cipher ECDHE-ECDSA-AES128-SHA256)" none "CBC suites are refused"

if command -v gnutls-cli >/dev/null 2>&1; then
    for prio in "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-CIPHER-ALL:+AES-128-CCM-8" \
                "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-CIPHER-ALL:+AES-128-GCM"; do
        timeout 15 gnutls-cli --udp --insecure --priority "$prio" --port "$COAPS_PORT" \
            --x509certfile p256.pem --x509keyfile p256.key 127.0.0.1 </dev/null \
            >"$IT_TMP/gnutls.log" 2>&1
        grep -q 'Handshake was completed' "$IT_TMP/gnutls.log" \
            || { tail -n 20 "$IT_TMP/gnutls.log" >&2; fail "gnutls-cli --udp ($prio)"; }
        log "ok: gnutls-cli --udp $(grep -m1 -o 'Description: .*' "$IT_TMP/gnutls.log")"
    done
else
    log "SKIP: gnutls-cli not installed (Debian package gnutls-bin)"
fi

# ---- an RSA server key -----------------------------------------------------------------------------
daemon_stop
openssl req -new -newkey rsa:2048 -nodes -keyout srv-rsa.key -x509 -days 30 -out srv-rsa.pem \
    -subj "/CN=localhost" 2>/dev/null
COAPHUB_DTLS_CERT="$IT_TMP/srv-rsa.pem" COAPHUB_DTLS_KEY="$IT_TMP/srv-rsa.key" daemon_start
assert_eq "$(s_client_cipher ECDHE-RSA-AES128-GCM-SHA256 -cert p256.pem -key p256.key)" \
    ECDHE-RSA-AES128-GCM-SHA256 "RSA server key: ECDHE-RSA-AES128-GCM"
coaps openssl POST /api/v1/telemetry '{"rsa_server":1}' -c p256.pem -j p256.key -R srv-rsa.pem
assert_eq "$COAP_CODE" 2.01 "coap-client-openssl against an RSA server key (trusted with -R)"
coaps gnutls POST /api/v1/telemetry '{"rsa_server":2}' -c p256.pem -j p256.key
assert_eq "$COAP_CODE" 2.01 "coap-client-gnutls against an RSA server key"

# ---- SIGHUP reloads the server certificate for new handshakes; live sessions keep going ------
login
ATTR="/api/plugins/telemetry/DEVICE/$P256_DEV"
OBS="$IT_TMP/obs.out"
timeout 40 coap-client-openssl -v 7 -c p256.pem -j p256.key -m get -s 20 -B 25 -o "$OBS" \
    "coaps://127.0.0.1:$COAPS_PORT/api/v1/attributes" >"$OBS.log" 2>&1 &
IT_PIDS+=("$!")
wait_for_file_match "$OBS.log" 'process incoming 2\.05 response' 15 || fail "no observe registration"
openssl req -new -newkey rsa:2048 -nodes -keyout srv-rsa.key.new -x509 -days 30 \
    -out srv-rsa.pem.new -subj "/CN=reloaded" 2>/dev/null
mv srv-rsa.key.new srv-rsa.key
mv srv-rsa.pem.new srv-rsa.pem
kill -HUP "$DAEMON_PID"
wait_for_file_match "$IT_LOG" 'certificate reloaded' 10 || fail "SIGHUP did not reload"
timeout 15 openssl s_client -dtls1_2 -connect "127.0.0.1:$COAPS_PORT" </dev/null \
    >"$IT_TMP/s_client.log" 2>&1
grep -Eq 'subject=.*CN ?= ?reloaded' "$IT_TMP/s_client.log" \
    || fail "a new handshake after SIGHUP did not get the new certificate"
log "ok: SIGHUP -> new handshakes get the new server certificate"
rest POST "$ATTR/attributes/SHARED_SCOPE" '{"after_reload":7}' >/dev/null
wait_for_file_match "$OBS" '"after_reload": ?7' 10 \
    || fail "the live session did not survive the reload"
log "ok: a live DTLS session kept working across the reload"

it_pass
