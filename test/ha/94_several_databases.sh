#!/usr/bin/env bash
# Proves: one worker per served database, one account's limits shared by all [slow, ~1.5 min].
# test/ha/94_several_databases.sh: one launcher, one worker per served
# database, one Moneroo account (1.2, "several databases").
#
# moneroo.database takes a list ('a, b', double quotes keep a name exactly)
# or '*' (every database with the extension installed); the launcher ("moneroo
# launcher" in pg_stat_activity) starts one "moneroo worker" per served
# database, and moneroo.rate_limit and moneroo.max_concurrency stay one budget
# for the whole cluster.  In order, on databases made here (t94_a, t94_b,
# t94_c, "T94 Quoted,One" and t94_d, which has no extension at first):
#   1. two databases, payouts queued in both at once: each sent once and
#      settled, each database's moneroo_status showing its own worker's pid
#      and its own counts, one launcher;
#   2. three databases and a fourth name that does not exist, rate_limit 120:
#      all sent once; the requests at the mock, all databases together, never
#      more than 120 a minute (checked on windows of 5, 10 and 20 s, which is
#      what a run this short can show: the limiter spaces requests evenly, so
#      any window holds at most its share of the minute, plus one); the
#      missing name logs ONE warning for the reload, not one per restart;
#   3. max_concurrency 3 and a mock that answers after 400 ms: the mock's
#      peak of concurrent requests, all databases together, is 3;
#   4. a reload that changes the list: the worker of a database taken out
#      stops (its payouts wait), one for a quoted name with a comma and
#      capitals starts, the others keep running; a listed database without
#      the extension gets a worker that waits for it;
#   5. pg_terminate_backend of one worker: the launcher starts another for
#      that database, the others keep theirs;
#   6. one account: a key refused to one database's worker pauses the
#      others too (moneroo_status says so, nothing is sent), until a reload;
#   7. '*': every database with the extension served, none without;
#      CREATE EXTENSION in a new one served within 10 s, DROP EXTENSION stops
#      its worker;
#   8. DROP DATABASE (without FORCE) of a served database succeeds, the
#      launcher forgets it, the others are still served.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.  Leaves the settings, the mock and the databases as it
# found them.
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

tap_plan 46

DBS=(t94_a t94_b t94_c "T94 Quoted,One" t94_d)
RUN="t94-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PY=$(cluster_python)

# ---------------------------------------------------------------- helpers
# dsql DB QUERY: one value from database DB (ERROR:<message> on failure)
dsql() {
    local out
    if out=$(cluster_psql -d "$1" -At -c "$2" 2>&1); then printf '%s' "$out"; else printf 'ERROR:%s' "$out" | tr '\n' ' '; fi
}
lit() { printf "'%s'" "${1//\'/\'\'}"; }   # an SQL string literal
ident() { printf '"%s"' "${1//\"/\"\"}"; } # an SQL identifier
# set_databases VALUE [SETTING=VALUE...]: ALTER SYSTEM, then a reload
set_databases() {
    local args=(-c "ALTER SYSTEM SET moneroo.database = $(lit "$1")") s
    shift
    for s in "$@"; do args+=(-c "ALTER SYSTEM SET ${s%%=*} = ${s#*=}"); done
    sql -q "${args[@]}" -c 'SELECT pg_reload_conf()' >/dev/null
}
# wait_wpid SECONDS DB [NOT_PID]: until DB has one worker (other than NOT_PID); prints its pid
wait_wpid() {
    local deadline=$((SECONDS + $1)) p
    while :; do
        p=$(worker_pid "$2")
        case $p in ''|*,*|ERROR*|"${3:-none}") ;; *) printf '%s' "$p"; return 0 ;; esac
        [ "$SECONDS" -lt "$deadline" ] || { printf '%s' "$p"; return 1; }
        sleep 0.2
    done
}
# wait_no_wpid SECONDS DB: until DB has no worker
wait_no_wpid() {
    local deadline=$((SECONDS + $1))
    until [ -z "$(worker_pid "$2")" ]; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 0.2; done
}
# queue_in DB TAG N: N payouts described "$RUN TAG #i" in one transaction
queue_in() { queue -d "$1" "$RUN $2" "$3" >/dev/null; }
# queue_at_once TAG N DB...: N payouts in each DB, the transactions at the same time
queue_at_once() {
    local tag=$1 n=$2 db pids=() rc=0 p
    shift 2
    for db in "$@"; do queue_in "$db" "$tag" "$n" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    return "$rc"
}
# states DB TAG: "status:count ..." of DB's payouts of TAG
states() {
    dsql "$1" "SELECT coalesce(string_agg(status || ':' || n, ' ' ORDER BY status), 'none')
               FROM (SELECT status, count(*) AS n FROM payouts
                     WHERE request ->> 'description' LIKE '$RUN $2 #%' GROUP BY status) s"
}
# wait_states SECONDS WANT DB TAG: until states DB TAG is WANT; prints what it is
wait_states() {
    local deadline=$((SECONDS + $1)) s
    while :; do
        s=$(states "$3" "$4")
        [ "$s" = "$2" ] && { printf '%s' "$s"; return 0; }
        [ "$SECONDS" -lt "$deadline" ] || { printf '%s' "$s"; return 1; }
        sleep 0.3
    done
}
# refs DB TAG: the references of DB's payouts of TAG, one a line
refs() { cluster_psql -d "$1" -At -c "SELECT reference FROM payouts WHERE request ->> 'description' LIKE '$RUN $2 #%'"; }
# journal_check REFFILE: of the mock's journal, "POSTS_OF_THESE DISTINCT TWICE":
# initialize requests carrying one of the references in REFFILE, how many
# distinct references they carry, and how many references (any) were POSTed
# more than once
journal_check() {
    mock_ctl GET /__mock/journal | "$PY" -c '
import collections, json, sys
mine = set(l.strip() for l in open(sys.argv[1]) if l.strip())
posts = collections.Counter()
for e in json.load(sys.stdin):
    if e["method"] == "POST" and e["path"] == "/v1/payouts/initialize":
        body = e.get("body") or {}
        ref = ((body.get("metadata") or {}).get("payout_reference") if isinstance(body, dict) else None)
        posts[ref] += 1
these = sum(n for r, n in posts.items() if r in mine)
print(these, sum(1 for r in posts if r in mine), sum(1 for r, n in posts.items() if n > 1))' "$1"
}
# max_in_windows W...: the most API requests the mock received in any window of W s, for each W
max_in_windows() {
    mock_ctl GET /__mock/journal | "$PY" -c '
import json, sys
t = sorted(e["time"] for e in json.load(sys.stdin))
out = []
for w in map(float, sys.argv[1:]):
    best = start = 0
    for end, x in enumerate(t):
        while t[start] <= x - w:
            start += 1
        best = max(best, end - start + 1)
    out.append(str(best))
print(" ".join(out), len(t))' "$@"
}
# served_databases, databases_with_extension: names, sorted, one a line
served_databases() {
    sql -c "SELECT datname FROM pg_stat_activity WHERE backend_type = 'moneroo worker' ORDER BY 1"
}
databases_with_extension() {
    local db
    sql -c "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1" | while IFS= read -r db; do
        [ "$(dsql "$db" "SELECT count(*) FROM pg_extension WHERE extname = 'moneroo'")" = 1 ] && printf '%s\n' "$db"
    done
}
log_mark() { as_pg stat -c %s "$SERVER_LOG"; }
log_since() { as_pg tail -c +$(($1 + 1)) "$SERVER_LOG"; }
# wait_sql_in DB SECONDS CONDITION: until CONDITION holds in DB
wait_sql_in() {
    local deadline=$((SECONDS + $2))
    until [ "$(dsql "$1" "SELECT ($3)")" = t ]; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 0.2; done
}
# status_row DB: "worker_running worker_pid pending success" of DB's moneroo_status
status_row() { dsql "$1" "SELECT worker_running || ' ' || coalesce(worker_pid::text, '-') || ' ' || pending || ' ' || success FROM moneroo_status"; }

cleanup() {
    set +e
    sql -q -c 'ALTER SYSTEM RESET moneroo.database' -c 'ALTER SYSTEM RESET moneroo.rate_limit' \
        -c 'ALTER SYSTEM RESET moneroo.max_concurrency' -c 'SELECT pg_reload_conf()' >/dev/null 2>&1
    sleep 1
    local db
    for db in "${DBS[@]}"; do
        cluster_psql -d postgres -q -c "SET client_min_messages = warning" \
            -c "DROP DATABASE IF EXISTS $(ident "$db") WITH (FORCE)" >/dev/null 2>&1
    done
    mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1
}
trap cleanup EXIT

wait_server 30 || bail "the server does not answer"
quiet_stack
mock_ctl POST /__mock/reset '{}' >/dev/null || bail "cannot reset the mock"
mock_ctl POST /__mock/config '{"rate_limit": 0, "latency_ms": 0}' >/dev/null || bail "cannot configure the mock"
sql -q -c 'ALTER SYSTEM SET moneroo.rate_limit = 0' -c 'SELECT pg_reload_conf()' >/dev/null
for db in "${DBS[@]}"; do
    cluster_psql -d postgres -q -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS $(ident "$db") WITH (FORCE)" -c "CREATE DATABASE $(ident "$db")" ||
        bail "cannot create database $db"
    if [ "$db" != t94_d ]; then
        cluster_psql -d "$db" -q -c 'CREATE EXTENSION moneroo' || bail "cannot CREATE EXTENSION moneroo in $db"
    fi
done

# ---------------------------------------------------------------- 1. two databases
mark=$(log_mark)
set_databases 't94_a, t94_b'
pa=$(wait_wpid 15 t94_a); pb=$(wait_wpid 15 t94_b)
launchers=$(sql1 "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'moneroo launcher'")
ok "$([ -n "$pa" ] && [ -n "$pb" ] && [ "$pa" != "$pb" ] && [ "$launchers" = 1 ]; echo $?)" \
    "'t94_a, t94_b': one moneroo launcher and a worker of its own in each database" \
    "launchers: $launchers; t94_a worker: '$pa'; t94_b worker: '$pb'"
if [ -z "$pa" ] || [ -z "$pb" ]; then
    skip_rest "no worker for each database of the list: nothing else can be checked"
    exit 0
fi
log=$(log_since "$mark")
is "$(grep -c 'moneroo worker started for database "t94_b"' <<<"$log")" 1 \
    "the server log says: moneroo worker started for database \"t94_b\" (once)"
is "$(sql1 "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'moneroo worker' AND datname = '$PGDATABASE'")" 0 \
    "the database no longer listed ($PGDATABASE) has no worker"

queue_at_once two 12 t94_a t94_b || diag "could not queue 12 payouts in t94_a and t94_b at once"
sa=$(wait_states 30 success:12 t94_a two); sb=$(wait_states 30 success:12 t94_b two)
is "$sa / $sb" "success:12 / success:12" "12 payouts queued in each database at once: all sent and settled"
{ refs t94_a two; refs t94_b two; } >"$WORK/t94_refs"
is "$(journal_check "$WORK/t94_refs")" "24 24 0" \
    "the mock received one initialize per reference of the two databases, and no reference twice"
is "$(status_row t94_a)" "true $pa 0 12" "t94_a's moneroo_status: its own worker (pid $pa), its own counts"
is "$(status_row t94_b)" "true $pb 0 12" "t94_b's moneroo_status: its own worker (pid $pb), its own counts"
is "$(dsql t94_b "SELECT worker_running || ' ' || worker_pid FROM moneroo_worker_info()")" "true $pb" \
    "moneroo_worker_info() in t94_b: t94_b's worker"
got=$(dsql t94_b "SELECT status || ' ' || (moneroo_id IS NOT NULL) FROM moneroo_transfer(jsonb_build_object(
        'amount', 100, 'currency', 'USD', 'description', '$RUN transfer', 'method', 'moneroo_payout_demo',
        'customer', jsonb_build_object('email', 'several@example.com', 'first_name', 'Several', 'last_name', 'Databases'),
        'recipient', jsonb_build_object('account_number', '4149518161')))")
is "$got" "sent true" "moneroo_transfer in t94_b, the second database of the list, sends through its worker"

# ---------------------------------------------------------------- 2. three databases, a missing one, the shared rate limit
mock_ctl POST /__mock/reset '{}' >/dev/null
mock_ctl POST /__mock/config '{"rate_limit": 120, "latency_ms": 0}' >/dev/null
mark=$(log_mark)
set_databases 't94_a, t94_b, t94_c, t94_missing' moneroo.rate_limit=120
t0=$SECONDS
pc=$(wait_wpid 15 t94_c)
ok "$([ -n "$pc" ]; echo $?)" "three databases and a missing one: t94_c's worker starts (pid ${pc:-none})"
is "$(worker_pid t94_a) $(worker_pid t94_b)" "$pa $pb" "t94_a's and t94_b's workers keep running through the reload"
queue_at_once three 8 t94_a t94_b t94_c || diag "could not queue 8 payouts in t94_a, t94_b and t94_c at once"
sa=$(wait_states 60 success:8 t94_a three); sb=$(wait_states 60 success:8 t94_b three)
sc=$(wait_states 60 success:8 t94_c three)
is "$sa / $sb / $sc" "success:8 / success:8 / success:8" \
    "8 payouts queued in each of three databases at once, rate_limit 120: all sent and settled"
{ refs t94_a three; refs t94_b three; refs t94_c three; } >"$WORK/t94_refs"
is "$(journal_check "$WORK/t94_refs")" "24 24 0" "... each reference POSTed once"
is "$(status_row t94_c)" "true $pc 0 8" "t94_c's moneroo_status: its own worker and counts"
# evenly spaced at 60/120 s (1% wider): any window of W s holds at most W/0.5 + 1
read -r w5 w10 w20 total <<<"$(max_in_windows 5 10 20)"
ok "$([ "${w5:-99}" -le 11 ] && [ "${w10:-99}" -le 21 ] && [ "${w20:-99}" -le 41 ] && [ "${total:-0}" -ge 48 ]; echo $?)" \
    "one rate budget for three workers: at most 11 / 21 / 41 requests in any 5 / 10 / 20 s (got $w5 / $w10 / $w20 of $total)" \
    "three workers with a budget each would send up to 3 x as many; 48 = 24 initializes + 24 verifications at least"
stats=$(mock_ctl GET /__mock/stats)
is "$(sed -E 's/.*"rate_limited": *([0-9]+).*/\1/' <<<"$stats")" 0 "the mock's own 120 a minute limiter refused nothing (no 429)"
# the missing name: one warning for the reload, however long it has been
while [ $((SECONDS - t0)) -lt 16 ]; do sleep 1; done
log=$(log_since "$mark")
is "$(grep -c 'moneroo.database names database "t94_missing", which does not exist' <<<"$log")" 1 \
    "t94_missing: ONE warning in $((SECONDS - t0)) s after the reload, not one per restart" \
    "$(grep -i 't94_missing' <<<"$log" | head -n 5)"
ok "$(grep -q 'WARNING:.*moneroo.database names database "t94_missing", which does not exist' <<<"$log"; echo $?)" \
    "... logged as a WARNING"
is "$(grep -c 'FATAL:.*t94_missing' <<<"$log")" 0 "... and no FATAL naming it" "$(grep 'FATAL:.*t94_missing' <<<"$log" | head -n 3)"

# ---------------------------------------------------------------- 3. the shared max_concurrency
mock_ctl POST /__mock/reset '{}' >/dev/null
mock_ctl POST /__mock/config '{"rate_limit": 0, "latency_ms": 400}' >/dev/null
set_databases 't94_a, t94_b, t94_c' moneroo.rate_limit=0 moneroo.max_concurrency=3
sleep 1
t1=$SECONDS
queue_at_once conc 10 t94_a t94_b t94_c || diag "could not queue 10 payouts in each of three databases at once"
sa=$(wait_states 60 success:10 t94_a conc); sb=$(wait_states 60 success:10 t94_b conc)
sc=$(wait_states 60 success:10 t94_c conc)
is "$sa / $sb / $sc" "success:10 / success:10 / success:10" \
    "max_concurrency 3, answers after 400 ms: 10 payouts in each of three databases sent and settled"
# every answer takes 400 ms, so requests that arrived less than 0.3 s apart
# were all on the wire together (the mock's own max_concurrent can count one
# more: a handler still finishing after its answer went out)
read -r peak _ <<<"$(max_in_windows 0.3)"
is "$peak" 3 "one concurrency budget for three workers: at most 3 requests on the wire at once, not 9 ($((SECONDS - t1)) s)"
{ refs t94_a conc; refs t94_b conc; refs t94_c conc; } >"$WORK/t94_refs"
is "$(journal_check "$WORK/t94_refs")" "30 30 0" "... each reference POSTed once"
sql -q -c 'ALTER SYSTEM RESET moneroo.max_concurrency' -c 'SELECT pg_reload_conf()' >/dev/null
mock_ctl POST /__mock/config '{"latency_ms": 0}' >/dev/null

# ---------------------------------------------------------------- 4. a reload that changes the list
pa=$(worker_pid t94_a); pb=$(worker_pid t94_b)
set_databases 't94_a, t94_b, "T94 Quoted,One", t94_d'
wait_no_wpid 15 t94_c
ok $? "a reload that takes t94_c out of the list stops its worker" "t94_c's worker: $(worker_pid t94_c)"
pq=$(wait_wpid 15 "T94 Quoted,One")
ok $? "... and one that adds \"T94 Quoted,One\" (double quotes: a comma and capitals kept) starts its worker" \
    "workers: $(sql1 "SELECT string_agg(datname || '=' || pid, ' ') FROM pg_stat_activity WHERE backend_type = 'moneroo worker'")"
is "$(worker_pid t94_a) $(worker_pid t94_b)" "$pa $pb" "the databases still listed keep their workers"
pd=$(wait_wpid 10 t94_d)
ok $? "t94_d, listed but without the extension, gets a worker that waits for CREATE EXTENSION (pid ${pd:-none})"
queue_in "T94 Quoted,One" quoted 3; queue_in t94_c unserved 2
is "$(wait_states 20 success:3 "T94 Quoted,One" quoted)" success:3 "payouts in \"T94 Quoted,One\" are sent and settled"
sleep 2
is "$(states t94_c unserved)" pending:2 "payouts in t94_c, no longer listed, wait (pending)"

# ---------------------------------------------------------------- 5. a worker killed
old=$(worker_pid t94_b)
is "$(sql1 "SELECT pg_terminate_backend($old)")" t "pg_terminate_backend of t94_b's worker (pid $old)"
new=$(wait_wpid 20 t94_b "$old")
ok $? "the launcher starts a new worker for t94_b (pid ${new:-none})"
is "$(worker_pid t94_a)" "$pa" "t94_a's worker was not touched"
queue_in t94_b after_kill 2
is "$(wait_states 20 success:2 t94_b after_kill)" success:2 "t94_b's new worker sends and settles its payouts"

# ---------------------------------------------------------------- 6. one account: a refused key pauses every worker
mock_ctl POST /__mock/config '{"secret_key": "pvk_revoked_by_the_test"}' >/dev/null
queue_in t94_a key_refused 1
wait_sql_in t94_b 10 "(SELECT pause_reason FROM moneroo_status) LIKE '%refused the secret key%'"
ok $? "a key refused to t94_a's worker pauses the account: t94_b's moneroo_status says so" \
    "t94_b: $(dsql t94_b "SELECT paused_until || ' ' || pause_reason FROM moneroo_status")"
queue_in t94_b during_pause 1
sleep 2
refs t94_b during_pause >"$WORK/t94_refs"
is "$(states t94_b during_pause) $(journal_check "$WORK/t94_refs")" "pending:1 0 0 0" \
    "... and t94_b's worker sends nothing while it lasts (its payout waits pending)"
mock_ctl POST /__mock/config '{"secret_key": null}' >/dev/null
sql -q -c 'SELECT pg_reload_conf()' >/dev/null
sa=$(wait_states 15 success:1 t94_a key_refused); sb=$(wait_states 15 success:1 t94_b during_pause)
is "$sa / $sb" "success:1 / success:1" "after a reload with a working key, both are sent (and settled)"

# ---------------------------------------------------------------- 7. '*'
set_databases '*'
pc=$(wait_wpid 15 t94_c); pt=$(wait_wpid 15 "$PGDATABASE")
ok "$([ -n "$pc" ] && [ -n "$pt" ] && [ -n "$(worker_pid t94_a)" ] && [ -n "$(worker_pid t94_b)" ] && [ -n "$(worker_pid "T94 Quoted,One")" ]; echo $?)" \
    "'*': every database with the extension has a worker" \
    "workers: $(sql1 "SELECT string_agg(datname || '=' || pid, ' ') FROM pg_stat_activity WHERE backend_type = 'moneroo worker'")"
is "$(wait_states 20 success:2 t94_c unserved)" success:2 "t94_c's waiting payouts are sent once it is served again"
wait_no_wpid 10 t94_d
is "$(served_databases)" "$(databases_with_extension)" \
    "'*': the databases served are exactly those with the extension (t94_d's waiting worker stops; none for postgres, template1)"
cluster_psql -d t94_d -q -c 'CREATE EXTENSION moneroo' || diag "CREATE EXTENSION moneroo in t94_d failed"
t2=$SECONDS
pd=$(wait_wpid 10 t94_d)
ok $? "'*': CREATE EXTENSION moneroo in t94_d is served within 10 s (worker ${pd:-none} after $((SECONDS - t2)) s)"
queue_in t94_d served 2
is "$(wait_states 20 success:2 t94_d served)" success:2 "... and t94_d's payouts are sent and settled"
cluster_psql -d t94_d -q -c 'DROP EXTENSION moneroo' || diag "DROP EXTENSION moneroo in t94_d failed"
wait_no_wpid 15 t94_d
ok $? "'*': DROP EXTENSION moneroo in t94_d stops its worker" "t94_d's worker: $(worker_pid t94_d)"

# ---------------------------------------------------------------- 8. DROP DATABASE of a served database
pc=$(worker_pid t94_c); pa=$(worker_pid t94_a)
mark=$(log_mark)
t3=$SECONDS
out=$(timeout 40 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres \
        -c 'DROP DATABASE t94_c' 2>&1)
ok $? "DROP DATABASE t94_c (served, worker $pc; no FORCE) succeeds ($((SECONDS - t3)) s)" "$out"
is "$(sql1 "SELECT count(*) FROM pg_database WHERE datname = 't94_c'") $(worker_pid t94_c)" "0 " "... t94_c is gone, and has no worker"
queue_in t94_a after_drop 2; queue_in t94_b after_drop 2
sa=$(wait_states 20 success:2 t94_a after_drop); sb=$(wait_states 20 success:2 t94_b after_drop)
is "$sa / $sb / $(worker_pid t94_a)" "success:2 / success:2 / $pa" "the other databases are still served, by the same workers"
sleep 6
log=$(log_since "$mark")
is "$(grep -cE '(ERROR|FATAL|WARNING):' <<<"$log")" 0 \
    "the launcher forgets t94_c: no error or warning in the log since the drop (no worker started for it again)" \
    "$(grep -E '(ERROR|FATAL|WARNING):' <<<"$log" | head -n 5)"
is "$(mock_sent_twice)" 0 "since the mock's last reset (cases 3 to 8): nothing was created twice at Moneroo"

[ "$T" -eq "$PLAN" ] || diag "ran $T tests, planned $PLAN"
exit 0
