# test/lib/server.sh: the server and its worker, for test scripts that stop,
# crash and restart them (needs cluster.sh's functions).  The one home of
# these helpers: a script that needs another shape says so in its own name.
#
#   sql [PSQL_ARGS...]        one unaligned, tuples-only psql; errors go to stderr
#   sql1 QUERY                the value QUERY returns, or ERROR:<message> on one line
#   wait_server [SECONDS]     until the server accepts queries (after a start or a crash)
#   worker_pid [DB]           the moneroo worker's pid (DB's workers', comma-separated),
#                             or nothing
#   wait_worker [SECONDS [NOT_PID]]  until a worker (other than NOT_PID) runs; prints its pid
#   wait_sql CONDITION SECONDS  until CONDITION (SQL) holds: prints t, or f when SECONDS
#                             pass first (mock.wait_for); status 0 for t
#   reload                    pg_reload_conf(), then a second for the worker, which
#                             reloads asynchronously
#   sql_or_state QUERY        its output, or "ERROR <sqlstate>: <message>"
#   queue [-d DB] TAG N [ACCOUNT...]  N payouts described "TAG #i" (amount 100 + i)
#                             in one statement, payout i to ACCOUNT number 1 + i % count
#                             [the successful sandbox number 4149518161]; prints the
#                             highest payout id before them (ids above it are theirs)

sql() { cluster_psql -At "$@"; }
sql1() {
    local out
    if out=$(cluster_psql -At -c "$1" 2>&1); then printf '%s' "$out"; else printf 'ERROR:%s' "$out" | tr '\n' ' '; fi
}
wait_server() {
    local deadline=$((SECONDS + ${1:-30}))
    until cluster_psql -At -c 'SELECT 1' >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
worker_pid() {
    cluster_psql -At -v db="${1:-}" 2>/dev/null <<'SQL'
SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
WHERE backend_type = 'moneroo worker' AND (:'db' = '' OR datname = :'db')
SQL
}
wait_worker() {
    local deadline=$((SECONDS + ${1:-20})) not=${2:-} pid
    while :; do
        pid=$(worker_pid)
        if [ -n "$pid" ] && [ "$pid" != "$not" ]; then printf '%s' "$pid"; return 0; fi
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# sql_or_state QUERY: QUERY's output; on error "ERROR <sqlstate>: <message>",
# for scripts that check which error a statement raises.
sql_or_state() {
    local out err rc
    err=$(mktemp)
    out=$(cluster_psql -At -c '\set VERBOSITY verbose' -c "$1" 2>"$err")
    rc=$?
    if [ "$rc" -ne 0 ]; then
        out=$(sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): \(.*\)$/ERROR \1: \2/p' "$err" | head -n 1)
        [ -n "$out" ] || out="ERROR ?????: $(tr '\n' ' ' <"$err")"
    fi
    rm -f "$err"
    printf '%s' "$out"
}

wait_sql() {
    local got
    got=$(sql1 "SELECT mock.wait_for(\$c\$ $1 \$c\$, $2)")
    printf '%s' "$got"
    [ "$got" = t ]
}
reload() { sql1 'SELECT pg_reload_conf()' >/dev/null; sleep 1; }

queue() {
    local db=()
    if [ "$1" = -d ]; then db=(-d "$2"); shift 2; fi
    local tag=$1 n=$2
    shift 2
    sql "${db[@]}" -v tag="$tag" -v n="$n" -v accounts="${*:-4149518161}" <<'SQL'
SELECT coalesce(max(id), 0) FROM payouts;
INSERT INTO payouts (request)
SELECT jsonb_build_object(
         'amount', 100 + i, 'currency', 'USD', 'description', format('%s #%s', :'tag', i),
         'method', 'moneroo_payout_demo',
         'customer', jsonb_build_object('email', 'queue@example.com',
                                        'first_name', 'Queued', 'last_name', 'Payout'),
         'recipient', jsonb_build_object('account_number', a[1 + i % cardinality(a)]))
FROM generate_series(1, :n) AS i, string_to_array(:'accounts', ' ') AS a;
SQL
}
