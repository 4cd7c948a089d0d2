#!/usr/bin/env bash
# test_dtls_restart.sh — DTLS sessions that survive a restart (issue #16 point 3) with real
# clients: a PSK device observing its shared attributes with coap-client-openssl -s keeps its
# one session across SIGTERM + start and receives the next attribute update with no handshake
# and no new GET; a second PSK device driven through `openssl s_client -psk` (one process, one
# session: dtls_session_client.py) posts telemetry before and after the restart on the same
# session; /metrics shows no new handshake and the restored sessions; the saved-sessions file
# is encrypted, 0600 and deleted at start; `coaphub-cli sessions save` while running followed
# by kill -9 resumes the session that stayed quiet and not the one that moved on (stale list);
# a kill -9 without a save leaves no file and devices handshake again;
# --dtls-session-save-max-age 0 saves nothing. The first part runs on three shards: each takes
# at start the sessions whose devices it will hear (the listeners steer datagrams by a function
# of the address that the restore computes too), so the observer is notified before it speaks.
. "$(dirname "$0")/lib.sh"
need openssl; need coap-client-openssl; need python3

metric() { curl -s --max-time 5 "$BASE_URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
values() { ts_history "$1" "$2" | jq -r '.[].value'; }
set_psk() { # set_psk DEVICE_ID IDENTITY KEYHEX
    local cur body
    cur=$(rest GET "/api/device/$1/credentials")
    body=$(jq -c '.credentialsType="PSK" | .credentialsId="'"$2"'" | .credentialsValue="'"$3"'"' <<<"$cur")
    rest POST /api/device/credentials "$body" >/dev/null
    [ "$(http_code)" = 200 ] || fail "set PSK credentials: HTTP $(http_code)"
}
wait_lines() { # wait_lines FILE N SECONDS: until FILE has N lines
    local i
    for i in $(seq 1 $(( $3 * 10 ))); do
        [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

cd "$IT_TMP" || fail "no tmp dir"
export COAPHUB_SHARDS=3
daemon_start
login

# Device A observes (libcoap's -k is the key as text), device B posts through s_client.
A_ID="obs-$RANDOM"; A_KEY="obs-key-$RANDOM$RANDOM"
B_ID="post-$RANDOM"; B_KEY="post-key-$RANDOM$RANDOM"
device_create observer "obsTok$RANDOM$RANDOM"; A=$DEV_ID
device_create poster "postTok$RANDOM$RANDOM"; B=$DEV_ID
set_psk "$A" "$A_ID" "$(hex "$A_KEY")"
set_psk "$B" "$B_ID" "$(hex "$B_KEY")"
ATTR="/api/plugins/telemetry/DEVICE/$A/attributes/SHARED_SCOPE"
rest POST "$ATTR" '{"mode":"eco"}' >/dev/null
[ "$(http_code)" = 200 ] || fail "initial shared attribute"

OBS="$IT_TMP/obs.out"
timeout 120 coap-client-openssl -v 7 -u "$A_ID" -k "$A_KEY" -m get -s 90 -B 100 -o "$OBS" \
    "coaps://127.0.0.1:$COAPS_PORT/api/v1/attributes" >"$OBS.log" 2>&1 &
IT_PIDS+=("$!")
wait_for_file_match "$OBS.log" 'process incoming 2\.05 response' 15 || fail "no observe registration"
wait_for_file_match "$OBS" '"mode": ?"eco"' 5 || fail "observe: no current shared attributes"
rest POST "$ATTR" '{"target":21}' >/dev/null
wait_for_file_match "$OBS" '"target": ?21' 10 || fail "observe: no notification before the restart"
log "ok: A observes its shared attributes over PSK"
# A second session of A observes its RPCs.
RPC="$IT_TMP/rpc.out"
timeout 120 coap-client-openssl -v 7 -u "$A_ID" -k "$A_KEY" -m get -s 90 -B 100 -o "$RPC" \
    "coaps://127.0.0.1:$COAPS_PORT/api/v1/rpc" >"$RPC.log" 2>&1 &
IT_PIDS+=("$!")
wait_for_file_match "$RPC.log" 'process incoming 2\.03 response' 15 || fail "no RPC observe registration"

CTRL="$IT_TMP/ctrl"; OUT="$IT_TMP/codes"
mkfifo "$CTRL"
timeout 120 python3 "$(dirname "$0")/dtls_session_client.py" "$COAPS_PORT" "$B_ID" \
    "$(hex "$B_KEY")" PSK-AES128-CCM8 "$CTRL" "$OUT" &
IT_PIDS+=("$!")
exec 3>"$CTRL"
echo '{"n":1}' >&3
wait_for_file_match "$OUT" '^2\.01$' 15 || fail "s_client session: telemetry before the restart"
assert_eq "$(values "$B" n | tr '\n' ' ')" "1 " "B's first point stored"
log "ok: B posts telemetry through s_client -psk"

HS_BEFORE=$(metric 'coaphub_dtls_handshakes_total{result="ok"}')
assert_eq "$(metric coaphub_dtls_sessions_compacted_total)" 3 "every session on the compact layer"

# ---- clean stop + start: both sessions go on ---------------------------------------------------
daemon_stop
grep -q "3 DTLS session(s) saved for the next start" "$IT_LOG" || fail "no save logged at stop"
[ -f "$IT_DATA/dtls-sessions.bin" ] || fail "no saved-sessions file after SIGTERM"
assert_eq "$(stat -c %a "$IT_DATA/dtls-sessions.key")" 600 "key file mode"
assert_eq "$(stat -c %a "$IT_DATA/dtls-sessions.bin")" 600 "sessions file mode"
grep -qa "$A_ID" "$IT_DATA/dtls-sessions.bin" && fail "the saved file is not encrypted"
grep -q "close_notify" <(tail -n 40 "$OBS.log") && fail "the observer got close_notify"
daemon_start
[ -e "$IT_DATA/dtls-sessions.bin" ] && fail "saved-sessions file not deleted at start"
assert_eq "$(metric coaphub_dtls_saved_sessions_restored)" 3 "restored sessions"

rest POST "$ATTR" '{"target":22}' >/dev/null
wait_for_file_match "$OBS" '"target": ?22' 10 || { tail -n 30 "$OBS.log" >&2; fail "observer: no notification after the restart"; }
log "ok: A's restored observation got the update, no new GET"
rest POST "/api/plugins/rpc/oneway/$A" '{"method":"blink","params":{"n":3},"timeout":5000}' >/dev/null
assert_eq "$(http_code)" 200 "oneway RPC to the restored RPC observation"
wait_for_file_match "$RPC" '"method": ?"blink"' 10 || fail "restored RPC observation: no RPC"
log "ok: A's restored RPC observation got the RPC"
echo '{"n":2}' >&3
wait_lines "$OUT" 2 15
assert_eq "$(sed -n 2p "$OUT")" 2.01 "s_client session: telemetry after the restart"
assert_eq "$(values "$B" n | tr '\n' ' ')" "1 2 " "B's second point stored as B"
assert_eq "$(metric 'coaphub_dtls_handshakes_total{result="ok"}')" 0 "no handshake after the restart"
assert_eq "$(metric 'coaphub_dtls_handshakes_total{result="cookie_sent"}')" 0 "not even a cookie"
assert_eq "$(metric 'coaphub_dtls_saved_sessions_total{event="claimed"}')" 3 "every session claimed"
log "ok: handshakes before $HS_BEFORE, after the restart 0"

# ---- `coaphub-cli sessions save` while running, then kill -9 ----------------------------------
# A stays quiet after the save and comes back; B posts after it (its session moved on: listed
# as stale) and must not: its next record would otherwise be a replay target.
cli() { COAPHUB_URL="$BASE_URL" COAPHUB_USER="$ADMIN_USER" COAPHUB_PASSWORD="$ADMIN_PASSWORD" \
    "$COAPHUB_CLI" "$@" >"$IT_TMP/cli.out" 2>"$IT_TMP/cli.err"; }
cli sessions save || fail "sessions save: $(cat "$IT_TMP/cli.err")"
assert_eq "$(cat "$IT_TMP/cli.out")" "3 DTLS session(s) saved" "sessions save output"
[ -f "$IT_DATA/dtls-sessions.bin" ] || fail "no file after sessions save"
echo '{"n":3}' >&3
wait_lines "$OUT" 3 15
assert_eq "$(sed -n 3p "$OUT")" 2.01 "B posts after the save"
[ "$(stat -c %s "$IT_DATA/dtls-sessions.stale" 2>/dev/null)" = 8 ] || fail "B not listed as stale"
daemon_kill9
daemon_start
assert_eq "$(metric coaphub_dtls_saved_sessions_restored)" 2 "only the quiet sessions restored"
rest POST "$ATTR" '{"target":23}' >/dev/null
wait_for_file_match "$OBS" '"target": ?23' 10 || fail "observer: no notification after save + kill -9"
assert_eq "$(metric 'coaphub_dtls_handshakes_total{result="ok"}')" 0 "A: no handshake after save + kill -9"
echo '{"n":4}' >&3
wait_lines "$OUT" 4 15
assert_eq "$(sed -n 4p "$OUT")" none "B's stale session is not resumed"
echo quit >&3
exec 3>&-
log "ok: sessions save + kill -9: the quiet session resumes, the one that moved on does not"

coap_expect_dtls() {
    timeout 20 coap-client-openssl -v 7 -B 10 -m post -t application/json -e "$2" -u "$B_ID" \
        -k "$B_KEY" "coaps://127.0.0.1:$COAPS_PORT/api/v1/telemetry" >"$IT_TMP/c.log" 2>&1
    grep -q "process incoming $1 response" "$IT_TMP/c.log" || { tail -n 20 "$IT_TMP/c.log" >&2; fail "coaps POST: expected $1"; }
}
coap_expect_dtls 2.01 '{"n":5}'
[ "$(metric 'coaphub_dtls_handshakes_total{result="ok"}')" -ge 1 ] || fail "B: no new handshake"
assert_eq "$(values "$B" n | tr '\n' ' ')" "1 2 3 5 " "B's points"

# ---- kill -9 without a save: no file, devices handshake again ------------------------------------
daemon_kill9
[ -e "$IT_DATA/dtls-sessions.bin" ] && fail "a saved-sessions file exists after kill -9"
daemon_start
assert_eq "$(metric coaphub_dtls_saved_sessions_restored)" 0 "nothing restored after kill -9"
coap_expect_dtls 2.01 '{"n":6}'
assert_eq "$(values "$B" n | tr '\n' ' ')" "1 2 3 5 6 " "B's points after kill -9"
log "ok: kill -9 falls back to handshakes"

# ---- --dtls-session-save-max-age 0: nothing saved ------------------------------------------------
daemon_stop
rm -f "$IT_DATA/dtls-sessions.bin"
COAPHUB_DTLS_SESSION_SAVE_MAX_AGE=0 daemon_start
timeout 20 coap-client-openssl -v 7 -u "$A_ID" -k "$A_KEY" -m get -s 8 -B 10 -o "$IT_TMP/o2" \
    "coaps://127.0.0.1:$COAPS_PORT/api/v1/attributes" >"$IT_TMP/o2.log" 2>&1 &
IT_PIDS+=("$!")
wait_for_file_match "$IT_TMP/o2.log" 'process incoming 2\.05 response' 15 || fail "no registration"
rc=0; cli sessions save || rc=$?
assert_eq "$rc" 65 "sessions save with saving off: exit 65 (HTTP 400)"
grep -q "saving is off" "$IT_TMP/cli.err" || fail "no clear error: $(cat "$IT_TMP/cli.err")"
daemon_stop
[ -e "$IT_DATA/dtls-sessions.bin" ] && fail "sessions saved with max age 0"
log "ok: max age 0 saves nothing"

# ---- two shards: the shard the kernel hands the device's next record to claims the session ------
export COAPHUB_SHARDS=2
daemon_start
rm -f "$CTRL" "$OUT"; mkfifo "$CTRL"
timeout 60 python3 "$(dirname "$0")/dtls_session_client.py" "$COAPS_PORT" "$B_ID" \
    "$(hex "$B_KEY")" PSK-AES128-GCM-SHA256 "$CTRL" "$OUT" &
IT_PIDS+=("$!")
exec 3>"$CTRL"
echo '{"n":7}' >&3
wait_lines "$OUT" 1 15
assert_eq "$(sed -n 1p "$OUT")" 2.01 "two shards: telemetry before the restart"
daemon_stop
daemon_start
assert_eq "$(metric coaphub_dtls_saved_sessions_restored)" 1 "two shards: restored"
# The listeners steer datagrams by a function of the source address that the restore computes
# too, so the shard that will hear the device took the session at start, before it spoke.
assert_eq "$(metric 'coaphub_dtls_saved_sessions_total{event="claimed"}')" 1 "live at start"
# A second restart before the device speaks keeps it too.
daemon_stop
daemon_start
assert_eq "$(metric coaphub_dtls_saved_sessions_restored)" 1 "two shards: saved again"
echo '{"n":8}' >&3
wait_lines "$OUT" 2 15
assert_eq "$(sed -n 2p "$OUT")" 2.01 "two shards: telemetry after the restart"
assert_eq "$(metric 'coaphub_dtls_handshakes_total{result="ok"}')" 0 "two shards: no handshake"
echo quit >&3
exec 3>&-
assert_eq "$(values "$B" n | tr '\n' ' ')" "1 2 3 5 6 7 8 " "B's points"
log "ok: two shards: the session is live at start in the shard that hears its device"
unset COAPHUB_SHARDS

it_pass
