#!/usr/bin/env bash
# test_ota.sh — OTA packages end to end (spec §3.10, issue 14 points 4, 5, 8): a 1 MiB image
# uploaded with curl as multipart/form-data, its checksum in the info; assignment to the
# default profile pushes fw_* shared attributes to an observing device at once and stores
# fw_state QUEUED; the image downloaded over plain CoAP with a token (Block2 at several block
# sizes, and application chunks) and over DTLS by an X.509 device without a token
# (coaps://HOST/fw and /api/v1/firmware), SHA-256 checked; a device's own package wins over the
# profile's; ThingsBoard's codes (4.00 wrong title, 4.04 none) and ours (4.02 past the end);
# delete refused while assigned; REST download; the upload's limits; coaphub-cli ota ...;
# image files without a row removed at start.
. "$(dirname "$0")/lib.sh"
need openssl; need sha256sum; need coap-client-openssl

# A 2 MB cap, so the 413 case needs no big file (the 1 MiB image fits).
export COAPHUB_OTA_MAX_SIZE=2000000
daemon_start
login
cd "$IT_TMP" || fail "no temp dir"

IMG=$IT_TMP/fw-a.bin
head -c 1048576 /dev/urandom >"$IMG"
SHA=$(sha256sum "$IMG" | cut -d' ' -f1)
PROFILE=$(rest GET /api/deviceProfileInfo/default | jq -r .id.id)
[ "$(http_code)" = 200 ] && [ -n "$PROFILE" ] || fail "no default device profile"

# upload_file PACKAGE_ID FILE QUERY -> curl's multipart POST as the UI sends it; body in
# $IT_TMP/up.body, status in $IT_TMP/http_code.
upload_file() {
    curl -s -o "$IT_TMP/up.body" -w '%{http_code}' --max-time 60 \
        -H "X-Authorization: Bearer $JWT" -F "file=@$2" \
        "$BASE_URL/api/otaPackage/$1?$3" >"$IT_TMP/http_code" || echo 000 >"$IT_TMP/http_code"
    cat "$IT_TMP/up.body"
}

# new_package TITLE VERSION [TYPE] -> PKG_ID
new_package() {
    local out
    out=$(rest POST /api/otaPackage "{\"title\":\"$1\",\"version\":\"$2\",\"type\":\"${3:-FIRMWARE}\",
        \"deviceProfileId\":{\"entityType\":\"DEVICE_PROFILE\",\"id\":\"$PROFILE\"}}")
    [ "$(http_code)" = 200 ] || fail "create package $1 $2: HTTP $(http_code): $out"
    PKG_ID=$(jq -r .id.id <<<"$out")
    assert_eq "$(jq -r '.id.entityType + " " + (.hasData|tostring)' <<<"$out")" \
        "OTA_PACKAGE false" "package $1 $2 created without data"
}

# ---- REST: create, upload, info -----------------------------------------------------------------
new_package fw-a 1.0
A=$PKG_ID
out=$(upload_file "$A" "$IMG" "checksumAlgorithm=SHA256&checksum=$SHA")
assert_eq "$(http_code)" 200 "1 MiB image uploaded as multipart/form-data ($out)"
assert_eq "$(jq -r '[.checksumAlgorithm,.checksum,.dataSize,.hasData,.fileName]|join(" ")' \
    <<<"$out")" "SHA256 $SHA 1048576 true fw-a.bin" "checksum, size and file name in the answer"
info=$(rest GET "/api/otaPackage/info/$A")
assert_eq "$(jq -r .checksum <<<"$info")" "$SHA" "GET /api/otaPackage/info/{id}: the SHA-256"
assert_eq "$(rest GET "/api/otaPackage/$A" | jq -r .dataSize)" 1048576 "GET /api/otaPackage/{id}"
[ -f "$IT_DATA/ota/$A" ] || fail "the image is not in <data-dir>/ota/<id>"
assert_eq "$(sha256sum "$IT_DATA/ota/$A" | cut -d' ' -f1)" "$SHA" "image file in the data dir"

# The upload's refusals.
upload_file "$A" "$IMG" "checksumAlgorithm=SHA256" >/dev/null
assert_eq "$(http_code)" 400 "a package's image cannot be replaced"
new_package fw-b 2.0
B=$PKG_ID
IMG_B=$IT_TMP/fw-b.bin
head -c 5000 /dev/urandom >"$IMG_B"
SHA_B=$(sha256sum "$IMG_B" | cut -d' ' -f1)
out=$(upload_file "$B" "$IMG_B" "checksumAlgorithm=SHA256&checksum=${SHA:0:63}0")
assert_eq "$(http_code)" 400 "a checksum that does not match the file"
assert_match "$out" 'Wrong checksum' "... says why"
upload_file "$B" "$IMG_B" "checksumAlgorithm=CRC32" >/dev/null
assert_eq "$(http_code)" 400 "CRC32 (not computed by coaphub) refused"
upload_file "$B" "$IMG_B" "checksumAlgorithm=NOPE" >/dev/null
assert_eq "$(http_code)" 400 "unknown checksum algorithm"
upload_file "$B" "$IMG_B" "" >/dev/null
assert_eq "$(http_code)" 400 "checksumAlgorithm missing"
code=$(curl -s -o /dev/null -w '%{http_code}' -F "file=@$IMG_B" \
    "$BASE_URL/api/otaPackage/$B?checksumAlgorithm=SHA256")
assert_eq "$code" 401 "upload without a JWT"
head -c 2100000 /dev/zero >"$IT_TMP/big.bin"
out=$(upload_file "$B" "$IT_TMP/big.bin" "checksumAlgorithm=SHA256")
assert_eq "$(http_code)" 413 "an image over --ota-max-size"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Authorization: Bearer $JWT" \
    -H 'Content-Type: application/octet-stream' --data-binary "@$IMG_B" \
    "$BASE_URL/api/otaPackage/$B?checksumAlgorithm=SHA256")
assert_eq "$code" 400 "a body that is not multipart/form-data"
ls "$IT_DATA/ota" | grep -q '^\.upload-' && fail "a refused upload left a temp file"
log "ok: no temp file left behind"
out=$(upload_file "$B" "$IMG_B" "checksumAlgorithm=sha256")
assert_eq "$(http_code)" 200 "fw-b uploaded (algorithm name case-insensitive)"
assert_eq "$(jq -r .checksum <<<"$out")" "$SHA_B" "fw-b checksum"
new_package fw-url 1.0
URLPKG=$PKG_ID

# Pages.
page=$(rest GET "/api/otaPackages?pageSize=2&page=0&sortProperty=title&sortOrder=ASC")
assert_eq "$(jq -r '[.totalElements,.hasNext,(.data|map(.title)|join(","))]|join(" ")' \
    <<<"$page")" "3 true fw-a,fw-b" "GET /api/otaPackages paging and sort"
page=$(rest GET "/api/otaPackages/$PROFILE/FIRMWARE?pageSize=10&page=0&textSearch=fw-")
assert_eq "$(jq -r '.totalElements' <<<"$page")" 2 "by profile and type: only packages with data"

# REST download.
curl -s -D "$IT_TMP/dl.h" -o "$IT_TMP/dl.bin" -H "X-Authorization: Bearer $JWT" \
    "$BASE_URL/api/otaPackage/$A/download"
assert_eq "$(sha256sum "$IT_TMP/dl.bin" | cut -d' ' -f1)" "$SHA" "REST download matches"
assert_match "$(tr -d '\r' <"$IT_TMP/dl.h")" 'Content-Disposition: attachment;filename=fw-a.bin' \
    "Content-Disposition attachment"

# ---- devices -----------------------------------------------------------------------------------
device_create ota-1 otaTok1
D1=$DEV_ID
device_create ota-2 otaTok2
D2=$DEV_ID
device_create ota-x509 "x509tmp$RANDOM"
DX=$DEV_ID
openssl ecparam -out key.pem -name secp256r1 -genkey 2>/dev/null
openssl req -new -key key.pem -x509 -nodes -days 365 -out cert.pem -subj "/CN=ota-x509" \
    2>/dev/null
register_cert "$DX" cert.pem

coap_expect 4.04 get "/fw/otaTok1?title=fw-a&version=1.0"   # nothing assigned yet
coap_expect 4.01 get "/fw/nosuchtoken"
coap_expect 4.01 get "/fw/otaTok1/extra"
coap_expect 4.05 post "/fw/otaTok1" x

# An observer of device 1's shared attributes sees the assignment at once.
OBS="$IT_TMP/attr.obs"
observe_start /api/v1/otaTok1/attributes 120 "$OBS"
wait_for_file_match "$OBS.log" 'process incoming 2\.05 response' 10 || fail "no Observe 2.05"

# ---- assignment to the default profile ---------------------------------------------------------
prof=$(rest GET "/api/deviceProfile/$PROFILE")
out=$(rest POST /api/deviceProfile "$(jq -c --arg id "$A" \
    '.firmwareId={entityType:"OTA_PACKAGE",id:$id}' <<<"$prof")")
assert_eq "$(http_code)" 200 "fw-a assigned to the default profile ($out)"
wait_for_file_match "$OBS" '"fw_title": ?"fw-a"' 10 || fail "observer got no fw_* update"
line=$(grep '"fw_title"' "$OBS" | head -n 1)
assert_eq "$(jq -c -S '{fw_title,fw_version,fw_size,fw_checksum_algorithm,fw_checksum}' \
    <<<"$line")" "$(jq -c -n -S --arg s "$SHA" '{fw_title:"fw-a",fw_version:"1.0",
    fw_size:1048576,fw_checksum_algorithm:"SHA256",fw_checksum:$s}')" \
    "observer received fw_title/version/size/checksum_algorithm/checksum"
assert_eq "$(ts_history "$D1" fw_state | jq -r '.[-1].value')" QUEUED "fw_state QUEUED stored"
assert_eq "$(ts_history "$D1" target_fw_version | jq -r '.[-1].value')" 1.0 "target_fw_version"
attrs=$(rest GET "/api/plugins/telemetry/DEVICE/$D2/values/attributes/SHARED_SCOPE?keys=fw_title")
assert_eq "$(jq -r '.[0].value' <<<"$attrs")" fw-a "device 2 of the profile got fw_title too"

# ---- CoAP downloads with a token ---------------------------------------------------------------
# coap_download CLIENT URL OUT [ARGS...]: a whole-image GET; the client puts the blocks together.
coap_download() {
    local client=$1 url=$2 out=$3; shift 3
    rm -f "$out"
    timeout 120 "$client" -v 4 -m get -B 60 "$@" -o "$out" "$url" >"$out.log" 2>&1
}
for b in 1024 64; do
    coap_download coap-client-notls \
        "coap://127.0.0.1:$COAP_PORT/fw/otaTok1?title=fw-a&version=1.0" "$IT_TMP/co$b.bin" -b "$b"
    assert_eq "$(sha256sum "$IT_TMP/co$b.bin" 2>/dev/null | cut -d' ' -f1)" "$SHA" \
        "1 MiB over plain CoAP, Block2 of $b bytes: SHA-256 matches"
done
# Application chunks ([chunk*size, +size)), and one chunk fetched in 16-byte blocks.
dd if="$IMG" of="$IT_TMP/chunk3.ref" bs=1000 skip=3 count=1 2>/dev/null
coap_download coap-client-notls "coap://127.0.0.1:$COAP_PORT/fw/otaTok1?title=fw-a&size=1000&chunk=3" \
    "$IT_TMP/chunk3.bin"
cmp -s "$IT_TMP/chunk3.bin" "$IT_TMP/chunk3.ref" || fail "chunk 3 of 1000 bytes differs"
log "ok: chunk=3 size=1000 is bytes [3000, 4000)"
dd if="$IMG" of="$IT_TMP/chunk1.ref" bs=4096 skip=1 count=1 2>/dev/null
coap_download coap-client-notls "coap://127.0.0.1:$COAP_PORT/fw/otaTok1?size=4096&chunk=1" \
    "$IT_TMP/chunk1.bin" -b 16
cmp -s "$IT_TMP/chunk1.bin" "$IT_TMP/chunk1.ref" || fail "chunk 1 of 4096 in 16-byte blocks"
log "ok: a 4096-byte chunk in 16-byte Block2 blocks"
dd if="$IMG" of="$IT_TMP/last.ref" bs=1000 skip=1048 2>/dev/null
coap_download coap-client-notls "coap://127.0.0.1:$COAP_PORT/fw/otaTok1?size=1000&chunk=1048" \
    "$IT_TMP/last.bin"
cmp -s "$IT_TMP/last.bin" "$IT_TMP/last.ref" || fail "the short last chunk"
log "ok: the last chunk is short (576 bytes)"
coap_expect 4.02 get "/fw/otaTok1?size=1000&chunk=1049"
assert_match "$COAP_BODY$(cat "$IT_TMP/coap.log")" 'chunk past the end' \
    "a chunk past the end: 4.02 with a diagnostic payload"
coap_expect 4.00 get "/fw/otaTok1?title=fw-b&version=1.0"
coap_expect 4.00 get "/fw/otaTok1?title=fw-a&version=9.9"
coap_expect 4.00 get "/fw/otaTok1?size=x"
coap_expect 4.04 get "/sw/otaTok1"                           # no software assigned
coap_download coap-client-notls "coap://127.0.0.1:$COAP_PORT/api/v1/otaTok1/firmware?title=fw-a" \
    "$IT_TMP/doc.bin"
assert_eq "$(sha256sum "$IT_TMP/doc.bin" | cut -d' ' -f1)" "$SHA" \
    "/api/v1/\$TOKEN/firmware (the path ThingsBoard documents) serves the image"

# ---- X.509 over DTLS, no token -----------------------------------------------------------------
coap_download coap-client-openssl \
    "coaps://127.0.0.1:$COAPS_PORT/fw?title=fw-a&version=1.0" "$IT_TMP/dtls.bin" \
    -c cert.pem -j key.pem
assert_eq "$(sha256sum "$IT_TMP/dtls.bin" 2>/dev/null | cut -d' ' -f1)" "$SHA" \
    "coap-client-openssl -B 60 coaps://HOST/fw with the device certificate: SHA-256 matches"
coap_download coap-client-openssl \
    "coaps://127.0.0.1:$COAPS_PORT/api/v1/firmware?title=fw-a&version=1.0" "$IT_TMP/dtls2.bin" \
    -c cert.pem -j key.pem -b 512
assert_eq "$(sha256sum "$IT_TMP/dtls2.bin" 2>/dev/null | cut -d' ' -f1)" "$SHA" \
    "coaps://HOST/api/v1/firmware, 512-byte blocks"
timeout 20 coap-client-openssl -v 7 -m get -B 10 "coaps://127.0.0.1:$COAPS_PORT/fw" \
    >"$IT_TMP/nocert.log" 2>&1
grep -q 'process incoming 4\.01 response' "$IT_TMP/nocert.log" || fail "no cert, no token: 4.01"
log "ok: /fw without a certificate or token -> 4.01"

# ---- a device's own package wins over the profile's --------------------------------------------
OBS2="$IT_TMP/attr2.obs"
observe_start /api/v1/otaTok2/attributes 60 "$OBS2"
wait_for_file_match "$OBS2.log" 'process incoming 2\.05 response' 10 || fail "no Observe 2.05 (2)"
dev=$(rest GET "/api/device/$D2")
out=$(rest POST /api/device "$(jq -c --arg id "$B" '.firmwareId={entityType:"OTA_PACKAGE",id:$id}' \
    <<<"$dev")")
assert_eq "$(http_code)" 200 "fw-b assigned to device 2 ($out)"
assert_eq "$(jq -r .firmwareId.id <<<"$out")" "$B" "device JSON carries firmwareId"
wait_for_file_match "$OBS2" '"fw_title": ?"fw-b"' 10 || fail "device 2 observer: no fw-b update"
log "ok: device 2's observer got fw-b"
coap_download coap-client-notls "coap://127.0.0.1:$COAP_PORT/fw/otaTok2?title=fw-b&version=2.0" \
    "$IT_TMP/b.bin"
assert_eq "$(sha256sum "$IT_TMP/b.bin" | cut -d' ' -f1)" "$SHA_B" "device 2 downloads fw-b"
coap_expect 4.00 get "/fw/otaTok2?title=fw-a&version=1.0"
# The scripted device (tools/ota-device.sh) takes the update as ThingsBoard documents it.
: "${COAPHUB_SRC:=$(cd "$IT_DIR/../.." && pwd)}"
mkdir -p "$IT_TMP/dev2"
bash "$COAPHUB_SRC/tools/ota-device.sh" --host 127.0.0.1 --port "$COAP_PORT" --token otaTok2 \
    --once --state "$IT_TMP/dev2" >"$IT_TMP/otadev.log" 2>&1 \
    || { cat "$IT_TMP/otadev.log" >&2; fail "tools/ota-device.sh did not update"; }
assert_eq "$(ts_history "$D2" fw_state | jq -r '[.[].value]|join(" ")')" \
    "QUEUED QUEUED DOWNLOADING DOWNLOADED VERIFIED UPDATING UPDATED" \
    "fw_state of device 2: queued by the profile's and its own assignment, then its progress"
assert_eq "$(ts_history "$D2" current_fw_title | jq -r '.[-1].value')" fw-b \
    "current_fw_title reported"
coap_download coap-client-notls "coap://127.0.0.1:$COAP_PORT/fw/otaTok1" "$IT_TMP/a2.bin"
assert_eq "$(sha256sum "$IT_TMP/a2.bin" | cut -d' ' -f1)" "$SHA" "device 1 still gets fw-a"
out=$(rest POST /api/device "$(jq -c --arg id "$URLPKG" \
    '.firmwareId={entityType:"OTA_PACKAGE",id:$id}' <<<"$dev")")
assert_eq "$(http_code)" 400 "a package without data or URL cannot be assigned"

# ---- delete refused while assigned -------------------------------------------------------------
out=$(rest DELETE "/api/otaPackage/$A")
assert_eq "$(http_code) $(jq -r .message <<<"$out")" \
    "400 The otaPackage referenced by the device profile cannot be deleted!" \
    "delete of the profile's package refused"
out=$(rest DELETE "/api/otaPackage/$B")
assert_eq "$(http_code) $(jq -r .message <<<"$out")" \
    "400 The otaPackage referenced by the devices cannot be deleted!" \
    "delete of a device's package refused"

# Unassigning from the profile deletes the attributes of its devices (device 1).
prof=$(rest GET "/api/deviceProfile/$PROFILE")
rest POST /api/deviceProfile "$(jq -c '.firmwareId=null' <<<"$prof")" >/dev/null
assert_eq "$(http_code)" 200 "profile firmware unassigned"
wait_for_file_match "$OBS" '"deleted"' 10 || fail "no deleted notification for fw_*"
assert_eq "$(grep '"deleted"' "$OBS" | jq -c '.deleted|sort')" \
    '["fw_checksum","fw_checksum_algorithm","fw_size","fw_title","fw_version"]' \
    "device 1 told that exactly its fw_* attributes were deleted"
coap_expect 4.04 get "/fw/otaTok1"
rest DELETE "/api/otaPackage/$A" >/dev/null
assert_eq "$(http_code)" 200 "fw-a deleted once unassigned"
[ -e "$IT_DATA/ota/$A" ] && fail "the image file of a deleted package is still there"
log "ok: image file removed with its package"

# ---- coaphub-cli ota ---------------------------------------------------------------------------
export COAPHUB_URL=$BASE_URL COAPHUB_USER=$ADMIN_USER COAPHUB_PASSWORD=$ADMIN_PASSWORD
IMG_C=$IT_TMP/fw-c.bin
head -c 70000 /dev/urandom >"$IMG_C"
out=$("$COAPHUB_CLI" --json ota upload --title fw-c --version 3.0 "$IMG_C") \
    || fail "coaphub-cli ota upload failed: $out"
assert_eq "$(jq -r .checksum <<<"$out")" "$(sha256sum "$IMG_C" | cut -d' ' -f1)" \
    "coaphub-cli ota upload: checksum"
"$COAPHUB_CLI" ota list | grep -Eq '^[0-9a-f-]{36} +FIRMWARE +fw-c +3\.0 +70000 ' \
    || fail "coaphub-cli ota list does not show fw-c"
log "ok: coaphub-cli ota list"
"$COAPHUB_CLI" ota assign fw-c@3.0 --device ota-1 >/dev/null || fail "ota assign --device"
coap_download coap-client-notls "coap://127.0.0.1:$COAP_PORT/fw/otaTok1?title=fw-c" "$IT_TMP/c.bin"
cmp -s "$IT_TMP/c.bin" "$IMG_C" || fail "device 1 does not download fw-c after ota assign"
log "ok: coaphub-cli ota assign --device"
"$COAPHUB_CLI" ota delete fw-c@3.0 2>"$IT_TMP/cli.err" && fail "deleted an assigned package"
grep -q 'referenced by the devices' "$IT_TMP/cli.err" || fail "CLI did not show the refusal"
"$COAPHUB_CLI" ota assign none --type FIRMWARE --device ota-1 >/dev/null || fail "unassign"
"$COAPHUB_CLI" ota assign fw-c@3.0 --profile default >/dev/null || fail "ota assign --profile"
coap_download coap-client-notls "coap://127.0.0.1:$COAP_PORT/fw/otaTok1" "$IT_TMP/c2.bin"
cmp -s "$IT_TMP/c2.bin" "$IMG_C" || fail "profile assignment through the CLI"
"$COAPHUB_CLI" ota assign none --type FIRMWARE --profile default >/dev/null || fail "unassign p"
"$COAPHUB_CLI" ota delete fw-c@3.0 >/dev/null || fail "coaphub-cli ota delete"
log "ok: coaphub-cli ota assign --profile, delete"

# ---- a deleted profile takes its packages' images with it ---------------------------------------
out=$(rest POST /api/deviceProfile '{"name":"ota-p2"}')
assert_eq "$(http_code)" 200 "second profile ($out)"
P2=$(jq -r .id.id <<<"$out")
out=$(rest POST /api/otaPackage "{\"title\":\"fw-p2\",\"version\":\"1\",\"type\":\"FIRMWARE\",
    \"deviceProfileId\":{\"entityType\":\"DEVICE_PROFILE\",\"id\":\"$P2\"}}")
P2PKG=$(jq -r .id.id <<<"$out")
upload_file "$P2PKG" "$IMG_B" "checksumAlgorithm=SHA256" >/dev/null
assert_eq "$(http_code)" 200 "image uploaded to a package of the second profile"
[ -f "$IT_DATA/ota/$P2PKG" ] || fail "no image file for fw-p2"
rest DELETE "/api/deviceProfile/$P2" >/dev/null
assert_eq "$(http_code)" 200 "second profile deleted"
[ -e "$IT_DATA/ota/$P2PKG" ] && fail "the deleted profile's package image is still there"
log "ok: deleting a profile removed its packages' images"

# ---- start-up sweep of image files without a row -----------------------------------------------
daemon_stop
: >"$IT_DATA/ota/00000000-0000-4000-8000-000000000000"
: >"$IT_DATA/ota/.upload-00000000-1-1"
daemon_start
[ -e "$IT_DATA/ota/00000000-0000-4000-8000-000000000000" ] && fail "orphan image not removed"
[ -e "$IT_DATA/ota/.upload-00000000-1-1" ] && fail "temp file not removed"
[ -f "$IT_DATA/ota/$B" ] || fail "a package's image was removed by the sweep"
log "ok: orphans removed at start, images with a row kept"

it_pass
