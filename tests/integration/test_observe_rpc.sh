#!/usr/bin/env bash
# test_observe_rpc.sh — shared-attribute Observe notifications and server-side RPC round trips
# with real libcoap observers (spec §3.4–§3.7, §8.5, §8.6).
. "$(dirname "$0")/lib.sh"

daemon_start
login
device_create "obs-1" obsTok1
D=$DEV_ID
ATTR="/api/plugins/telemetry/DEVICE/$D"

# --- shared attributes: subscribe, update, delete (§3.4)
rest POST "$ATTR/attributes/SHARED_SCOPE" '{"mode":"eco"}' >/dev/null
assert_eq "$(http_code)" 200 "initial shared attribute"
OBS="$IT_TMP/attr.obs"
observe_start /api/v1/obsTok1/attributes 15 "$OBS"
ATTR_OBS=$OBS_PID
wait_for_file_match "$OBS.log" 'process incoming 2\.05 response' 10 \
    || fail "no 2.05 for the attributes Observe registration"
wait_for_file_match "$OBS" '"mode": ?"eco"' 5 || fail "first response lacks current shared attrs"
assert_eq "$(head -n 1 "$OBS" | jq -c -S .)" '{"mode":"eco"}' \
    "registration answered with all current shared attributes"

rest POST "$ATTR/attributes/SHARED_SCOPE" '{"target":22}' >/dev/null
assert_eq "$(http_code)" 200 "set shared attribute"
wait_for_file_match "$OBS" '"target": ?22' 10 || fail "no notification for target=22"
assert_eq "$(grep '"target"' "$OBS" | head -n 1 | jq -c -S .)" '{"target":22}' \
    "notification carries only the changed key"

rest POST "$ATTR/attributes/SERVER_SCOPE" '{"srv":1}' >/dev/null
coap_expect 2.01 post /api/v1/obsTok1/attributes '{"cli":1}'

rest DELETE "$ATTR/SHARED_SCOPE?keys=target" >/dev/null
assert_eq "$(http_code)" 200 "delete shared attribute"
wait_for_file_match "$OBS" '"deleted"' 10 || fail "no {\"deleted\":[..]} notification"
assert_eq "$(grep '"deleted"' "$OBS" | head -n 1 | jq -c -S .)" '{"deleted":["target"]}' \
    "deletion notified"
sleep 0.5
grep -Eq '"srv"|"cli"' "$OBS" && fail "server/client scope change was pushed to the observer"
log "ok: only SHARED_SCOPE changes are pushed"

# Observe numbers of the 2.05s this client received must increase (0, then 1, 2 ...).
obs_nums=$(grep -Eo 'c:2\.05 i:[0-9a-f]+ \{[0-9a-f]*\} \[[^]]*Observe:[0-9]+' "$OBS.log" \
    | grep -Eo 'Observe:[0-9]+$' | cut -d: -f2 | tr '\n' ' ')
log "observe numbers seen: $obs_nums"
prev=-1; count=0
for n in $obs_nums; do
    [ "$n" -gt "$prev" ] || fail "Observe numbers not increasing: $obs_nums"
    prev=$n; count=$((count + 1))
done
[ "$count" -ge 3 ] || fail "expected >= 3 Observe responses, got $count ($obs_nums)"
kill -TERM "$ATTR_OBS" 2>/dev/null

# --- server-side RPC with a device that answers (§3.5, §3.6, §8.6)
RPC="$IT_TMP/rpc.obs"
observe_start /api/v1/obsTok1/rpc 40 "$RPC"
RPC_OBS=$OBS_PID
wait_for_file_match "$RPC.log" 'process incoming 2\.03 response' 10 \
    || fail "RPC Observe registration not answered with 2.03"
log "ok: RPC subscription -> 2.03"

# responder: a bounded poll of the observer's output; each complete JSON line with an id gets
# a reply {"result":"ok","method":..,"params":..} posted to /rpc/{id}.
responder() {
    local seen=0 i n line id reply
    for i in $(seq 1 450); do                # 45 s at most
        n=$(wc -l <"$RPC" 2>/dev/null || echo 0)
        if [ "$n" -gt "$seen" ]; then
            while IFS= read -r line; do
                id=$(jq -r '.id // empty' <<<"$line" 2>/dev/null) || continue
                [ -n "$id" ] || continue
                reply=$(jq -c '{result:"ok", method:.method, params:.params}' <<<"$line")
                echo "$line" >>"$IT_TMP/responder.seen"
                timeout 10 coap-client-notls -B 5 -m post -e "$reply" \
                    "coap://127.0.0.1:$COAP_PORT/api/v1/obsTok1/rpc/$id" \
                    >>"$IT_TMP/responder.log" 2>&1
            done < <(sed -n "$((seen + 1)),${n}p" "$RPC")
            seen=$n
        fi
        sleep 0.1
    done
}
responder &
IT_PIDS+=("$!")

out=$(rest POST "/api/plugins/rpc/twoway/$D" \
    '{"method":"setGpio","params":{"pin":23,"value":1},"timeout":5000}')
assert_eq "$(http_code)" 200 "twoway RPC answered"
assert_eq "$(jq -c -S . <<<"$out")" \
    '{"method":"setGpio","params":{"pin":23,"value":1},"result":"ok"}' "twoway reply body"
grep -q '"method":"setGpio"' "$IT_TMP/responder.seen" || fail "device did not see setGpio"
assert_match "$(grep setGpio "$IT_TMP/responder.seen" | jq -r '.id | type')" '^number$' \
    "RPC id is a number"

out=$(rest POST "/api/rpc/twoway/$D" '{"method":"ping","timeout":5000}')
assert_eq "$(http_code)" 200 "v2 twoway RPC answered"
assert_eq "$(jq -r .result <<<"$out")" ok "v2 twoway reply"

rest POST "/api/plugins/rpc/oneway/$D" '{"method":"blink","params":{"n":3},"timeout":5000}' >/dev/null
assert_eq "$(http_code)" 200 "oneway RPC -> 200"
wait_for_file_match "$IT_TMP/responder.seen" '"method":"blink"' 5 \
    || fail "oneway RPC not delivered to the device"
log "ok: oneway RPC delivered"
kill -TERM "$RPC_OBS" 2>/dev/null

# --- RPC to a device with no subscription: v1 409, v2 504, after the timeout
device_create "obs-2" obsTok2
D2=$DEV_ID
t0=$(date +%s)
rest POST "/api/plugins/rpc/twoway/$D2" '{"method":"x","timeout":5000}' >/dev/null
assert_eq "$(http_code)" 409 "v1 twoway without subscriber -> 409"
t1=$(date +%s)
[ $((t1 - t0)) -ge 4 ] || fail "409 came after $((t1 - t0)) s, before the 5 s timeout"
rest POST "/api/rpc/twoway/$D2" '{"method":"x","timeout":5000}' >/dev/null
assert_eq "$(http_code)" 504 "v2 twoway without subscriber -> 504"
rest POST "/api/plugins/rpc/twoway/$D2" 'not json' >/dev/null
assert_eq "$(http_code)" 400 "RPC body not JSON -> 400"

# --- client-side RPC (§3.7)
coap_expect 2.05 post /api/v1/obsTok2/rpc '{"method":"getCurrentTime","params":{}}'
t=$(jq -r .time <<<"$COAP_BODY")
now=$(( $(date +%s) * 1000 ))
[[ "$t" =~ ^[0-9]+$ ]] && [ $((t - now)) -lt 5000 ] && [ $((now - t)) -lt 5000 ] \
    || fail "getCurrentTime answered '$COAP_BODY', not a time near $now"
log "ok: getCurrentTime"

it_pass
