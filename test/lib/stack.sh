# shellcheck shell=bash disable=SC2317
# test/lib/stack.sh: the stack test/run.sh tests against (the Moneroo mock and
# a PostgreSQL cluster, cluster.sh's), made fresh or the one a previous run
# kept.  Defines functions only; sourced by test/run.sh after cluster.sh, and
# reads its variables: REPO, SUDO, STACK_ENV, KEEP_STACK, REUSE, PGBIN,
# PGDATABASE, MONEROO_TEST_KEY.
#
# The kept stack (--keep, --up) is recorded in $STACK_ENV (.test-stack.env at
# the top of the checkout); $WORK/run.pid holds the pid of the test/run.sh
# using it, and $WORK/stack.fingerprint what its database was made from.

# stack_env_write: record the running stack in $STACK_ENV.
stack_env_write() {
    local v
    {
        echo "# the test stack kept by test/run.sh ($(date -u '+%Y-%m-%d %H:%M UTC')); source it:"
        echo "#   . $STACK_ENV"
        echo "# bash test/run.sh --only TEST runs a test on it, bash test/run.sh --stop stops it."
        for v in WORK PGDATA PGHOST PGPORT PGUSER PGDATABASE PGBIN SERVER_LOG MOCK_PORT MOCK_URL \
                 MOCK_LOG MOCK_SCRIPT MONEROO_TEST_KEY REPO CLUSTER_LIB; do
            printf 'export %s=%q\n' "$v" "${!v}"
        done
    } >"$STACK_ENV.tmp" && mv -f "$STACK_ENV.tmp" "$STACK_ENV"
}

# stack_env_load: read $STACK_ENV into this shell; false when there is none
# or its work directory is gone (then the file is stale and removed).
stack_env_load() {
    [ -f "$STACK_ENV" ] || return 1
    # shellcheck disable=SC1090
    . "$STACK_ENV" || return 1
    if [ -z "${WORK:-}" ] || [ ! -d "$WORK/data" ]; then
        say "the kept stack's work directory ${WORK:-?} is gone: forgetting $STACK_ENV"
        rm -f "$STACK_ENV"
        stack_forget
        return 1
    fi
    cluster_env
}

# stack_forget: unset the variables that point at a stack.
stack_forget() {
    WORK=""
    unset PGDATA PGHOST PGPORT MOCK_PORT MOCK_URL MOCK_LOG MOCK_SCRIPT SERVER_LOG CLUSTER_LIB
}

# stack_stop_kept: stop the kept stack and remove its work directory (unless KEEP=1).
stack_stop_kept() {
    say "stopping the kept stack in $WORK"
    cluster_stop >/dev/null 2>&1 || true
    mock_stop >/dev/null 2>&1 || true
    if [ "${KEEP:-0}" = 1 ]; then
        say "KEEP=1: work directory kept: $WORK"
    else
        "${SUDO[@]}" rm -rf "$WORK"
    fi
    rm -f "$STACK_ENV"
}

# stack_print: how to reach the running stack.
stack_print() {
    say ""
    say "==== the stack is left running"
    say "  PostgreSQL $PG_MAJOR: host $PGHOST (or 127.0.0.1) port $PGPORT, user postgres, database $PGDATABASE"
    say "  mock:          $MOCK_URL (control API: test/mock/README.md)"
    say "  work dir:      $WORK (logs: server.log, mock.log; outputs: regress-out, isolation-out, tap-out)"
    say "  environment:   . $STACK_ENV"
    say "  one test:      bash test/run.sh --only test/pgtap/20_queue.sql   (or a script, spec, regress name or folder)"
    say "  pg_prove:      . $STACK_ENV && pg_prove test/pgtap/20_queue.sql"
    say "  psql:          . $STACK_ENV && psql"
    say "  stop it:       bash test/run.sh --stop"
}

# stack_lock: one test/run.sh at a time on a kept stack.
stack_lock() {
    local pid
    pid=$(cat "$WORK/run.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$pid" != $$ ] && kill -0 "$pid" 2>/dev/null; then
        echo "test/run.sh: another test/run.sh (pid $pid) is using the kept stack in $WORK" >&2
        return 1
    fi
    echo $$ >"$WORK/run.pid"
}

# stack_fingerprint: what the database's objects were made from.
stack_fingerprint() {
    cat "$REPO"/moneroo--*.sql "$REPO/moneroo.control" "$REPO/test/lib/helpers.sql" 2>/dev/null |
        sha256sum | cut -d' ' -f1
}

# stack_bring_up: the work directory (made, or the kept one's copy of the
# tests refreshed), then the mock and the cluster: started fresh, or the kept
# ones put back as they started (settings, database if its sources changed)
# and restarted with the library just installed.
stack_bring_up() {
    local mock_before="" mock_after=""
    if [ "$REUSE" = 1 ]; then
        mock_before=$(sha256sum "$MOCK_SCRIPT" 2>/dev/null || true)
        work_refresh "$REPO" || die "cannot refresh the kept stack's copy of the tests in $WORK"
        mock_after=$(sha256sum "$MOCK_SCRIPT" 2>/dev/null || true)
    else
        work_create "$REPO" moneroo-test || die "cannot make the work directory"
        PGPORT=$(free_port) || die "no free port"
        MOCK_PORT=$(free_port "$PGPORT") || die "no free port"
        export PGPORT MOCK_PORT
    fi
    as_pg mkdir -p "$WORK/regress-out" "$WORK/isolation-out" "$WORK/tap-out"
    cluster_env
    export CLUSTER_LIB="$WORK/test/lib/cluster.sh"
    say "WORK=$WORK PGPORT=$PGPORT MOCK_PORT=$MOCK_PORT"
    [ -f "$MOCK_SCRIPT" ] || die "the mock test/mock/moneroo_mock.py does not exist"

    # The circuit breaker is off: most tests inject one fault after another to
    # see how each payout is classified; 30_account_failures.sh turns it on.
    CLUSTER_EXTRA_CONF="moneroo.breaker_threshold = 0${CLUSTER_EXTRA_CONF:+$'\n'$CLUSTER_EXTRA_CONF}"
    export CLUSTER_EXTRA_CONF
    if [ "$REUSE" = 1 ]; then
        if [ "$mock_before" != "$mock_after" ] || ! mock_is_running; then
            say "(re)starting the mock"
            mock_stop
            mock_start || die "the kept stack's mock does not start"
        fi
        # the settings as the stack started, whatever a test interrupted left
        as_pg cp "$WORK/postgresql.conf.orig" "$PGDATA/postgresql.conf" || die "cannot restore postgresql.conf"
        as_pg cp "$WORK/postgresql.auto.conf.orig" "$PGDATA/postgresql.auto.conf" ||
            die "cannot restore postgresql.auto.conf"
        cluster_is_running || cluster_start || die "the kept stack's server does not start (bash test/run.sh --stop, then again)"
        if [ "$(cat "$WORK/stack.fingerprint" 2>/dev/null)" != "$(stack_fingerprint)" ]; then
            say "the extension's scripts, moneroo.control or test/lib/helpers.sql changed: making $PGDATABASE again"
            stack_database || die "cannot make the database $PGDATABASE again"
            stack_fingerprint >"$WORK/stack.fingerprint"
        fi
        # the library just installed, and a fresh worker
        cluster_restart || die "the kept stack's server does not restart"
    else
        # mock, initdb, start, database, pgtap + moneroo, test/lib/helpers.sql, restart
        stack_up || die "could not bring up the mock and the cluster (see above)"
        as_pg cp "$PGDATA/postgresql.conf" "$WORK/postgresql.conf.orig"
        as_pg cp "$PGDATA/postgresql.auto.conf" "$WORK/postgresql.auto.conf.orig"
        stack_fingerprint >"$WORK/stack.fingerprint"
        if [ "$KEEP_STACK" = 1 ]; then
            stack_lock || die "cannot lock the new stack"
            stack_env_write || die "cannot write $STACK_ENV"
        fi
    fi
    say "mock on $MOCK_URL; PostgreSQL on $PGHOST port $PGPORT, database $PGDATABASE"
    # Several checkouts on one machine share the server's library directory.
    if ! cmp -s "$REPO/moneroo.so" "$("$PG_CONFIG" --pkglibdir)/moneroo.so"; then
        say "WARNING: $("$PG_CONFIG" --pkglibdir)/moneroo.so is not the library just built:" \
            "another build installed over it while this run started"
    fi
}

# stack_take_down LEAVE_UP FAILED: at the end of a run, stop the stack unless
# LEAVE_UP is 1 (then say how to reach it); after a failure (FAILED > 0) show
# the end of the server's and the mock's logs; remove the work directory
# unless it stays up or KEEP=1.
stack_take_down() {
    local leave_up=$1 failed=$2
    [ -n "$WORK" ] && [ -d "$WORK" ] || return 0
    if [ "$leave_up" = 0 ]; then
        cluster_stop >/dev/null 2>&1
        mock_stop >/dev/null 2>&1
    fi
    if [ "$(cat "$WORK/run.pid" 2>/dev/null)" = $$ ]; then rm -f "$WORK/run.pid"; fi
    if [ "$failed" -gt 0 ] && [ -f "$WORK/server.log" ] && [ -z "${CLUSTER_LOG_SHOWN:-}" ]; then
        say ""
        say "server log: $WORK/server.log$([ "${KEEP:-0}" = 1 ] || [ "$leave_up" = 1 ] || echo ' (removed; KEEP=1 keeps it)')"
        say "---- last 50 lines of server.log ----"
        "${SUDO[@]}" tail -n 50 "$WORK/server.log"
        say "----"
        if [ -s "$WORK/mock.log" ]; then
            say "---- last 20 lines of mock.log ----"
            tail -n 20 "$WORK/mock.log"
            say "----"
        fi
    fi
    if [ "$leave_up" = 1 ]; then
        stack_print
    elif [ "${KEEP:-0}" = 1 ]; then
        say "KEEP=1: work directory kept: $WORK"
    else
        "${SUDO[@]}" rm -rf "$WORK"
    fi
}
