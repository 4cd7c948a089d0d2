#!/usr/bin/env bash
# test_rest_hostile.sh — reliability.md W3's fixed payloads: hostile strings (SQL and LIKE
# metacharacters, 10,000 characters, NUL, invalid UTF-8) in device names, textSearch, sort
# parameters, attribute keys and values: exact round trip or a 4xx with ThingsBoard's error
# JSON, never a 5xx, and nothing else in the database moves. The work is in hostile_strings.py.
. "$(dirname "$0")/lib.sh"

daemon_start
login
BASE_URL=$BASE_URL JWT=$JWT timeout 120 python3 "$IT_DIR/hostile_strings.py" \
    >"$IT_TMP/hostile.out" 2>&1
rc=$?
cat "$IT_TMP/hostile.out" >&2
[ "$rc" -eq 0 ] || fail "hostile strings (rc=$rc)"
log "ok: $(grep -E '^hostile_strings: checked' "$IT_TMP/hostile.out")"
check_sanitizers
it_pass
