#!/usr/bin/env bash
# test_durability_mode.sh — reliability.md S3: relaxed durability is visible. With the default
# settings /metrics says every acknowledged commit is synced (coaphub_storage_durable 1, mode
# synchronous=FULL on SQLite, synchronous_commit=on on PostgreSQL) and the log has no warning;
# with --sync-full false (COAPHUB_SYNC_FULL) SQLite runs synchronous=NORMAL: the start-up log
# warns and the gauge is 0 with mode synchronous=NORMAL. PostgreSQL has no such setting: it
# stays synchronous_commit=on, 1, no warning.
set -u
. "$(dirname "$0")/lib.sh"

WARNING='synchronous=NORMAL: the last commits may be lost on power failure'
durable() {   # durable -> "VALUE MODE" of coaphub_storage_durable
    curl -s --max-time 5 "$BASE_URL/metrics" |
        sed -n 's/^coaphub_storage_durable{backend="\([a-z]*\)",mode="\([^"]*\)"} \([01]\)$/\3 \2 \1/p'
}

daemon_start
if [ "$IT_BACKEND" = sqlite ]; then full="1 synchronous=FULL sqlite"; else full="1 synchronous_commit=on postgresql"; fi
assert_eq "$(durable)" "$full" "default: coaphub_storage_durable"
assert_eq "$(grep -c "$WARNING" "$IT_LOG")" 0 "default: no durability warning"
daemon_stop

COAPHUB_SYNC_FULL=false daemon_start
if [ "$IT_BACKEND" = sqlite ]; then
    assert_eq "$(durable)" "0 synchronous=NORMAL sqlite" "--sync-full false: coaphub_storage_durable"
    assert_eq "$(grep -c "warn .*$WARNING" "$IT_LOG")" 1 "--sync-full false: the start-up warning"
else
    assert_eq "$(durable)" "$full" "--sync-full false on PostgreSQL: still synchronous_commit=on"
    assert_eq "$(grep -c "$WARNING" "$IT_LOG")" 0 "--sync-full false on PostgreSQL: no warning"
fi
it_pass
