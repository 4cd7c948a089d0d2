#!/usr/bin/env bash
# test_bad_input.sh — error codes for bad requests (spec §1.1, §1.2, §1.5) and survival of 1000
# random, truncated and bit-flipped datagrams (no crash, no sanitizer report, still serving).
. "$(dirname "$0")/lib.sh"

daemon_start
login
device_create "bad-1" badTok1
D=$DEV_ID

coap_expect 4.01 post /api/v1/noSuchToken/telemetry '{"a":1}'
coap_expect 4.01 post /api/v1/noSuchToken/telemetry '{"a":'      # auth before payload
coap_expect 4.00 post /api/v1/badTok1/telemetry '{"a":'
coap_expect 4.00 post /api/v1/badTok1/telemetry '[1,2,3]'
coap_expect 4.04 post /foo '{"a":1}'
coap_expect 4.04 get /foo
coap_expect 4.05 put /api/v1/badTok1/telemetry '{"a":1}'
coap_expect 4.05 delete /api/v1/badTok1/attributes
coap_expect 4.00 get /api/v1/badTok1/telemetry
coap_expect 4.00 post /api/v1/badTok1/nosuchfeature '{"a":1}'
coap_expect 4.00 get /api/v1/badTok1/rpc                           # rpc GET needs Observe
coap_expect 4.01 post /api/v1/telemetry '{"a":1}'                  # X.509 form, plain UDP
coap_expect 2.01 post /api/v1/badTok1/telemetry '{"ok":1}'
# TB splits a single Uri-Path holding slashes (§1.1)
coap_expect 2.01 post / '{"ok":2}' -- -O 11,api/v1/badTok1/telemetry
assert_eq "$(rest GET "/api/plugins/telemetry/DEVICE/$D/values/timeseries?keys=ok" \
    | jq -r '.ok[0].value')" 2 "single Uri-Path with slashes works"

# --- 1000 hostile datagrams, bounded (no replies awaited; at most ~10 s)
seed=${IT_SEED:-$RANDOM}
log "garbage seed $seed (rerun with IT_SEED=$seed)"
timeout 60 python3 - "$COAP_PORT" "$IT_DIR" "$seed" <<'PY' || fail "garbage sender failed"
import random, socket, sys, time
sys.path.insert(0, sys.argv[2])
import coap_raw as c
port, rnd = int(sys.argv[1]), random.Random(int(sys.argv[3]))
valid = [
    c.encode(c.CON, c.POST, 1, b"\x01\x02", c.path_options("/api/v1/badTok1/telemetry"),
             b'{"g":1,"ts":2,"values":{"a":[1,{"b":null}]}}'),
    c.encode(c.CON, c.GET, 2, b"\x03", c.path_options("/api/v1/badTok1/attributes?clientKeys=a"),
             b""),
    c.encode(c.CON, c.GET, 3, b"\x04", [(c.OBSERVE, b"")] + c.path_options("/api/v1/badTok1/rpc")),
    c.encode(c.NON, c.POST, 4, b"", c.path_options("/api/v1/badTok1/rpc/7"), b'{"r":1}'),
    c.encode(c.CON, c.POST, 5, b"\x05", c.path_options("/api/v1/badTok1/telemetry")
             + [(27, b"\x0e")], b"{" * 40),           # Block1 option, deep nesting
]
socks = [c.udp_socket(0.0) for _ in range(4)]
for s in socks:
    s.setblocking(False)
t_end = time.monotonic() + 20
for i in range(1000):
    if time.monotonic() > t_end:
        break
    kind = i % 4
    base = rnd.choice(valid)
    if kind == 0:
        d = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 300)))
    elif kind == 1:
        d = base[:rnd.randrange(0, len(base))]
    elif kind == 2:
        b = bytearray(base)
        for _ in range(rnd.randrange(1, 6)):
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        d = bytes(b)
    else:
        b = bytearray(base)
        b[0] = 0x40 | rnd.randrange(0, 64)      # any type, token lengths 0..15 (9..15 invalid)
        d = bytes(b) + bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 20)))
    s = socks[i % len(socks)]
    s.sendto(d, ("127.0.0.1", port))
    if i % 50 == 0:
        for s in socks:                          # drain replies so buffers never fill
            try:
                while True:
                    s.recv(65536)
            except (BlockingIOError, OSError):
                pass
        time.sleep(0.005)
PY
sleep 1
kill -0 "$DAEMON_PID" 2>/dev/null || fail "daemon died under garbage"
check_sanitizers
coap_expect 2.01 post /api/v1/badTok1/telemetry '{"after":1}'
assert_eq "$(rest GET "/api/plugins/telemetry/DEVICE/$D/values/timeseries?keys=after" \
    | jq -r '.after[0].value')" 1 "still storing after garbage"
assert_eq "$(rest GET /healthz >/dev/null; http_code)" 200 "healthz after garbage"

it_pass
