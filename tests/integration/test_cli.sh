#!/usr/bin/env bash
# test_cli.sh — coaphub-cli against the real daemon: every verb, its table and JSON output, the
# error messages on stderr and the sysexits.h exit codes (docs/cli.md).
. "$(dirname "$0")/lib.sh"

[ -x "$COAPHUB_CLI" ] || fail "COAPHUB_CLI=$COAPHUB_CLI is not executable"
daemon_start
export COAPHUB_URL="$BASE_URL" COAPHUB_USER="$ADMIN_USER" COAPHUB_PASSWORD="$ADMIN_PASSWORD"
cli() { "$COAPHUB_CLI" "$@" >"$IT_TMP/cli.out" 2>"$IT_TMP/cli.err"; CLI_RC=$?; }
expect_rc() {  # expect_rc RC WHAT -- ARGS...
    local want=$1 what=$2; shift 3
    cli "$@"
    [ "$CLI_RC" = "$want" ] || { cat "$IT_TMP/cli.err" >&2; fail "$what: exit $CLI_RC, want $want"; }
    log "ok: $what (exit $want)"
}

for v in "" "device" "device add" "device list" "device show" "device delete" "device token" \
         "device cert" "telemetry" "attr" "attr set" "attr get" "rpc"; do
    # shellcheck disable=SC2086
    expect_rc 0 "help for '$v'" -- $v --help
    grep -q usage "$IT_TMP/cli.out" || fail "no usage text for '$v'"
done
expect_rc 64 "no verb" --
expect_rc 64 "unknown verb" -- frobnicate
expect_rc 64 "device add without name" -- device add

expect_rc 0 "device add" -- device add cli-1 --token cliTok1
assert_match "$(cat "$IT_TMP/cli.out")" 'cli-1 +[0-9a-f-]{36} +cliTok1' "device add table"
expect_rc 0 "device add (random token)" -- device add cli-2
tok2=$(awk 'NR==2 {print $3}' "$IT_TMP/cli.out")
assert_match "$tok2" '^[A-Za-z0-9]{20}$' "random token is 20 alphanumerics"
expect_rc 65 "duplicate name" -- device add cli-1
assert_match "$(cat "$IT_TMP/cli.err")" '^error: ' "error message on stderr"
[ -s "$IT_TMP/cli.out" ] && fail "error run wrote to stdout"

expect_rc 0 "device list" -- device list
assert_eq "$(grep -c '^cli-' "$IT_TMP/cli.out")" 2 "list shows both devices"
expect_rc 0 "device list --search" -- device list --search cli-2
assert_eq "$(grep -c '^cli-' "$IT_TMP/cli.out")" 1 "search narrows the list"
expect_rc 0 "device list --json" -- --json device list
assert_eq "$(jq -r 'map(.name) | sort | join(",")' "$IT_TMP/cli.out")" cli-1,cli-2 "list JSON"

expect_rc 0 "device show" -- device show cli-1
assert_match "$(cat "$IT_TMP/cli.out")" 'credentialsId: +cliTok1' "show has the token"
expect_rc 66 "show unknown device" -- device show nope

expect_rc 0 "device token" -- device token cli-1 cliTok1b
assert_eq "$(cat "$IT_TMP/cli.out")" cliTok1b "token set"
coap_expect 2.01 post /api/v1/cliTok1b/telemetry '{"temp":21.5,"ok":true}'
expect_rc 65 "token taken by another device" -- device token cli-2 cliTok1b

expect_rc 0 "telemetry" -- telemetry cli-1
assert_match "$(grep '^temp ' "$IT_TMP/cli.out")" '^temp +[0-9]{13} +21\.5$' "telemetry row"
expect_rc 0 "telemetry KEYS --json" -- telemetry cli-1 ok --json --strict
assert_eq "$(jq -c '.ok[0].value' "$IT_TMP/cli.out")" true "telemetry JSON typed"

expect_rc 0 "attr set" -- attr set cli-1 SHARED_SCOPE target=22 mode=eco
coap_expect 2.05 get "/api/v1/cliTok1b/attributes?sharedKeys=target,mode"
assert_eq "$(jq -c -S . <<<"$COAP_BODY")" '{"shared":{"mode":"eco","target":22}}' \
    "attributes set by the CLI reach the device"
expect_rc 0 "attr get" -- attr get cli-1 shared
assert_match "$(grep '^target ' "$IT_TMP/cli.out")" ' 22$' "attr get row"
expect_rc 64 "attr set bad scope" -- attr set cli-1 CLIENT_SCOPE a=1
expect_rc 64 "attr set without =" -- attr set cli-1 shared a

openssl ecparam -name secp256r1 -genkey -noout -out "$IT_TMP/key.pem" 2>/dev/null
openssl req -new -x509 -key "$IT_TMP/key.pem" -subj /CN=x -days 2 -out "$IT_TMP/cert.pem" 2>/dev/null
expect_rc 0 "device cert" -- device cert cli-2 --cert "$IT_TMP/cert.pem"
assert_match "$(cat "$IT_TMP/cli.out")" '^[0-9a-f]{64}$' "cert prints credentialsId"
expect_rc 66 "device cert missing file" -- device cert cli-2 --cert "$IT_TMP/nope.pem"
printf 'junk\n' >"$IT_TMP/junk.pem"
expect_rc 65 "device cert bad PEM" -- device cert cli-2 --cert "$IT_TMP/junk.pem"

expect_rc 75 "rpc with no subscriber times out" -- rpc cli-1 ping '{"a":1}' --timeout 5000
expect_rc 65 "rpc bad params JSON" -- rpc cli-1 ping '{bad'

expect_rc 0 "device delete" -- device delete cli-2
expect_rc 66 "deleted device is gone" -- device show cli-2

COAPHUB_PASSWORD=wrong expect_rc 77 "bad password" -- device list
expect_rc 77 "bad password flag" -- --password wrong device list
expect_rc 69 "server unreachable" -- --url http://127.0.0.1:1 device list

it_pass
