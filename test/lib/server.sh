# test/lib/server.sh: the server and its worker, for test scripts that stop,
# crash and restart them (needs cluster.sh's functions).
#
#   sql [PSQL_ARGS...]        one unaligned, tuples-only psql; errors go to stderr
#   sql1 QUERY                the value QUERY returns, or ERROR:<message> on one line
#   wait_server [SECONDS]     until the server accepts queries (after a start or a crash)
#   worker_pid                the moneroo worker's pid, or nothing
#   wait_worker [SECONDS [NOT_PID]]  until a worker (other than NOT_PID) runs; prints its pid
#   sql_or_state QUERY        its output, or "ERROR <sqlstate>: <message>"
#   queue_payouts TAG N [PSQL_ARGS...]  N payouts described "TAG #i" to the
#                             successful sandbox number, in one transaction
#                             (PSQL_ARGS: another database with -d DB)

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
    cluster_psql -At -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'moneroo worker'" 2>/dev/null | head -n 1
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

queue_payouts() {
    local tag=$1 n=$2
    shift 2
    cluster_psql -q -v tag="$tag" -v n="$n" "$@" <<'SQL'
INSERT INTO payouts (request)
SELECT jsonb_build_object(
         'amount', 100 + i, 'currency', 'USD', 'description', format('%s #%s', :'tag', i),
         'method', 'moneroo_payout_demo',
         'customer', jsonb_build_object('email', 'queue@example.com',
                                        'first_name', 'Queued', 'last_name', 'Payout'),
         'recipient', jsonb_build_object('account_number', '4149518161'))
FROM generate_series(1, :n) AS i;
SQL
}
