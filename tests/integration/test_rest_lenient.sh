#!/usr/bin/env bash
# test_rest_lenient.sh — REST parameters in the forms ThingsBoard's own clients send (issue 15
# point 2, docs/COMPATIBILITY.md "REST parameters"): pageSize=999999999 as "all" over more
# devices than one store chunk (1000), so the answer is streamed and still has the right
# totals; page beyond the end; sortOrder in any case; ThingsBoard's 400s for bad paging and
# sorting; deviceInfos' type and active filters; time series with keys "a, b", repeated key,
# entityType in any case, useStrictDataTypes in Spring's boolean forms, startTs/endTs omitted
# (latest), orderBy lower case, agg/interval/limit defaults and limit=999999999; delete and
# attribute parameters. Everything through curl against the real daemon.
. "$(dirname "$0")/lib.sh"

daemon_start
login
cd "$IT_TMP" || fail "no temp dir"

# --- 1210 devices in one curl process (keep-alive), so the list crosses a 1000-row chunk
N=1210
{
    for i in $(seq -w 1 $N); do
        printf 'url = "%s/api/device"\nrequest = "POST"\n' "$BASE_URL"
        printf 'header = "X-Authorization: Bearer %s"\nheader = "Content-Type: application/json"\n' "$JWT"
        printf 'data = "{\\"name\\":\\"dev-%s\\",\\"type\\":\\"default\\"}"\noutput = "/dev/null"\n' "$i"
        printf 'write-out = "%%{http_code}\\n"\nnext\n'
    done
} >create.cfg
curl -s --max-time 300 -K create.cfg >create.codes
assert_eq "$(sort -u create.codes | tr '\n' ' ')" "200 " "all $N devices created"

# --- pageSize far beyond the device count means "all", streamed past the first chunk
rest GET '/api/tenant/devices?pageSize=999999999&page=0&sortProperty=name&sortOrder=asc' >all.json
assert_eq "$(http_code)" 200 "pageSize=999999999 -> 200"
assert_eq "$(jq -r '[.totalElements, .totalPages, .hasNext, (.data | length)] | join(" ")' all.json)" \
    "$N 1 false $N" "pageSize=999999999: every device, totalPages 1, hasNext false"
assert_eq "$(jq -r '[.data[].name] | unique | length' all.json)" "$N" "no device twice"
assert_eq "$(jq -r '[.data[].name] == ([.data[].name] | sort)' all.json)" true \
    "sortOrder=asc (lower case) sorts ascending"
assert_eq "$(jq -r '.data[0].name, .data[-1].name' all.json | tr '\n' ' ')" "dev-0001 dev-$N " \
    "first and last by name"

# a client that goes away in the middle of a streamed answer: the server frees the stream
# (the sanitizers check it at the end) and carries on
curl -s -N --max-time 30 -H "X-Authorization: Bearer $JWT" \
    "$BASE_URL/api/tenant/devices?pageSize=999999999&page=0" | head -c 300 >/dev/null
rest GET '/api/tenant/devices?pageSize=1&page=0' >/dev/null
assert_eq "$(http_code)" 200 "server answers after a client dropped a streamed answer"

# page 1 of 700: starts inside the first chunk and ends in the second
out=$(rest GET '/api/tenant/devices?pageSize=700&page=1&sortProperty=name&sortOrder=ASC')
assert_eq "$(jq -r '[(.data | length), .data[0].name, .data[-1].name, .totalPages, .hasNext] | join(" ")' <<<"$out")" \
    "510 dev-0701 dev-$N 2 false" "pageSize=700 page=1 crosses the chunk boundary"
out=$(rest GET '/api/tenant/devices?pageSize=1000&page=1&sortProperty=name')
assert_eq "$(jq -r '[(.data | length), .data[0].name] | join(" ")' <<<"$out")" "210 dev-1001" \
    "sortProperty without sortOrder is ascending (ThingsBoard's default)"
out=$(rest GET '/api/tenant/devices?pageSize=5&page=0&sortProperty=name&sortOrder=desc')
assert_eq "$(jq -r '[.data[].name] | join(",")' <<<"$out")" \
    "dev-$N,dev-1209,dev-1208,dev-1207,dev-1206" "sortOrder=desc (lower case)"
assert_eq "$(jq -r '[.totalPages, .hasNext] | join(" ")' <<<"$out")" "242 true" \
    "totalPages and hasNext of a small page"
out=$(rest GET '/api/tenant/devices?pageSize=999999999&page=3')
assert_eq "$(jq -c '[(.data | length), .totalElements, .totalPages, .hasNext]' <<<"$out")" \
    "[0,$N,1,false]" "a page past the end is empty, totals right"
out=$(rest GET '/api/tenant/devices?pageSize=2147483647&page=2147483647')
assert_eq "$(http_code) $(jq -c '[(.data | length), .totalElements, .hasNext]' <<<"$out")" \
    "200 [0,$N,false]" "the largest page and pageSize: an offset near 2^62, no overflow"
out=$(rest GET '/api/tenant/devices?pageSize=3')
assert_eq "$(http_code) $(jq -r '.data | length' <<<"$out")" "200 3" "page omitted -> page 0"
out=$(rest GET '/api/tenant/devices?pageSize=%203%20&page=0')
assert_eq "$(http_code) $(jq -r '.data | length' <<<"$out")" "200 3" "pageSize with spaces (Spring trims)"

# ThingsBoard's 400s
bad() { # bad PATH EXPECTED_MESSAGE LABEL
    local out; out=$(rest GET "$1")
    assert_eq "$(http_code)" 400 "$3 -> 400"
    assert_eq "$(jq -r '"\(.errorCode) \(.message)"' <<<"$out")" "31 $2" "$3 message"
}
bad '/api/tenant/devices?page=0' \
    "Required request parameter 'pageSize' for method parameter type int is not present" \
    "pageSize missing"
bad '/api/tenant/devices?pageSize=0&page=0' \
    "Incorrect page link page size '0'. Page size must be greater than zero." "pageSize=0"
bad '/api/tenant/devices?pageSize=10&page=-1' \
    "Incorrect page link page '-1'. Page must be positive integer." "page=-1"
bad '/api/tenant/devices?pageSize=2147483648&page=0' \
    "Failed to convert value of type 'java.lang.String' to required type 'int'; For input string: \"2147483648\"" \
    "pageSize beyond a Java int"
bad '/api/tenant/devices?pageSize=ten&page=0' \
    "Failed to convert value of type 'java.lang.String' to required type 'int'; For input string: \"ten\"" \
    "pageSize not a number"
bad '/api/tenant/devices?pageSize=10&page=0&sortProperty=name&sortOrder=up' \
    "Unsupported sort order 'up'! Only 'ASC' or 'DESC' types are allowed." "sortOrder=up"
bad '/api/tenant/device' \
    "Required request parameter 'deviceName' for method parameter type String is not present" \
    "deviceName missing"

# --- the other lists take the same paging
out=$(rest GET '/api/deviceProfiles?pageSize=999999999&page=0&sortProperty=name&sortOrder=Desc')
assert_eq "$(http_code) $(jq -r '[.totalElements, .totalPages, .hasNext] | join(" ")' <<<"$out")" \
    "200 1 1 false" "deviceProfiles pageSize=999999999"
out=$(rest GET '/api/deviceProfileInfos?pageSize=999999999&page=0&transportType=DEFAULT')
assert_eq "$(http_code) $(jq -r .totalElements <<<"$out")" "200 1" "deviceProfileInfos transportType"
out=$(rest GET '/api/otaPackages?pageSize=999999999&page=0&sortProperty=title&sortOrder=asc')
assert_eq "$(http_code) $(jq -c '[.totalElements, .totalPages, .hasNext]' <<<"$out")" \
    "200 [0,0,false]" "otaPackages pageSize=999999999"
PROFILE=$(rest GET /api/deviceProfileInfo/default | jq -r .id.id)
out=$(rest GET "/api/otaPackages/${PROFILE^^}/FIRMWARE?pageSize=999999999&page=0")
assert_eq "$(http_code) $(jq -r .totalElements <<<"$out")" "200 0" "otaPackages/{PROFILE in upper case}/FIRMWARE"
rest GET "/api/otaPackages/$PROFILE/firmware?pageSize=10&page=0" >/dev/null
assert_eq "$(http_code)" 400 "OTA type in lower case -> 400 (OtaPackageType.valueOf)"
rest GET '/api/otaPackages?pageSize=-5&page=0' >/dev/null
assert_eq "$(http_code)" 400 "otaPackages pageSize=-5 -> 400"
out=$(rest GET '/api/deviceProfile/names?activeOnly=TRUE')
assert_eq "$(http_code) $(jq -r '.[].name' <<<"$out")" "200 default" "activeOnly=TRUE"
rest GET '/api/deviceProfile/names?activeOnly=maybe' >/dev/null
assert_eq "$(http_code)" 400 "activeOnly=maybe -> 400"

# deviceInfos: active (no device is connected) and type, streamed as well
out=$(rest GET '/api/tenant/deviceInfos?pageSize=999999999&page=0&active=false')
assert_eq "$(jq -r '[.totalElements, (.data | length), ([.data[].active] | unique | join(","))] | join(" ")' <<<"$out")" \
    "$N $N false" "deviceInfos active=false: all, streamed"
out=$(rest GET '/api/tenant/deviceInfos?pageSize=10&page=0&active=true')
assert_eq "$(jq -c '[.totalElements, (.data | length)]' <<<"$out")" "[0,0]" "deviceInfos active=true: none"
out=$(rest GET '/api/tenant/deviceInfos?pageSize=10&page=0&active=off')
assert_eq "$(jq -r .totalElements <<<"$out")" "$N" "active=off (Spring's boolean forms)"
out=$(rest GET '/api/tenant/deviceInfos?pageSize=10&page=0&type=nosuchtype&deviceProfileId=bogus')
assert_eq "$(http_code) $(jq -r .totalElements <<<"$out")" "200 0" "type wins over deviceProfileId"
rest GET '/api/tenant/deviceInfos?pageSize=10&page=0&active=maybe' >/dev/null
assert_eq "$(http_code)" 400 "active=maybe -> 400"

# --- time series parameters
device_create "ts-dev" tsTok1
D=$DEV_ID
# 150 points of a, one of b, written through REST with explicit timestamps
body=$(jq -cn '[range(1;151) | {ts: (1000 + .), values: {a: .}}] + [{ts: 5000, values: {b: "x"}}]')
rest POST "/api/plugins/telemetry/DEVICE/$D/timeseries/ANY" "$body" >/dev/null
assert_eq "$(http_code)" 200 "telemetry saved"
TM="/api/plugins/telemetry"

out=$(rest GET "$TM/DEVICE/$D/values/timeseries?keys=a,%20b%20")
assert_eq "$(jq -c '[.a[0].value, .b[0].value]' <<<"$out")" '["150","x"]' \
    "keys with spaces, latest, useStrictDataTypes default false (strings)"
for t in device Device DEVICE; do
    out=$(rest GET "$TM/$t/$D/values/timeseries?keys=a&useStrictDataTypes=true")
    assert_eq "$(http_code) $(jq -c '.a[0].value' <<<"$out")" "200 150" "entityType $t"
done
rest GET "$TM/ASSET/$D/values/timeseries?keys=a" >/dev/null
assert_eq "$(http_code)" 400 "entityType ASSET -> 400"
out=$(rest GET "$TM/DEVICE/$D/values/timeseries?keys=a&useStrictDataTypes=yes")
assert_eq "$(jq -c '.a[0].value' <<<"$out")" 150 "useStrictDataTypes=yes (Spring) is true"
out=$(rest GET "$TM/DEVICE/$D/values/timeseries?keys=a&useStrictDataTypes=FALSE")
assert_eq "$(jq -c '.a[0].value' <<<"$out")" '"150"' "useStrictDataTypes=FALSE"
out=$(rest GET "$TM/DEVICE/$D/values/timeseries?keys=a&useStrictDataTypes=maybe")
assert_eq "$(http_code) $(jq -r .message <<<"$out")" \
    "400 Failed to convert value of type 'java.lang.String' to required type 'java.lang.Boolean'; Invalid boolean value 'maybe'" \
    "useStrictDataTypes=maybe -> 400"
out=$(rest GET "$TM/DEVICE/$D/values/timeseries?keys=b&key=a")
assert_eq "$(jq -c 'keys' <<<"$out")" '["a"]' "repeated key wins over keys (ThingsBoard)"
out=$(rest GET "$TM/DEVICE/$D/values/timeseries")
assert_eq "$(jq -c 'keys' <<<"$out")" '["a","b"]' "no keys, no startTs/endTs: latest of every key"
out=$(rest GET "$TM/DEVICE/$D/values/timeseries?keys=a&startTs=0")
assert_eq "$(jq -c '.a | length' <<<"$out")" 1 "startTs alone: still the latest (ThingsBoard)"

H="$TM/DEVICE/$D/values/timeseries?keys=a&startTs=0&endTs=10000"
out=$(rest GET "$H")
assert_eq "$(jq -c '[(.a | length), .a[0].ts]' <<<"$out")" "[100,1150]" \
    "history: limit 100 and orderBy DESC by default"
out=$(rest GET "$H&orderBy=asc&limit=3")
assert_eq "$(jq -c '[.a[].ts]' <<<"$out")" "[1001,1002,1003]" "orderBy=asc (lower case)"
out=$(rest GET "$H&limit=999999999")
assert_eq "$(jq -c '.a | length' <<<"$out")" 150 "limit=999999999: every point of the range"
out=$(rest GET "$TM/DEVICE/$D/values/timeseries?keys=a,b,a,nokey&startTs=0&endTs=9223372036854775807&limit=999999999")
assert_eq "$(jq -c '[keys, (.a | length), (.b | length)]' <<<"$out")" '[["a","b"],150,1]' \
    "history of several keys (streamed key by key), a key named twice answered once"
out=$(rest GET "$H&agg=AVG")
assert_eq "$(jq -c '.a | length' <<<"$out")" 100 "agg without interval: raw points (ThingsBoard)"
out=$(rest GET "$H&agg=SUM&interval=100000&useStrictDataTypes=true")
assert_eq "$(jq -c '[.a[].value]' <<<"$out")" "[11325]" "agg=SUM with an interval"
out=$(rest GET "$TM/DEVICE/$D/values/timeseries/history?keys=a&startTs=0&endTs=10000&limit=2")
assert_eq "$(jq -c '[.a[].ts]' <<<"$out")" "[1150,1149]" "the /history path"
out=$(rest GET "$TM/DEVICE/$D/values/timeseries/history?startTs=0&endTs=10000")
assert_eq "$(http_code) $out" "200 {}" "history without keys: {}"
out=$(rest GET "$TM/DEVICE/$D/values/timeseries/history?keys=a&startTs=0")
assert_eq "$(http_code) $(jq -r .message <<<"$out")" \
    "400 Required request parameter 'endTs' for method parameter type Long is not present" \
    "history without endTs -> 400"
out=$(rest GET "$H&orderBy=sideways")
assert_eq "$(http_code) $(jq -r .message <<<"$out")" \
    "400 Invalid value 'sideways' for orders given; Has to be either 'desc' or 'asc' (case insensitive)" \
    "orderBy=sideways -> 400"
out=$(rest GET "$H&agg=avg&interval=1000")
assert_eq "$(http_code) $(jq -r .message <<<"$out")" \
    "400 No enum constant org.thingsboard.server.common.data.kv.Aggregation.avg" \
    "agg in lower case -> 400 (Aggregation.valueOf)"
out=$(rest GET "$H&agg=SUM&interval=100000&intervalType=MILLISECONDS&useStrictDataTypes=true")
assert_eq "$(jq -c '[.a[].value]' <<<"$out")" "[11325]" "intervalType=MILLISECONDS"
rest GET "$H&agg=SUM&interval=1000&intervalType=MONTH" >/dev/null
assert_eq "$(http_code)" 400 "intervalType=MONTH (calendar buckets not offered) -> 400"
rest GET "$TM/DEVICE/$D/values/timeseries?keys=a&startTs=abc&endTs=10" >/dev/null
assert_eq "$(http_code)" 400 "startTs=abc -> 400"

# delete: ThingsBoard's plain-text 400, then the Spring booleans
out=$(rest DELETE "$TM/DEVICE/$D/timeseries/delete?keys=b")
assert_eq "$(http_code) $out" \
    "400 When deleteAllDataForKeys is false, start and end timestamp values shouldn't be empty" \
    "delete without startTs/endTs -> 400"
rest DELETE "$TM/device/$D/timeseries/delete?keys=b&deleteAllDataForKeys=TRUE" >/dev/null
assert_eq "$(http_code)" 200 "delete with deleteAllDataForKeys=TRUE, entityType device"
assert_eq "$(rest GET "$TM/DEVICE/$D/values/timeseries" | jq -c keys)" '["a"]' "b deleted"

# attributes: keys with spaces, entityType in lower case
rest POST "$TM/device/$D/attributes/SERVER_SCOPE" '{"x":1,"y":"two"}' >/dev/null
assert_eq "$(http_code)" 200 "attributes saved through entityType device"
out=$(rest GET "$TM/device/$D/values/attributes/SERVER_SCOPE?keys=x,%20y")
assert_eq "$(jq -c '[.[].key] | sort' <<<"$out")" '["x","y"]' "attribute keys with spaces"
rest DELETE "$TM/Device/$D/SERVER_SCOPE?keys=x,%20y" >/dev/null
assert_eq "$(http_code)" 200 "attribute delete, keys with spaces"
assert_eq "$(rest GET "$TM/DEVICE/$D/values/attributes/SERVER_SCOPE" | jq -c length)" 0 \
    "both attributes deleted"

it_pass
