#!/usr/bin/env bash
# test_dtls_cert_policy.sh — client certificate policies of issue #17.
# 1. Sessions of a certificate that names no device: as with ThingsBoard the handshake
# completes and a token in the path works, but such a session is closed after
# --dtls-unknown-cert-inactivity-ms without traffic (2 s here) while it observes.
# 2. RSA client key sizes (--dtls-min-rsa-bits). By default a
# device whose registered certificate has an RSA-1024 key connects, as with ThingsBoard
# (its DTLS stack takes any key size); with --dtls-min-rsa-bits 2048 the same device's
# handshake fails (bad_certificate, one debug line naming the size) while RSA-2048 and EC
# devices keep working. The client is coap-client-openssl; Debian's OpenSSL refuses to even
# load a 1024-bit key at its default security level 2, so the clients run with level 0.
. "$(dirname "$0")/lib.sh"
need openssl; need coap-client-openssl

cd "$IT_TMP" || fail "no tmp dir"
cat >client-openssl.cnf <<'CNF'
openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
CipherString = DEFAULT:@SECLEVEL=0
CNF
export COAPHUB_DTLS_UNKNOWN_CERT_INACTIVITY_MS=2000
daemon_start
login
metric() {   # NAME_WITH_LABELS -> its value from GET /metrics (0 when absent)
    local v
    v=$(curl -s --max-time 5 "$BASE_URL/metrics" | awk -v m="$1" '$1 == m {print $2}')
    echo "${v:-0}"
}

# 1. An unknown self-signed certificate with a token in the path.
device_create "token-dev" "tokenDev$RANDOM"
TOK=$(rest GET "/api/device/$DEV_ID/credentials" | jq -r .credentialsId)
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout stranger.key \
    -x509 -days 30 -out stranger.pem -subj "/CN=stranger" 2>/dev/null
timeout 20 coap-client-openssl -v 7 -B 5 -m POST -t application/json -e '{"s":1}' \
    -c stranger.pem -j stranger.key "coaps://127.0.0.1:$COAPS_PORT/api/v1/$TOK/telemetry" \
    >stranger-post.log 2>&1
grep -Eq 'process incoming 2\.01 response' stranger-post.log \
    || { tail -n 5 stranger-post.log >&2; fail "unknown certificate + token: no 2.01"; }
log "ok: an unknown certificate with a token in the path posts (as ThingsBoard)"
# It observes its attributes for up to 8 s, sending nothing: the server closes it at ~2 s.
timeout 20 coap-client-openssl -v 7 -B 8 -s 8 -m GET -c stranger.pem -j stranger.key \
    "coaps://127.0.0.1:$COAPS_PORT/api/v1/$TOK/attributes" >stranger-obs.log 2>&1 &
OBS=$!
IT_PIDS+=("$OBS")
for _ in $(seq 1 60); do
    [ "$(metric 'coaphub_dtls_sessions_closed_total{reason="idle_unknown_cert"}')" = 1 ] && break
    sleep 0.1
done
assert_eq "$(metric 'coaphub_dtls_sessions_closed_total{reason="idle_unknown_cert"}')" 1 \
    "unknown-certificate sessions closed after 2 s idle"
assert_eq "$(metric 'coaphub_dtls_sessions_closed_total{reason="idle"}')" 0 "other sessions closed idle"
wait "$OBS"
unset COAPHUB_DTLS_UNKNOWN_CERT_INACTIVITY_MS

# 2. RSA key sizes.

# make_dev NAME KEYGEN_ARGS...: a device with a new self-signed certificate NAME.pem/NAME.key.
make_dev() {
    local name=$1; shift
    openssl req -new "$@" -nodes -keyout "$name.key" -x509 -days 30 -out "$name.pem" \
        -subj "/CN=$name" 2>/dev/null || fail "openssl: no $name certificate"
    device_create "$name" "${name}Tok$RANDOM"
    register_cert "$DEV_ID" "$name.pem"
}
make_dev rsa1024 -newkey rsa:1024
make_dev rsa2048 -newkey rsa:2048
make_dev ec256 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1

# post NAME N: a telemetry POST with NAME's certificate; true on 2.01.
post() {
    OPENSSL_CONF="$IT_TMP/client-openssl.cnf" timeout 20 coap-client-openssl -v 7 -B 5 -m POST \
        -t application/json -e "{\"n\":$2}" -c "$1.pem" -j "$1.key" \
        "coaps://127.0.0.1:$COAPS_PORT/api/v1/telemetry" >"$1-$2.log" 2>&1
    grep -Eq 'process incoming 2\.01 response' "$1-$2.log"
}
for d in rsa1024 rsa2048 ec256; do
    post "$d" 1 || { tail -n 5 "$d-1.log" >&2; fail "$d: no 2.01 with the default (any RSA size)"; }
done
log "ok: RSA-1024, RSA-2048 and EC P-256 devices connect by default"
daemon_stop

COAPHUB_DTLS_MIN_RSA_BITS=2048 daemon_start
if post rsa1024 2; then fail "an RSA-1024 device got 2.01 with --dtls-min-rsa-bits 2048"; fi
grep -q 'RSA key of 1024 bits' "$IT_LOG" || fail "no log line for the refused RSA-1024 key"
log "ok: the RSA-1024 device is refused with --dtls-min-rsa-bits 2048"
post rsa2048 2 || fail "rsa2048: no 2.01 with --dtls-min-rsa-bits 2048"
post ec256 2 || fail "ec256: no 2.01 with --dtls-min-rsa-bits 2048"
log "ok: RSA-2048 and EC devices still connect"
it_pass
