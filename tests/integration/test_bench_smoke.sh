#!/usr/bin/env bash
# test_bench_smoke.sh — keeps coaphub-bench (bench/) working: a few seconds of each mode against
# the real daemon (plain CoAP telemetry with --create-devices, X.509 DTLS telemetry, resumed
# handshakes, observe fan-out, idle sessions with the server's RSS). It asserts that the tool
# runs and that its numbers are consistent (every request answered 2.01, no errors), never a
# performance figure: performance targets live in bench/run, not in a timed test (issue #5).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

BENCH="${COAPHUB_BENCH:-$(dirname "$COAPHUB_BIN")/coaphub-bench}"
[ -x "$BENCH" ] || fail "coaphub-bench not built at $BENCH (target coaphub-bench)"

daemon_start
export COAPHUB_BENCH_USER="$ADMIN_USER" COAPHUB_BENCH_PASSWORD="$ADMIN_PASSWORD"
REST="--rest $BASE_URL"

# jget JSON KEY -> the value of a top-level number field
jget() { printf '%s' "$1" | jq -r ".$2"; }

# 1. Plain CoAP, closed loop, devices created over REST and deleted at the end.
out=$(timeout 60 "$BENCH" telemetry -p "$COAP_PORT" -c 20 -w 2 -d 2 $REST --create-devices \
      --delete-devices --max-error-rate 0 --json) || fail "plain telemetry run failed: $out"
assert_match "$(jget "$out" done)" '^[1-9][0-9]*$' "plain telemetry answered requests"
assert_eq "$(jget "$out" '"codes"."2.01"')" "$(jget "$out" done)" "every plain request got 2.01"
assert_eq "$(jget "$out" errors)" 0 "no errors in the plain run"
login
rest GET "/api/tenant/devices?pageSize=100&page=0" >/dev/null
assert_eq "$(jq -r .totalElements "$IT_TMP/rest.body")" 0 "--delete-devices removed the devices"

# 2. A bounded count (-n) in open loop: exactly that many requests.
out=$(timeout 60 "$BENCH" -p "$COAP_PORT" -c 5 --rate 500 -n 200 -d 10 $REST --create-devices \
      --name-prefix openloop- --token-prefix ol- --json) || fail "open-loop run failed: $out"
assert_eq "$(jget "$out" sent)" 200 "open loop stops at --requests"
assert_eq "$(jget "$out" '"codes"."2.01"')" 200 "open loop: 200 answered 2.01"

# 3. DTLS with a generated X.509 certificate per device, registered over REST.
out=$(timeout 90 "$BENCH" -p "$COAPS_PORT" --dtls -c 10 -d 2 $REST --create-devices \
      --name-prefix x509- --certs "$IT_TMP/certs" --gen-certs --max-error-rate 0 --json) \
    || fail "DTLS telemetry run failed: $out"
assert_eq "$(jget "$out" handshakes)" 10 "10 X.509 handshakes"
assert_eq "$(jget "$out" '"codes"."2.01"')" "$(jget "$out" done)" "every DTLS request got 2.01"
[ -f "$IT_TMP/certs/dev-9.crt" ] || fail "certificates were not written to --certs"

# 4. Resumed handshakes, certificates read back from the folder.
out=$(timeout 60 "$BENCH" handshake --resume -p "$COAPS_PORT" --dtls -c 4 -d 1 \
      --certs "$IT_TMP/certs" --json) || fail "handshake run failed: $out"
assert_match "$(jget "$out" handshakes)" '^[1-9][0-9]*$' "handshake mode completes handshakes"
assert_eq "$(jget "$out" handshake_errors)" 0 "no failed handshake"

# 5. Observe fan-out over 10 devices, 2 rounds.
out=$(timeout 90 "$BENCH" observe -p "$COAP_PORT" -c 10 --repeat 2 $REST --create-devices \
      --name-prefix obs- --token-prefix obs- --delete-devices --json) \
    || fail "observe run failed: $out"
assert_eq "$(jget "$out" complete_rounds)" 2 "all observers notified in both rounds"
assert_eq "$(jget "$out" notifications)" 20 "one notification per observer per round"

# 6. Idle sessions and the server's RSS (token over one-way DTLS).
out=$(timeout 60 "$BENCH" idle -p "$COAPS_PORT" --dtls --no-cert -c 5 --hold 0.5 \
      --token-prefix ol- --server-pid "$DAEMON_PID" --json) || fail "idle run failed: $out"
assert_eq "$(jget "$out" sessions)" 5 "5 idle sessions held"
assert_match "$(jget "$out" rss_held_kb)" '^[1-9][0-9]*$' "server RSS read from /proc"

# 7. --max-error-rate makes the exit status non-zero: nothing listens on this port.
dead=$(free_ports 1)
"$BENCH" -p "$dead" -c 2 -d 0.3 --drain 0.2 --max-error-rate 0 --json >/dev/null 2>&1
assert_eq "$?" 2 "exit status 2 when the error rate is exceeded"

it_pass
