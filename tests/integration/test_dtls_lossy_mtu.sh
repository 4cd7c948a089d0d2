#!/usr/bin/env bash
# test_dtls_lossy_mtu.sh — reliability.md D6 (CI tier): DTLS handshakes with a three-certificate
# client chain through a link with MTU 576, 10 % loss each way and reordering.
#
# The link is lossy_mtu_relay.py (netem needs privileges CI does not have). The device's leaf is
# signed by a second intermediate (root -> int1 -> int2 -> leaf); coap-client-gnutls sends the
# whole -c file, so every handshake carries leaf + int2 + int1 (libcoap's OpenSSL client would
# send only the leaf). The server runs with --dtls-mtu 576 and the default 1 s retransmission
# timer. 50 handshakes, each followed by one telemetry POST (a key of its own), 5 at a time,
# each device bounded to 60 s in attempts of at most 20 s (coap-client's own DTLS and CoAP
# retransmissions; a handshake the client gives up, or a POST left unanswered for 20 s, is started
# again within those 60 s and counted). Pass: >= 99 % of the 50 finish with 2.01 within 60 s (50 x 0.99 =
# 49.5, rounded up to all 50: one failure already fails the row), every point stored, the
# server retransmitted flights on its own timer, and no datagram from the server was larger
# than 548 bytes (576 - 20 IPv4 - 8 UDP).
. "$(dirname "$0")/lib.sh"
need openssl; need coap-client-gnutls; need python3; need jq

N=50
PAR=5
ATTEMPT_S=20   # one attempt's bound: handshake + POST (slowest seen: 11.4 s)
cd "$IT_TMP" || fail "no tmp dir"
DAEMON_ARGS=(--dtls-mtu 576)
daemon_start
login

# ---- a three-certificate chain ------------------------------------------------------------------
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >ca.ext
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >leaf.ext
openssl ecparam -name prime256v1 -genkey -noout -out root.key 2>/dev/null
openssl req -x509 -new -key root.key -sha256 -days 30 -subj "/CN=D6 Root CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out root.pem 2>/dev/null || fail "cannot make the root CA"
signed() {  # signed NAME CN ISSUER EXTFILE
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 30 \
        -sha256 -extfile "$4" -out "$1.pem" 2>/dev/null || fail "cannot sign $1"
}
signed int1 "D6 Intermediate 1" root ca.ext
signed int2 "D6 Intermediate 2" int1 ca.ext
signed leaf "d6-device" int2 leaf.ext
cat leaf.pem int2.pem int1.pem >chain.pem
assert_eq "$(grep -c 'BEGIN CERTIFICATE' chain.pem)" 3 "the client sends three certificates"
openssl verify -CAfile root.pem -untrusted int1.pem -untrusted int2.pem leaf.pem >/dev/null ||
    fail "test PKI broken"
device_create d6-device "d6-token-$RANDOM"
DEV=$DEV_ID
register_cert "$DEV" leaf.pem

# ---- the link ------------------------------------------------------------------------------------
python3 "$IT_DIR/lossy_mtu_relay.py" "$COAPS_PORT" relay.port relay.json relay.stop 576 150 \
    2>relay.err &
RELAY_PID=$!
IT_PIDS+=("$RELAY_PID")
for _ in $(seq 1 50); do [ -s relay.port ] && break; sleep 0.1; done
[ -s relay.port ] || fail "the relay did not start"
RELAY_PORT=$(cat relay.port)

# ---- 50 handshakes + POSTs, PAR at a time ---------------------------------------------------------
# one I: device I's handshake and POST of {"hI":I}; writes hI.res = "CODE SECONDS ATTEMPTS".
# libcoap's client gives a handshake up after 4 DTLS timeouts of its own (max_retransmit, not
# settable from coap-client); a device then starts a new handshake, as a real one would, as
# long as its 60 s last. The row's figure is the device's time to a stored point.
one() {
    local t0 now left try code="" n=0
    t0=$(date +%s.%N)
    while :; do
        now=$(date +%s.%N)
        left=$(awk -v a="$t0" -v b="$now" 'BEGIN {printf "%d", 60 - (b - a)}')
        [ "$left" -ge 2 ] || break
        n=$((n + 1))
        # At most ATTEMPT_S per attempt: libcoap's own CON retransmission of the POST runs up to
        # 93 s (RFC 7252 defaults), longer than the device's 60 s, so one POST whose 5
        # transmissions or answers all fall into the 10 % loss (0.19^5, ~1 device in 80 runs)
        # ended the device; a real device gives up on its request and starts again.
        try=$(( left < ATTEMPT_S ? left : ATTEMPT_S ))
        timeout "$try" coap-client-gnutls -v 7 -B "$try" -c chain.pem -j leaf.key -m POST \
            -t application/json -e "{\"h$1\":$1}" \
            "coaps://127.0.0.1:$RELAY_PORT/api/v1/telemetry" >"h$1.$n.log" 2>&1
        code=$(grep -Eo 'process incoming [0-9]\.[0-9]{2} response' "h$1.$n.log" | tail -n 1 |
            awk '{print $3}')
        [ -z "$code" ] || break
    done
    now=$(date +%s.%N)
    echo "${code:-none} $(awk -v a="$t0" -v b="$now" 'BEGIN {printf "%.2f", b - a}') $n" >"h$1.res"
}
T0=$(date +%s)
export RELAY_PORT ATTEMPT_S
export -f one
seq 1 "$N" | timeout 300 xargs -P "$PAR" -I{} bash -c 'one {}' ||
    log "some clients failed (counted below)"
T1=$(date +%s)
touch relay.stop
wait "$RELAY_PID"
[ -s relay.json ] || fail "the relay wrote no stats: $(cat relay.err)"

OK=$(cat h*.res | awk '$1 == "2.01" && $2 <= 60' | wc -l)
SLOWEST=$(cat h*.res | awk '$1 == "2.01" {print $2}' | sort -n | tail -n 1)
MEDIAN=$(cat h*.res | awk '$1 == "2.01" {print $2}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
RETRIES=$(cat h*.res | awk '{s += $3 - 1} END {print s + 0}')
log "figures: $OK/$N devices 2.01 within 60 s in $((T1 - T0)) s; per device median ${MEDIAN:-?} s," \
    "slowest ${SLOWEST:-?} s; $RETRIES attempts started again (a handshake the client gave up, or no answer within ${ATTEMPT_S} s);" \
    "relay $(cat relay.json)"
for f in h*.res; do
    read -r c _ <"$f"
    [ "$c" = 2.01 ] || { log "${f%.res}: $(cat "$f")"; tail -n 15 "${f%.res}".*.log >&2; }
done
assert_eq "$OK" "$N" "devices with a handshake + POST 2.01 within 60 s (>= 99 %, rounded up)"
KEYS=$(rest GET "/api/plugins/telemetry/DEVICE/$DEV/keys/timeseries" | jq 'length')
assert_eq "$KEYS" "$N" "every POST stored"
R=relay.json
[ "$(jq .clients $R)" -ge "$N" ] || fail "only $(jq .clients $R) clients went through the relay"
[ "$(jq .to_server.dropped $R)" -gt 0 ] && [ "$(jq .to_client.dropped $R)" -gt 0 ] ||
    fail "the relay dropped nothing"
[ "$(jq .to_client.reordered $R)" -gt 0 ] || fail "the relay reordered nothing"
[ "$(jq .timer_retransmissions $R)" -gt 0 ] ||
    fail "the server never retransmitted a flight on its own timer"
log "ok: server retransmitted $(jq .timer_retransmissions $R) handshake fragments on its timer"
assert_eq "$(jq .server_over_budget $R)" 0 \
    "server datagrams over 548 bytes: none (largest $(jq .server_max $R))"
it_pass
