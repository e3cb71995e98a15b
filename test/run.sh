#!/usr/bin/env bash
# test/run.sh: build moneroo and run its tests against a throwaway cluster.
#
#   bash test/run.sh                 # every test (what .ci/run runs), then clean up
#   bash test/run.sh --keep          # every test, and leave the stack running
#   bash test/run.sh --up            # bring a stack up and leave it running; no test
#   bash test/run.sh --only TEST...  # only these tests, on the kept stack if one runs
#   bash test/run.sh --stop          # stop the kept stack, remove its work directory
#   bash test/run.sh --pg 17 [...]   # the same on PostgreSQL 17 (or 18), in a Debian
#                                    # root of its own (test/lib/pgroot.sh)
#
# As root (or a user with sudo) on Debian 12.  Steps: install the Debian
# packages it needs (skipped when all are there), build and install the
# extension, start the Moneroo mock and a PostgreSQL 15 cluster with moneroo
# preloaded in a mktemp directory under /tmp, then run
#   1. pg_regress      test/regress/sql/*.sql vs test/regress/expected/*.out
#   2. isolation       test/isolation/specs/*.spec vs test/isolation/expected/
#   3. pgTAP           test/pgtap/*.sql in name order, each on a fresh server
#   4. fault scripts   executable test/scripts/*.sh (TAP on stdout)
# and clean everything up.  The last line printed is "N passed, N failed":
# one per regression file and isolation spec, one per TAP assertion, plus one
# failure for each file that dies, times out or misses its plan.  Exit status
# is 0 only when nothing failed and something passed (for --up: when the
# stack came up).
#
# The kept stack.  --keep and --up leave the cluster and the mock running and
# write .test-stack.env at the top of the checkout (WORK, PGHOST, PGPORT,
# PGUSER, PGDATABASE, MOCK_URL, ...; `. .test-stack.env` to use them, e.g.
# with pg_prove or make installcheck).  While it runs, --only (and TEST_ONLY)
# reuse it: no package step and no initdb; the extension is still rebuilt and
# reinstalled, the copy of test/ refreshed, the mock restarted if its script
# changed, the database made again if the extension's scripts, moneroo.control
# or test/lib/helpers.sql changed, the settings put back as the stack started
# and the server restarted.  Without a kept stack, --only brings a throwaway
# one up (kept too with --keep).  A run without a selection always uses a
# fresh stack; with --keep it replaces the kept one.
#
# --only TEST...: each TEST is a file or a name:
#   test/pgtap/20_queue.sql            or 20_queue      (pgTAP)
#   test/scripts/10_crash.sh           or 10_crash      (fault script)
#   test/regress/sql/validation.sql    or validation    (pg_regress)
#   test/isolation/specs/retry_race.spec  or retry_race (isolation)
# --only takes every argument up to the next option and may be repeated.
#
# Environment knobs:
#   KEEP=1              keep the work directory (data dir, logs, outputs);
#                       the processes are stopped (--keep leaves them running)
#   VERBOSE=1           stream every TAP line (default: failures only)
#   TEST_ONLY=REGEX     run only tests (file basenames) matching REGEX
#   PGTAP_TIMEOUT=300   seconds per pgTAP file
#   SCRIPT_TIMEOUT=600  seconds per fault script
#   REGRESS_TIMEOUT=900 seconds for all of pg_regress (and for isolation)
#   SKIP_INSTALL=1      skip the apt step entirely
# shellcheck disable=SC2317,SC2119
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CALLER_PWD=$PWD
cd "$REPO"

# --pg N: another major runs in a Debian root that has it; test/lib/pgroot.sh
# builds (or reuses) the root and runs this script there with PG_MAJOR=N.
PG_MAJOR=${PG_MAJOR:-15}
for ((i = 1; i <= $#; i++)); do
    case ${!i} in
        --pg|--pg=*)
            if [ "${!i}" = --pg ]; then j=$((i + 1)); pg=${!j:-}; else j=$i; pg=${!i#--pg=}; fi
            [[ $pg =~ ^[0-9]+$ ]] || { echo "test/run.sh: --pg needs a major (15, 17 or 18)" >&2; exit 2; }
            set -- "${@:1:i-1}" "${@:j+1}"
            [ "$pg" = "$PG_MAJOR" ] && break
            exec bash "$REPO/test/lib/pgroot.sh" test "$pg" "$@" ;;
    esac
done
PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PGBIN/pg_config
MONEROO_TEST_KEY='pvk_sandbox_t3stK3y|01JTESTKEYDONOTLOG0000000'
PGDATABASE=moneroo_test
export PG_MAJOR PGBIN MONEROO_TEST_KEY PGDATABASE
export DEBIAN_FRONTEND=noninteractive
# Only these settings come from the environment; a stray PGOPTIONS or
# PGSERVICE would change what the tests see.
unset PGOPTIONS PGSERVICE PGSERVICEFILE PGTZ PGDATESTYLE PGCLIENTENCODING PGSSLMODE || true
# Nor does the stack: a shell that sourced .test-stack.env must not point a
# fresh stack at the kept one's directories (the kept one is read from the file).
unset WORK PGDATA PGHOST PGPORT PGUSER MOCK_PORT MOCK_URL MOCK_LOG MOCK_SCRIPT SERVER_LOG CLUSTER_LIB || true

VERBOSE=${VERBOSE:-0}
ONLY=${TEST_ONLY:-}
PGTAP_TIMEOUT=${PGTAP_TIMEOUT:-300}
SCRIPT_TIMEOUT=${SCRIPT_TIMEOUT:-600}
REGRESS_TIMEOUT=${REGRESS_TIMEOUT:-900}

PASSED=0
FAILED=0
SUITES=()          # one summary line per suite
FAILURES=()        # names of what failed
WORK=""
T0=$SECONDS

# ---------------------------------------------------------------- options
STACK_ENV=$REPO/.test-stack.env   # the kept stack, when there is one
KEEP_STACK=0       # --keep / --up: leave the stack running at the end
NO_TESTS=0         # --up: run no test
STOP=0             # --stop
ONLY_ARGS=()       # --only arguments, as given
ONLY_TESTS=()      # ... resolved to SUITE:NAME (suite regress, isolation, pgtap or script)
REUSE=0            # 1 when this run uses the kept stack
STACK_READY=0      # 1 once the stack is up (for finish)

usage() { awk 'NR > 1 && /^#/ && !/^# shellcheck/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$REPO/test/run.sh"; }
while [ $# -gt 0 ]; do
    case $1 in
        --keep) KEEP_STACK=1 ;;
        --up) KEEP_STACK=1; NO_TESTS=1 ;;
        --stop) STOP=1 ;;
        --only=*) ONLY_ARGS+=("${1#--only=}") ;;
        --only)
            if [ $# -lt 2 ] || [ "${2#--}" != "$2" ]; then echo "test/run.sh: --only needs a test" >&2; exit 2; fi
            while [ $# -ge 2 ] && [ "${2#--}" = "$2" ]; do ONLY_ARGS+=("$2"); shift; done ;;
        -h|--help) usage; exit 0 ;;
        *) echo "test/run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$STOP" = 1 ] && { [ "$KEEP_STACK" = 1 ] || [ ${#ONLY_ARGS[@]} -gt 0 ]; }; then
    echo "test/run.sh: --stop goes alone" >&2; exit 2
fi
if [ "$NO_TESTS" = 1 ] && [ ${#ONLY_ARGS[@]} -gt 0 ]; then
    echo "test/run.sh: --up runs no test; use --keep --only ... to keep the stack after some" >&2; exit 2
fi

# resolve_test ARG: print SUITE:NAME for each test ARG designates (a path
# relative to the caller's directory or the checkout, or a bare name).
resolve_test() {
    local arg=$1 path rel name found=0 suite dir ext
    if [[ $arg == */* ]]; then
        case $arg in /*) path=$arg ;; *) path=$CALLER_PWD/$arg ;; esac
        [ -e "$path" ] || [ "${arg#/}" != "$arg" ] || path=$REPO/$arg
        path=$(realpath -m -- "$path")
        rel=${path#"$REPO"/}
        [ -f "$path" ] || { echo "test/run.sh: --only $arg: no such file" >&2; return 1; }
        name=$(basename "$rel"); name=${name%.*}
        case $rel in
            test/pgtap/*.sql) echo "pgtap:$name" ;;
            test/scripts/*.sh) echo "script:$name" ;;
            test/regress/sql/*.sql|test/regress/expected/*.out) echo "regress:$name" ;;
            test/isolation/specs/*.spec|test/isolation/expected/*.out) echo "isolation:$name" ;;
            *) echo "test/run.sh: --only $arg: not a test of this checkout (test/pgtap/*.sql," \
                    "test/scripts/*.sh, test/regress/sql/*.sql, test/isolation/specs/*.spec)" >&2
               return 1 ;;
        esac
        return 0
    fi
    name=${arg%.sql}; name=${name%.sh}; name=${name%.spec}; name=${name%.out}
    for suite in pgtap:test/pgtap:sql script:test/scripts:sh regress:test/regress/sql:sql \
                 isolation:test/isolation/specs:spec; do
        IFS=: read -r suite dir ext <<<"$suite"
        if [ -f "$REPO/$dir/$name.$ext" ]; then echo "$suite:$name"; found=1; fi
    done
    [ "$found" = 1 ] || { echo "test/run.sh: --only $arg: no test of that name" >&2; return 1; }
}
for a in "${ONLY_ARGS[@]}"; do
    r=$(resolve_test "$a") || exit 2
    mapfile -t -O "${#ONLY_TESTS[@]}" ONLY_TESTS <<<"$r"
done

say()  { printf '%s\n' "$*"; }
step() { printf '\n==== %s  [%ds]\n' "$*" $((SECONDS - T0)); }
die()  { printf 'FATAL: %s\n' "$*" >&2; FAILURES+=("harness: $*"); exit 1; }

# ---------------------------------------------------------------- privileges
if [ "$(id -u)" = 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
elif command -v sudo >/dev/null 2>&1 && [ -t 0 ]; then
    SUDO=(sudo)
else
    echo "test/run.sh must run as root (it installs packages, runs 'make install' and" \
         "runs the server as the postgres user); run it as root or give this user sudo." >&2
    echo "0 passed, 1 failed"
    exit 1
fi

# ---------------------------------------------------------------- the kept stack
# shellcheck source=test/lib/cluster.sh
. "$REPO/test/lib/cluster.sh"

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
        unset WORK PGDATA PGHOST PGPORT MOCK_PORT MOCK_URL MOCK_LOG MOCK_SCRIPT SERVER_LOG CLUSTER_LIB
        return 1
    fi
    cluster_env
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
    say "  one test:      bash test/run.sh --only test/pgtap/20_queue.sql   (or a script, spec or regress name)"
    say "  pg_prove:      . $STACK_ENV && pg_prove test/pgtap/20_queue.sql"
    say "  psql:          . $STACK_ENV && psql"
    say "  stop it:       bash test/run.sh --stop"
}

# stack_lock: one test/run.sh at a time on a kept stack ($WORK/run.pid holds
# the pid of the one using it; finish removes it).
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
    cat "$REPO"/sql/moneroo--*.sql "$REPO/moneroo.control" "$REPO/test/lib/helpers.sql" 2>/dev/null |
        sha256sum | cut -d' ' -f1
}

if [ "$STOP" = 1 ]; then
    if stack_env_load; then
        stack_stop_kept
        say "stopped"
    else
        say "no kept stack ($STACK_ENV does not exist)"
    fi
    exit 0
fi

# ---------------------------------------------------------------- clean-up
finish() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    cd /
    # the kept stack stays up: the one this run reused, or the one it made for --keep
    local leave_up=0
    if [ "$REUSE" = 1 ] || { [ "$KEEP_STACK" = 1 ] && [ "$STACK_READY" = 1 ]; }; then leave_up=1; fi
    if [ "$leave_up" = 0 ] && [ -n "$WORK" ] && [ -d "$WORK" ]; then
        cluster_stop >/dev/null 2>&1
        mock_stop >/dev/null 2>&1
    fi
    if [ -n "$WORK" ] && [ "$(cat "$WORK/run.pid" 2>/dev/null)" = $$ ]; then rm -f "$WORK/run.pid"; fi
    if [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ]; then
        FAILED=1
        [ ${#FAILURES[@]} -gt 0 ] || FAILURES+=("harness: exited with status $rc")
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$FAILED" -gt 0 ] && [ -f "$WORK/server.log" ] && [ -z "${CLUSTER_LOG_SHOWN:-}" ]; then
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
    fi
    say ""
    say "==== summary  [$((SECONDS - T0))s]"
    local s
    for s in "${SUITES[@]}"; do say "  $s"; done
    for s in "${FAILURES[@]}"; do say "  FAILED: $s"; done
    say "$PASSED passed, $FAILED failed"
    if [ "$FAILED" -eq 0 ] && { [ "$PASSED" -gt 0 ] || [ "$NO_TESTS" = 1 ]; }; then exit 0; fi
    exit 1
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- 0. which stack
# A selection (--only, TEST_ONLY) or --up runs on the kept stack when there is
# one; a whole run always makes its own.
if stack_env_load; then
    if [ ${#ONLY_TESTS[@]} -gt 0 ] || [ -n "$ONLY" ] || [ "$NO_TESTS" = 1 ]; then
        if ! stack_lock; then
            # not this run's stack: leave it alone
            trap - EXIT
            echo "0 passed, 1 failed"
            exit 2
        fi
        REUSE=1
        say "using the kept stack in $WORK (PostgreSQL port $PGPORT, mock $MOCK_URL)"
    else
        if [ "$KEEP_STACK" = 1 ]; then
            # the stack this run makes replaces it as the kept one
            stack_stop_kept
        else
            say "(a kept stack runs in $WORK: this whole run makes its own; bash test/run.sh --stop stops it)"
        fi
        WORK=""
        unset PGDATA PGHOST PGPORT MOCK_PORT MOCK_URL MOCK_LOG MOCK_SCRIPT SERVER_LOG CLUSTER_LIB
    fi
fi

# ---------------------------------------------------------------- 1. packages
# shellcheck source=test/lib/build.sh
. "$REPO/test/lib/build.sh"
step "packages"
if [ "$REUSE" = 1 ]; then
    say "kept stack: packages not checked"
else
    install_packages || die "could not install the packages moneroo needs"
fi
[ -x "$PG_CONFIG" ] || die "$PG_CONFIG not found (postgresql-server-dev-$PG_MAJOR)"
PGXS_DIR=$("$PG_CONFIG" --pkglibdir)/pgxs
PG_REGRESS=$PGXS_DIR/src/test/regress/pg_regress
PG_ISOLATION_REGRESS=$PGXS_DIR/src/test/isolation/pg_isolation_regress

# ---------------------------------------------------------------- 2. build
step "build"
build_extension || die "build failed"

# ---------------------------------------------------------------- 3. work dir
step "work directory"
if [ "$REUSE" = 1 ]; then
    mock_before=$(sha256sum "$MOCK_SCRIPT" 2>/dev/null || true)
    work_refresh "$REPO" || die "cannot refresh the kept stack's copy of test/ in $WORK"
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

# ---------------------------------------------------------------- 4-6. mock, cluster
step "mock and cluster"
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
STACK_READY=1
say "mock on $MOCK_URL; PostgreSQL on $PGHOST port $PGPORT, database $PGDATABASE"
# Several checkouts on one machine share the server's library directory.
if ! cmp -s "$REPO/moneroo.so" "$("$PG_CONFIG" --pkglibdir)/moneroo.so"; then
    say "WARNING: $("$PG_CONFIG" --pkglibdir)/moneroo.so is not the library just built:" \
        "another build installed over it while this run started"
fi

# selected SUITE NAME: whether this run runs test NAME of SUITE (regress,
# isolation, pgtap, script).
selected() {
    local t
    [ "$NO_TESTS" = 0 ] || return 1
    [ -z "$ONLY" ] || [[ $2 =~ $ONLY ]] || return 1
    [ ${#ONLY_TESTS[@]} -gt 0 ] || return 0
    for t in "${ONLY_TESTS[@]}"; do [ "$t" = "$1:$2" ] && return 0; done
    return 1
}
[ -z "$ONLY" ] || say "TEST_ONLY=$ONLY: running only the tests whose names match"
[ ${#ONLY_TESTS[@]} -eq 0 ] || say "--only: ${ONLY_TESTS[*]}"
[ "$NO_TESTS" = 0 ] || exit 0   # --up: finish (the EXIT trap) says how to reach the stack

# Count one pg_regress / pg_isolation_regress run.  $1 suite name, $2 output
# file, $3 exit status, then the test names.
count_regress() {
    local suite=$1 out=$2 rc=$3
    shift 3
    local pass=0 fail=0 name line result
    local re15='^(test| )[[:space:]]+([^[:space:]]+)[[:space:]]+\.\.\.[[:space:]]+(ok|FAILED|failed)'
    local re16='^(not )?ok[[:space:]]+[0-9]+[[:space:]]+[-+][[:space:]]+([^[:space:]]+)'
    declare -A seen=()
    while IFS= read -r line; do
        name="" result=""
        if [[ $line =~ $re15 ]]; then
            name=${BASH_REMATCH[2]}
            [ "${BASH_REMATCH[3]}" = ok ] && result=ok || result=fail
        elif [[ $line =~ $re16 ]]; then
            name=${BASH_REMATCH[2]}
            [ -z "${BASH_REMATCH[1]}" ] && result=ok || result=fail
        fi
        [ -n "$name" ] || continue
        seen[$name]=1
        if [ "$result" = ok ]; then pass=$((pass + 1)); else fail=$((fail + 1)); FAILURES+=("$suite $name"); fi
    done <"$out"
    for name in "$@"; do
        if [ -z "${seen[$name]:-}" ]; then
            fail=$((fail + 1)); FAILURES+=("$suite $name (no result)")
        fi
    done
    if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
        fail=1; FAILURES+=("$suite: exited with status $rc")
    fi
    PASSED=$((PASSED + pass)); FAILED=$((FAILED + fail))
    SUITES+=("$(printf '%-11s %4d passed, %d failed' "$suite" "$pass" "$fail")")
    [ "$fail" -eq 0 ]
}

# ---------------------------------------------------------------- 7. pg_regress
step "pg_regress"
REG_TESTS=()
for f in "$WORK"/test/regress/sql/*.sql; do
    [ -e "$f" ] || continue
    b=$(basename "$f" .sql)
    selected regress "$b" && REG_TESTS+=("$b")
done
if [ ${#REG_TESTS[@]} -gt 0 ]; then
    mapfile -t REG_TESTS < <(printf '%s\n' "${REG_TESTS[@]}" | LC_ALL=C sort)
    as_pg mkdir -p "$WORK/test/regress/expected"
    rc=0
    as_pg timeout -k 10 "$REGRESS_TIMEOUT" "$PG_REGRESS" --use-existing --dbname="$PGDATABASE" \
        --host="$PGHOST" --port="$PGPORT" --user=postgres --inputdir="$WORK/test/regress" \
        --outputdir="$WORK/regress-out" --bindir="$PGBIN" "${REG_TESTS[@]}" </dev/null 2>&1 |
        tee "$WORK/regress.log" || rc=$?
    if ! count_regress pg_regress "$WORK/regress.log" "$rc" "${REG_TESTS[@]}"; then
        if [ -s "$WORK/regress-out/regression.diffs" ]; then
            say "---- regression.diffs (first 200 lines) ----"
            head -n 200 "$WORK/regress-out/regression.diffs"
            say "----"
        fi
    fi
else
    say "no regression tests"
fi

# ---------------------------------------------------------------- 8. isolation
step "isolation"
ISO_TESTS=()
for f in "$WORK"/test/isolation/specs/*.spec; do
    [ -e "$f" ] || continue
    b=$(basename "$f" .spec)
    selected isolation "$b" && ISO_TESTS+=("$b")
done
if [ ${#ISO_TESTS[@]} -gt 0 ]; then
    mapfile -t ISO_TESTS < <(printf '%s\n' "${ISO_TESTS[@]}" | LC_ALL=C sort)
    as_pg mkdir -p "$WORK/test/isolation/expected"
    rc=0
    as_pg timeout -k 10 "$REGRESS_TIMEOUT" "$PG_ISOLATION_REGRESS" --use-existing \
        --dbname="$PGDATABASE" --host="$PGHOST" --port="$PGPORT" --user=postgres \
        --inputdir="$WORK/test/isolation" --outputdir="$WORK/isolation-out" \
        --bindir="$PGBIN" "${ISO_TESTS[@]}" </dev/null 2>&1 | tee "$WORK/isolation.log" || rc=$?
    if ! count_regress isolation "$WORK/isolation.log" "$rc" "${ISO_TESTS[@]}"; then
        if [ -s "$WORK/isolation-out/regression.diffs" ]; then
            say "---- isolation regression.diffs (first 200 lines) ----"
            head -n 200 "$WORK/isolation-out/regression.diffs"
            say "----"
        fi
    fi
else
    say "no isolation specs"
fi

# ---------------------------------------------------------------- TAP counting
# tap_count FILE: print "PLAN PASS FAIL BAILED" for the TAP stream in FILE
# (top-level lines only; PLAN is -1 when there is none).
tap_count() {
    awk '
        BEGIN { plan = -1; pass = 0; fail = 0; bail = 0 }
        /^1\.\.[0-9]+/ { if (plan < 0) { plan = substr($0, 4) + 0 } ; next }
        /^ok( |$)/     { pass++; next }
        /^not ok( |$)/ { fail++; next }
        /^Bail out!/   { bail = 1 }
        END { print plan, pass, fail, bail }
    ' "$1"
}

# tap_failures FILE: print each failing assertion with the diagnostics after it.
tap_failures() {
    awk '
        /^not ok( |$)/ { show = 1; print "    " $0; next }
        /^#/           { if (show) print "    " $0; next }
        /^Bail out!/   { print "    " $0 }
        { show = 0 }
    ' "$1"
}

# tap_account SUITE NAME OUT ERR RC SECONDS REQUIRE_PLAN: add one file's TAP
# results to the totals and print its result line.
tap_account() {
    local suite=$1 name=$2 out=$3 err=$4 rc=$5 secs=$6 require_plan=$7
    local plan pass fail bail extra=0 why=""
    read -r plan pass fail bail < <(tap_count "$out")
    local ran=$((pass + fail))
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        extra=1; why="timed out"
    elif [ "$rc" -ne 0 ]; then
        extra=1; why="died (exit status $rc)"
    elif [ "$bail" -eq 1 ]; then
        extra=1; why="bailed out"
    elif [ "$plan" -ge 0 ] && [ "$plan" -ne "$ran" ]; then
        extra=1; why="planned $plan, ran $ran"
    elif [ "$plan" -lt 0 ] && { [ "$require_plan" = 1 ] || [ "$ran" -eq 0 ]; }; then
        extra=1; why="no plan"
    fi
    PASSED=$((PASSED + pass)); FAILED=$((FAILED + fail + extra))
    TAP_PASS=$((TAP_PASS + pass)); TAP_FAIL=$((TAP_FAIL + fail + extra))
    if [ $((fail + extra)) -eq 0 ]; then
        if [ "$plan" -eq 0 ]; then
            printf '%-44s skipped %s (%ss)\n' "$suite $name" "$(grep -m1 '^1\.\.0' "$out" | sed 's/^1\.\.0 *//')" "$secs"
        else
            printf '%-44s ok  %d/%d  (%ss)\n' "$suite $name" "$pass" "$ran" "$secs"
        fi
    else
        printf '%-44s FAILED  %d passed, %d failed%s  (%ss)\n' "$suite $name" "$pass" "$fail" \
            "${why:+, $why}" "$secs"
        [ "$VERBOSE" = 1 ] || tap_failures "$out"
        if [ "$extra" -eq 1 ] && [ -s "$err" ]; then
            say "    ---- stderr (last 20 lines) ----"
            tail -n 20 "$err" | sed 's/^/    /'
        fi
        [ "$fail" -gt 0 ] && FAILURES+=("$suite $name: $fail assertion(s)")
        [ "$extra" -eq 1 ] && FAILURES+=("$suite $name: $why")
    fi
    return 0
}

reset_mock_quietly() {
    mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1 || say "(warning: POST /__mock/reset failed)"
}

# ---------------------------------------------------------------- 9. pgTAP
step "pgTAP"
TAP_PASS=0; TAP_FAIL=0; n_files=0
for f in "$WORK"/test/pgtap/*.sql; do
    [ -e "$f" ] || continue
    name=$(basename "$f")
    selected pgtap "${name%.sql}" || continue
    n_files=$((n_files + 1))
    out=$WORK/tap-out/${name%.sql}.tap; err=$WORK/tap-out/${name%.sql}.err
    # Each file starts from a fresh server: shared state such as the worker's
    # 60 s pause after a 429 must not leak from one file into the next.
    if cluster_is_running; then cluster_restart || die "the server does not restart"; else
        cluster_start || die "the server is down and does not start"; fi
    mock_is_running || mock_start || die "the mock is down and does not start"
    reset_mock_quietly
    t=$SECONDS; rc=0
    if [ "$VERBOSE" = 1 ]; then say "$name:"; fi
    as_pg env PGAPPNAME="pgtap:$name" timeout -k 10 "$PGTAP_TIMEOUT" "$PGBIN/psql" -X -q -t -A \
        --pset pager=off -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres \
        -d "$PGDATABASE" -f "$f" </dev/null 2>"$err" |
        if [ "$VERBOSE" = 1 ]; then tee "$out" | sed -u 's/^/    /'; else cat >"$out"; fi || rc=$?
    if [ "$rc" -ne 0 ]; then
        # a timed-out file may leave its backend running
        cluster_psql -d postgres -qAt -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE application_name = 'pgtap:$name'" >/dev/null 2>&1 || true
    fi
    tap_account pgtap "$name" "$out" "$err" "$rc" $((SECONDS - t)) 1
done
if [ "$n_files" -gt 0 ]; then
    SUITES+=("$(printf '%-11s %4d passed, %d failed  (%d files)' pgtap "$TAP_PASS" "$TAP_FAIL" "$n_files")")
else
    say "no pgTAP tests"
fi

# ---------------------------------------------------------------- 10. scripts
step "fault scripts"
TAP_PASS=0; TAP_FAIL=0; n_files=0
export REPO PGHOST PGPORT PGDATA PGBIN MOCK_PORT MOCK_URL MONEROO_TEST_KEY SERVER_LOG MOCK_LOG CLUSTER_LIB
export -f cluster_env cluster_python free_port as_pg cluster_init cluster_conf_append \
    cluster_is_running cluster_explain_failure cluster_start cluster_stop cluster_restart \
    cluster_reload cluster_psql cluster_pid mock_start mock_is_running mock_stop mock_ctl
for s in "$WORK"/test/scripts/*.sh; do
    [ -e "$s" ] || continue
    name=$(basename "$s")
    selected script "${name%.sh}" || continue
    if [ ! -x "$REPO/test/scripts/$name" ] && [ ! -x "$s" ]; then
        say "script $name is not executable: not run"
        continue
    fi
    n_files=$((n_files + 1))
    out=$WORK/tap-out/${name%.sh}.tap; err=$WORK/tap-out/${name%.sh}.err
    cluster_is_running || cluster_start || die "the server is down and does not start"
    mock_is_running || mock_start || die "the mock is down and does not start"
    reset_mock_quietly
    say "script $name:"
    t=$SECONDS; rc=0
    # through bash: /tmp may be mounted noexec
    (cd "$WORK" && timeout -k 10 "$SCRIPT_TIMEOUT" bash "$s") </dev/null 2>"$err" |
        tee "$out" | sed -u 's/^/    /' || rc=$?
    tap_account script "$name" "$out" "$err" "$rc" $((SECONDS - t)) 0
    # leave the next test what this script found: same settings, server and mock up
    if ! as_pg cmp -s "$PGDATA/postgresql.conf" "$WORK/postgresql.conf.orig"; then
        as_pg cp "$WORK/postgresql.conf.orig" "$PGDATA/postgresql.conf"
        cluster_restart || die "the server does not restart after $name"
    fi
    cluster_is_running || cluster_start || die "the server is down after $name and does not start"
    mock_is_running || mock_start || die "the mock is down after $name and does not start"
done
if [ "$n_files" -gt 0 ]; then
    SUITES+=("$(printf '%-11s %4d passed, %d failed  (%d scripts)' scripts "$TAP_PASS" "$TAP_FAIL" "$n_files")")
else
    say "no fault scripts"
fi

# ---------------------------------------------------------------- 11-12.
step "stop"
exit 0   # finish (the EXIT trap) stops everything and prints the totals
