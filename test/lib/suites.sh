# shellcheck shell=bash disable=SC2317
# test/lib/suites.sh: the suite runners of test/run.sh, and what chooses and
# counts their tests.  Defines functions only; sourced by test/run.sh after
# cluster.sh, and reads its variables: REPO, CALLER_PWD, WORK, PGBIN,
# PGDATABASE, ONLY (TEST_ONLY), ONLY_TESTS, NO_TESTS, VERBOSE and the
# *_TIMEOUTs.  Each runner adds to PASSED, FAILED, SUITES (one line per suite)
# and FAILURES (what failed).
#
# The suites, in the order test/run.sh runs them (SUITE:NAME is how a test is
# selected):
#   regress:NAME    sql/NAME.sql compared with expected/NAME.out (pg_regress)
#   isolation:NAME  test/isolation/specs/NAME.spec, test/isolation/expected/NAME.out
#   pgtap:NAME      test/pgtap/NAME.sql, each on a freshly restarted server
#   script:NAME     test/FOLDER/NAME.sh (NAME starts with its order, NN_), by NAME
#                   across the folders; TAP on stdout

# ---------------------------------------------------------------- choosing tests
# test_of_file REL: print SUITE:NAME for the test file REL (relative to the
# checkout), or fail when REL is no test.
test_of_file() {
    local rel=$1 name
    name=$(basename "$rel"); name=${name%.*}
    case $rel in
        test/pgtap/*.sql) echo "pgtap:$name" ;;
        test/*/[0-9]*_*.sh) echo "script:$name" ;;
        sql/*.sql|expected/*.out) echo "regress:$name" ;;
        test/isolation/specs/*.spec|test/isolation/expected/*.out) echo "isolation:$name" ;;
        *) return 1 ;;
    esac
}

# test_of_folder REL: print SUITE:NAME for every test in the folder REL (and
# its subfolders: test/isolation holds specs/), or fail when it holds none.
test_of_folder() {
    local rel=${1%/} f found=1
    while IFS= read -r f; do
        test_of_file "${f#"$REPO"/}" && found=0
    done < <(find "$REPO/$rel" -maxdepth 2 -type f | LC_ALL=C sort)
    return "$found"
}

# resolve_test ARG: print SUITE:NAME for each test ARG designates: a file or a
# folder (relative to the caller's directory or the checkout), a test's name,
# or a folder's name (faults, pgtap, isolation, ...; regress for sql/).
resolve_test() {
    local arg=$1 path rel name found=0 suite dir ext
    if [[ $arg == */* ]]; then
        case $arg in /*) path=$arg ;; *) path=$CALLER_PWD/$arg ;; esac
        [ -e "$path" ] || [ "${arg#/}" != "$arg" ] || path=$REPO/$arg
        path=$(realpath -m -- "$path")
        rel=${path#"$REPO"/}
        if [ -d "$path" ]; then
            test_of_folder "$rel" | sort -u | grep . ||
                { echo "test/run.sh: --only $arg: no test in that folder" >&2; return 1; }
            return 0
        fi
        [ -f "$path" ] || { echo "test/run.sh: --only $arg: no such file" >&2; return 1; }
        test_of_file "$rel" ||
            { echo "test/run.sh: --only $arg: not a test of this checkout (test/pgtap/*.sql," \
                   "test/FOLDER/NN_*.sh, sql/*.sql, test/isolation/specs/*.spec)" >&2
              return 1; }
        return 0
    fi
    case $arg in
        regress) test_of_folder sql; return ;;
        lib|mock|bench|fuzz) ;;
        *) if [ -d "$REPO/test/$arg" ]; then
               test_of_folder "test/$arg" | sort -u | grep . ||
                   { echo "test/run.sh: --only $arg: no test in test/$arg" >&2; return 1; }
               return 0
           fi ;;
    esac
    name=${arg%.sql}; name=${name%.sh}; name=${name%.spec}; name=${name%.out}
    for suite in pgtap:test/pgtap:sql regress:sql:sql isolation:test/isolation/specs:spec; do
        IFS=: read -r suite dir ext <<<"$suite"
        if [ -f "$REPO/$dir/$name.$ext" ]; then echo "$suite:$name"; found=1; fi
    done
    if compgen -G "$REPO/test/*/$name.sh" >/dev/null && [[ $name == [0-9]*_* ]]; then
        echo "script:$name"; found=1
    fi
    [ "$found" = 1 ] || { echo "test/run.sh: --only $arg: no test or folder of that name" >&2; return 1; }
}

# selected SUITE NAME: whether this run runs test NAME of SUITE.
selected() {
    local t
    [ "$NO_TESTS" = 0 ] || return 1
    [ -z "$ONLY" ] || [[ $2 =~ $ONLY ]] || return 1
    [ ${#ONLY_TESTS[@]} -gt 0 ] || return 0
    for t in "${ONLY_TESTS[@]}"; do [ "$t" = "$1:$2" ] && return 0; done
    return 1
}

# ---------------------------------------------------------------- pg_regress and isolation
# count_regress LABEL OUTPUT STATUS NAME...: count one pg_regress or
# pg_isolation_regress run from its OUTPUT and exit STATUS; every NAME must
# have a result.
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

# run_regress_suite SUITE LABEL PROGRAM INPUTDIR TESTDIR EXT: run PROGRAM
# (pg_regress or pg_isolation_regress) on the selected TESTDIR/*.EXT of
# INPUTDIR, in the test database; its output goes to $WORK/SUITE-out.
run_regress_suite() {
    local suite=$1 label=$2 program=$3 inputdir=$4 testdir=$5 ext=$6
    local tests=() f rc=0 out=$WORK/$suite-out log=$WORK/$suite.log
    for f in "$testdir"/*."$ext"; do
        [ -e "$f" ] || continue
        f=$(basename "$f" ."$ext")
        selected "$suite" "$f" && tests+=("$f")
    done
    if [ ${#tests[@]} -eq 0 ]; then say "no $label tests"; return 0; fi
    mapfile -t tests < <(printf '%s\n' "${tests[@]}" | LC_ALL=C sort)
    as_pg mkdir -p "$inputdir/expected" "$out"
    as_pg timeout -k 10 "$REGRESS_TIMEOUT" "$program" --use-existing --dbname="$PGDATABASE" \
        --host="$PGHOST" --port="$PGPORT" --user=postgres --inputdir="$inputdir" \
        --outputdir="$out" --bindir="$PGBIN" "${tests[@]}" </dev/null 2>&1 | tee "$log" || rc=$?
    if ! count_regress "$label" "$log" "$rc" "${tests[@]}" && [ -s "$out/regression.diffs" ]; then
        say "---- $label regression.diffs (first 200 lines) ----"
        head -n 200 "$out/regression.diffs"
        say "----"
    fi
    return 0
}

# ---------------------------------------------------------------- TAP (pgTAP and scripts)
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
            why=$(grep -m1 '^1\.\.0' "$out" | sed 's/^1\.\.0 *//')
            printf '%-44s skipped %s (%ss)\n' "$suite $name" "$why" "$secs"
            NOT_RUN+=("$suite $name ${why:-(no reason given)}")
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

# tap_suite_total LABEL UNIT: the suite's line in the summary (after its files).
tap_suite_total() {
    if [ "$n_files" -gt 0 ]; then
        SUITES+=("$(printf '%-11s %4d passed, %d failed  (%d %s)' "$1" "$TAP_PASS" "$TAP_FAIL" "$n_files" "$2")")
    else
        say "no $1 tests"
    fi
}

reset_mock_quietly() {
    mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1 || say "(warning: POST /__mock/reset failed)"
}

# run_pgtap: the selected test/pgtap/*.sql in name order, each through psql
# on a freshly restarted server with the mock reset.
run_pgtap() {
    local f name out err t rc
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
    tap_suite_total pgtap files
}

# run_scripts: the selected test/FOLDER/NN_*.sh, by NN_ across the folders
# (the order of the run), each through bash from $WORK with the stack's
# variables and cluster.sh's functions exported; afterwards the settings,
# the server and the mock are put back as the script found them.
run_scripts() {
    local s name rel out err t rc
    TAP_PASS=0; TAP_FAIL=0; n_files=0
    export REPO PGHOST PGPORT PGDATA PGBIN MOCK_PORT MOCK_URL MONEROO_TEST_KEY SERVER_LOG MOCK_LOG CLUSTER_LIB
    export -f cluster_env cluster_python free_port as_pg cluster_init cluster_conf_append \
        cluster_is_running cluster_explain_failure cluster_start cluster_stop cluster_restart \
        cluster_reload cluster_psql cluster_pid mock_start mock_is_running mock_stop mock_ctl
    while IFS= read -r s; do
        name=$(basename "$s"); rel=${s#"$WORK"/}
        selected script "${name%.sh}" || continue
        if [ ! -x "$REPO/$rel" ] && [ ! -x "$s" ]; then
            say "script $rel is not executable: not run"
            continue
        fi
        n_files=$((n_files + 1))
        out=$WORK/tap-out/${name%.sh}.tap; err=$WORK/tap-out/${name%.sh}.err
        cluster_is_running || cluster_start || die "the server is down and does not start"
        mock_is_running || mock_start || die "the mock is down and does not start"
        reset_mock_quietly
        say "script ${rel#test/}:"
        t=$SECONDS; rc=0
        # through bash: /tmp may be mounted noexec
        (cd "$WORK" && timeout -k 10 "$SCRIPT_TIMEOUT" bash "$s") </dev/null 2>"$err" |
            tee "$out" | sed -u 's/^/    /' || rc=$?
        tap_account script "${rel#test/}" "$out" "$err" "$rc" $((SECONDS - t)) 0
        # leave the next test what this script found: same settings, server and mock up
        if ! as_pg cmp -s "$PGDATA/postgresql.conf" "$WORK/postgresql.conf.orig"; then
            as_pg cp "$WORK/postgresql.conf.orig" "$PGDATA/postgresql.conf"
            cluster_restart || die "the server does not restart after $name"
        fi
        cluster_is_running || cluster_start || die "the server is down after $name and does not start"
        mock_is_running || mock_start || die "the mock is down after $name and does not start"
    done < <(find "$WORK/test" -mindepth 2 -maxdepth 2 -type f -name '[0-9]*_*.sh' |
             awk -F/ '{ print $NF "\t" $0 }' | LC_ALL=C sort | cut -f2-)
    tap_suite_total scripts scripts
}
