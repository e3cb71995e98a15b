# shellcheck shell=bash
# test/lib/replication.sh: primaries and streaming standbys with moneroo
# preloaded, and Moneroo mocks, all in a temporary folder of their own owned by
# the server's OS user (the checkout may sit where that user cannot enter),
# for the failover tests (test/ha/96_*, 97_*, test/campaign.sh ha).
# Needs cluster.sh's functions (test/run.sh exports them; sourced otherwise)
# and server.sh's.
#
# Nodes and mocks have names; each lives in $REPL_DIR/NAME (data, sock,
# server.log, port).  A node is made the way test/lib/cluster.sh makes the
# stack's cluster (cluster_init), on a port of its own.
#
#   repl_setup PREFIX              REPL_DIR=/tmp/PREFIX.XXXXXX, owned by PG_OS_USER, mode 700
#   repl_teardown                  resumes stopped WAL receivers, stops every node
#                                  (immediate) and mock, removes REPL_DIR (KEEP=1 keeps it)
#   repl_mock NAME                 starts mock NAME on a free port; repl_mock_url NAME
#   mock_on NAME FUNC ARGS...      runs FUNC (mock_ctl, mock_stop...) against mock NAME
#   on NODE FUNC ARGS...           runs FUNC (a cluster.sh or server.sh function:
#                                  cluster_psql, sql, sql1, cluster_stop, wait_worker...)
#                                  with NODE's PGDATA, PGHOST, PGPORT, SERVER_LOG
#   repl_primary NODE MOCK [CONF...]        initdb (+CONF lines), start, $PGDATABASE with
#                                           moneroo, restart; its worker sends to mock MOCK
#   repl_standby NODE PRIMARY MOCK [CONF...] pg_basebackup -R from PRIMARY, its own port,
#                                           socket and mock, application_name NODE; start;
#                                           wait until it streams
#   repl_wait_streaming PRIMARY NODE [SYNC_STATE]  until PRIMARY's walsender to NODE streams
#   repl_wait_replayed PRIMARY NODE         until NODE has replayed PRIMARY's WAL as of now
#   repl_receiver_stop NODE / repl_receiver_cont NODE   SIGSTOP / SIGCONT of NODE's WAL receiver
#   repl_receiver_kill NODE        SIGKILL of the stopped receiver (what it had not read is lost)
#   repl_caught_up NODE            until a standby has replayed all it received (bounded, 10 s)
#   repl_promote NODE              pg_ctl promote -w
#   repl_moneroo_procs NODE        processes under NODE's postmaster whose title names moneroo
#   repl_queue NODE TAG N          N payouts "TAG #i" in one transaction
#   repl_counts NODE TAG           "pending sending done unknown other total" of TAG's payouts
#   repl_wait NODE TAG COND [SECONDS]  until COND (SQL over pending, sending, done, unknown)
#   repl_wait_drained NODE TAG [SECONDS]
#   repl_check NODE TAG N [--details] MOCK...  ha_check.py's figures (key=value) for TAG
#   figure NAME "FIGURES"          one figure of repl_check's line
#   repl_worker_started NODE       whether NODE's log says the worker started for $PGDATABASE

REPL_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if ! declare -F cluster_psql >/dev/null; then
    # shellcheck source=test/lib/cluster.sh
    . "${CLUSTER_LIB:-$REPL_LIB/cluster.sh}"
fi
if ! declare -F sql1 >/dev/null; then
    # shellcheck source=test/lib/server.sh
    . "$REPL_LIB/server.sh"
fi
REPL_MOCK_SCRIPT=$REPL_LIB/../mock/moneroo_mock.py
REPL_DIR=${REPL_DIR:-}

repl_setup() {
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo -n)
    REPL_DIR=$(mktemp -d "/tmp/${1:-moneroo-repl}.XXXXXX") || return 1
    "${sudo[@]}" chown "${PG_OS_USER:-postgres}:" "$REPL_DIR" && chmod 700 "$REPL_DIR" || return 1
    export REPL_DIR
}

repl_teardown() {
    [ -n "${REPL_DIR:-}" ] && [ -d "$REPL_DIR" ] || return 0
    local d name
    for d in "$REPL_DIR"/*/; do
        name=$(basename "$d")
        if [ -f "$d/stopped.pid" ]; then kill -CONT "$(cat "$d/stopped.pid")" 2>/dev/null; fi
        if [ -f "$d/data/PG_VERSION" ]; then on "$name" cluster_stop immediate >/dev/null 2>&1; fi
        if [ -f "$d/mock.pid" ]; then mock_on "$name" mock_stop >/dev/null 2>&1; fi
    done
    if [ "${KEEP:-0}" = 1 ]; then
        echo "KEEP=1: kept $REPL_DIR" >&2
    else
        (cd / && rm -rf "$REPL_DIR")
    fi
}

# on NODE FUNC ARGS...: in a subshell with NODE's settings (WORK is REPL_DIR:
# as_pg runs from there).
on() {
    local node=$1
    shift
    (
        WORK=$REPL_DIR
        PGDATA=$REPL_DIR/$node/data
        PGHOST=$REPL_DIR/$node/sock
        # a node reached over TCP (a Patroni member, whose pg_hba wants a password)
        [ -f "$REPL_DIR/$node/host" ] && PGHOST=$(cat "$REPL_DIR/$node/host")
        [ -f "$REPL_DIR/$node/password" ] && export PGPASSWORD=$(cat "$REPL_DIR/$node/password")
        SERVER_LOG=$REPL_DIR/$node/server.log
        PGPORT=$(cat "$REPL_DIR/$node/port" 2>/dev/null)
        MOCK_PORT=$(cat "$REPL_DIR/$(cat "$REPL_DIR/$node/mock" 2>/dev/null)/port" 2>/dev/null)
        MOCK_URL=""
        export WORK PGDATA PGHOST SERVER_LOG PGPORT MOCK_PORT
        cluster_env || exit 1
        "$@"
    )
}

mock_on() {
    local name=$1
    shift
    (
        WORK=$REPL_DIR/$name
        MOCK_PORT=$(cat "$WORK/port" 2>/dev/null)
        MOCK_LOG=$WORK/mock.log
        MOCK_SCRIPT=$REPL_MOCK_SCRIPT
        export WORK MOCK_PORT MOCK_LOG MOCK_SCRIPT
        cluster_env || exit 1
        "$@"
    )
}

repl_mock_url() { printf 'http://127.0.0.1:%s' "$(cat "$REPL_DIR/$1/port")"; }

# repl_port NAME: a free port for NAME, different from every one taken in REPL_DIR.
repl_port() {
    local taken
    taken=$(cat "$REPL_DIR"/*/port "$REPL_DIR"/*/*.port 2>/dev/null | tr '\n' ' ')
    # shellcheck disable=SC2086
    free_port ${PGPORT:-} ${MOCK_PORT:-} $taken
}

repl_node_dir() {
    mkdir -p "$REPL_DIR/$1/sock" && chown -R "${PG_OS_USER:-postgres}:" "$REPL_DIR/$1" &&
        chmod 700 "$REPL_DIR/$1"
}

repl_mock() {
    repl_node_dir "$1" || return 1
    repl_port >"$REPL_DIR/$1/port" || return 1
    mock_on "$1" mock_start || return 1
    mock_on "$1" mock_ctl POST /__mock/config '{"rate_limit": 0}' >/dev/null
}

# The settings of every node: no rate limit (the mocks have none either).
REPL_CONF=("moneroo.rate_limit = 0" "wal_keep_size = '256MB'")

repl_primary() {
    local node=$1 mock=$2
    shift 2
    repl_node_dir "$node" || return 1
    repl_port >"$REPL_DIR/$node/port" || return 1
    echo "$mock" >"$REPL_DIR/$node/mock"
    on "$node" cluster_init "${REPL_CONF[@]}" "$@" || return 1
    on "$node" cluster_start || return 1
    on "$node" cluster_psql -d postgres -c "CREATE DATABASE $PGDATABASE" || return 1
    on "$node" cluster_psql -c "CREATE EXTENSION moneroo" || return 1
    # the worker serves a database that exists now
    on "$node" cluster_restart || return 1
}

repl_standby() {
    local node=$1 primary=$2 mock=$3 pport mport
    shift 3
    repl_node_dir "$node" || return 1
    repl_port >"$REPL_DIR/$node/port" || return 1
    echo "$mock" >"$REPL_DIR/$node/mock"
    pport=$(cat "$REPL_DIR/$primary/port")
    mport=$(cat "$REPL_DIR/$mock/port")
    on "$node" as_pg "$PGBIN/pg_basebackup" -D "$REPL_DIR/$node/data" -h 127.0.0.1 -p "$pport" \
        -U postgres -R -X stream -c fast --no-sync >"$REPL_DIR/$node/basebackup.log" 2>&1 || {
        cat "$REPL_DIR/$node/basebackup.log" >&2
        return 1
    }
    {
        echo ""
        echo "# ---- standby $node of $primary (test/lib/replication.sh) ----"
        echo "port = $(cat "$REPL_DIR/$node/port")"
        echo "unix_socket_directories = '$REPL_DIR/$node/sock'"
        echo "moneroo.api_url = 'http://127.0.0.1:$mport'"
        echo "moneroo_test.mock_url = 'http://127.0.0.1:$mport'"
        echo "moneroo_test.server_log = '$REPL_DIR/$node/server.log'"
        local line
        for line in "$@"; do echo "$line"; done
    } | on "$node" as_pg tee -a "$REPL_DIR/$node/data/postgresql.conf" >/dev/null || return 1
    # after pg_basebackup -R's own line: the last one wins
    echo "primary_conninfo = 'host=127.0.0.1 port=$pport user=postgres application_name=$node'" |
        on "$node" as_pg tee -a "$REPL_DIR/$node/data/postgresql.auto.conf" >/dev/null || return 1
    on "$node" cluster_start || return 1
    repl_wait_streaming "$primary" "$node"
}

# repl_wait_streaming PRIMARY NODE [SYNC_STATE]: until PRIMARY streams to NODE
# (and reports SYNC_STATE for it, when given); bounded (30 s).
repl_wait_streaming() {
    local want=${3:-%} _
    for _ in $(seq 1 300); do
        [ "$(on "$1" sql1 "SELECT count(*) FROM pg_stat_replication WHERE application_name = '$2'
                             AND state = 'streaming' AND sync_state LIKE '$want'")" = 1 ] && return 0
        sleep 0.1
    done
    echo "repl_wait_streaming: $1 does not stream to $2 (sync_state $want)" >&2
    return 1
}

repl_wait_replayed() {
    local lsn _
    lsn=$(on "$1" sql1 "SELECT pg_current_wal_lsn()")
    for _ in $(seq 1 300); do
        [ "$(on "$2" sql1 "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && return 0
        sleep 0.1
    done
    echo "repl_wait_replayed: $2 has not replayed $1's WAL up to $lsn" >&2
    return 1
}

repl_receiver_stop() {
    local pid
    pid=$(on "$1" sql1 "SELECT pid FROM pg_stat_wal_receiver")
    case $pid in '' | *[!0-9]*) echo "repl_receiver_stop: no WAL receiver on $1 ($pid)" >&2; return 1 ;; esac
    kill -STOP "$pid" || return 1
    echo "$pid" >"$REPL_DIR/$1/stopped.pid"
}

# repl_receiver_kill NODE: SIGKILL of NODE's stopped WAL receiver: the WAL
# that sat unread in its socket is lost, as when the primary's machine or the
# network goes (the standby's postmaster restarts its processes and replays
# what the receiver had flushed).
repl_receiver_kill() {
    [ -f "$REPL_DIR/$1/stopped.pid" ] || return 1
    kill -KILL "$(cat "$REPL_DIR/$1/stopped.pid")" || return 1
    rm -f "$REPL_DIR/$1/stopped.pid"
}

repl_receiver_cont() {
    [ -f "$REPL_DIR/$1/stopped.pid" ] || return 0
    kill -CONT "$(cat "$REPL_DIR/$1/stopped.pid")" 2>/dev/null
    rm -f "$REPL_DIR/$1/stopped.pid"
}

repl_caught_up() {
    local _
    for _ in $(seq 1 100); do
        [ "$(on "$1" sql1 "SELECT coalesce(pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn(), true)")" = t ] &&
            return 0
        sleep 0.1
    done
    return 1
}

repl_promote() {
    on "$1" as_pg "$PGBIN/pg_ctl" promote -D "$REPL_DIR/$1/data" -w -t 60 -s
}

repl_moneroo_procs() {
    local pm
    pm=$(on "$1" cluster_pid)
    [ -n "$pm" ] || return 0
    ps -o pid=,args= --ppid "$pm" | grep -i moneroo || true
}

repl_queue() { on "$1" queue "$2" "$3" 4149518161 4149518162; }

repl_counts_sql() {
    printf "SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                   count(*) FILTER (WHERE status = 'sending') AS sending,
                   count(*) FILTER (WHERE status IN ('sent', 'success', 'failed')) AS done,
                   count(*) FILTER (WHERE status = 'unknown') AS unknown,
                   count(*) FILTER (WHERE status NOT IN ('pending', 'sending', 'sent', 'success',
                                                         'failed', 'unknown')) AS other,
                   count(*) AS total
            FROM payouts WHERE request ->> 'description' LIKE '%s #%%'" "$1"
}

repl_counts() {
    on "$1" sql -F ' ' -c "$(repl_counts_sql "$2")" 2>/dev/null
}

# repl_wait NODE TAG COND [SECONDS]: polls every 0.1 s (default 30 s).
repl_wait() {
    local deadline=$((SECONDS + ${4:-30}))
    while :; do
        [ "$(on "$1" sql1 "SELECT $3 FROM ($(repl_counts_sql "$2")) c")" = t ] && return 0
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

repl_wait_drained() { repl_wait "$1" "$2" "pending = 0 AND sending = 0" "${3:-60}"; }

repl_check() {
    local node=$1 tag=$2 n=$3 rows out details=() m
    shift 3
    if [ "${1:-}" = --details ]; then details=(--details); shift; fi
    rows=$(mktemp) || return 1
    on "$node" sql -c "SELECT id, reference, status, coalesce(moneroo_id, '') FROM payouts
                       WHERE request ->> 'description' LIKE '$tag #%'" >"$rows" || { rm -f "$rows"; return 1; }
    local mocks=()
    for m in "$@"; do mocks+=(--mock "$(repl_mock_url "$m")"); done
    out=$("$(cluster_python)" "$REPL_LIB/ha_check.py" --rows "$rows" --tag "$tag" --queued "$n" \
        "${details[@]}" "${mocks[@]}")
    local rc=$?
    rm -f "$rows"
    printf '%s\n' "$out"
    return $rc
}

# figure NAME "FIGURES": the value of NAME in a line of repl_check.
figure() { sed -n "s/.*\\b$1=\\([0-9]*\\).*/\\1/p" <<<"$2" | head -n 1; }

repl_worker_started() {
    grep -q "moneroo worker started for database \"$PGDATABASE\"" "$REPL_DIR/$1/server.log" 2>/dev/null
}
