#!/usr/bin/env bash
# test_coap_oversize.sh — issue 17: a plain CoAP request larger than the 1,600-byte datagram
# buffer is answered 4.13 Request Entity Too Large (RFC 7252 §5.9.2.9) with Size1 = the
# largest body accepted (--max-body, block-wise) and a Block1 hint (block 0, 1024-byte
# blocks: RFC 7959 §2.9.3), read from the datagram's first bytes; before, it vanished. A
# CON gets the answer in an ACK with its MID and token, a NON in a NON; an oversize message
# that is not a request gets nothing; the answer is smaller than the request (amplification,
# reliability.md C6); the server keeps serving.
. "$(dirname "$0")/lib.sh"

metric() { curl -s --max-time 5 "$BASE_URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

daemon_start
login
device_create "big-1" bigTok1

out=$(timeout 60 python3 "$IT_DIR/coap_attack.py" oversize "$COAP_PORT" bigTok1) ||
    fail "script failed: $out"
log "result: $out"
j() { jq -c "$1" <<<"$out"; }

assert_eq "$(j '.con | [.code, .type, .mid, .token]')" '["4.13",2,4608,"1314"]' \
    "oversize CON -> 4.13 in the ACK (same MID and token)"
assert_eq "$(j .con.size1)" 262144 "Size1 = --max-body"
# Block1 value: NUM 0, M 0, SZX 6 (1024 bytes) -> 6
assert_eq "$(j .con.block1)" 6 "Block1 hint: block-wise in 1024-byte blocks"
assert_eq "$(j '.non | [.code, .type, .token]')" '["4.13",1,"1314"]' "oversize NON -> NON 4.13"
[ "$(j .con.len)" -lt "$(j .request_len)" ] || fail "4.13 larger than the request"
assert_eq "$(j .ack_answer)" null "an oversize non-request gets nothing"
assert_eq "$(j .small)" '"2.01"' "a normal request is served afterwards"
assert_eq "$(metric coaphub_udp_oversize_datagrams_total)" 3 "oversize datagrams counted"
assert_eq "$(metric coaphub_coap_oversize_requests_total)" 3 "seen by the engine"

it_pass
