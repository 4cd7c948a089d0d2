#!/usr/bin/env bash
# test_dtls_flood.sh — a flood of 5000 cookie-less ClientHellos from many 127.x.y.z source
# addresses while 20 real devices connect over DTLS (reliability D2, issue #3 §5): every real
# device must get its 2.01, the daemon's memory must stay flat (no per-source state before a
# valid cookie), and every reply to the flood must be a HelloVerifyRequest no larger than the
# ClientHello it answers.
. "$(dirname "$0")/lib.sh"
need openssl; need coap-client-openssl

cd "$IT_TMP" || fail "no tmp dir"
# ASan's quarantine holds freed memory back for a while; keep it small so RSS means something.
export ASAN_OPTIONS="${ASAN_OPTIONS}:quarantine_size_mb=4"
daemon_start
login

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status"; }
metric() {   # NAME_WITH_LABELS -> its value from GET /metrics
    curl -s --max-time 5 "$BASE_URL/metrics" | awk -v m="$1" '$1 == m {print $2}'
}

# flood OUTFILE COUNT: cookie-less ClientHellos from random 127/8 sources; every 25th socket
# waits for its answer, which must be a HelloVerifyRequest no larger than the ClientHello.
flood() {
    python3 - "$COAPS_PORT" "$2" >"$1" 2>&1 <<'PY'
import os, random, socket, struct, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
def hello():
    body = struct.pack("!H", 0xfefd) + os.urandom(32) + b"\x00" + b"\x00" \
        + struct.pack("!H", 4) + b"\xc0\xae\xc0\x2b" + b"\x01\x00"
    hs = bytes([1]) + len(body).to_bytes(3, "big") + b"\x00\x00" + b"\x00\x00\x00" \
        + len(body).to_bytes(3, "big") + body
    return bytes([22, 0xfe, 0xfd]) + b"\x00" * 8 + struct.pack("!H", len(hs)) + hs
sent = answered = bad = 0
kept = []
for i in range(count):
    src = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(0, 255), random.randint(1, 254))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    h = hello()
    s.sendto(h, ("127.0.0.1", port))
    sent += 1
    if i % 25 == 0:
        kept.append((s, len(h)))
    else:
        s.close()
import select, time
deadline = time.monotonic() + 5      # one bound for all sampled answers
waiting = {s: n for s, n in kept}
while waiting and time.monotonic() < deadline:
    ready, _, _ = select.select(list(waiting), [], [], max(0.0, deadline - time.monotonic()))
    for s in ready:
        r = s.recv(4096)
        answered += 1
        if r[0] != 22 or r[13] != 3 or len(r) > waiting[s]:
            bad += 1
        del waiting[s]
for s, _ in kept:
    s.close()
print("sent %d sampled %d answered %d bad %d" % (sent, len(kept), answered, bad))
sys.exit(1 if bad else 0)
PY
}

N=20
for i in $(seq 1 $N); do
    device_create "flood-dev-$i" "floodTok${i}x$RANDOM"
    TOKENS[$i]=$(rest GET "/api/device/$DEV_ID/credentials" | jq -r .credentialsId)
    IDS[$i]=$DEV_ID
done
# Half of the devices authenticate with a certificate, half with a token over one-way DTLS.
for i in $(seq 1 $((N / 2))); do
    openssl ecparam -out "k$i.pem" -name secp256r1 -genkey 2>/dev/null
    openssl req -new -key "k$i.pem" -x509 -nodes -days 30 -out "c$i.pem" -subj "/CN=flood-$i"
    register_cert "${IDS[$i]}" "c$i.pem"
done

# Warm up: the first handshake and a first flood let OpenSSL, malloc and ASan's quarantine
# reach their steady state; only growth after that would be state kept per source.
timeout 20 coap-client-openssl -B 8 -m POST -e '{"warm":1}' \
    "coaps://127.0.0.1:$COAPS_PORT/api/v1/${TOKENS[$N]}/telemetry" >/dev/null 2>&1
flood "$IT_TMP/flood0.out" 2000 || fail "warm-up flood: $(cat "$IT_TMP/flood0.out")"
grep -q 'answered [1-9]' "$IT_TMP/flood0.out" \
    || fail "no HelloVerifyRequest on --coaps-port $COAPS_PORT (is DTLS wired in?)"
sleep 0.5
RSS0=$(rss_kb)
COOKIES0=$(metric 'coaphub_dtls_handshakes_total{result="cookie_sent"}')

# Phase 1: the flood alone; memory must not follow it.
flood "$IT_TMP/flood1.out" 5000 || { cat "$IT_TMP/flood1.out" >&2; fail "flood replies were not all small HelloVerifyRequests"; }
log "flood alone: $(cat "$IT_TMP/flood1.out")"
sleep 0.5
RSS1=$(rss_kb)
GROWTH=$(( (RSS1 - RSS0) / 1024 ))
log "RSS before ${RSS0} kB, after the flood ${RSS1} kB (growth ${GROWTH} MiB)"
[ "$GROWTH" -lt 2 ] || fail "memory grew by ${GROWTH} MiB during a cookie-less flood"
log "ok: memory stayed flat"
# The server's own counters: every hello got a cookie, none got past it, no session exists.
COOKIES1=$(metric 'coaphub_dtls_handshakes_total{result="cookie_sent"}')
[ $((COOKIES1 - COOKIES0)) -ge 4900 ] || fail "only $((COOKIES1 - COOKIES0)) HelloVerifyRequests counted for 5000 hellos"
assert_eq "$(metric coaphub_dtls_handshakes_in_progress)" 0 "handshakes in progress after a cookie-less flood"
assert_eq "$(metric coaphub_dtls_sessions)" 0 "DTLS sessions after a cookie-less flood (the warm-up client closed its own)"

# Phase 2: the flood again while the real devices connect.
flood "$IT_TMP/flood.out" 5000 &
FLOOD=$!
IT_PIDS+=("$FLOOD")

# The real devices connect while the flood runs.
pids=()
for i in $(seq 1 $N); do
    if [ "$i" -le $((N / 2)) ]; then
        args=(-c "c$i.pem" -j "k$i.pem"); path=/api/v1/telemetry
    else
        args=(); path="/api/v1/${TOKENS[$i]}/telemetry"
    fi
    timeout 30 coap-client-openssl -v 7 -B 20 -m POST -t application/json -e "{\"n\":$i}" \
        "${args[@]}" "coaps://127.0.0.1:$COAPS_PORT$path" >"dev$i.log" 2>&1 &
    pids+=("$!")
done
for p in "${pids[@]}"; do wait "$p"; done
wait "$FLOOD" || { cat "$IT_TMP/flood.out" >&2; fail "flood replies were not all small HelloVerifyRequests"; }
log "flood: $(cat "$IT_TMP/flood.out")"
grep -q 'answered [1-9]' "$IT_TMP/flood.out" || fail "the flood got no HelloVerifyRequest at all"

ok=0
for i in $(seq 1 $N); do
    if grep -Eq 'process incoming 2\.01 response' "dev$i.log"; then
        ok=$((ok + 1))
    else
        tail -n 5 "dev$i.log" >&2
    fi
done
assert_eq "$ok" "$N" "real devices that got 2.01 during the flood"
for i in $(seq 1 $N); do
    [ "$(ts_history "${IDS[$i]}" n | jq -r '.[0].value')" = "$i" ] || fail "device $i: value not stored"
done
log "ok: every device's value stored under its own device"

it_pass
