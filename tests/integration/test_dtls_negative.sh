#!/usr/bin/env bash
# test_dtls_negative.sh — DTLS negative cases with the expected outcome asserted (issue #3 §5,
# reliability D1, A3, A5): expired and not-yet-valid client certificates fail the handshake
# with bad_certificate (and pass with the skip-validity option, as ThingsBoard allows); chain
# injection (an attacker's leaf with the victim's registered certificate appended) is never
# the victim; a ClientHello without a cookie gets one HelloVerifyRequest no larger than itself
# and nothing else (no per-peer state: no retransmission follows); junk gets no answer.
. "$(dirname "$0")/lib.sh"
need openssl; need coap-client-openssl

coaps() {   # CLIENT METHOD PATH PAYLOAD [args...]: sets COAP_CODE ("none": no response)
    local client=$1 method=$2 path=$3 payload=$4; shift 4
    timeout 20 "coap-client-$client" -v 7 -B 6 -m "$method" -t application/json -e "$payload" \
        "$@" "coaps://127.0.0.1:$COAPS_PORT$path" >"$IT_TMP/coaps.log" 2>&1
    COAP_CODE=$(grep -Eo 'process incoming [0-9]\.[0-9]{2} response' "$IT_TMP/coaps.log" \
        | tail -n 1 | awk '{print $3}')
    [ -n "$COAP_CODE" ] || COAP_CODE=none
}
# s_client_ok CERT KEY: 0 if `openssl s_client -dtls1_2` completes a handshake
s_client_ok() {
    timeout 15 openssl s_client -dtls1_2 -connect "127.0.0.1:$COAPS_PORT" -cert "$1" -key "$2" \
        </dev/null >"$IT_TMP/s_client.log" 2>&1
    # s_client prints the cipher even when the server's alert comes after its last flight.
    grep -Eq 'Cipher is ECDHE' "$IT_TMP/s_client.log" && ! grep -q 'SSL alert number' "$IT_TMP/s_client.log"
}

cd "$IT_TMP" || fail "no tmp dir"
# Certificates with chosen validity windows (the openssl CLI of Debian 12 cannot backdate).
# Any python3 with the cryptography package will do: Debian's (python3-cryptography, installed
# by scripts/install-deps.sh --test) or the one first on PATH.
PY_CRYPTO=python3
if ! python3 -c 'import cryptography' 2>/dev/null && [ -x /usr/bin/python3 ]; then
    PY_CRYPTO=/usr/bin/python3
fi
"$PY_CRYPTO" - <<'PY' || fail "cannot make test certificates"
import datetime as dt
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
now = dt.datetime.now(dt.timezone.utc)
def make(name, start, end, issuer=None):
    key = ec.generate_private_key(ec.SECP256R1())
    subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subj)
            .issuer_name(issuer or subj).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + start).not_valid_after(now + end)
            .sign(key, hashes.SHA256()))
    open(name + ".key", "wb").write(key.private_bytes(serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    open(name + ".pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
    return cert
d = dt.timedelta(days=1)
make("expired", -30 * d, -1 * d)
make("future", 2 * d, 30 * d)
victim = make("victim", -d, 30 * d)
make("attacker", -d, 30 * d, issuer=victim.subject)
PY
cat attacker.pem victim.pem >attacker-chain.pem

daemon_start
login
device_create expired-dev "tokExp$RANDOM$RANDOM"
register_cert "$DEV_ID" expired.pem
device_create future-dev "tokFut$RANDOM$RANDOM"
register_cert "$DEV_ID" future.pem
device_create victim "tokVic$RANDOM$RANDOM"
VICTIM=$DEV_ID
register_cert "$VICTIM" victim.pem

# ---- validity dates ---------------------------------------------------------------------------
for c in expired future; do
    s_client_ok "$c.pem" "$c.key" && fail "$c certificate: handshake completed"
    grep -qi 'alert bad certificate' "$IT_TMP/s_client.log" \
        || { tail -n 15 "$IT_TMP/s_client.log" >&2; fail "$c certificate: no bad_certificate alert"; }
    log "ok: $c certificate -> handshake fails with bad_certificate"
    coaps openssl POST /api/v1/telemetry '{"t":1}' -c "$c.pem" -j "$c.key"
    assert_eq "$COAP_CODE" none "$c certificate: no CoAP exchange"
done
s_client_ok victim.pem victim.key || fail "a valid certificate did not complete the handshake"

# ---- chain injection --------------------------------------------------------------------------
: >"$IT_TMP/before.log"
coaps openssl POST /api/v1/telemetry '{"stolen":1}' -c attacker-chain.pem -j attacker.key
log "attacker leaf + victim certificate -> $COAP_CODE"
[ "$COAP_CODE" = 2.01 ] && fail "chain injection authenticated as the victim"
grep -Eq 'session established .*2 client certificate\(s\), device 0\)' "$IT_LOG" \
    || log "note: the client did not send the appended certificate (libcoap build)"
# And the same chain through openssl s_client, which certainly sends it.
timeout 15 openssl s_client -dtls1_2 -connect "127.0.0.1:$COAPS_PORT" -cert attacker.pem \
    -key attacker.key -cert_chain victim.pem </dev/null >"$IT_TMP/s_client.log" 2>&1
grep -Eq 'session established .*2 client certificate\(s\), device 0\)' "$IT_LOG" \
    || fail "a 2-certificate chain with the victim appended was not seen as device 0"
assert_eq "$(ts_history "$VICTIM" stolen | jq length)" 0 "nothing stored as the victim"
log "ok: chain injection is not the victim"

# ---- stateless cookie exchange -----------------------------------------------------------------
metric() { curl -s --max-time 5 "$BASE_URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
COOKIES0=$(metric 'coaphub_dtls_handshakes_total{result="cookie_sent"}')
HIP0=$(metric coaphub_dtls_handshakes_in_progress)
SESS0=$(metric coaphub_dtls_sessions)
python3 - "$COAPS_PORT" <<'PY' || fail "cookie exchange check failed"
import os, socket, struct, sys, time
port = int(sys.argv[1])
body = struct.pack("!H", 0xfefd) + os.urandom(32) + b"\x00" + b"\x00" \
    + struct.pack("!H", 2) + b"\xc0\xae" + b"\x01\x00"
hs = bytes([1]) + len(body).to_bytes(3, "big") + b"\x00\x00" + b"\x00\x00\x00" \
    + len(body).to_bytes(3, "big") + body
rec = bytes([22, 0xfe, 0xfd]) + b"\x00" * 8 + struct.pack("!H", len(hs)) + hs
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(2)
s.sendto(rec, ("127.0.0.1", port))
r, _ = s.recvfrom(4096)
assert r[0] == 22 and r[13] == 3, "not a HelloVerifyRequest: %r" % r[:16]
assert len(r) <= len(rec), "HelloVerifyRequest %d > ClientHello %d" % (len(r), len(rec))
s.settimeout(2.5)      # a peer with state would retransmit its flight after ~1 s
try:
    extra, _ = s.recvfrom(4096)
    sys.exit("unexpected second datagram (state kept?): %r" % extra[:16])
except socket.timeout:
    pass
# Junk and non-handshake records from an unknown address: no answer at all.
for junk in (b"\x40\x01\x00\x01", b"\x17\xfe\xfd" + b"\x00" * 10 + b"\x00\x04abcd", os.urandom(80)):
    s.sendto(junk, ("127.0.0.1", port))
s.settimeout(1.0)
try:
    extra, _ = s.recvfrom(4096)
    sys.exit("junk was answered: %r" % extra[:16])
except socket.timeout:
    pass
print("hvr %d bytes for a %d-byte ClientHello" % (len(r), len(rec)))
PY
# The figures of reliability D1 (docs/RELIABILITY.md), printed, not asserted here.
COOKIES1=$(metric 'coaphub_dtls_handshakes_total{result="cookie_sent"}')
log "D1 figures: cookies sent +$((COOKIES1 - COOKIES0)), handshakes in progress" \
    "$HIP0 -> $(metric coaphub_dtls_handshakes_in_progress), sessions $SESS0 ->" \
    "$(metric coaphub_dtls_sessions)"
log "ok: ClientHello without cookie -> one HelloVerifyRequest, no state, junk ignored"

# ---- skip_validity_check_for_client_cert (ThingsBoard option) ---------------------------------------
daemon_stop
COAPHUB_DTLS_SKIP_VALIDITY_CHECK=true daemon_start
s_client_ok expired.pem expired.key || fail "skip-validity: expired certificate refused"
coaps openssl POST /api/v1/telemetry '{"old":1}' -c expired.pem -j expired.key
assert_eq "$COAP_CODE" 2.01 "skip-validity: expired registered certificate posts"

it_pass
