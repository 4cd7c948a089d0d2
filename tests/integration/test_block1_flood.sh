#!/usr/bin/env bash
# test_block1_flood.sh — issue 17 hole 1: Block1 reassembly state before authentication.
#
# The attack of the issue, on loopback: 1,300 source ports of 127.0.0.2 each send 16 x 1 KiB
# blocks with More=1 to /api/v1/NOT-A-TOKEN/telemetry (20,800 datagrams, ~21 MB of would-be
# state: more than the 16 MiB engine cap of the one shard). Before the fix every block was
# kept and a real device's upload got 5.03 for the block lifetime; now block 0 is answered
# 4.01 and nothing is kept. A legitimate device on 127.0.0.1 uploads (4 blocks, lock-step)
# during and after the flood and every upload must finish with 2.01.
# Then the caps for authenticated uploads: 5 devices x 5 ports of 127.0.0.3 start uploads and
# leave them; past --coap-block1-per-address (16) the new ones get 5.03 with Max-Age, and the
# legitimate device (another address) is still served.
. "$(dirname "$0")/lib.sh"

metric() { curl -s --max-time 5 "$BASE_URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

DAEMON_ARGS=(--shards 1)
daemon_start
login
device_create "b1-legit" b1Legit
LEGIT_ID=$DEV_ID
for i in 0 1 2 3 4; do device_create "b1-att-$i" "b1Att$i"; done

out=$(timeout 150 python3 "$IT_DIR/coap_attack.py" block1 "$COAP_PORT" b1Legit \
    b1Att0,b1Att1,b1Att2,b1Att3,b1Att4 1300) || fail "attack script failed: $out"
log "result: $out"
j() { jq -c "$1" <<<"$out"; }

assert_eq "$(j '.baseline[-1]')" '"2.01"' "baseline Block1 upload"
[ "$(j .flood_sent)" -ge 20800 ] || fail "flood sent only $(j .flood_sent) datagrams"
log "flood: $(j .flood_sent) datagrams in $(j .flood_seconds) s; legit uploads during it:" \
    "$(j .during_ok)/$(j .during_total) ok; failures: $(j .during_bad);" \
    "retransmissions: $(j .legit_retransmissions)"
[ "$(j .during_total)" -ge 1 ] || fail "no legitimate upload ran during the flood"
assert_eq "$(j .during_ok)" "$(j .during_total)" "every legitimate upload during the flood got 2.01"
assert_eq "$(j '[.after[][-1]] | unique')" '["2.01"]' "legitimate uploads after the flood get 2.01"

# Nothing of the flood was kept (what is held now is the 16 uploads of 1 KiB of the second
# part), and it was refused as a single datagram would be.
mem=$(metric coaphub_coap_block_memory_bytes)
log "block memory at the end: ${mem:-missing} bytes"
[ -n "$mem" ] && [ "$mem" -le 16384 ] || fail "Block1 state left after the flood: ${mem:-no metric}"
unauth=$(metric coaphub_coap_unauthorized_total)
[ "${unauth:-0}" -ge 20000 ] || fail "flood blocks answered 4.01: ${unauth:-no metric}"

# Per-address cap for authenticated uploads: some refused with 5.03 + Max-Age, for that
# address only.
log "uploads started from one address: $(j .addr_codes)"
n503=$(j '[.addr_codes[] | select(. == "5.03")] | length')
n231=$(j '[.addr_codes[] | select(. == "2.31")] | length')
[ "$n503" -ge 1 ] || fail "no upload refused at the per-address cap"
[ "$n231" -ge 16 ] || fail "only $n231 uploads started below the cap"
for age in $(j '.addr_refused_max_age[]'); do
    [ "$age" != null ] && [ "$age" -ge 1 ] && [ "$age" -le 300 ] || fail "5.03 Max-Age $age"
done
assert_eq "$(j '.legit_during_addr_cap[-1]')" '"2.01"' "another address uploads at the cap"
refused=$(metric 'coaphub_coap_block1_refused_total{cap="address"}')
assert_eq "$refused" "$n503" "refusals counted in /metrics"
evicted=$(metric 'coaphub_coap_block1_evicted_total{cap="device"}')
[ "${evicted:-0}" -ge 1 ] || fail "per-device cap never evicted (${evicted:-no metric})"

# The legitimate device's uploads were stored.
[ "$(ts_history "$LEGIT_ID" b1 | jq 'length')" -ge 4 ] || fail "legitimate uploads not stored"

it_pass
