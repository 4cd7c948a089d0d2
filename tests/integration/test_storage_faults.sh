#!/usr/bin/env bash
# test_storage_faults.sh — reliability.md S4: a full disk and an immutable database file, with
# the real server on loopback (SQLite only; needs root to mount file systems).
#
# Disk full: the data dir is an 8 MiB tmpfs. Devices post telemetry (coap-client-notls, each
# point a unique seq with its own ts) while a filler file eats the free space. Once the store
# cannot write: CoAP answers 5.03 with Max-Age (never 5.00, no 2.01 for a point not stored),
# the HTTP device API 503 with Retry-After, /readyz 503 with reason "disk full", /metrics says
# so, and the log has ONE line for the episode's start and none per request. The filler goes;
# with 1.5 MiB back (less than the reserve and as much again) it stays refusing; with all of
# it, without a restart the store takes its reserve back, /readyz is 200, the end of the
# episode is logged once, posts get 2.01 again, and every point answered 2.01 is in the history.
#
# Read-only: the data dir is an ext4 image on a loop device (tmpfs has no immutable flag);
# chattr +i on the database file (its WAL stays writable: the checkpoint fails) gives 5.03 + Max-Age,
# /readyz 503 "database read-only" or "I/O error", one line; chattr -i, and it recovers the same
# way. Skipped with a message when no loop device can be mounted.
#
# Not root: the whole test is skipped (exit 77, ctest SKIP_RETURN_CODE) with a message.
set -u
if [ "$(id -u)" != 0 ]; then
    echo "test_storage_faults: SKIP: needs root (mount -t tmpfs, mount -o loop, chattr)" >&2
    exit 77
fi
. "$(dirname "$0")/lib.sh"
[ "$IT_BACKEND" = sqlite ] || fail "SQLite only (a full disk on PostgreSQL: test_store_writer_pg)"
need mount; need umount; need chattr; need dd

SF_MOUNTED=""
sf_cleanup() {
    local rc=$?
    if [ -n "$DAEMON_PID" ]; then
        kill -KILL "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=""
    fi
    if [ -n "$SF_MOUNTED" ]; then
        chattr -i "$IT_DATA"/coaphub.db* 2>/dev/null
        umount "$IT_DATA" 2>/dev/null || umount -l "$IT_DATA" 2>/dev/null ||
            log "warning: could not unmount $IT_DATA"
    fi
    (exit "$rc")
    it_cleanup
}
trap sf_cleanup EXIT

# The daemon takes these from its environment (docs/configuration.md): a 1 MiB reserve fits the
# 8 MiB disk, and a fault is probed every 200 ms (doubling to 1.6 s) so the test is quick.
export COAPHUB_DISK_RESERVE=1048576 COAPHUB_STORE_PROBE_MS=200

PAD=$(printf 'p%.0s' $(seq 1 700))   # each point ~0.7 KB: the WAL grows fast
TS0=$(( $(date +%s) * 1000 - 3600000 ))
SEQ=0
ACKED="$IT_TMP/acked"          # one line per point answered 2.01: seq
: >"$ACKED"

# post TOKEN: one telemetry point (the next seq) with coap-client-notls; sets CODE and AGE
# ("-" when the answer has no Max-Age option), and records the seq when it was acked.
post() {
    SEQ=$((SEQ + 1))
    coap post "/api/v1/$1/telemetry" \
        "{\"ts\":$((TS0 + SEQ)),\"values\":{\"seq\":$SEQ,\"pad\":\"$PAD\"}}"
    CODE=$COAP_CODE
    AGE=$(grep -Eo 'Max-Age:[0-9]+' "$IT_TMP/coap.log" | tail -n 1 | cut -d: -f2)
    [ -n "$AGE" ] || AGE=-
    [ "$CODE" = 2.01 ] && echo "$SEQ" >>"$ACKED"
    case $CODE in 2.01|5.03) ;; *) fail "post $SEQ: CoAP answered $CODE (expected 2.01 or 5.03)";; esac
    [ "$CODE" != 5.03 ] || [ "$AGE" != - ] || fail "post $SEQ: 5.03 without Max-Age"
}

# post_until_refused TOKEN MAX: posts until one gets 5.03 (bounded).
post_until_refused() {
    local i
    for i in $(seq 1 "$2"); do
        post "$1"
        [ "$CODE" = 5.03 ] && { log "ok: 5.03 with Max-Age $AGE after $i posts"; return 0; }
    done
    fail "no 5.03 after $2 posts while the store cannot write"
}

readyz() { curl -s --max-time 5 -o "$IT_TMP/readyz" -w '%{http_code}' "$BASE_URL/readyz"; }

# wait_ready SECONDS: /readyz 200 again (bounded).
wait_ready() {
    local i
    for i in $(seq 1 $(( $1 * 10 ))); do
        [ "$(readyz)" = 200 ] && return 0
        sleep 0.1
    done
    fail "/readyz not 200 within $1 s: $(cat "$IT_TMP/readyz")"
}

metric() {
    curl -s --max-time 5 -H "X-Authorization: Bearer $JWT" "$BASE_URL/metrics" |
        awk -v m="$1" '$1 == m {print $2}'
}

# check_refusing WHAT REASON_REGEX: what clients see during the episode.
check_refusing() {
    local what=$1 code
    code=$(readyz)
    assert_eq "$code" 503 "$what: /readyz"
    assert_match "$(jq -r .reason "$IT_TMP/readyz")" "$2" "$what: /readyz reason"
    code=$(curl -s --max-time 10 -D "$IT_TMP/hdr" -o /dev/null -w '%{http_code}' \
        -H 'Content-Type: application/json' --data-binary '{"seq":-1}' \
        "$BASE_URL/api/v1/$TOKEN/telemetry")
    assert_eq "$code" 503 "$what: HTTP device API telemetry"
    grep -qi '^Retry-After: *[0-9]' "$IT_TMP/hdr" || fail "$what: HTTP 503 without Retry-After"
    log "ok: $what: HTTP 503 with Retry-After"
    assert_eq "$(metric coaphub_storage_write_fault)" 1 "$what: metric storage_write_fault"
    local i
    for i in 1 2 3 4 5; do
        post "$TOKEN"
        assert_eq "$CODE" 5.03 "$what: refused post $i"
    done
}

# check_history: every acked seq is stored, once.
check_history() {
    local got want
    want=$(sort -n "$ACKED" | tr '\n' ' ')
    got=$(ts_history "$DEV_ID" seq | jq -r '.[].value' | sort -n | tr '\n' ' ')
    [ "$(http_code)" = 200 ] || fail "history: HTTP $(http_code)"
    [ "$got" = "$want" ] || fail "acked points missing or extra: acked [$want] stored [$got]"
    log "ok: all $(wc -l <"$ACKED") acked points stored"
}

# count_lines REGEX: lines of the daemon's log that match; warnings: its warn and error lines.
count_lines() { grep -Ec -- "$1" "$IT_LOG"; }
warnings() { count_lines '^[^ ]+ (warn|error) '; }

# ---- disk full ---------------------------------------------------------------------------
if ! mount -t tmpfs -o size=8m,mode=0700 tmpfs "$IT_DATA" 2>"$IT_TMP/mount.err"; then
    # Root without the right to mount (a container without CAP_SYS_ADMIN): said, not hidden.
    echo "test_storage_faults: SKIP: root but cannot mount a tmpfs ($(cat "$IT_TMP/mount.err"))" >&2
    trap - EXIT
    rm -rf "$IT_TMP"
    exit 77
fi
SF_MOUNTED=1
daemon_start
login
TOKEN=sfDiskToken
device_create sf-disk "$TOKEN"
[ -f "$IT_DATA/coaphub.db.reserve" ] || fail "no disk reserve in the data dir"
assert_eq "$(stat -c %s "$IT_DATA/coaphub.db.reserve")" 1048576 "reserve size"
for i in 1 2 3; do post "$TOKEN"; assert_eq "$CODE" 2.01 "post before the disk fills"; done
start_lines=$(count_lines 'cannot write: disk full')
warn0=$(warnings)
dd if=/dev/zero of="$IT_DATA/filler" bs=64k 2>/dev/null
log "disk filled: $(df -k "$IT_DATA" | awk 'NR==2 {print $4}') KiB free"
post_until_refused "$TOKEN" 400
check_refusing "disk full" '^disk full$'
assert_eq "$(count_lines 'cannot write: disk full')" $((start_lines + 1)) "one log line at the start"
assert_eq "$(warnings)" $((warn0 + 1)) "no warning but the episode's (none per request)"
[ ! -e "$IT_DATA/coaphub.db.reserve" ] || fail "the reserve was not released on a full disk"
log "ok: the reserve was released"

# Space that comes back a little does not end the episode (no flapping, and the WAL and the
# merge cannot eat it back at once): with 1.5 MiB free, less than the reserve and as much
# again, probe after probe fails. Waited first: the idle WAL is truncated after a second.
sleep 1.5
rm -f "$IT_DATA/filler"
avail=$(df -k --output=avail "$IT_DATA" | tail -n 1)
dd if=/dev/zero of="$IT_DATA/filler" bs=1k count=$((avail - 1536)) 2>/dev/null
log "space partly back: $(df -k --output=avail "$IT_DATA" | tail -n 1) KiB free"
sleep 3   # probes at 0.2, 0.4, 0.8, 1.6 s
assert_eq "$(readyz)" 503 "still not ready with 1.5 MiB free"
post "$TOKEN"
assert_eq "$CODE" 5.03 "still refused with 1.5 MiB free"
assert_eq "$(count_lines 'writes work again')" 0 "no end of the episode yet"

rm -f "$IT_DATA/filler"
wait_ready 15
assert_eq "$(count_lines 'writes work again .*disk full')" 1 "one log line at the end"
[ -f "$IT_DATA/coaphub.db.reserve" ] || fail "the reserve was not taken back"
for i in 1 2 3; do post "$TOKEN"; assert_eq "$CODE" 2.01 "post after space returned ($i)"; done
assert_eq "$(metric coaphub_storage_write_fault)" 0 "metric storage_write_fault after"
[ "$(metric coaphub_storage_write_faults_total)" -ge 1 ] || fail "storage_write_faults_total"
check_history
daemon_stop
umount "$IT_DATA" || fail "umount tmpfs"
SF_MOUNTED=""

# ---- read-only (immutable database file) --------------------------------------------------
need mkfs.ext4
IMG="$IT_TMP/ext4.img"
dd if=/dev/zero of="$IMG" bs=1M count=64 2>/dev/null
mkfs.ext4 -q -F "$IMG" >/dev/null 2>&1 || fail "mkfs.ext4 failed"
if ! mount -o loop "$IMG" "$IT_DATA" 2>"$IT_TMP/mount.err"; then
    log "SKIP read-only part: cannot mount a loop device ($(cat "$IT_TMP/mount.err"))"
    log "PASS (disk full only)"
    exit 0
fi
SF_MOUNTED=1
chmod 0700 "$IT_DATA"
: >"$ACKED"
daemon_start
login
TOKEN=sfRoToken
device_create sf-ro "$TOKEN"
for i in 1 2 3; do post "$TOKEN"; assert_eq "$CODE" 2.01 "post before chattr +i"; done
start_lines=$(count_lines 'cannot write: ')
end_lines=$(count_lines 'writes work again')
warn0=$(warnings)
chattr +i "$IT_DATA/coaphub.db" || fail "chattr +i failed"
post_until_refused "$TOKEN" 200
check_refusing "immutable" '^(database read-only|I/O error)$'
assert_eq "$(count_lines 'cannot write: ')" $((start_lines + 1)) "one log line at the start"
assert_eq "$(warnings)" $((warn0 + 1)) "no warning but the episode's (none per request)"
chattr -i "$IT_DATA/coaphub.db" || fail "chattr -i failed"
wait_ready 15
assert_eq "$(count_lines 'writes work again')" $((end_lines + 1)) "one log line at the end"
for i in 1 2 3; do post "$TOKEN"; assert_eq "$CODE" 2.01 "post after chattr -i ($i)"; done
check_history
daemon_stop
umount "$IT_DATA" || fail "umount ext4"
SF_MOUNTED=""
log "PASS"
exit 0
