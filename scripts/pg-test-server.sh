#!/usr/bin/env bash
# pg-test-server.sh — a throwaway PostgreSQL 15 cluster for the tests (scripts/test.sh starts one
# before ctest and stops it on exit).
#
#   scripts/pg-test-server.sh start DIR   creates and starts a cluster in DIR, writes DIR/env
#   scripts/pg-test-server.sh stop DIR    stops it and removes DIR
#
# For tests of coaphub while its database is down (tests/integration/test_pg_outage.sh), on a
# cluster of their own that start made; each keeps DIR, its data and its port:
#   scripts/pg-test-server.sh halt DIR     stops the server (pg_ctl stop -m fast: a clean stop)
#   scripts/pg-test-server.sh kill DIR     SIGKILLs the postmaster (a crash), waits until it and
#                                          its children are gone
#   scripts/pg-test-server.sh restart DIR  starts the halted or killed server again on the same
#                                          data dir and port (after a kill: crash recovery);
#                                          a running one is halted first
#
# DIR/env holds one line, `export COAPHUB_TEST_PG=postgresql://coaphub:PW@127.0.0.1:PORT/postgres`:
# a superuser role `coaphub` with a random password (scram-sha-256 over TCP), on 127.0.0.1 only,
# on a free port. The tests create one database per test on it and drop it at the end
# (tests/unit/store/store_test_util.h, tests/integration/lib.sh).
#
# The server runs as an unprivileged user: as root, the `postgres` system user that Debian's
# postgresql package creates (DIR is handed to it); otherwise the caller. Its unix socket lives in
# DIR, so it never meets a system cluster's (a Debian "main" cluster on 5432 may exist; it is not
# used). Both commands are idempotent and bounded in time; stop is safe from a trap, on a DIR that
# never got a cluster, or twice. stop removes DIR only if start created a cluster there (it
# leaves a marker), so a wrong argument cannot delete someone's directory.
#
#   PG_BIN        PostgreSQL's programs (default /usr/lib/postgresql/15/bin)
#   PG_CONF_EXTRA a file of postgresql.conf settings appended after the test settings below
#                 (the last setting wins), e.g. bench/store's durable settings (fsync = on ...);
#                 unset: the test cluster as described
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
MARKER=.coaphub-pg-test
START_TIMEOUT_S=30   # pg_ctl start -w -t; initdb of an empty cluster takes ~2 s
STOP_TIMEOUT_S=20   # pg_ctl stop -m fast -w -t, then -m immediate, then SIGKILL

die() { echo "pg-test-server: $*" >&2; exit 1; }
say() { echo "pg-test-server: $*" >&2; }

usage() { die "usage: $0 start|stop|halt|kill|restart DIR"; }
[ $# -eq 2 ] || usage
CMD=$1
DIR=$2
[ -n "$DIR" ] || usage

# The user the server runs as, and how to run a command as that user.
if [ "$(id -u)" -eq 0 ]; then
    PG_USER=postgres
    getent passwd "$PG_USER" >/dev/null ||
        die "running as root, but there is no '$PG_USER' user to run the server as" \
            "(install postgresql-15: scripts/install-deps.sh --test)"
    as_pg() { (cd / && runuser -u "$PG_USER" -- "$@"); }
else
    PG_USER=$(id -un)
    as_pg() { (cd / && "$@"); }
fi

# The postmaster's pid, when DIR's cluster is running (pg_ctl status asks the pid file and the
# process); empty otherwise.
running_pid() {
    [ -f "$DIR/data/postmaster.pid" ] || return 0
    if as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
        head -n 1 "$DIR/data/postmaster.pid"
    fi
}

# free_port: one TCP port on 127.0.0.1 that is free now (the kernel picks it, as free_ports in
# tests/integration/lib.sh). A small race remains until the server binds; start retries.
free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# alive PID: the process exists and is not a zombie (a container's init may not reap the
# daemonized postmaster at once).
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

stop() {
    [ -d "$DIR" ] || return 0
    if [ -z "$(ls -A "$DIR")" ]; then rmdir -- "$DIR"; return 0; fi   # start never got going
    [ -f "$DIR/$MARKER" ] || die "$DIR was not made by '$0 start'; not touching it"
    local pid
    pid=$(running_pid)
    if [ -n "$pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w -t "$STOP_TIMEOUT_S" stop >/dev/null 2>&1 ||
            as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate -w -t "$STOP_TIMEOUT_S" stop \
                >/dev/null 2>&1 || true
        # pg_ctl returns once the pid file is gone; the process may take a moment longer.
        # Still there after 5 s: end the postmaster we started (its pid is in our pid file),
        # and only it; its children exit when it is gone.
        local i
        for i in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then
            say "server $pid did not stop; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            for i in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
        fi
    fi
    rm -rf -- "$DIR"
}

start() {
    [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] ||
        die "no PostgreSQL 15 in $PG_BIN (install postgresql-15: scripts/install-deps.sh --test)"
    command -v psql >/dev/null || die "psql not found (install postgresql-client-15)"

    mkdir -p -- "$DIR"
    DIR=$(cd "$DIR" && pwd)
    # The socket's path must fit in sun_path (107 bytes): DIR/.s.PGSQL.PORT.
    [ ${#DIR} -le 80 ] || die "$DIR is too long for a unix socket path; use a shorter one"
    if [ -f "$DIR/$MARKER" ]; then
        if [ -n "$(running_pid)" ] && [ -f "$DIR/env" ]; then
            say "already running ($DIR/env)"
            return 0
        fi
        stop                      # a leftover of an earlier start: begin again
        mkdir -p -- "$DIR"
    elif [ -n "$(ls -A "$DIR")" ]; then
        die "$DIR is not empty and was not made by '$0 start'"
    fi
    touch "$DIR/$MARKER"
    chmod 700 "$DIR"
    [ "$PG_USER" = "$(id -un)" ] || chown "$PG_USER" "$DIR"
    as_pg test -w "$DIR" ||
        die "$PG_USER cannot write $DIR (a parent directory closed to it? use one under /tmp)"

    local pw
    pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    as_pg sh -c 'umask 077 && cat >"$1"' sh "$DIR/pwfile" <<<"$pw"

    # The bootstrap superuser is `coaphub`; over TCP it logs in with its password (SCRAM), over
    # the socket (in DIR, which only $PG_USER and root can enter) without one.
    as_pg "$PG_BIN/initdb" -D "$DIR/data" -U coaphub --pwfile="$DIR/pwfile" \
        --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 --no-sync \
        >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    as_pg rm -f "$DIR/pwfile"

    # Settings for a test cluster, appended to postgresql.conf (the last setting wins).
    # fsync = off: ONLY in this throwaway cluster, for speed. The tests kill coaphub (kill -9 in
    # test_durability.sh), never this server or the machine's power, and what a test checks is
    # that coaphub answered only after PostgreSQL committed; synchronous_commit stays on, so a
    # commit still waits for its WAL write. Never copy this setting to a real server.
    # max_connections: ctest runs tests in parallel, each store with a read pool, a writer and a
    # maintenance connection, plus the tests' own.
    as_pg sh -c 'cat >>"$1"' sh "$DIR/data/postgresql.conf" <<EOF

# --- coaphub test cluster (scripts/pg-test-server.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
max_connections = 200
fsync = off
synchronous_commit = on
full_page_writes = off
password_encryption = 'scram-sha-256'
logging_collector = off
log_line_prefix = '%m [%p] %d '
EOF
    if [ -n "${PG_CONF_EXTRA:-}" ]; then
        [ -r "$PG_CONF_EXTRA" ] || die "PG_CONF_EXTRA=$PG_CONF_EXTRA is not a readable file"
        { printf '\n# --- %s (PG_CONF_EXTRA) ---\n' "$PG_CONF_EXTRA"; cat "$PG_CONF_EXTRA"; } |
            as_pg sh -c 'cat >>"$1"' sh "$DIR/data/postgresql.conf"
    fi

    local attempt port
    for attempt in 1 2 3; do
        port=$(free_port)
        [ -n "$port" ] || die "could not find a free port"
        if as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t "$START_TIMEOUT_S" \
                -o "-p $port" start >/dev/null 2>&1; then
            break
        fi
        say "server did not start on port $port (attempt $attempt)"
        tail -n 5 "$DIR/server.log" >&2 || true
        as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
        port=""
    done
    [ -n "$port" ] || die "PostgreSQL did not start; log: $DIR/server.log"
    echo "$port" >"$DIR/port"

    # pg_ctl -w waited until the server accepts connections; check what the tests will do: log
    # in over TCP with the password (bounded: 10 tries, each with a 5 s connect timeout).
    local url="postgresql://coaphub:$pw@127.0.0.1:$port/postgres"
    local i ok=""
    for i in $(seq 1 10); do
        if PGCONNECT_TIMEOUT=5 psql "$url" -XAtqc 'SELECT 1' 2>/dev/null | grep -qx 1; then
            ok=1; break
        fi
        sleep 0.5
    done
    [ -n "$ok" ] || { tail -n 20 "$DIR/server.log" >&2; die "cannot log in to the test cluster"; }

    (umask 077 && echo "export COAPHUB_TEST_PG=$url" >"$DIR/env")
    say "PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') on 127.0.0.1:$port" \
        "(data $DIR/data, log $DIR/server.log); . $DIR/env"
}

# made_here: DIR holds a cluster that start made (the marker and the port it chose).
made_here() {
    [ -f "$DIR/$MARKER" ] && [ -f "$DIR/port" ] && [ -d "$DIR/data" ] ||
        die "$DIR holds no cluster made by '$0 start'"
}

halt() {
    made_here
    [ -n "$(running_pid)" ] || return 0
    as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w -t "$STOP_TIMEOUT_S" stop >/dev/null ||
        die "pg_ctl stop -m fast failed"
}

# kill: the postmaster dies at once, as in a crash; its backends notice and exit by
# themselves (they watch for the postmaster's death). Returns once they are all gone, since a
# new postmaster refuses to start while a process of the old one still uses its shared memory.
kill_server() {
    made_here
    local pid
    pid=$(running_pid)
    [ -n "$pid" ] || return 0
    local kids
    kids=$(ps -o pid= --ppid "$pid" 2>/dev/null | tr -s ' \n' ' ') || true
    kill -KILL "$pid" 2>/dev/null || true
    local i k left
    for i in $(seq 1 100); do   # 100 x 0.1 s = 10 s at most
        left=""
        for k in $pid $kids; do alive "$k" && left="$left $k"; done
        [ -z "$left" ] && break
        sleep 0.1
    done
    [ -z "$left" ] || die "processes of the killed server still alive after 10 s:$left"
    # A postmaster nobody has reaped yet stays a zombie, and its pid in the lock files
    # (postmaster.pid, the socket's .lock) would make the next one think it still runs; it is
    # dead, so its lock files go, as an operator would remove them.
    if kill -0 "$pid" 2>/dev/null; then
        rm -f -- "$DIR/data/postmaster.pid" "$DIR/.s.PGSQL.$(cat "$DIR/port")" \
            "$DIR/.s.PGSQL.$(cat "$DIR/port").lock"
    fi
}

restart() {
    made_here
    [ -z "$(running_pid)" ] || halt
    local port
    port=$(cat "$DIR/port")
    # After a kill the port may take a moment to be free and crash recovery runs first: a few
    # bounded attempts, each waiting until the server accepts connections.
    local attempt
    for attempt in 1 2 3; do
        if as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t "$START_TIMEOUT_S" \
                -o "-p $port" start >/dev/null 2>&1; then
            return 0
        fi
        say "server did not start again on port $port (attempt $attempt)"
        tail -n 5 "$DIR/server.log" >&2 || true
        sleep 1
    done
    die "PostgreSQL did not start again; log: $DIR/server.log"
}

case $CMD in
    start) start ;;
    stop) stop ;;
    halt) halt ;;
    kill) kill_server ;;
    restart) restart ;;
    *) usage ;;
esac
