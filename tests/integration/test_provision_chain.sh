#!/usr/bin/env bash
# test_provision_chain.sh — X.509 certificate-chain provisioning over CoAP/DTLS (spec §6.5),
# which ThingsBoard does only for MQTT and without checking signatures. A PKI made here with
# the openssl CLI (a root CA, an intermediate, leaves); a profile holding the root CA and a CN
# pattern, made over REST. Provisioned on the first handshake, and that first request served:
# a leaf the CA signed directly, and a leaf signed by the intermediate that the client sends
# as a chain (coap-client-openssl -c leaf+intermediate). Refused (4.01 as for any unknown
# certificate, no device made, a log line saying why): a leaf of another CA, a leaf of a CA
# that only copies the real one's name (the signature is what counts), a CN the pattern does
# not match, an expired leaf (the handshake fails), a profile that does not allow creating
# devices, and any new leaf once the CA is taken out of the profile.
. "$(dirname "$0")/lib.sh"
need openssl; need coap-client-openssl; need coap-client-gnutls

cd "$IT_TMP" || fail "no tmp dir"
daemon_start
login

# ---- the PKI ---------------------------------------------------------------------------------------
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' >ca.ext
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' >leaf.ext
ca() {  # ca NAME CN: a self-signed CA
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
    openssl req -x509 -new -key "$1.key" -sha256 -days 30 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.pem" 2>/dev/null || fail "cannot make CA $1"
}
signed() {  # signed NAME CN ISSUER EXTFILE: a key and a certificate ISSUER signed
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 30 \
        -sha256 -extfile "$4" -out "$1.pem" 2>/dev/null || fail "cannot sign $1"
}
ca root "Fleet Root CA"
signed int "Fleet Intermediate" root ca.ext
signed dev1 "dev-001" root leaf.ext
signed dev2 "dev-002" int leaf.ext
cat dev2.pem int.pem >dev2-chain.pem
openssl verify -CAfile root.pem -untrusted int.pem dev2.pem >/dev/null || fail "test PKI broken"
ca other "Other CA"
signed dev3 "dev-003" other leaf.ext
ca forged "Fleet Root CA"          # the real root's name, another key
signed dev4 "dev-004" forged leaf.ext
signed sensor "sensor-9" root leaf.ext
signed dev6 "dev-006" root leaf.ext
signed dev8 "dev-008" root leaf.ext
# An expired leaf signed by the root (the openssl CLI of Debian 12 cannot backdate).
PY_CRYPTO=python3
if ! python3 -c 'import cryptography' 2>/dev/null && [ -x /usr/bin/python3 ]; then
    PY_CRYPTO=/usr/bin/python3
fi
"$PY_CRYPTO" - <<'PY' || fail "cannot make the expired certificate"
import datetime as dt
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
now = dt.datetime.now(dt.timezone.utc)
ca_key = serialization.load_pem_private_key(open("root.key", "rb").read(), None)
ca = x509.load_pem_x509_certificate(open("root.pem", "rb").read())
key = ec.generate_private_key(ec.SECP256R1())
cert = (x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-005")]))
        .issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now - dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .sign(ca_key, hashes.SHA256()))
open("dev5.key", "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
open("dev5.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
PY

# ---- helpers -------------------------------------------------------------------------------------
# chain_profile NAME CA_PEM PATTERN ALLOW -> PROFILE_ID, PROFILE_JSON
chain_profile() {
    local body
    body=$(jq -nc --arg n "$1" --rawfile ca "$2" --arg re "$3" --argjson allow "$4" '{
        name: $n, type: "DEFAULT", transportType: "DEFAULT", provisionType: "X509_CERTIFICATE_CHAIN",
        profileData: {configuration: {type: "DEFAULT"}, transportConfiguration: {type: "DEFAULT"},
            provisionConfiguration: {type: "X509_CERTIFICATE_CHAIN", provisionDeviceSecret: $ca,
                certificateRegExPattern: $re, allowCreateNewDevicesByX509Certificate: $allow}}}')
    PROFILE_JSON=$(rest POST /api/deviceProfile "$body")
    [ "$(http_code)" = 200 ] || fail "create profile $1: HTTP $(http_code): $PROFILE_JSON"
    PROFILE_ID=$(jq -r .id.id <<<"$PROFILE_JSON")
}
# post CERT KEY VALUE [CLIENT]: telemetry {"t":VALUE} over DTLS with that certificate (client
# openssl by default, which sends only the first certificate of its -c file; gnutls sends the
# whole file as the chain); sets COAP_CODE
post() {
    timeout 20 "coap-client-${4:-openssl}" -v 7 -B 8 -c "$1" -j "$2" -m POST -t application/json \
        -e "{\"t\":$3}" "coaps://127.0.0.1:$COAPS_PORT/api/v1/telemetry" >post.log 2>&1
    COAP_CODE=$(grep -Eo 'process incoming [0-9]\.[0-9]{2} response' post.log | tail -n 1 \
        | awk '{print $3}')
    [ -n "$COAP_CODE" ] || COAP_CODE=none
}
device_id() {  # device_id NAME -> id, or "" when there is no such device
    local out
    out=$(rest GET "/api/tenant/devices?deviceName=$1")
    [ "$(http_code)" = 200 ] && jq -r .id.id <<<"$out"
}
t_values() { ts_history "$1" t | jq -r '.[].value' | tr '\n' ' '; }
refused() {  # refused CERT KEY NAME WHY_REGEX [CODE]: not provisioned, and the log says why
    post "$1" "$2" 99
    assert_eq "$COAP_CODE" "${5:-4.01}" "$3: refused"
    assert_eq "$(device_id "$3")" "" "$3: no device created"
    if [ -n "$4" ]; then
        wait_for_file_match "$IT_LOG" "$4" 5 || fail "$3: no log line matching /$4/"
        log "ok: $3: the log says why"
    fi
}

# ---- the profile ---------------------------------------------------------------------------------
chain_profile fleet root.pem '(dev-[0-9]+)' true
FLEET=$PROFILE_ID
FLEET_JSON=$PROFILE_JSON
# ThingsBoard keeps the CA's credential hash as the profile's provision key.
assert_eq "$(jq -r .provisionDeviceKey <<<"$FLEET_JSON")" \
    "$(grep -v -- ----- root.pem | tr -d '\n' | openssl dgst -sha3-256 | awk '{print $NF}')" \
    "provisionDeviceKey = SHA3-256 of the CA"

# A leaf the CA signed: created on its first handshake, its first request stored.
post dev1.pem dev1.key 1
assert_eq "$COAP_CODE" 2.01 "dev-001: first request served"
D1=$(device_id dev-001)
[ -n "$D1" ] || fail "dev-001 was not created"
assert_eq "$(t_values "$D1")" "1 " "dev-001: first point stored"
CRED=$(rest GET "/api/device/$D1/credentials")
assert_eq "$(jq -r .credentialsType <<<"$CRED")" X509_CERTIFICATE "dev-001: X.509 credentials"
assert_eq "$(jq -r .credentialsValue <<<"$CRED")" "$(grep -v -- ----- dev1.pem | tr -d '\n')" \
    "dev-001: bound to its leaf certificate"
assert_eq "$(rest GET "/api/device/$D1" | jq -r .deviceProfileId.id)" "$FLEET" "dev-001: in the profile"
# Later handshakes take the plain path (a known certificate).
post dev1.pem dev1.key 2
assert_eq "$COAP_CODE" 2.01 "dev-001: second session"
assert_eq "$(t_values "$D1")" "1 2 " "dev-001: second point stored"
assert_eq "$(grep -c 'created by X.509 chain provisioning' "$IT_LOG")" 1 "created once"

# A leaf signed by the intermediate, the client sending leaf + intermediate.
post dev2-chain.pem dev2.key 3 gnutls
assert_eq "$COAP_CODE" 2.01 "dev-002 (via intermediate): first request served"
D2=$(device_id dev-002)
[ -n "$D2" ] || fail "dev-002 was not created"
assert_eq "$(t_values "$D2")" "3 " "dev-002: first point stored"
# Four intermediates are accepted, five are not (PROVISION_CHAIN_MAX_INTERMEDIATES).
signed i1 "Fleet Sub 1" root ca.ext
for k in 2 3 4 5; do signed "i$k" "Fleet Sub $k" "i$((k - 1))" ca.ext; done
signed dev41 "dev-041" i4 leaf.ext
signed dev51 "dev-051" i5 leaf.ext
cat dev41.pem i4.pem i3.pem i2.pem i1.pem >dev41-chain.pem
cat dev51.pem i5.pem i4.pem i3.pem i2.pem i1.pem >dev51-chain.pem
post dev41-chain.pem dev41.key 41 gnutls
assert_eq "$COAP_CODE" 2.01 "dev-041 (four intermediates): first request served"
[ -n "$(device_id dev-041)" ] || fail "dev-041 was not created"
post dev51-chain.pem dev51.key 51 gnutls
assert_eq "$COAP_CODE" 4.01 "dev-051 (five intermediates): refused"
assert_eq "$(device_id dev-051)" "" "dev-051: no device created"
wait_for_file_match "$IT_LOG" 'certificate refused: 5 certificates above the leaf' 5 \
    || fail "dev-051: no log line saying why"
log "ok: dev-051: the log says why"
# ... without the intermediate the chain does not reach the CA (its issuer is no CA of a
# profile: as cheap as any unknown certificate, so nothing to log).
signed dev7 "dev-007" int leaf.ext
refused dev7.pem dev7.key dev-007 ""

# ---- refusals ----------------------------------------------------------------------------------------
refused dev3.pem dev3.key dev-003 ""                       # another CA: not even a candidate
refused dev4.pem dev4.key dev-004 'certificate refused: chain not valid'   # forged CA name
refused sensor.pem sensor.key sensor-9 'CN "sensor-9" does not match'
refused dev5.pem dev5.key dev-005 "" none                 # expired: the handshake fails

# allowCreateNewDevicesByX509Certificate false: known names only.
chain_profile closed other.pem '(dev-[0-9]+)' false
refused dev3.pem dev3.key dev-003 'allowCreateNewDevicesByX509Certificate is off'

# ---- revoking the CA stops provisioning at once ----------------------------------------------
post dev6.pem dev6.key 6
assert_eq "$COAP_CODE" 2.01 "dev-006 provisioned before the revocation"
rest POST /api/deviceProfile "$(jq -c '.provisionType="DISABLED"
    | .provisionDeviceKey=null
    | .profileData.provisionConfiguration={type: "DISABLED", provisionDeviceSecret: null}' \
    <<<"$FLEET_JSON")" >/dev/null
assert_eq "$(http_code)" 200 "profile updated: provisioning off"
assert_eq "$(rest GET "/api/deviceProfile/$FLEET" | jq -r .provisionType)" DISABLED \
    "the fleet profile no longer provisions"
refused dev8.pem dev8.key dev-008 ""
# Devices provisioned before keep working: they are ordinary X.509 devices now.
post dev1.pem dev1.key 4
assert_eq "$COAP_CODE" 2.01 "dev-001 still posts after the revocation"

it_pass
