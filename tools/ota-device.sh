#!/usr/bin/env bash
# ota-device.sh — a scripted device that takes a firmware update over CoAP the way ThingsBoard
# documents it, with nothing but libcoap's coap-client, jq and sha256sum: read the shared
# attributes fw_title/fw_version/fw_size/fw_checksum(_algorithm), and when they name another
# firmware than the one it runs, report fw_state DOWNLOADING, download the image block-wise
# (RFC 7959), report DOWNLOADED, check the checksum (VERIFIED, or FAILED with fw_error), then
# UPDATING and UPDATED with current_fw_title/current_fw_version. It "sleeps" between checks.
#
#   tools/ota-device.sh --host 127.0.0.1 --token TOKEN [--port 5683] [--once]
#   tools/ota-device.sh --host 127.0.0.1 --cert cert.pem --key key.pem [--port 5684] [--once]
#
# With a token it speaks plain CoAP (coap-client-notls) and downloads coap://HOST/fw/TOKEN; with a
# certificate it speaks DTLS (coap-client-openssl) and downloads coaps://HOST/fw, the device being
# identified by its certificate (a coaphub extension: ThingsBoard serves OTA to tokens only).
# --once: one check (and update, if there is one), then exit 0 when the device runs the assigned
# firmware, 1 when the update failed. State (the firmware it runs) is kept in --state DIR.
set -euo pipefail

host=127.0.0.1 port= token= cert= key= once=0 interval=10 block=1024 state=
current_title=initial current_version=0
while [ $# -gt 0 ]; do
    case "$1" in
    --host) host=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --token) token=$2; shift 2 ;;
    --cert) cert=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --once) once=1; shift ;;
    --interval) interval=$2; shift 2 ;;
    --block) block=$2; shift 2 ;;
    --state) state=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ota-device: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -n "$token" ]; then
    client=(coap-client-notls) scheme=coap port=${port:-5683}
    base="$scheme://$host:$port"
    api="$base/api/v1/$token" fw="$base/fw/$token"
elif [ -n "$cert" ] && [ -n "$key" ]; then
    client=(coap-client-openssl -c "$cert" -j "$key") scheme=coaps port=${port:-5684}
    base="$scheme://$host:$port"
    api="$base/api/v1" fw="$base/fw"
else
    echo "ota-device: give --token, or --cert and --key" >&2
    exit 2
fi
state=${state:-$(mktemp -d)}
[ -f "$state/current" ] && read -r current_title current_version <"$state/current"

say() { echo "ota-device $(date +%T): $*" >&2; }
coap() { timeout 120 "${client[@]}" -B 60 "$@"; }
telemetry() { coap -m post -t application/json -e "$1" "$api/telemetry" >/dev/null; }
state_report() { # state [extra JSON members]
    telemetry "{\"fw_state\":\"$1\",\"current_fw_title\":\"$current_title\",\"current_fw_version\":\"$current_version\"${2:+,$2}}"
}

check_once() {
    local attrs title version size sum algo img got
    attrs=$(coap -m get "$api/attributes?sharedKeys=fw_title,fw_version,fw_size,fw_checksum,fw_checksum_algorithm")
    title=$(jq -r '.shared.fw_title // empty' <<<"$attrs")
    version=$(jq -r '.shared.fw_version // empty' <<<"$attrs")
    if [ -z "$title" ] || { [ "$title" = "$current_title" ] && [ "$version" = "$current_version" ]; }; then
        say "running $current_title $current_version; nothing to do"
        return 0
    fi
    size=$(jq -r '.shared.fw_size' <<<"$attrs")
    sum=$(jq -r '.shared.fw_checksum' <<<"$attrs")
    algo=$(jq -r '.shared.fw_checksum_algorithm' <<<"$attrs")
    say "update to $title $version ($size bytes, $algo $sum)"
    state_report DOWNLOADING
    img="$state/firmware.bin"
    rm -f "$img"
    if ! coap -m get -b "$block" -o "$img" "$fw?title=$title&version=$version" ||
        [ "$(stat -c %s "$img" 2>/dev/null || echo 0)" != "$size" ]; then
        state_report FAILED '"fw_error":"download failed"'
        say "download failed"
        return 1
    fi
    state_report DOWNLOADED
    case "$algo" in
    SHA256) got=$(sha256sum "$img" | cut -d' ' -f1) ;;
    SHA384) got=$(sha384sum "$img" | cut -d' ' -f1) ;;
    SHA512) got=$(sha512sum "$img" | cut -d' ' -f1) ;;
    MD5) got=$(md5sum "$img" | cut -d' ' -f1) ;;
    *) got="(cannot check $algo)" ;;
    esac
    if [ "$got" != "$sum" ]; then
        state_report FAILED "\"fw_error\":\"checksum mismatch: $got\""
        say "checksum mismatch: got $got"
        return 1
    fi
    state_report VERIFIED
    state_report UPDATING
    current_title=$title current_version=$version
    echo "$current_title $current_version" >"$state/current"
    state_report UPDATED
    say "now running $current_title $current_version"
}

while :; do
    rc=0
    check_once || rc=$?
    [ "$once" = 1 ] && exit "$rc"
    sleep "$interval"
done
