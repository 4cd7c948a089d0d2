# shellcheck shell=bash
# lib.sh — shared helpers for coaphub's integration tests (sourced by every test_*.sh).
#
# Each test starts the real daemon ($COAPHUB_BIN) on 127.0.0.1 with free ephemeral ports and
# a temporary data dir, drives it with real clients (coap-client-notls, curl, python3 sockets)
# and stops it with SIGTERM. A test FAILS if any assertion fails, if the daemon does not exit 0
# on SIGTERM, or if its stderr holds a sanitizer report. Invariants: every wait loop is bounded
# in count and time; all traffic goes to 127.0.0.1; the trap removes everything we created.
#
# Environment (set by ctest, see CMakeLists.txt): COAPHUB_BIN, COAPHUB_CLI, COAPHUB_SRC,
# COAPHUB_BUILD. Run one by hand:  COAPHUB_BIN=build/coaphub bash tests/integration/test_x.sh
#
# Backends: COAPHUB_TEST_BACKEND=sqlite (the default) keeps the database in the data dir;
# COAPHUB_TEST_BACKEND=postgresql gives the test a fresh PostgreSQL database of its own on the
# server $COAPHUB_TEST_PG names (a superuser's URL: scripts/pg-test-server.sh starts one and
# writes it to DIR/env; scripts/test.sh does that for ctest). The first daemon_start creates the
# database, restarts in the same test reuse it (a restarted daemon must find its data), and
# it_cleanup drops it. By hand:
#   scripts/pg-test-server.sh start /tmp/pg && . /tmp/pg/env
#   COAPHUB_TEST_BACKEND=postgresql COAPHUB_BIN=build/coaphub bash tests/integration/test_x.sh

set -u
set -o pipefail

IT_NAME=$(basename "${0%.sh}")
IT_DIR=$(cd "$(dirname "$0")" && pwd)
: "${COAPHUB_BIN:?COAPHUB_BIN must point at the coaphub daemon}"
: "${COAPHUB_CLI:=$(dirname "$COAPHUB_BIN")/coaphub-cli}"
IT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/coaphub-it.XXXXXX")
IT_DATA="$IT_TMP/data"
IT_LOG="$IT_TMP/daemon.log"
IT_PIDS=()            # background helpers we started (observers, load scripts)
DAEMON_PID=""
ADMIN_USER="admin@coaphub.test"
ADMIN_PASSWORD="it-$RANDOM-$RANDOM-pw"
JWT=""
IT_FAILED=0
IT_BACKEND=${COAPHUB_TEST_BACKEND:-sqlite}
IT_DB=""              # PostgreSQL: the test's database, made by the first daemon_start
IT_DB_URL=""          # ... and its URL, what the daemon gets as --database
mkdir -p "$IT_DATA"

# Sanitizer reports must reach the log; a leak report at exit fails the test via the grep.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

log()  { printf '[%s %s] %s\n' "$IT_NAME" "$(date +%H:%M:%S)" "$*" >&2; }

it_cleanup() {
    local rc=$?
    for p in "${IT_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
    if [ -n "$IT_DB" ]; then   # FORCE: also if a connection of the daemon's is still closing
        it_psql -c "DROP DATABASE IF EXISTS \"$IT_DB\" WITH (FORCE)" >/dev/null ||
            log "warning: could not drop database $IT_DB"
    fi
    if [ "$rc" -ne 0 ] || [ "$IT_FAILED" -ne 0 ]; then
        log "FAILED; last daemon log lines:"
        tail -n 40 "$IT_LOG" >&2 2>/dev/null
        [ "$rc" -eq 0 ] && rc=1
    fi
    rm -rf "$IT_TMP"
    exit "$rc"
}
trap it_cleanup EXIT
trap 'exit 130' INT TERM

fail() { log "FAIL: $*"; IT_FAILED=1; exit 1; }

# assert_eq ACTUAL EXPECTED WHAT
assert_eq() {
    [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
    log "ok: $3"
}
# assert_match ACTUAL EXTENDED_REGEX WHAT
assert_match() {
    printf '%s' "$1" | grep -Eq -- "$2" || fail "$3: '$1' does not match /$2/"
    log "ok: $3"
}

need() { command -v "$1" >/dev/null 2>&1 || fail "missing tool: $1"; }
need curl; need jq; need python3; need coap-client-notls; need timeout
[ -x "$COAPHUB_BIN" ] || fail "COAPHUB_BIN=$COAPHUB_BIN is not executable"
case $IT_BACKEND in
    sqlite) ;;
    postgresql)
        need psql
        # A PostgreSQL variant without a server must fail, never pass on SQLite.
        [ -n "${COAPHUB_TEST_PG:-}" ] || fail "COAPHUB_TEST_BACKEND=postgresql but COAPHUB_TEST_PG" \
            "is not set: run scripts/test.sh, or scripts/pg-test-server.sh start DIR && . DIR/env" ;;
    *) fail "COAPHUB_TEST_BACKEND=$IT_BACKEND: expected sqlite or postgresql" ;;
esac
log "backend: $IT_BACKEND"

# ---------------------------------------------------------------------------------------------
# PostgreSQL (COAPHUB_TEST_BACKEND=postgresql).

# it_psql ARGS...: psql as the test server's superuser on its admin database (bounded).
it_psql() {
    PGCONNECT_TIMEOUT=10 timeout 60 psql "$COAPHUB_TEST_PG" -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

# pg_url_with_db URL DB: URL with its database (the path) replaced by DB, its ?query kept.
pg_url_with_db() {
    local url=$1 db=$2 query=""
    case $url in *\?*) query="?${url#*\?}"; url=${url%%\?*} ;; esac
    case ${url#*://} in */*) url=${url%/*} ;; esac
    printf '%s/%s%s' "$url" "$db" "$query"
}

# pg_db_create: once per test, a fresh database named after the test and this shell's pid;
# sets IT_DB and IT_DB_URL. Not a $(...) helper (fail must end the test).
pg_db_create() {
    [ -z "$IT_DB" ] || return 0
    local name
    name=$(printf 'it_%s_%s_%s' "${IT_NAME#test_}" "$$" "$RANDOM" | tr -c 'a-zA-Z0-9_' _ \
        | tr 'A-Z' 'a-z')
    name=${name:0:63}
    it_psql -c "CREATE DATABASE \"$name\"" >/dev/null || fail "CREATE DATABASE $name failed"
    IT_DB=$name
    IT_DB_URL=$(pg_url_with_db "$COAPHUB_TEST_PG" "$name")
    log "database $IT_DB"
}

# it_sql SQL: runs SQL on the test's database as another client would (the daemon's database
# in either backend: sqlite3 on the data dir's file, psql on PostgreSQL); rows on stdout,
# columns separated by '|'. For checks that look under the API.
it_sql() {
    if [ "$IT_BACKEND" = postgresql ]; then
        [ -n "$IT_DB_URL" ] || fail "it_sql: no database yet (daemon_start makes it)"
        PGCONNECT_TIMEOUT=10 timeout 60 psql "$IT_DB_URL" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"
    else
        need sqlite3
        timeout 60 sqlite3 -batch "$IT_DATA/coaphub.db" "$1"
    fi
}

# ---------------------------------------------------------------------------------------------
# Ports: ask the kernel for free ones (bind to port 0), checking UDP and TCP both, since the
# same number serves a UDP listener (CoAP) or a TCP one (HTTP). A small race remains between
# picking and the daemon's bind; daemon_start retries with new ports once.

free_ports() {   # prints N distinct free port numbers, one per line
    python3 - "$1" <<'PY'
import socket, sys
n, out, tries = int(sys.argv[1]), [], 0
while len(out) < n and tries < 200:
    tries += 1
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        u.close(); t.close()
    if p not in out:
        out.append(p)
print("\n".join(map(str, out)))
PY
}

pick_ports() {
    local ports
    mapfile -t ports < <(free_ports 3)
    [ "${#ports[@]}" -eq 3 ] || fail "could not find free ports"
    COAP_PORT=${ports[0]}; COAPS_PORT=${ports[1]}; HTTP_PORT=${ports[2]}
    BASE_URL="http://127.0.0.1:$HTTP_PORT"
}

# ---------------------------------------------------------------------------------------------
# Daemon lifecycle.

# daemon_start: starts on $IT_DATA and the current ports, waits (<= 20 s) for /healthz = 200.
# On PostgreSQL it passes --database with the test's database (made on the first start).
# Options in the array DAEMON_ARGS (if the test sets it) are passed on.
daemon_start() {
    [ -n "${HTTP_PORT:-}" ] || pick_ports
    local db_args=()
    if [ "$IT_BACKEND" = postgresql ]; then
        pg_db_create
        db_args=(--database "$IT_DB_URL")
    fi
    local attempt
    for attempt in 1 2; do
        echo "=== start $(date +%T) ports coap=$COAP_PORT coaps=$COAPS_PORT http=$HTTP_PORT" \
            >>"$IT_LOG"
        COAPHUB_ADMIN_USER="$ADMIN_USER" COAPHUB_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
            "$COAPHUB_BIN" --data-dir "$IT_DATA" --bind 127.0.0.1 --http-bind 127.0.0.1 \
            --coap-port "$COAP_PORT" \
            --coaps-port "$COAPS_PORT" --http-port "$HTTP_PORT" --log-level debug \
            "${db_args[@]}" ${DAEMON_ARGS[@]+"${DAEMON_ARGS[@]}"} </dev/null >>"$IT_LOG" 2>&1 &
        DAEMON_PID=$!
        local i
        for i in $(seq 1 200); do            # 200 x 0.1 s = 20 s at most
            if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
                wait "$DAEMON_PID"; log "daemon exited early (rc=$?)"; DAEMON_PID=""; break
            fi
            if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
                    "$BASE_URL/healthz" 2>/dev/null)" = 200 ]; then
                log "daemon up (pid $DAEMON_PID, coap $COAP_PORT, http $HTTP_PORT)"
                [ "$IT_BACKEND" = postgresql ] && check_on_postgresql
                return 0
            fi
            sleep 0.1
        done
        if [ -n "$DAEMON_PID" ]; then
            kill -KILL "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=""
        fi
        check_sanitizers
        [ "$attempt" = 1 ] && { log "start failed, retrying on new ports"; pick_ports; }
    done
    fail "daemon did not become healthy"
}

# check_on_postgresql: the daemon really keeps its data in the test's database (it migrated
# it, and made no SQLite file): a PostgreSQL variant must never pass on SQLite.
check_on_postgresql() {
    local v
    v=$(it_sql "SELECT MAX(version) FROM schema_version") ||
        fail "the daemon did not create its schema in PostgreSQL database $IT_DB"
    [ "${v:-0}" -ge 1 ] 2>/dev/null || fail "no schema version in PostgreSQL database $IT_DB"
    [ ! -e "$IT_DATA/coaphub.db" ] || fail "--database given, but the daemon made an SQLite file"
}

check_sanitizers() {
    if grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error|UndefinedBehaviorSanitizer' \
            "$IT_LOG" 2>/dev/null; then
        grep -E -A 30 'Sanitizer|runtime error' "$IT_LOG" | head -n 80 >&2
        fail "sanitizer report in daemon stderr"
    fi
}

# daemon_stop: SIGTERM, wait <= 15 s, require exit status 0 and a clean log.
daemon_stop() {
    [ -n "$DAEMON_PID" ] || fail "daemon_stop: daemon not running"
    kill -TERM "$DAEMON_PID" 2>/dev/null || fail "daemon died before SIGTERM"
    local i rc=""
    for i in $(seq 1 150); do
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            wait "$DAEMON_PID"; rc=$?; break
        fi
        sleep 0.1
    done
    if [ -z "$rc" ]; then
        kill -KILL "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=""
        fail "daemon did not exit within 15 s of SIGTERM"
    fi
    DAEMON_PID=""
    check_sanitizers
    [ "$rc" = 0 ] || fail "daemon exited with status $rc after SIGTERM"
    log "daemon stopped cleanly"
}

# daemon_kill9: simulates a crash; the data dir stays for a restart.
daemon_kill9() {
    [ -n "$DAEMON_PID" ] || return 0
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=""
}

# it_pass: the last line of every test: clean shutdown, then success.
it_pass() {
    daemon_stop
    log "PASS"
    exit 0
}

# ---------------------------------------------------------------------------------------------
# REST.  rest METHOD PATH [JSON_BODY] -> body on stdout, status in $IT_TMP/http_code.
# Use `rest ... >file` or "$(rest ...)" and read the status with http_code. Helpers that may
# call fail (login, device_create, coap_expect) set globals and must not run inside $(...).

rest() {
    local method=$1 path=$2 body=${3-}
    local args=(-s -X "$method" --max-time 30 -o "$IT_TMP/rest.body" -w '%{http_code}'
                -H 'Accept: application/json')
    [ -n "$JWT" ] && args+=(-H "X-Authorization: Bearer $JWT")
    [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    curl "${args[@]}" "$BASE_URL$path" >"$IT_TMP/http_code" 2>/dev/null || echo 000 >"$IT_TMP/http_code"
    cat "$IT_TMP/rest.body"
}
http_code() { cat "$IT_TMP/http_code"; }

login() {
    local out
    out=$(rest POST /api/auth/login \
        "{\"username\":\"$ADMIN_USER\",\"password\":\"$ADMIN_PASSWORD\"}")
    [ "$(http_code)" = 200 ] || fail "login: HTTP $(http_code): $out"
    JWT=$(printf '%s' "$out" | jq -r .token)
    [ -n "$JWT" ] && [ "$JWT" != null ] || fail "login: no token in $out"
}

# device_create NAME TOKEN -> sets DEV_ID (not a $(...) helper: fail must end the test)
device_create() {
    local out
    out=$(rest POST "/api/device?accessToken=$2" "{\"name\":\"$1\",\"type\":\"default\"}")
    [ "$(http_code)" = 200 ] || fail "create device $1: HTTP $(http_code): $out"
    DEV_ID=$(printf '%s' "$out" | jq -r .id.id)
    [ -n "$DEV_ID" ] && [ "$DEV_ID" != null ] || fail "create device $1: no id in $out"
}

# ts_history DEVICE_ID KEY [LIMIT] -> JSON array of {ts,value}, all of history
ts_history() {
    local now; now=$(( $(date +%s) * 1000 + 600000 ))
    rest GET "/api/plugins/telemetry/DEVICE/$1/values/timeseries?keys=$2&startTs=0&endTs=$now&limit=${3:-100000}&orderBy=ASC&useStrictDataTypes=true" \
        | jq -c ".\"$2\" // []"
}

# register_cert DEVICE_ID PEM_FILE: sets the device's X.509 credentials through the
# ThingsBoard REST flow (GET the credentials, change type and value, POST them back).
register_cert() {
    local cur body out
    cur=$(rest GET "/api/device/$1/credentials")
    [ "$(http_code)" = 200 ] || fail "get credentials: HTTP $(http_code)"
    body=$(jq -c --rawfile pem "$2" \
        '.credentialsType="X509_CERTIFICATE" | .credentialsValue=$pem | del(.credentialsId)' \
        <<<"$cur")
    out=$(rest POST /api/device/credentials "$body")
    [ "$(http_code)" = 200 ] || fail "register certificate: HTTP $(http_code): $out"
}

# ---------------------------------------------------------------------------------------------
# CoAP through the real libcoap client.
#   coap METHOD PATH [PAYLOAD] [-- extra coap-client args]
# Sets COAP_CODE (e.g. 2.01, 4.04; "none" when no response) and COAP_BODY (payload text).
# PATH is everything after the port, including ?query. Debug logs (-v 7) name each incoming
# response ("process incoming 2.05 response"); the payload goes to a file via -o.

coap() {
    local method=$1 path=$2; shift 2
    local args=(-v 7 -w -B 8 -o "$IT_TMP/coap.body" -m "$method")
    if [ $# -ge 1 ] && [ "$1" != -- ]; then args+=(-e "$1"); shift; fi
    [ "${1-}" = -- ] && shift
    rm -f "$IT_TMP/coap.body"
    timeout 10 coap-client-notls "${args[@]}" "$@" "coap://127.0.0.1:$COAP_PORT$path" \
        >"$IT_TMP/coap.log" 2>&1
    COAP_CODE=$(grep -Eo 'process incoming [0-9]\.[0-9]{2} response' "$IT_TMP/coap.log" \
        | tail -n 1 | awk '{print $3}')
    [ -n "$COAP_CODE" ] || COAP_CODE=none
    COAP_BODY=""
    [ -f "$IT_TMP/coap.body" ] && COAP_BODY=$(cat "$IT_TMP/coap.body")
    return 0
}

# coap_expect CODE METHOD PATH [PAYLOAD] [-- args]: asserts the response code.
coap_expect() {
    local want=$1; shift
    coap "$@"
    [ "$COAP_CODE" = "$want" ] || {
        tail -n 20 "$IT_TMP/coap.log" >&2
        fail "CoAP $1 $2: expected $want, got $COAP_CODE (body '$COAP_BODY')"
    }
    log "ok: CoAP $1 $2 -> $want"
}

# observe_start PATH SECONDS OUTFILE: background observer; payloads (one per line) go to
# OUTFILE, the client log to OUTFILE.log. Prints nothing; the pid is added to IT_PIDS and
# stored in OBS_PID.
observe_start() {
    timeout $(( $2 + 10 )) coap-client-notls -v 7 -w -m get -s "$2" -B "$(( $2 + 5 ))" \
        -o "$3" "coap://127.0.0.1:$COAP_PORT$1" >"$3.log" 2>&1 &
    OBS_PID=$!
    IT_PIDS+=("$OBS_PID")
}

# wait_for_file_match FILE REGEX SECONDS: bounded poll until FILE has a line matching REGEX.
wait_for_file_match() {
    local i
    for i in $(seq 1 $(( $3 * 10 ))); do
        grep -Eq -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
