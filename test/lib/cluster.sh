# shellcheck shell=bash disable=SC2119,SC2120
# test/lib/cluster.sh: shell functions to run a throwaway PostgreSQL 15 cluster
# with the moneroo library preloaded, and the Moneroo API mock beside it.
#
# Source it from bash (test/run.sh, the test scripts test/*/NN_*.sh, demo and benchmark
# scripts).  It works under `set -euo pipefail`, defines functions only and
# reads these variables (defaults in brackets):
#
#   WORK              the throwaway directory (required), owned by PG_OS_USER
#   PGBIN             [/usr/lib/postgresql/15/bin]
#   PG_OS_USER        [postgres] the OS user that runs the server
#   PGDATA            [$WORK/data]
#   PGHOST            [$WORK/sock] the unix socket directory
#   PGPORT            TCP port (see free_port)
#   PGDATABASE        [moneroo_test]
#   SERVER_LOG        [$WORK/server.log]
#   MOCK_SCRIPT       path of moneroo_mock.py [$WORK/test/mock/moneroo_mock.py]
#   MOCK_PORT         TCP port of the mock (see free_port)
#   MOCK_URL          set to http://127.0.0.1:$MOCK_PORT
#   MOCK_LOG          [$WORK/mock.log]
#   MONEROO_TEST_KEY  the fake secret key given to the mock and the server
#   CLUSTER_EXTRA_CONF  more postgresql.conf lines (newline separated), added
#                       by cluster_init after the standard ones
#
# The whole stack in three calls (what test/run.sh does; the extension must
# already be built and installed):
#   . test/lib/cluster.sh
#   work_create "$REPO" moneroo-demo      # sets WORK (mktemp under /tmp)
#   trap stack_down EXIT                  # stops everything, removes WORK
#   stack_up "moneroo.some_setting = 64"  # ports, mock, initdb, start, database,
#                                         # extensions, mock.* helpers, restart
#   cluster_psql -c "SELECT ..."
# or piece by piece:
#   PGPORT=$(free_port); MOCK_PORT=$(free_port "$PGPORT")
#   mock_start; cluster_init "extra = 'line'"; cluster_start
#   cluster_psql -d postgres -c 'CREATE DATABASE moneroo_test'
#   ...; cluster_stop; mock_stop

: "${PGBIN:=/usr/lib/postgresql/${PG_MAJOR:-15}/bin}"
: "${PG_OS_USER:=postgres}"
: "${PGDATABASE:=moneroo_test}"
: "${MONEROO_TEST_KEY:=pvk_sandbox_t3stK3y|01JTESTKEYDONOTLOG0000000}"

# Fill in the variables derived from WORK and the ports.  Called by every
# function, so callers may set WORK/PGPORT/MOCK_PORT at any time.
cluster_env() {
    : "${PGBIN:=/usr/lib/postgresql/${PG_MAJOR:-15}/bin}"
    : "${PG_OS_USER:=postgres}"
    : "${PGDATABASE:=moneroo_test}"
    : "${MONEROO_TEST_KEY:=pvk_sandbox_t3stK3y|01JTESTKEYDONOTLOG0000000}"
    if [ -z "${WORK:-}" ]; then
        echo "cluster.sh: WORK is not set" >&2
        return 1
    fi
    : "${PGDATA:=$WORK/data}"
    : "${PGHOST:=$WORK/sock}"
    : "${SERVER_LOG:=$WORK/server.log}"
    : "${MOCK_LOG:=$WORK/mock.log}"
    : "${MOCK_SCRIPT:=$WORK/test/mock/moneroo_mock.py}"
    if [ -n "${MOCK_PORT:-}" ]; then MOCK_URL="http://127.0.0.1:$MOCK_PORT"; fi
    export WORK PGBIN PG_OS_USER PGDATA PGHOST PGDATABASE SERVER_LOG MOCK_LOG MOCK_SCRIPT \
        MONEROO_TEST_KEY
    export PGUSER=postgres
    [ -n "${PGPORT:-}" ] && export PGPORT
    [ -n "${MOCK_PORT:-}" ] && export MOCK_PORT MOCK_URL
    # Loopback traffic never goes through a proxy (libcurl in the server and
    # curl in COPY ... FROM PROGRAM both read these).
    case ",${no_proxy:-}," in
        *,127.0.0.1,*) ;;
        *) export no_proxy="${no_proxy:+$no_proxy,}127.0.0.1,localhost,::1" ;;
    esac
    export NO_PROXY="$no_proxy"
    return 0
}

# The python interpreter: Debian's (installed by the harness) when present.
cluster_python() {
    if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi
}

# free_port [PORT...]: print a TCP port free on 127.0.0.1, outside the kernel's
# ephemeral range (so no outgoing connection takes it before we bind it), and
# different from the ports given.
free_port() {
    "$(cluster_python)" - "$@" <<'EOF'
import random, socket, sys
taken = {int(a) for a in sys.argv[1:] if a}
for _ in range(500):
    port = random.randint(20000, 32000)
    if port in taken:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    sys.exit(0)
sys.exit("free_port: no free port found")
EOF
}

# as_pg CMD...: run CMD as the server's OS user, from $WORK (the caller's
# directory may be one that user cannot enter).
as_pg() {
    cluster_env || return 1
    local me
    me=$(id -un)
    if [ "$me" = "$PG_OS_USER" ]; then
        (cd "$WORK" && "$@")
    elif [ "$(id -u)" = 0 ]; then
        (cd "$WORK" && runuser -u "$PG_OS_USER" -- "$@")
    elif command -v sudo >/dev/null 2>&1; then
        (cd "$WORK" && sudo -n --preserve-env -u "$PG_OS_USER" -- "$@")
    else
        echo "cluster.sh: must run as root, as $PG_OS_USER, or with sudo" >&2
        return 1
    fi
}

# cluster_init [CONF_LINE...]: initdb $PGDATA and write the test settings.
cluster_init() {
    cluster_env || return 1
    if [ -z "${PGPORT:-}" ] || [ -z "${MOCK_PORT:-}" ]; then
        echo "cluster_init: PGPORT and MOCK_PORT must be set" >&2
        return 1
    fi
    as_pg mkdir -p "$PGHOST" || return 1
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust --no-locale \
        --encoding=UTF8 --no-sync --no-instructions >"$WORK/initdb.log" 2>&1 || {
        echo "cluster_init: initdb failed:" >&2
        cat "$WORK/initdb.log" >&2
        return 1
    }
    local conf
    conf=$(cat <<EOF

# ---- moneroo test settings (test/lib/cluster.sh) ----
shared_preload_libraries = 'moneroo'
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PGHOST'
moneroo.api_url = 'http://127.0.0.1:$MOCK_PORT'
moneroo.secret_key = '$MONEROO_TEST_KEY'
moneroo.database = '$PGDATABASE'
moneroo.request_timeout = '2s'
moneroo_test.mock_url = 'http://127.0.0.1:$MOCK_PORT'
moneroo_test.server_log = '$SERVER_LOG'
max_worker_processes = 16
fsync = off
log_line_prefix = '%m [%p] %q%a '
logging_collector = off
EOF
)
    local line
    for line in "$@"; do conf+=$'\n'"$line"; done
    if [ -n "${CLUSTER_EXTRA_CONF:-}" ]; then conf+=$'\n'"$CLUSTER_EXTRA_CONF"; fi
    printf '%s\n' "$conf" | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
}

# cluster_conf_append LINE...: add settings (take effect at the next
# cluster_restart, or cluster_reload for reloadable ones).
cluster_conf_append() {
    cluster_env || return 1
    printf '%s\n' "$@" | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
}

cluster_is_running() {
    cluster_env || return 1
    [ -d "$PGDATA" ] || return 1
    as_pg "$PGBIN/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1
}

# Explain why the server did not start, from its log.
cluster_explain_failure() {
    local libdir
    libdir=$("$PGBIN/pg_config" --pkglibdir 2>/dev/null || echo "${PGBIN%/bin}/lib")
    CLUSTER_LOG_SHOWN=1   # read by test/run.sh
    export CLUSTER_LOG_SHOWN
    echo "---- last 50 lines of $SERVER_LOG ----" >&2
    tail -n 50 "$SERVER_LOG" >&2 2>/dev/null || true
    echo "----" >&2
    if [ ! -e "$libdir/moneroo.so" ]; then
        echo "cluster_start: $libdir/moneroo.so is missing: the library named in" \
             "shared_preload_libraries was not built/installed (make; make install)" >&2
    elif grep -q 'could not load library\|could not access file' "$SERVER_LOG" 2>/dev/null; then
        echo "cluster_start: the server could not load a library of shared_preload_libraries" \
             "(see the log above)" >&2
    fi
}

# cluster_start: start the server, wait until it accepts connections (bounded).
cluster_start() {
    cluster_env || return 1
    if cluster_is_running; then return 0; fi
    # the test key stays out of the server's environment, which PostgreSQL
    # prints into the log at debug3 and above
    if ! as_pg env -u MONEROO_TEST_KEY "$PGBIN/pg_ctl" start -D "$PGDATA" -l "$SERVER_LOG" \
            -w -t "${PG_START_TIMEOUT:-60}" -s; then
        echo "cluster_start: the server did not start" >&2
        cluster_explain_failure
        return 1
    fi
}

# cluster_stop [MODE]: stop the server (fast, then immediate, then SIGKILL).
cluster_stop() {
    cluster_env || return 1
    [ -d "$PGDATA" ] || return 0
    cluster_is_running || return 0
    as_pg "$PGBIN/pg_ctl" stop -D "$PGDATA" -m "${1:-fast}" -w -t 30 -s 2>/dev/null && return 0
    as_pg "$PGBIN/pg_ctl" stop -D "$PGDATA" -m immediate -w -t 15 -s 2>/dev/null && return 0
    local pid
    pid=$(head -n 1 "$PGDATA/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
        echo "cluster_stop: killing postmaster $pid" >&2
        kill -KILL "$pid" 2>/dev/null || true
        local _
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        # its children notice the postmaster's death and exit on their own
    fi
    return 0
}

# cluster_restart [MODE]: stop (fast by default; "immediate" simulates a crash
# as far as the data is concerned) and start again.
cluster_restart() {
    cluster_stop "${1:-fast}" && cluster_start
}

cluster_reload() {
    cluster_env || return 1
    as_pg "$PGBIN/pg_ctl" reload -D "$PGDATA" -s
}

# cluster_psql [PSQL_ARGS...]: psql as database user postgres into $PGDATABASE
# (override with -d).  Runs as the calling OS user; files it reads must be
# readable by that user.  Stops at the first error.
cluster_psql() {
    cluster_env || return 1
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres \
        -d "$PGDATABASE" "$@"
}

# The postmaster's pid, or nothing.
cluster_pid() {
    cluster_env || return 1
    head -n 1 "$PGDATA/postmaster.pid" 2>/dev/null || true
}

# mock_start [EXTRA_ARGS...]: start the Moneroo mock in the background and wait
# (bounded) until it answers.  Its pid goes to $WORK/mock.pid.
mock_start() {
    cluster_env || return 1
    if [ -z "${MOCK_PORT:-}" ]; then echo "mock_start: MOCK_PORT is not set" >&2; return 1; fi
    if [ ! -f "$MOCK_SCRIPT" ]; then echo "mock_start: $MOCK_SCRIPT does not exist" >&2; return 1; fi
    # SIGHUP ignored: a stack kept by `test/run.sh --keep` outlives the terminal
    # that started it (exec keeps the pid that mock.pid records)
    (trap '' HUP; exec "$(cluster_python)" -u "$MOCK_SCRIPT" --host 127.0.0.1 --port "$MOCK_PORT" \
        --secret-key "$MONEROO_TEST_KEY" "$@") </dev/null >>"$MOCK_LOG" 2>&1 &
    local pid=$!
    echo "$pid" >"$WORK/mock.pid"
    local deadline=$((SECONDS + ${MOCK_START_TIMEOUT:-20}))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "mock_start: the mock exited; its log ($MOCK_LOG):" >&2
            tail -n 30 "$MOCK_LOG" >&2 || true
            return 1
        fi
        # /__mock/health is neither journaled nor rate limited
        if curl -fsS --noproxy '*' -o /dev/null --max-time 2 "$MOCK_URL/__mock/health" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "mock_start: the mock did not answer on $MOCK_URL within ${MOCK_START_TIMEOUT:-20}s" >&2
    tail -n 30 "$MOCK_LOG" >&2 || true
    mock_stop
    return 1
}

mock_is_running() {
    cluster_env || return 1
    local pid
    pid=$(cat "$WORK/mock.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# mock_stop: stop the mock started by mock_start (TERM, then KILL; bounded).
mock_stop() {
    cluster_env || return 1
    local pid _
    pid=$(cat "$WORK/mock.pid" 2>/dev/null || true)
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    rm -f "$WORK/mock.pid"
    return 0
}

# mock_ctl METHOD PATH [JSON_BODY]: call the mock's control API from the shell.
mock_ctl() {
    cluster_env || return 1
    if [ $# -ge 3 ]; then
        curl -fsS --noproxy '*' --max-time 10 -X "$1" -H 'Content-Type: application/json' \
            --data-binary "$3" "$MOCK_URL$2"
    else
        curl -fsS --noproxy '*' --max-time 10 -X "$1" "$MOCK_URL$2"
    fi
}

# work_create REPO [PREFIX]: make WORK=/tmp/PREFIX.XXXXXX owned by PG_OS_USER
# with a copy of REPO's tests: test/ (specs, pgTAP files, scripts, the mock and
# these libraries) and the pg_regress files sql/ and expected/ (the server and
# the postgres-run tools may be unable to enter REPO).  Sets and exports WORK.
work_create() {
    local repo=${1:?work_create REPO [PREFIX]} prefix=${2:-moneroo-test}
    WORK=$(mktemp -d "/tmp/$prefix.XXXXXX") || return 1
    export WORK
    mkdir -p "$WORK/sock"
    work_refresh "$repo"
}

# work_refresh REPO: replace WORK's copy of REPO's tests with the current one
# (a kept stack runs the tests as they are now) and give WORK to PG_OS_USER.
work_refresh() {
    local repo=${1:?work_refresh REPO} dir
    if [ -z "${WORK:-}" ] || [ ! -d "$WORK" ]; then echo "work_refresh: WORK is not a directory" >&2; return 1; fi
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo -n)
    for dir in test sql expected; do
        "${sudo[@]}" rm -rf "${WORK:?}/$dir" || return 1
        if [ -d "$repo/$dir" ]; then "${sudo[@]}" cp -R "$repo/$dir" "$WORK/" || return 1; else mkdir -p "$WORK/$dir"; fi
    done
    "${sudo[@]}" chown -R "${PG_OS_USER:-postgres}:" "$WORK" || {
        echo "work_refresh: cannot chown $WORK to ${PG_OS_USER:-postgres}" >&2
        return 1
    }
}

# stack_up [CONF_LINE...]: free ports (unless PGPORT/MOCK_PORT are set), the
# mock, initdb with the CONF_LINEs, start, stack_database, then a restart so
# the background worker starts against a database that has the extension.
stack_up() {
    cluster_env || return 1
    if [ -z "${PGPORT:-}" ]; then PGPORT=$(free_port) || return 1; fi
    if [ -z "${MOCK_PORT:-}" ]; then MOCK_PORT=$(free_port "$PGPORT") || return 1; fi
    export PGPORT MOCK_PORT
    cluster_env || return 1
    mock_start || { echo "stack_up: the mock did not start" >&2; return 1; }
    cluster_init "$@" || { echo "stack_up: initdb failed" >&2; return 1; }
    cluster_start || { echo "stack_up: the server did not start" >&2; return 1; }
    stack_database || return 1
    cluster_restart || { echo "stack_up: the server did not restart" >&2; return 1; }
}

# stack_database: (re)create $PGDATABASE on the running server with the
# extensions in $STACK_EXTENSIONS [pgtap moneroo] and, when pgtap is among
# them, the mock.* helpers of test/lib/helpers.sql.  Restart the server
# afterwards so the worker serves the new database.
stack_database() {
    cluster_env || return 1
    local ext
    cluster_psql -d postgres -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS $PGDATABASE WITH (FORCE)" -c "CREATE DATABASE $PGDATABASE" || return 1
    for ext in ${STACK_EXTENSIONS:-pgtap moneroo}; do
        cluster_psql -c "CREATE EXTENSION $ext" || {
            echo "stack_database: CREATE EXTENSION $ext failed" >&2
            return 1
        }
    done
    case " ${STACK_EXTENSIONS:-pgtap moneroo} " in
        *" pgtap "*)
            cluster_psql -f "$WORK/test/lib/helpers.sql" || {
                echo "stack_database: test/lib/helpers.sql failed" >&2
                return 1
            } ;;
    esac
}

# stack_down: stop the server and the mock; remove WORK unless KEEP=1.
stack_down() {
    [ -n "${WORK:-}" ] && [ -d "$WORK" ] || return 0
    cluster_stop >/dev/null 2>&1 || true
    mock_stop >/dev/null 2>&1 || true
    if [ "${KEEP:-0}" = 1 ]; then
        echo "KEEP=1: kept $WORK" >&2
    else
        cd / && rm -rf "$WORK"
    fi
    return 0
}
