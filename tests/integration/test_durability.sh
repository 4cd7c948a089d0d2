#!/usr/bin/env bash
# test_durability.sh — "nothing acknowledged is lost" (STYLE.md §2.3, reliability.md S1): 20
# devices send telemetry while the daemon is SIGKILLed DURABILITY_ROUNDS times (default 5, the
# CI tier; 20 for the longer run recorded in docs/RELIABILITY.md) and restarted on the same data
# dir, each restart ready within 5 s (its start runs SQLite's quick_check, so a damaged file
# would be refused); afterwards every value that was answered 2.01 must be in the history.
. "$(dirname "$0")/lib.sh"

N_DEV=20
ROUNDS=${DURABILITY_ROUNDS:-5}
LOAD_S=$((4 * ROUNDS + 8))
daemon_start
login
tokens=()
declare -A dev_id
for i in $(seq 0 $((N_DEV - 1))); do
    device_create "dur-$i" "durTok$i"
    dev_id[durTok$i]=$DEV_ID
    tokens+=("durTok$i")
done

echo "$COAP_PORT" >"$IT_TMP/coap_port"
timeout $((LOAD_S + 40)) python3 "$IT_DIR/durability_load.py" "$IT_TMP/coap_port" "$IT_TMP/acks" "$LOAD_S" \
    "${tokens[@]}" >"$IT_TMP/load.out" 2>&1 &
LOAD=$!
IT_PIDS+=("$LOAD")

max_ready_ms=0
for round in $(seq 1 "$ROUNDS"); do
    sleep 3.$((RANDOM % 10))
    log "round $round: SIGKILL with $(cat "$IT_TMP/acks" 2>/dev/null | wc -l) acks so far"
    daemon_kill9
    t0=$(date +%s%N)
    daemon_start
    ready_ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$ready_ms" -gt "$max_ready_ms" ] && max_ready_ms=$ready_ms
    echo "$COAP_PORT" >"$IT_TMP/coap_port"
done
log "slowest restart to ready: $max_ready_ms ms"
[ "$max_ready_ms" -lt 5000 ] || fail "a restart took $max_ready_ms ms to be ready (S1: < 5 s)"
wait "$LOAD" || fail "load script failed: $(cat "$IT_TMP/load.out")"
log "load: $(cat "$IT_TMP/load.out")"
n_acks=$(wc -l <"$IT_TMP/acks")
[ "$n_acks" -ge 100 ] || fail "only $n_acks acknowledged points; the test proves nothing"

# One more crash right after the load: acknowledged points must not depend on a clean exit.
daemon_kill9
daemon_start
login
missing=0
for t in "${tokens[@]}"; do
    ts_history "${dev_id[$t]}" v >"$IT_TMP/hist.$t"
    [ "$(http_code)" = 200 ] || fail "history of $t: HTTP $(http_code)"
    m=$(python3 - "$t" "$IT_TMP/acks" "$IT_TMP/hist.$t" <<'PY'
import json, sys
tok, ack_path, hist_path = sys.argv[1:]
acked = {int(l.split()[1]) for l in open(ack_path) if l.split()[0] == tok}
stored = {int(float(p["value"])) for p in json.load(open(hist_path))}
lost = sorted(acked - stored)
print(len(lost), lost[:10])
PY
)
    [ "${m%% *}" = 0 ] || { log "$t lost ${m}"; missing=$((missing + ${m%% *})); }
done
[ "$missing" -eq 0 ] || fail "$missing acknowledged telemetry points were lost"
log "ok: all $n_acks acknowledged points stored after $((ROUNDS + 1)) SIGKILLs"

it_pass
