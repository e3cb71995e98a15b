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
# extension, start the Moneroo mock and a PostgreSQL $PG_MAJOR cluster with moneroo
# preloaded in a mktemp directory under /tmp (test/lib/stack.sh), then run
# (test/lib/suites.sh)
#   1. pg_regress      sql/*.sql vs expected/*.out
#   2. isolation       test/isolation/specs/*.spec vs test/isolation/expected/
#   3. pgTAP           test/pgtap/*.sql in name order, each on a fresh server
#   4. scripts         executable test/FOLDER/NN_*.sh in NN_ order across the
#                      folders (TAP on stdout; test/README.md says what each
#                      folder proves)
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
# reinstalled, the copy of the tests refreshed, the mock restarted if its script
# changed, the database made again if the extension's scripts, moneroo.control
# or test/lib/helpers.sql changed, the settings put back as the stack started
# and the server restarted.  Without a kept stack, --only brings a throwaway
# one up (kept too with --keep).  A run without a selection always uses a
# fresh stack; with --keep it replaces the kept one.
#
# --only TEST...: each TEST is a file, a name or a folder:
#   test/pgtap/20_queue.sql            or 20_queue      (pgTAP)
#   test/faults/10_crash.sh            or 10_crash      (script)
#   sql/validation.sql                 or validation    (pg_regress)
#   test/isolation/specs/retry_race.spec  or retry_race (isolation)
#   test/faults/ or faults, test/pgtap/ or pgtap, sql/ or regress, ...:
#                                      every test in that folder
# --only takes every argument up to the next option and may be repeated.
#
# Environment knobs:
#   KEEP=1              keep the work directory (data dir, logs, outputs);
#                       the processes are stopped (--keep leaves them running)
#   VERBOSE=1           stream every TAP line (default: failures only)
#   TEST_ONLY=REGEX     run only tests (file basenames) matching REGEX
#   PGTAP_TIMEOUT=300   seconds per pgTAP file
#   SCRIPT_TIMEOUT=600  seconds per script
#   REGRESS_TIMEOUT=900 seconds for all of pg_regress (and for isolation)
#   SKIP_INSTALL=1      skip the apt step entirely
#   PG_CONFIG=PATH      the pg_config of the server to test (default Debian's
#                       /usr/lib/postgresql/$PG_MAJOR/bin/pg_config)
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
# PG_CONFIG=/path/to/bin/pg_config: test against that installation instead of
# Debian's (test/cassert.sh's assert-enabled build); its major is PG_MAJOR.
if [ -n "${PG_CONFIG:-}" ]; then
    PGBIN=$("$PG_CONFIG" --bindir) || { echo "test/run.sh: PG_CONFIG=$PG_CONFIG does not run" >&2; exit 2; }
    PG_MAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
else
    PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
    PG_CONFIG=$PGBIN/pg_config
fi
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
NOT_RUN=()         # tests that cannot run here (plan 1..0), with why
WORK=""
T0=$SECONDS

# ---------------------------------------------------------------- options
STACK_ENV=$REPO/.test-stack.env   # the kept stack, when there is one
KEEP_STACK=0       # --keep / --up: leave the stack running at the end
NO_TESTS=0         # --up: run no test
STOP=0             # --stop
ONLY_ARGS=()       # --only arguments, as given
ONLY_TESTS=()      # ... resolved to SUITE:NAME (suite regress, isolation, pgtap or script; test/lib/suites.sh)
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

say()  { printf '%s\n' "$*"; }
step() { printf '\n==== %s  [%ds]\n' "$*" $((SECONDS - T0)); }
die()  { printf 'FATAL: %s\n' "$*" >&2; FAILURES+=("harness: $*"); exit 1; }

# ---------------------------------------------------------------- libraries
# shellcheck source=test/lib/cluster.sh
. "$REPO/test/lib/cluster.sh"     # the cluster and the mock
# shellcheck source=test/lib/stack.sh
. "$REPO/test/lib/stack.sh"       # this run's stack: fresh or kept
# shellcheck source=test/lib/suites.sh
. "$REPO/test/lib/suites.sh"      # which tests, their runners, their counts
# shellcheck source=test/lib/build.sh
. "$REPO/test/lib/build.sh"       # packages, make install

for a in "${ONLY_ARGS[@]}"; do
    r=$(resolve_test "$a") || exit 2
    mapfile -t -O "${#ONLY_TESTS[@]}" ONLY_TESTS <<<"$r"
done

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
    local rc=$? s leave_up=0
    set +e
    trap - EXIT INT TERM
    cd /
    if [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ]; then
        FAILED=1
        [ ${#FAILURES[@]} -gt 0 ] || FAILURES+=("harness: exited with status $rc")
    fi
    # the kept stack stays up: the one this run reused, or the one it made for --keep
    if [ "$REUSE" = 1 ] || { [ "$KEEP_STACK" = 1 ] && [ "$STACK_READY" = 1 ]; }; then leave_up=1; fi
    stack_take_down "$leave_up" "$FAILED"
    say ""
    say "==== summary  [$((SECONDS - T0))s]"
    for s in "${SUITES[@]}"; do say "  $s"; done
    for s in "${FAILURES[@]}"; do say "  FAILED: $s"; done
    for s in "${NOT_RUN[@]}"; do say "  NOT RUN on PostgreSQL $PG_MAJOR: $s"; done
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
        stack_forget
    fi
fi

# ---------------------------------------------------------------- 1. packages
step "packages"
if [ "$REUSE" = 1 ]; then
    say "kept stack: packages not checked"
else
    install_packages || die "could not install the packages moneroo needs"
fi
[ -x "$PG_CONFIG" ] || die "$PG_CONFIG not found (postgresql-server-dev-$PG_MAJOR)"
PGXS_DIR=$("$PG_CONFIG" --pkglibdir)/pgxs

# ---------------------------------------------------------------- 2. build
step "build"
build_extension || die "build failed"

# ---------------------------------------------------------------- 3. the stack
step "work directory, mock and cluster"
stack_bring_up
STACK_READY=1
[ -z "$ONLY" ] || say "TEST_ONLY=$ONLY: running only the tests whose names match"
[ ${#ONLY_TESTS[@]} -eq 0 ] || say "--only: ${ONLY_TESTS[*]}"
[ "$NO_TESTS" = 0 ] || exit 0   # --up: finish (the EXIT trap) says how to reach the stack

# ---------------------------------------------------------------- 4. the suites
step "pg_regress"
run_regress_suite regress pg_regress "$PGXS_DIR/src/test/regress/pg_regress" \
    "$WORK" "$WORK/sql" sql
step "isolation"
run_regress_suite isolation isolation "$PGXS_DIR/src/test/isolation/pg_isolation_regress" \
    "$WORK/test/isolation" "$WORK/test/isolation/specs" spec
step "pgTAP"
run_pgtap
step "scripts"
run_scripts

# ---------------------------------------------------------------- 5. stop
step "stop"
exit 0   # finish (the EXIT trap) stops everything and prints the totals
