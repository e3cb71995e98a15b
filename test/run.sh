#!/usr/bin/env bash
# test/run.sh: build moneroo and run every test against a throwaway cluster.
#
#   bash test/run.sh            # as root (or a user with sudo) on Debian 12
#
# Steps: install the Debian packages it needs (skipped when all are there),
# build and install the extension, start the Moneroo mock and a PostgreSQL 15
# cluster with moneroo preloaded in a mktemp directory under /tmp, then run
#   1. pg_regress      sql/*.sql (without sql/moneroo--*.sql) vs expected/*.out
#   2. isolation       test/isolation/specs/*.spec vs test/isolation/expected/
#   3. pgTAP           test/pgtap/*.sql except helpers.sql, in name order
#   4. fault scripts   executable test/scripts/*.sh (TAP on stdout)
# and clean everything up.  The last line printed is "N passed, N failed":
# one per regression file and isolation spec, one per TAP assertion, plus one
# failure for each file that dies, times out or misses its plan.  Exit status
# is 0 only when nothing failed and something passed.
#
# Environment knobs:
#   KEEP=1              keep the work directory (data dir, logs, outputs)
#   VERBOSE=1           stream every TAP line (default: failures only)
#   TEST_ONLY=REGEX     run only tests (file basenames) matching REGEX
#   PGTAP_TIMEOUT=300   seconds per pgTAP file
#   SCRIPT_TIMEOUT=600  seconds per fault script
#   REGRESS_TIMEOUT=900 seconds for all of pg_regress (and for isolation)
#   SKIP_INSTALL=1      skip the apt step entirely
# shellcheck disable=SC2317,SC2119
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

PGBIN=/usr/lib/postgresql/15/bin
PG_CONFIG=$PGBIN/pg_config
MONEROO_TEST_KEY='pvk_sandbox_t3stK3y|01JTESTKEYDONOTLOG0000000'
PGDATABASE=moneroo_test
export PGBIN MONEROO_TEST_KEY PGDATABASE
export DEBIAN_FRONTEND=noninteractive
# Only these settings come from the environment; a stray PGOPTIONS or
# PGSERVICE would change what the tests see.
unset PGOPTIONS PGSERVICE PGSERVICEFILE PGTZ PGDATESTYLE PGCLIENTENCODING PGSSLMODE || true

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

# ---------------------------------------------------------------- clean-up
finish() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    cd /
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        cluster_stop >/dev/null 2>&1
        mock_stop >/dev/null 2>&1
    fi
    if [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ]; then
        FAILED=1
        [ ${#FAILURES[@]} -gt 0 ] || FAILURES+=("harness: exited with status $rc")
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$FAILED" -gt 0 ] && [ -f "$WORK/server.log" ] && [ -z "${CLUSTER_LOG_SHOWN:-}" ]; then
            say ""
            say "server log: $WORK/server.log$([ "${KEEP:-0}" = 1 ] || echo ' (removed; KEEP=1 keeps it)')"
            say "---- last 50 lines of server.log ----"
            "${SUDO[@]}" tail -n 50 "$WORK/server.log"
            say "----"
            if [ -s "$WORK/mock.log" ]; then
                say "---- last 20 lines of mock.log ----"
                tail -n 20 "$WORK/mock.log"
                say "----"
            fi
        fi
        if [ "${KEEP:-0}" = 1 ]; then
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
    if [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]; then exit 0; fi
    exit 1
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- 1. packages
# shellcheck source=test/lib/build.sh
. "$REPO/test/lib/build.sh"
step "packages"
install_packages || die "could not install the packages moneroo needs"
[ -x "$PG_CONFIG" ] || die "$PG_CONFIG not found (postgresql-server-dev-15)"
PGXS_DIR=$("$PG_CONFIG" --pkglibdir)/pgxs
PG_REGRESS=$PGXS_DIR/src/test/regress/pg_regress
PG_ISOLATION_REGRESS=$PGXS_DIR/src/test/isolation/pg_isolation_regress

# ---------------------------------------------------------------- 2. build
step "build"
build_extension || die "build failed"

# ---------------------------------------------------------------- 3. work dir
step "work directory"
# shellcheck source=test/lib/cluster.sh
. "$REPO/test/lib/cluster.sh"
work_create "$REPO" moneroo-test || die "cannot make the work directory"
as_pg mkdir -p "$WORK/regress-out" "$WORK/isolation-out" "$WORK/tap-out"
PGPORT=$(free_port) || die "no free port"
MOCK_PORT=$(free_port "$PGPORT") || die "no free port"
export PGPORT MOCK_PORT
cluster_env
say "WORK=$WORK PGPORT=$PGPORT MOCK_PORT=$MOCK_PORT"
[ -f "$MOCK_SCRIPT" ] || die "the mock test/mock/moneroo_mock.py does not exist"

# ---------------------------------------------------------------- 4-6. mock, cluster
step "mock and cluster"
# mock, initdb, start, database, pgtap + moneroo, helpers.sql, restart
stack_up || die "could not bring up the mock and the cluster (see above)"
as_pg cp "$PGDATA/postgresql.conf" "$WORK/postgresql.conf.orig"
say "mock on $MOCK_URL; PostgreSQL on $PGHOST port $PGPORT, database $PGDATABASE"
# Several checkouts on one machine share the server's library directory.
if ! cmp -s "$REPO/moneroo.so" "$("$PG_CONFIG" --pkglibdir)/moneroo.so"; then
    say "WARNING: $("$PG_CONFIG" --pkglibdir)/moneroo.so is not the library just built:" \
        "another build installed over it while this run started"
fi

selected() { [ -z "$ONLY" ] || [[ $1 =~ $ONLY ]]; }
[ -z "$ONLY" ] || say "TEST_ONLY=$ONLY: running only the tests whose names match"

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
for f in "$WORK"/sql/*.sql; do
    [ -e "$f" ] || continue
    b=$(basename "$f" .sql)
    case $b in moneroo--*) continue ;; esac
    selected "$b" && REG_TESTS+=("$b")
done
if [ ${#REG_TESTS[@]} -gt 0 ]; then
    mapfile -t REG_TESTS < <(printf '%s\n' "${REG_TESTS[@]}" | LC_ALL=C sort)
    mkdir -p "$WORK/expected"
    rc=0
    as_pg timeout -k 10 "$REGRESS_TIMEOUT" "$PG_REGRESS" --use-existing --dbname="$PGDATABASE" \
        --host="$PGHOST" --port="$PGPORT" --user=postgres --inputdir="$WORK" \
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
    selected "$b" && ISO_TESTS+=("$b")
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
    [ "$name" = helpers.sql ] && continue
    selected "${name%.sql}" || continue
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
export REPO PGHOST PGPORT PGDATA PGBIN MOCK_PORT MOCK_URL MONEROO_TEST_KEY SERVER_LOG MOCK_LOG
export CLUSTER_LIB="$WORK/test/lib/cluster.sh"
export -f cluster_env cluster_python free_port as_pg cluster_init cluster_conf_append \
    cluster_is_running cluster_explain_failure cluster_start cluster_stop cluster_restart \
    cluster_reload cluster_psql cluster_pid mock_start mock_is_running mock_stop mock_ctl
for s in "$WORK"/test/scripts/*.sh; do
    [ -e "$s" ] || continue
    name=$(basename "$s")
    selected "${name%.sh}" || continue
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
