#!/usr/bin/env bash
# test/bench/run.sh: the benchmarks of moneroo, each figure measured side by
# side with its baseline in one run, printed as a table with ratios.
#
#   bash test/bench/run.sh [FIGURE...]     # as root (like test/run.sh)
#
# FIGURE is any of (default: all of them, in this order)
#   ceiling   the mocks' own ceiling, measured with the plain client
#   drain     5,000 payouts queued in one transaction, mock latency 100 ms,
#             rate limit off, moneroo.max_concurrency 8, 32, 128; baselines:
#             the bound max_concurrency/latency and test/bench/plain_client
#             (fresh connection per request like the extension, and keep-alive)
#             against the same mock; CPU of the worker and of the inserting
#             backend per payout (baselines: the plain client's CPU per request,
#             the same INSERT into a copy of payouts without the extension)
#   latency   commit-to-request latency: one payout per transaction, 200 trials,
#             worker idle / under 10 / under 100 commits per second
#   transfer  moneroo_transfer round trip vs one plain-client request, zero latency
#   memory    the worker's memory while 100,000 payouts go through it
#   floor     the worker's table work per payout done by a plain SQL session
#             (claim, uniqueness check, record), batches of 1 and 32: the
#             PostgreSQL part of the worker's CPU floor; with it, drain also
#             compares the worker's CPU with plain client + this floor
#   leaksize  the worker's memory growth per payout, small vs large requests
#   pacing    moneroo.rate_limit 120: a 300-payout queue against the python mock
#             (Moneroo's own 120/min sliding-window limiter), 429s counted
#   scale     EXPLAIN ANALYZE of the worker's own statements, moneroo_status and
#             moneroo_needs_attention with 10 thousand, 300 thousand and 1
#             million settled rows (a separate database, moneroo_scale), and
#             (1.3) moneroo_needs_attention under 2 ms at 1 million with 20
#             thousand acknowledged rejections among them
#   limits    what moneroo_limits costs an INSERT: the inserting backend's CPU
#             for 1,000 payouts in one transaction with a daily_limit (the
#             currency lock, one usage read) vs none, and without a limit vs
#             a copy of payouts without the extension; and 1,000 one-payout
#             transactions from 16 pgbench clients at once, with vs without
#             (with one, they take the currency's lock one after another)
#   audit     what payout_events costs the worker: its CPU per payout in a
#             drain of 2,000 (max_concurrency 32, latency 20 ms) with the
#             extension at 1.2 vs the same drain at 1.1 (no history, no
#             created_by), alternately, 3 rounds each
#   payroll   the rate budget: PAYROLL_N [40] payouts queued at once, rate_limit
#             PAYROLL_RATE [300], the python mock settling each PAYROLL_SETTLE
#             [15] s after it created it, after a warm-up of PAYROLL_WARMUP
#             [40] of the same method: time until the last left vs N/R, until
#             all final vs settle + 1.5 N/R, requests per payout vs 2, 429s
#   payroll_webhooks  the same with the benchmark playing Moneroo's webhook
#             sender (signed payout.success/failed through moneroo_webhook)
#   databases fairness between databases (1.2, one account, one rate budget):
#             moneroo.database lists moneroo_bench (A) and moneroo_bench_b (B);
#             A gets a backlog of DB_BACKLOG [2000] payouts at rate_limit
#             DB_RATE [120], then DB_TRIALS [20] times one payout is committed
#             in B (after the one before it left, a random 0.2-0.8 slot later):
#             B's commit-to-request latency (the bench mock's arrival time)
#             against the rate slot measured in the same run (the median gap
#             between initializes arriving meanwhile; the floor 60/R s plus
#             the limiter's 1% margin); A's backlog must outlast the trials
#   payroll_spread, payroll_webhooks_spread  the same two with settle times
#             spread: each payout settles at its own time between
#             PAYROLL_SPREAD_MIN [5] and PAYROLL_SPREAD_MAX [180] s after
#             creation (the mock's final_after_max, uniform); the settle time
#             of the "all final" target is the max
#   standbys  what moneroo.claim_standbys = 1 costs: a streaming standby made
#             with pg_basebackup beside the bench server; drains of
#             STANDBY_DRAIN_N [2000] payouts (latency 20 ms, max_concurrency
#             32) and commit-to-request latency (TRIALS one-payout commits,
#             worker idle) with claim_standbys 1 vs 0, alternately, 2 rounds each
#   idle      the worker's CPU while nothing is due, after rounds of 3 payouts
#             sent and verified with the default rate_limit (120) and
#             verify_min_interval (2s), against the python mock; last, since a
#             worker that spins would disturb the figures after it
#
# Knobs: BENCH_SMALL=1 (smoke scale: everything small and quick),
#   SKIP_BUILD=1 (do not build/install the extension; measure the installed
#   one), KEEP=1 (keep the work dir), WAIT_QUIET=1 (first wait, up to 40 min,
#   until no test/run.sh runs and under QUIET_BUSY_PCT [10] % of the CPUs are
#   busy, three 5-s samples in a row), BENCH_OUT=DIR (raw data; default
#   test/bench/out/<date>), DRAIN_N / DRAIN_CONC (drain size and concurrency
#   list), PERF_RECORD=1 (perf record -g the worker during each drain instead
#   of perf stat; top symbols in $BENCH_OUT/perf_worker_c*.top.txt),
#   IDLE_ROUNDS [8], DB_BACKLOG / DB_RATE / DB_TRIALS (the databases figure).
# Every figure also goes, tab separated, to $BENCH_OUT/results.tsv; the
# results of a reference run are in test/bench/RESULTS.md.  Do not edit this
# file while it runs: bash reads it as it goes.
# Programs (built by test/bench/Makefile into test/bench/bin): bench_mock (the
# fast mock), plain_client (the libcurl baseline), bench_driver (libpq timing
# of commits and moneroo_transfer); analyze.py does the arithmetic.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH=$REPO/test/bench
cd "$REPO"
unset WORK PGDATA PGHOST PGPORT PGUSER MOCK_PORT MOCK_URL SERVER_LOG MOCK_LOG MOCK_SCRIPT \
    CLUSTER_EXTRA_CONF PGOPTIONS PGSERVICE || true

# PG_MAJOR=17 (or 18): the same figures against that major, run inside its
# root: bash test/lib/pgroot.sh run 17 env PG_MAJOR=17 bash /build/.../test/bench/run.sh
PG_MAJOR=${PG_MAJOR:-15}
PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PGBIN/pg_config
export PGDATABASE=moneroo_bench STACK_EXTENSIONS=moneroo PGBIN PG_MAJOR
# shellcheck disable=SC2034  # SUDO is read by test/lib/build.sh
if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo -n); fi
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

PAYROLL_RATE=${PAYROLL_RATE:-300}; PAYROLL_SETTLE=${PAYROLL_SETTLE:-15}
PAYROLL_SPREAD_MIN=${PAYROLL_SPREAD_MIN:-5}; PAYROLL_SPREAD_MAX=${PAYROLL_SPREAD_MAX:-180}
if [ "${BENCH_SMALL:-0}" = 1 ]; then
    DRAIN_N=${DRAIN_N:-200}; DRAIN_CONC=${DRAIN_CONC:-"8 32 128"}; TRIALS=40; MEM_BATCH=1000; MEM_BATCHES=3
    PAYROLL_N=${PAYROLL_N:-10}; PAYROLL_WARMUP=${PAYROLL_WARMUP:-6}
    DB_BACKLOG=${DB_BACKLOG:-200}; DB_TRIALS=${DB_TRIALS:-5}
    PACING_N=16; SCALE_SMALL=2000; SCALE_MID=6000; SCALE_BIG=20000; TRANSFER_N=100; EXPLAIN_REPS=5; SCALE_ACKED=400
else
    DRAIN_N=${DRAIN_N:-5000}; DRAIN_CONC=${DRAIN_CONC:-"8 32 128"}; TRIALS=200; MEM_BATCH=10000; MEM_BATCHES=10
    PAYROLL_N=${PAYROLL_N:-40}; PAYROLL_WARMUP=${PAYROLL_WARMUP:-40}
    DB_BACKLOG=${DB_BACKLOG:-2000}; DB_TRIALS=${DB_TRIALS:-20}
    PACING_N=300; SCALE_SMALL=10000; SCALE_MID=300000; SCALE_BIG=1000000; TRANSFER_N=500; EXPLAIN_REPS=21; SCALE_ACKED=20000
fi
DB_RATE=${DB_RATE:-120}
LATENCY_MS=100
FIGURES=${*:-ceiling floor drain latency transfer memory leaksize pacing scale limits audit databases idle payroll payroll_webhooks payroll_spread payroll_webhooks_spread standbys}
BENCH_OUT=${BENCH_OUT:-$BENCH/out/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$BENCH_OUT"
RESULTS=$BENCH_OUT/results.tsv
printf 'figure\tvalue\tbaseline\tratio\ttarget\tmet\n' >"$RESULTS"

say() { printf '%s\n' "$*" | tee -a "$BENCH_OUT/log.txt"; }
step() { say ""; say "==== $* [$(date +%T); load average $(cut -d' ' -f1 /proc/loadavg)]"; }

# ---------------------------------------------------------------- quiet machine
# busy_pct: percent of all CPUs busy over the next 5 seconds (everyone's)
busy_pct() {
    local a b
    a=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    sleep 5
    b=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    # shellcheck disable=SC2086
    set -- $a $b
    echo $(( ($3 - $1) * 100 / ($4 - $2 > 0 ? $4 - $2 : 1) ))
}
if [ "${WAIT_QUIET:-0}" = 1 ]; then
    # quiet: nobody's test/run.sh, and few CPUs busy (other clusters' idle
    # workers count too)
    for _ in $(seq 1 80); do
        # three samples in a row (15 s), so that a lull is not taken for quiet
        if ! pgrep -f 'test/run.sh' >/dev/null && [ "$(busy_pct)" -lt "${QUIET_BUSY_PCT:-10}" ] &&
            [ "$(busy_pct)" -lt "${QUIET_BUSY_PCT:-10}" ] && [ "$(busy_pct)" -lt "${QUIET_BUSY_PCT:-10}" ]; then
            break
        fi
        sleep 15
    done
fi
say "machine before the run: $(busy_pct)% of the CPUs busy; load average $(cut -d' ' -f1-3 /proc/loadavg);" \
    "test/run.sh running elsewhere: $(pgrep -fc 'test/run.sh' || true)"

# ---------------------------------------------------------------- build
# shellcheck source=test/lib/build.sh
. "$REPO/test/lib/build.sh"
# shellcheck source=test/lib/cluster.sh
. "$REPO/test/lib/cluster.sh"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    build_extension >/dev/null
fi
make -s -C "$BENCH" >/dev/null
BIN=$BENCH/bin
say "code: commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$REPO" diff --quiet -- src 'moneroo--*.sql' 2>/dev/null || echo ' (src/ or moneroo--*.sql modified)');" \
    "installed moneroo.so md5 $(md5sum "$("$PG_CONFIG" --pkglibdir)/moneroo.so" | cut -c1-12);" \
    "$(nproc) CPUs; $(uname -r)"

# ---------------------------------------------------------------- stack
BENCH_MOCK_PID=""
cleanup() {
    set +e
    if [ -n "$BENCH_MOCK_PID" ]; then kill "$BENCH_MOCK_PID" 2>/dev/null; wait "$BENCH_MOCK_PID" 2>/dev/null; fi
    [ -n "${WORK:-}" ] && [ -f "${SERVER_LOG:-/nonexistent}" ] && cp "$SERVER_LOG" "$BENCH_OUT/server.log"
    standby_down
    stack_down
}
# the payroll_webhooks figure plays Moneroo's webhook sender with it
BENCH_WEBHOOK_SECRET="whsec_bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
work_create "$REPO" moneroo-bench
trap cleanup EXIT
stack_up "moneroo.rate_limit = 0" \
         "moneroo.max_concurrency = 8" \
         "moneroo.request_timeout = '10s'" \
         "moneroo.verify_min_interval = '1h'" \
         "moneroo.verify_max_interval = '1h'" \
         "moneroo.webhook_secret = '$BENCH_WEBHOOK_SECRET'" \
         "log_min_messages = warning" >/dev/null
CONNINFO="host=$PGHOST port=$PGPORT user=postgres dbname=$PGDATABASE"

BENCH_PORT=$(free_port "$PGPORT" "$MOCK_PORT")
BENCH_URL=http://127.0.0.1:$BENCH_PORT
"$BIN/bench_mock" --port "$BENCH_PORT" >"$BENCH_OUT/bench_mock.log" 2>&1 &
BENCH_MOCK_PID=$!
for _ in $(seq 1 100); do
    curl -fsS --noproxy '*' -o /dev/null "$BENCH_URL/__mock/health" 2>/dev/null && break
    sleep 0.05
done
# the worker talks to the bench mock, except for the pacing and idle figures
cluster_psql -c "ALTER SYSTEM SET moneroo.api_url = '$BENCH_URL'" -c "SELECT pg_reload_conf()" >/dev/null

psqlb() { cluster_psql -At "$@"; }
bm() {  # bm METHOD PATH [BODY]: the bench mock's control API
    if [ $# -ge 3 ]; then
        curl -fsS --noproxy '*' --max-time 60 -X "$1" --data-binary "$3" "$BENCH_URL$2"
    else
        curl -fsS --noproxy '*' --max-time 60 -X "$1" "$BENCH_URL$2"
    fi
}
field() { sed -E "s/.*\"$1\":([-0-9.]+).*/\\1/"; }   # field NAME < json
kv() { sed -E "s/.*(^| )$1=([^ ]+).*/\\2/"; }          # kv NAME < "a=1 b=2"
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
set_guc() {
    psqlb -c "ALTER SYSTEM SET $1 = '$2'" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
}
worker_pid() { psqlb -c "SELECT worker_pid FROM moneroo_worker_info()"; }
cpu_ns() { awk '{print $1}' "/proc/$1/schedstat"; }
max_id() { psqlb -c "SELECT coalesce(max(id), 0) FROM payouts"; }
result() {  # result FIGURE VALUE BASELINE RATIO TARGET MET
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
    say "RESULT | $1 | $2 | $3 | $4 | $5 | $6"
}
met() { awk "BEGIN { print ($1) ? \"yes\" : \"NO\" }"; }

# SQL for N payout requests like an application's (distinct descriptions)
REQUEST_SQL="jsonb_build_object('amount', 100 + g % 900, 'currency', 'USD',
    'description', 'benchmark payout ' || g, 'method', 'moneroo_payout_demo',
    'customer', jsonb_build_object('email', 'bench' || g || '@example.com',
                                   'first_name', 'Bench', 'last_name', 'Payee ' || g),
    'recipient', jsonb_build_object('account_number', '4149518161'))"

# insert_batch TABLE N [SEND_AT]: one transaction; prints "cpu_ns commit_us"
# of the inserting backend (its CPU for the INSERT and the COMMIT, read from
# /proc/self/schedstat by the backend itself; the epoch just before COMMIT).
# SEND_AT, an SQL expression, schedules the payouts.
insert_batch() {
    local out
    out=$(psqlb <<SQL
SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1);
BEGIN;
INSERT INTO $1 (request${3:+, send_at}) SELECT $REQUEST_SQL${3:+, $3} FROM generate_series(1, $2) g;
SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint;
COMMIT;
SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1);
SQL
)
    # shellcheck disable=SC2086
    set -- $out
    echo "$(($3 - $1)) $2"
}

# wait_settled BASE N TIMEOUT_S: until the N payouts with id > BASE left
# pending/sending; prints "sent others max_sent_at_us"
wait_settled() {
    local base=$1 n=$2 deadline=$((SECONDS + $3)) row
    while :; do
        row=$(psqlb -F' ' -c "SELECT count(*) FILTER (WHERE status NOT IN ('pending', 'sending')),
                                     count(*) FILTER (WHERE status = 'sent'),
                                     count(*) FILTER (WHERE status NOT IN ('pending', 'sending', 'sent')),
                                     coalesce((extract(epoch FROM max(sent_at)) * 1e6)::bigint, 0)
                              FROM payouts WHERE id > $base")
        # shellcheck disable=SC2086
        set -- $row
        if [ "$1" -ge "$n" ]; then echo "$2 $3 $4"; return 0; fi
        if [ $SECONDS -ge $deadline ]; then
            say "TIMEOUT: only $1 of $n payouts settled after $3 s"
            echo "$2 $3 $4"
            return 1
        fi
        sleep 0.2
    done
}

# transaction ids assigned so far: the difference between two readings, less
# one, is the number of transactions that wrote something in between
xacts() { psqlb -c "SELECT pg_current_xact_id()"; }

# wait_mock_creates N TIMEOUT_S: until the bench mock answered N initialize
# requests (polls the mock, not the database)
wait_mock_creates() {
    local deadline=$((SECONDS + $2)) stats
    while :; do
        stats=$(bm GET /__mock/stats)
        if [ "$(field creates <<<"$stats")" -ge "$1" ] && [ "$(field in_flight <<<"$stats")" = 0 ]; then
            return 0
        fi
        [ $SECONDS -lt $deadline ] || { say "TIMEOUT: the mock saw $(field creates <<<"$stats") of $1"; return 1; }
        sleep 0.1
    done
}

# ---------------------------------------------------------------- figures
fig_ceiling() {
    step "mock ceiling: plain_client at zero latency against each mock (5000 requests)"
    local c k line
    mock_ctl POST /__mock/config '{"rate_limit": 0, "latency_ms": 0}' >/dev/null
    bm POST /__mock/config '{"latency_ms": 0}' >/dev/null
    for c in 8 128; do
        for k in "" -k; do
            local mode=fresh
            [ -z "$k" ] || mode=keepalive
            line=$("$BIN/plain_client" -u "$BENCH_URL" -n 5000 -c "$c" $k -q)
            say "bench_mock  c=$c $mode: $line"
            result "ceiling bench_mock c=$c $mode (req/s)" "$(kv rps <<<"$line")" - - \
                "> 1280 (drain at c=128 needs 128/0.1 s)" "$(met "$(kv rps <<<"$line") > 1280")"
            line=$("$BIN/plain_client" -u "$MOCK_URL" -n 3000 -c "$c" $k -q)
            say "python mock c=$c $mode: $line"
            result "ceiling python mock c=$c $mode (req/s)" "$(kv rps <<<"$line")" - - \
                "> 1280" "$(met "$(kv rps <<<"$line") > 1280")"
        done
    done
    mock_ctl POST /__mock/config '{"latency_ms": 100}' >/dev/null
    line=$("$BIN/plain_client" -u "$MOCK_URL" -n 3000 -c 128 -q)
    say "python mock c=128 fresh, latency 100 ms: $line"
    result "python mock c=128 fresh, latency 100 ms, req/s vs bound 1280" "$(kv rps <<<"$line")" 1280 \
        "$(calc "$(kv rps <<<"$line") / 1280" 3)" "(why bench_mock)" -
    mock_ctl POST /__mock/reset >/dev/null
}

# plain_span C [-k]: the plain client against the bench mock; prints
# "mock_rps client_line"
plain_span() {
    local line stats
    bm POST /__mock/reset >/dev/null
    line=$("$BIN/plain_client" -u "$BENCH_URL" -n "$DRAIN_N" -c "$@" -q)
    stats=$(bm GET /__mock/stats)
    echo "$(calc "$DRAIN_N / (($(field last_answer_us <<<"$stats") - $(field first_arrival_us <<<"$stats")) / 1e6)") $line"
}

# sql_floor BATCH N: PostgreSQL's own cost of what the worker does to the
# table per payout, without the worker: claim BATCH rows in one committed
# statement, then record each with the worker's uniqueness check and UPDATE in
# one transaction, on bench_plain_payouts (a copy of payouts with the same
# columns, constraints, generated columns and indexes, but no trigger), with
# prepared statements (the worker keeps its plans too).  Prints the backend's
# CPU in us per payout, read from /proc/self/schedstat by the backend itself.
sql_floor() {
    local batch=$1 n=$2 k i script
    psqlb -c "TRUNCATE bench_plain_payouts" >/dev/null
    insert_batch bench_plain_payouts "$n" >/dev/null
    script=$BENCH_OUT/sql_floor_$batch.sql
    {
        echo "PREPARE claim(int) AS WITH due AS (SELECT id FROM bench_plain_payouts
                  WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= now())
                  ORDER BY id LIMIT \$1 FOR UPDATE SKIP LOCKED),
              claimed AS (UPDATE bench_plain_payouts p SET status = 'sending', attempts = p.attempts + 1
                  FROM due WHERE p.id = due.id RETURNING p.id, p.reference, p.request)
              SELECT min(id) AS first FROM claimed;"
        echo "PREPARE taken(text, int8) AS SELECT 1 FROM bench_plain_payouts WHERE moneroo_id = \$1 AND id <> \$2;"
        echo "PREPARE record(int8, int) AS UPDATE bench_plain_payouts SET status = 'sent',
                  moneroo_id = 'm' || (\$1 + \$2), moneroo_status = 'initiated', last_error = NULL,
                  response = '{\"success\": true, \"message\": \"Payout transaction initialized successfully\", \"data\": {\"id\": \"abcdefghijkl\"}}',
                  sent_at = now(), verifications = 0, next_attempt_at = now() + interval '1 hour'
              WHERE id = \$1 + \$2 AND status = 'sending';"
        echo "SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1);"
        for ((k = 0; k < n / batch; k++)); do
            echo "EXECUTE claim($batch) \gset"
            # one message per transaction (\;): the worker has no round trips
            printf 'BEGIN \\; '
            for ((i = 0; i < batch; i++)); do
                printf "EXECUTE taken('m' || (:first + %d), :first + %d) \\\\; EXECUTE record(:first, %d) \\\\; " "$i" "$i" "$i"
            done
            echo "COMMIT;"
        done
        echo "SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1);"
        echo "SELECT count(*) FROM bench_plain_payouts WHERE status = 'sent';"
    } >"$script"
    local out
    out=$(psqlb -q -f "$script" | grep -E '^[0-9]+$')
    # shellcheck disable=SC2086
    set -- $out
    [ "$3" = "$n" ] || say "sql floor: only $3 of $n rows recorded"
    calc "($2 - $1) / 1000 / $n"
    psqlb -c "TRUNCATE bench_plain_payouts" >/dev/null
}

fig_floor() {
    local n=$((DRAIN_N < 3200 ? DRAIN_N : 3200))
    n=$((n / 32 * 32))
    psqlb -c "CREATE TABLE IF NOT EXISTS bench_plain_payouts (LIKE payouts INCLUDING ALL)" >/dev/null
    step "SQL floor: the worker's table work per payout, by a plain SQL session ($n payouts, batches of 1 and 32)"
    FLOOR_1=$(sql_floor 1 "$n")
    FLOOR_32=$(sql_floor 32 "$n")
    say "SQL floor: $FLOOR_1 us per payout claimed and recorded one at a time, $FLOOR_32 us in batches of 32"
    result "SQL floor us per payout (claim + check + record by a plain session), batches of 1" "$FLOOR_1" - - "(info)" -
    result "SQL floor us per payout, batches of 32" "$FLOOR_32" - - "(info)" -
}

fig_drain() {
    local c wpid base w0 w1 x0 x1 perf_pid ins stats first last ext_rps e2e settled fresh keep bound maxin
    local plain_ins
    psqlb -c "CREATE TABLE IF NOT EXISTS bench_plain_payouts (LIKE payouts INCLUDING ALL)" >/dev/null
    bm POST /__mock/config "{\"latency_ms\": $LATENCY_MS}" >/dev/null
    for c in $DRAIN_CONC; do
        step "drain: $DRAIN_N payouts in one transaction, latency ${LATENCY_MS} ms, max_concurrency $c"
        set_guc moneroo.max_concurrency "$c"
        bm POST /__mock/reset >/dev/null
        wpid=$(worker_pid); base=$(max_id); w0=$(cpu_ns "$wpid"); x0=$(xacts)
        if [ "${PERF_RECORD:-0}" = 1 ]; then
            perf record -g -F 2000 -p "$wpid" -o "$BENCH_OUT/perf_worker_c$c.data" >/dev/null 2>&1 &
        else
            perf stat -x, -e task-clock,context-switches,cpu-migrations -p "$wpid" \
                -o "$BENCH_OUT/perf_worker_c$c.csv" 2>/dev/null &
        fi
        perf_pid=$!
        ins=$(insert_batch payouts "$DRAIN_N")
        wait_mock_creates "$DRAIN_N" $((DRAIN_N * LATENCY_MS * 4 / 1000 / c + 60)) || true
        settled=$(wait_settled "$base" "$DRAIN_N" $((DRAIN_N * LATENCY_MS * 4 / 1000 / c + 60))) || true
        w1=$(cpu_ns "$wpid"); x1=$(xacts)
        kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true
        stats=$(bm GET /__mock/stats)
        first=$(field first_arrival_us <<<"$stats"); last=$(field last_answer_us <<<"$stats")
        maxin=$(field max_in_flight <<<"$stats")
        ext_rps=$(calc "$DRAIN_N / (($last - $first) / 1e6)")
        # shellcheck disable=SC2086
        set -- $settled $ins
        e2e=$(calc "$DRAIN_N / (($3 - $5) / 1e6)")
        say "extension: $1 sent, $2 in other final states; mock saw $(field creates <<<"$stats") creates," \
            "max $maxin in flight; first arrival $(calc "($first - $5) / 1000") ms after COMMIT;" \
            "span $(calc "($last - $first) / 1e6" 3) s = $ext_rps/s; COMMIT to last recorded: $e2e/s"
        say "worker CPU $(calc "($w1 - $w0) / 1000 / $DRAIN_N") us/payout, $(calc "($w1 - $w0) / 1e7 / (($last - $first) / 1e6)" 0)% of" \
            "one CPU over the span; mean requests in flight at the mock (rate x latency, Little's law):" \
            "$(calc "$ext_rps * $LATENCY_MS / 1000") of $c; inserting backend CPU" \
            "$(calc "$4 / 1000 / $DRAIN_N * 1000" 0) us per 1000 payouts; writing transactions per" \
            "payout: $(calc "($x1 - $x0 - 2) / $DRAIN_N" 2) (the worker's; the INSERT's one excluded)"
        if [ "${PERF_RECORD:-0}" = 1 ]; then
            perf report -i "$BENCH_OUT/perf_worker_c$c.data" --no-children --sort dso,symbol --stdio \
                2>/dev/null | grep -v '^#' | grep '%' | head -n 40 >"$BENCH_OUT/perf_worker_c$c.top.txt" || true
        else
            say "perf stat of the worker: $(grep -E 'task-clock|context-switches|cpu-migrations' \
                "$BENCH_OUT/perf_worker_c$c.csv" | cut -d, -f1,3 | tr '\n' ' ')"
        fi
        fresh=$(plain_span "$c")
        keep=$(plain_span "$c" -k)
        say "plain client fresh    : mock span $(cut -d' ' -f1 <<<"$fresh")/s; ${fresh#* }"
        say "plain client keepalive: mock span $(cut -d' ' -f1 <<<"$keep")/s; ${keep#* }"
        bound=$(calc "$c * 1000 / $LATENCY_MS")
        result "drain c=$c, payouts/s (mock span) vs plain client, fresh connections" "$ext_rps" \
            "$(cut -d' ' -f1 <<<"$fresh")" "$(calc "$ext_rps / $(cut -d' ' -f1 <<<"$fresh")" 3)" ">= 0.90" \
            "$(met "$ext_rps / $(cut -d' ' -f1 <<<"$fresh") >= 0.9")"
        result "drain c=$c, payouts/s vs plain client, keep-alive" "$ext_rps" \
            "$(cut -d' ' -f1 <<<"$keep")" "$(calc "$ext_rps / $(cut -d' ' -f1 <<<"$keep")" 3)" "(info)" -
        result "drain c=$c, payouts/s vs bound c/latency" "$ext_rps" "$bound" \
            "$(calc "$ext_rps / $bound" 3)" "(info)" -
        result "drain c=$c, payouts/s COMMIT to last row recorded vs plain client fresh (own clock)" "$e2e" \
            "$(kv rps <<<"${fresh#* }")" "$(calc "$e2e / $(kv rps <<<"${fresh#* }")" 3)" "(info)" -
        result "CPU c=$c: worker us per payout sent vs plain client us per request (fresh)" \
            "$(calc "($w1 - $w0) / 1000 / $DRAIN_N")" "$(kv cpu_us_per_request <<<"${fresh#* }")" \
            "$(calc "($w1 - $w0) / 1000 / $DRAIN_N / $(kv cpu_us_per_request <<<"${fresh#* }")" 2)" \
            "< 85 us" "$(met "($w1 - $w0) / 1000 / $DRAIN_N < 85")"
        if [ -n "${FLOOR_1:-}" ]; then
            # the floor of one payout: one plain-client request plus the SQL floor
            # at the batch size the worker reached (1 at c=8, up to 32 above)
            local floor_sql=$FLOOR_32
            [ "$c" -le 8 ] && floor_sql=$FLOOR_1
            local floor; floor=$(calc "$(kv cpu_us_per_request <<<"${fresh#* }") + $floor_sql")
            result "CPU c=$c: worker us per payout vs plain client request + SQL floor" \
                "$(calc "($w1 - $w0) / 1000 / $DRAIN_N")" "$floor" \
                "$(calc "($w1 - $w0) / 1000 / $DRAIN_N / $floor" 2)" "(info)" -
        fi
        plain_ins=$(insert_batch bench_plain_payouts "$DRAIN_N")
        result "CPU c=$c: inserting backend us per 1000 payouts vs same INSERT into a copy without the extension" \
            "$(calc "${ins% *} / 1000 / $DRAIN_N * 1000" 0)" "$(calc "${plain_ins% *} / 1000 / $DRAIN_N * 1000" 0)" \
            "$(calc "${ins% *} / ${plain_ins% *}" 2)" "(info)" -
    done
    psqlb -c "TRUNCATE bench_plain_payouts" >/dev/null
}

# ---------------------------------------------------------------- limits
# A daily_limit that 1,000 payouts never reach, so that nothing is held: the
# cost is the lock and the usage read, not the holding.
LIMIT_ROW="INSERT INTO moneroo_limits (currency, approval_above, daily_limit) VALUES ('USD', 1000000000, 1000000000000)"
TOMORROW="now() + interval '1 day'"

fig_limits() {
    local round a b with=0 without=0 plain tps_with tps_without script
    step "limits: INSERT of 1,000 scheduled payouts in one transaction, without and with a daily_limit"
    psqlb -c "DELETE FROM moneroo_limits" >/dev/null
    for round in 1 2 3; do
        a=$(insert_batch payouts 1000 "$TOMORROW"); psqlb -c "DELETE FROM payouts WHERE status = 'pending'" >/dev/null
        psqlb -c "$LIMIT_ROW" >/dev/null
        b=$(insert_batch payouts 1000 "$TOMORROW"); psqlb -c "DELETE FROM payouts WHERE status = 'pending'" >/dev/null
        psqlb -c "DELETE FROM moneroo_limits" >/dev/null
        say "round $round: inserting backend CPU ${a% *} ns without, ${b% *} ns with a daily_limit"
        without=$((without + ${a% *})); with=$((with + ${b% *}))
    done
    result "INSERT of 1,000 payouts, backend us: daily_limit vs none (3 rounds)" \
        "$(calc "$with / 3000")" "$(calc "$without / 3000")" "$(calc "$with / $without" 2)" "(info)" -
    psqlb -c "CREATE TABLE IF NOT EXISTS bench_plain_payouts (LIKE payouts INCLUDING ALL)" >/dev/null
    plain=0
    for round in 1 2 3; do
        a=$(insert_batch bench_plain_payouts 1000 "$TOMORROW"); plain=$((plain + ${a% *}))
    done
    psqlb -c "TRUNCATE bench_plain_payouts" >/dev/null
    result "INSERT of 1,000 payouts, backend us: no limit vs same INSERT into a copy without the extension" \
        "$(calc "$without / 3000")" "$(calc "$plain / 3000")" "$(calc "$without / $plain" 2)" "(info)" -
    step "limits: 16 pgbench clients, 1,008 one-payout transactions, without and with a daily_limit"
    script=$BENCH_OUT/limits_insert.sql
    printf '%s\n' "INSERT INTO payouts (request, send_at) SELECT $(tr '\n' ' ' <<<"$REQUEST_SQL"), $TOMORROW FROM (SELECT (random() * 1e6)::int AS g) r;" >"$script"
    chmod 644 "$script"
    tps_without=$("$PGBIN/pgbench" -h "$PGHOST" -p "$PGPORT" -U postgres -n -c 16 -j 2 -t 63 -f "$script" "$PGDATABASE" 2>&1 |
        sed -nE 's/^tps = ([0-9.]+).*/\1/p')
    psqlb -c "DELETE FROM payouts WHERE status = 'pending'" -c "$LIMIT_ROW" >/dev/null
    tps_with=$("$PGBIN/pgbench" -h "$PGHOST" -p "$PGPORT" -U postgres -n -c 16 -j 2 -t 63 -f "$script" "$PGDATABASE" 2>&1 |
        sed -nE 's/^tps = ([0-9.]+).*/\1/p')
    psqlb -c "DELETE FROM payouts WHERE status = 'pending'" -c "DELETE FROM moneroo_limits" >/dev/null
    result "16 clients inserting one payout per transaction, tps: daily_limit vs none" \
        "$tps_with" "$tps_without" "$(calc "$tps_with / $tps_without" 2)" "(info)" -
}

# ---------------------------------------------------------------- audit
# drain_worker_us N: queue N payouts in one transaction and wait until all
# are sent; prints the worker's CPU per payout, in us
drain_worker_us() {
    local wpid base w0 w1
    bm POST /__mock/reset >/dev/null
    wpid=$(worker_pid); base=$(max_id); w0=$(cpu_ns "$wpid")
    insert_batch payouts "$1" >/dev/null
    wait_mock_creates "$1" 300 || true
    wait_settled "$base" "$1" 300 >/dev/null || true
    w1=$(cpu_ns "$wpid")
    calc "($w1 - $w0) / 1000 / $1"
}

fig_audit() {
    local n=2000 round v us at_1_1=0 at_1_2=0
    step "audit: worker CPU per payout, extension at 1.1 (no payout_events) vs 1.2, drains of $n"
    # a copy made with LIKE payouts INCLUDING ALL holds the constraint names a
    # new payouts would take (payouts_status_check, which 1.2 replaces by name)
    psqlb -c "DROP TABLE IF EXISTS bench_plain_payouts" >/dev/null
    set_guc moneroo.max_concurrency 32
    bm POST /__mock/config '{"latency_ms": 20}' >/dev/null
    for round in 1 2 3; do
        for v in 1.1 1.2; do
            psqlb -c "DROP EXTENSION moneroo" -c "CREATE EXTENSION moneroo VERSION '$v'" >/dev/null
            sleep 1
            us=$(drain_worker_us "$n")
            say "round $round, extension $v: worker CPU $us us per payout"
            if [ "$v" = 1.1 ]; then at_1_1=$(calc "$at_1_1 + $us"); else at_1_2=$(calc "$at_1_2 + $us"); fi
        done
    done
    psqlb -c "DROP EXTENSION moneroo" -c "CREATE EXTENSION moneroo" >/dev/null
    result "worker CPU us per payout: 1.2 (payout_events, created_by) vs 1.1, 3 drains of $n each" \
        "$(calc "$at_1_2 / 3")" "$(calc "$at_1_1 / 3")" "$(calc "$at_1_2 / $at_1_1" 2)" "(info)" -
}

fig_latency() {
    local mode rate warm line
    step "commit-to-request latency: $TRIALS trials per case, latency ${LATENCY_MS} ms, max_concurrency 32"
    set_guc moneroo.max_concurrency 32
    bm POST /__mock/config "{\"latency_ms\": $LATENCY_MS}" >/dev/null
    for mode in idle 10 100; do
        case $mode in idle) rate=0; warm=3 ;; 10) rate=10; warm=20 ;; 100) rate=100; warm=100 ;; esac
        bm POST /__mock/reset >/dev/null
        local base; base=$(max_id)
        "$BIN/bench_driver" commits "$CONNINFO" "$TRIALS" "$rate" "$warm" "$BENCH_OUT/commits_$mode.txt"
        wait_settled "$base" $((TRIALS + warm)) 120 >/dev/null || true
        bm GET /__mock/journal >"$BENCH_OUT/journal_$mode.tsv"
        line=$("$PY" "$BENCH/analyze.py" latency "$BENCH_OUT/commits_$mode.txt" "$BENCH_OUT/journal_$mode.tsv")
        local label="worker idle"
        [ "$rate" = 0 ] || label="$rate commits/s"
        say "latency, $label: $line"
        result "commit-to-request median ms, $label" "$(kv p50_ms <<<"$line")" - - "< 5 ms" \
            "$(met "$(kv p50_ms <<<"$line") < 5")"
        result "commit-to-request p99 ms, $label" "$(kv p99_ms <<<"$line")" - - "< 20 ms" \
            "$(met "$(kv p99_ms <<<"$line") < 20")"
    done
}

fig_transfer() {
    local line plain
    step "moneroo_transfer round trip vs one plain-client request, zero latency, $TRANSFER_N calls each"
    set_guc moneroo.max_concurrency 8
    bm POST /__mock/config '{"latency_ms": 0}' >/dev/null
    bm POST /__mock/reset >/dev/null
    "$BIN/bench_driver" transfer "$CONNINFO" "$TRANSFER_N" 20 "$BENCH_OUT/transfer.txt"
    "$BIN/plain_client" -u "$BENCH_URL" -n 20 -c 1 -q >/dev/null
    plain=$("$BIN/plain_client" -u "$BENCH_URL" -n "$TRANSFER_N" -c 1 -q -o "$BENCH_OUT/transfer_plain.txt")
    say "plain client sequential: $plain"
    bm GET /__mock/journal >"$BENCH_OUT/journal_transfer.tsv"
    line=$("$PY" "$BENCH/analyze.py" transfer "$BENCH_OUT/transfer.txt" "$BENCH_OUT/transfer_plain.txt" \
        "$BENCH_OUT/journal_transfer.tsv")
    say "transfer: $line"
    line=$(head -n 1 <<<"$line")
    result "moneroo_transfer median us vs one plain request (overhead = difference)" \
        "$(kv transfer_p50_us <<<"$line")" "$(kv plain_p50_us <<<"$line")" \
        "$(calc "$(kv transfer_p50_us <<<"$line") / $(kv plain_p50_us <<<"$line")" 2)" - -
    result "moneroo_transfer overhead per call, us (median - median)" "$(kv overhead_us <<<"$line")" - - \
        "< 1000 us" "$(met "$(kv overhead_us <<<"$line") < 1000")"
    result "  of which beyond a bare SELECT 1 round trip ($(kv select1_p50_us <<<"$line") us)" \
        "$(kv overhead_beyond_select1_us <<<"$line")" - - "(info)" -
}

# memory_sample PID: "VmRSS_kB RssAnon_kB RssShmem_kB palloc_used_bytes" (the
# last from pg_log_backend_memory_contexts: "Grand total: ... ; N used")
memory_sample() {
    local pid=$1 total="" _
    local before; before=$(grep -c 'Grand total' "$SERVER_LOG" || true)
    psqlb -c "SELECT pg_log_backend_memory_contexts($pid)" >/dev/null
    for _ in $(seq 1 50); do
        [ "$(grep -c 'Grand total' "$SERVER_LOG" || true)" -gt "$before" ] && break
        sleep 0.1
    done
    total=$(grep "\[$pid\].*Grand total" "$SERVER_LOG" | tail -n 1 | sed -E 's/.*Grand total: .* ([0-9]+) used.*/\1/')
    echo "$(awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssShmem/ {s=$2} END {print r, a, s}' "/proc/$pid/status") ${total:-?}"
}

fig_memory() {
    local wpid b base s first w0 w1 total=0
    step "memory: $((MEM_BATCH * MEM_BATCHES)) payouts through the worker in batches of $MEM_BATCH (latency 0, max_concurrency 32)"
    set_guc moneroo.max_concurrency 32
    bm POST /__mock/config '{"latency_ms": 0}' >/dev/null
    bm POST /__mock/reset >/dev/null
    wpid=$(worker_pid)
    s=$(memory_sample "$wpid")
    say "before: VmRSS/RssAnon/RssShmem kB, palloc bytes: $s"
    w0=$(cpu_ns "$wpid")
    for b in $(seq 1 "$MEM_BATCHES"); do
        base=$(max_id)
        insert_batch payouts "$MEM_BATCH" >/dev/null
        wait_settled "$base" "$MEM_BATCH" 600 >/dev/null || true
        total=$((total + MEM_BATCH))
        s=$(memory_sample "$wpid")
        say "after $total payouts: $s"
        [ "$b" = 1 ] && first=$s
        [ "$(worker_pid)" = "$wpid" ] || say "WORKER RESTARTED (pid $(worker_pid))"
    done
    w1=$(cpu_ns "$wpid")
    # shellcheck disable=SC2086
    set -- $first $s
    result "worker RssAnon kB after $total payouts vs after $MEM_BATCH" "$6" "$2" "$(calc "$6 / $2" 3)" \
        "flat (< 1.05)" "$(met "$6 / $2 < 1.05")"
    result "worker palloc bytes used (memory contexts) after $total vs after $MEM_BATCH" "$8" "$4" \
        "$(calc "$8 / $4" 3)" "flat (< 1.05)" "$(met "$8 / $4 < 1.05")"
    result "worker memory growth per payout, bytes (palloc used; RssAnon)" \
        "$(calc "($8 - $4) / ($total - $MEM_BATCH) + 0" 0); $(calc "($6 - $2) * 1024 / ($total - $MEM_BATCH) + 0" 0)" \
        0 - "0 (flat)" "$(met "($8 - $4) / ($total - $MEM_BATCH) < 50")"
    result "worker VmRSS kB after $total vs after $MEM_BATCH (includes shared buffers touched)" "$5" "$1" \
        "$(calc "$5 / $1" 3)" "(info)" -
    result "CPU: worker us per payout sent, zero latency, $total payouts" \
        "$(calc "($w1 - $w0) / 1000 / $total")" - - "< 85 us" "$(met "($w1 - $w0) / 1000 / $total < 85")"
}

# leaksize: is the worker's memory growth per payout proportional to the size
# of the request?  (It is if the leak is the initialize body being built.)
fig_leaksize() {
    local wpid base a b small big n=2000
    step "leak vs request size: $n small then $n large requests (latency 0, max_concurrency 32)"
    set_guc moneroo.max_concurrency 32
    bm POST /__mock/config '{"latency_ms": 0}' >/dev/null
    wpid=$(worker_pid)
    insert_batch payouts 200 >/dev/null; sleep 1   # warm up
    a=$(memory_sample "$wpid"); base=$(max_id)
    insert_batch payouts "$n" >/dev/null; wait_settled "$base" "$n" 120 >/dev/null || true
    b=$(memory_sample "$wpid")
    small=$(calc "(${b##* } - ${a##* }) / $n" 0)
    base=$(max_id)
    psqlb <<SQL >/dev/null
INSERT INTO payouts (request)
SELECT jsonb_build_object('amount', 100 + g, 'currency', 'USD', 'method', 'moneroo_payout_demo',
    'description', repeat('d', 150),
    'customer', jsonb_build_object('email', 'bench' || g || '@example.com', 'first_name', repeat('f', 100),
        'last_name', repeat('l', 100), 'address', repeat('a', 200), 'city', repeat('c', 100),
        'state', repeat('s', 100), 'zip', repeat('9', 10), 'country', 'US'),
    'metadata', (SELECT jsonb_object_agg('key' || k, repeat('v', 100)) FROM generate_series(1, 9) k),
    'recipient', jsonb_build_object('account_number', '4149518161'))
FROM generate_series(1, $n) g;
SQL
    wait_settled "$base" "$n" 120 >/dev/null || true
    a=$(memory_sample "$wpid")
    big=$(calc "(${a##* } - ${b##* }) / $n" 0)
    say "request body sizes: $(psqlb -c "SELECT string_agg(DISTINCT length(request::text)::text, ', ') FROM (SELECT request FROM payouts WHERE id > $((base - 1)) - $n ORDER BY id LIMIT 1) s") (small), $(psqlb -c "SELECT length(request::text) FROM payouts ORDER BY id DESC LIMIT 1") (large) characters"
    result "worker palloc growth per payout, large request vs small request (bytes)" "$big" "$small" \
        "$(awk "BEGIN { if ($small > 0) printf \"%.2f\", $big / $small; else print \"-\" }")" \
        "0 (no leak)" "$(met "$big < 50 && $small < 50")"
}

fig_pacing() {
    local base ins stats line
    step "pacing: moneroo.rate_limit 120, $PACING_N payouts, python mock with its 120/min limiter"
    psqlb -c "ALTER SYSTEM SET moneroo.api_url = '$MOCK_URL'" >/dev/null
    set_guc moneroo.rate_limit 120
    set_guc moneroo.max_concurrency 8
    mock_ctl POST /__mock/reset >/dev/null
    mock_ctl POST /__mock/config '{"rate_limit": 120, "latency_ms": 0}' >/dev/null
    base=$(max_id)
    ins=$(insert_batch payouts "$PACING_N")
    wait_settled "$base" "$PACING_N" $((PACING_N / 2 + 90)) >/dev/null || true
    mock_ctl GET /__mock/journal >"$BENCH_OUT/pacing_journal.json"
    stats=$(mock_ctl GET /__mock/stats); echo "$stats" >"$BENCH_OUT/pacing_stats.json"
    line=$("$PY" "$BENCH/analyze.py" pacing "$BENCH_OUT/pacing_journal.json" "${ins#* }")
    say "pacing: $line; mock stats: rate_limited=$(field rate_limited <<<"$stats")" \
        "max_in_any_60s_window=$(field max_in_any_60s_window <<<"$stats")"
    result "pacing: payouts/s at rate_limit 120 vs 120/60 s" "$(kv rps <<<"$line")" 2 \
        "$(calc "$(kv rps <<<"$line") / 2" 3)" "2/s (ratio 0.95-1.0)" \
        "$(met "$(kv rps <<<"$line") / 2 >= 0.95 && $(kv rps <<<"$line") / 2 <= 1.0")"
    result "pacing: 429s from the mock's 120/60 s sliding window" "$(field rate_limited <<<"$stats")" 0 - \
        "0" "$(met "$(field rate_limited <<<"$stats") == 0")"
    result "pacing: most requests in any 60 s window (mock)" "$(field max_in_any_60s_window <<<"$stats")" 120 \
        - "<= 120" "$(met "$(field max_in_any_60s_window <<<"$stats") <= 120")"
    psqlb -c "ALTER SYSTEM SET moneroo.api_url = '$BENCH_URL'" >/dev/null
    set_guc moneroo.rate_limit 0
}

# settled rows straight into the table (the row guard bypassed): a history of
# payouts that went through, as a long-running system accumulates
scale_fill() {
    psqlb -d moneroo_scale <<SQL >/dev/null
SET session_replication_role = replica;
INSERT INTO payouts (request, status, moneroo_id, moneroo_status, attempts, sent_at, completed_at,
                     verifications, response)
SELECT $REQUEST_SQL,
       CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'success' END,
       'scale' || g,
       CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'success' END,
       1, now(), now(), 2, '{"message": "Payout transaction fetched successfully!"}'
FROM generate_series($1, $2) g;
SQL
    scale_count
}

# The triggers were off: count the payouts again, as the worker does when it
# starts (moneroo_state_counts), then refresh the planner's statistics.
scale_count() {
    psqlb -d moneroo_scale <<'SQL' >/dev/null
WITH gone AS (DELETE FROM moneroo_state_counts)
INSERT INTO moneroo_state_counts (status, payouts) SELECT status, count(*) FROM payouts GROUP BY status;
VACUUM ANALYZE payouts;
SQL
}

scale_explain() {  # scale_explain OUTFILE
    local i
    {
        echo "SET session_replication_role = replica;"   # the UPDATEs below are the worker's, not a user's
        for i in $(seq 1 "$EXPLAIN_REPS"); do
            cat <<'SQL'
\echo -- label claim 32 pending (payout_store_claim)
BEGIN;
EXPLAIN (ANALYZE, BUFFERS) WITH due AS (  SELECT id FROM public.payouts  WHERE status = 'pending'    AND (next_attempt_at IS NULL OR next_attempt_at <= now())  ORDER BY id LIMIT 32 FOR UPDATE SKIP LOCKED) UPDATE public.payouts p SET status = 'sending', attempts = p.attempts + 1 FROM due WHERE p.id = due.id RETURNING p.id, p.reference::text, p.request;
ROLLBACK;
\echo -- label lease 32 verifications (payout_store_lease_verifications)
BEGIN;
EXPLAIN (ANALYZE, BUFFERS) WITH due AS (  SELECT id FROM public.payouts  WHERE status = 'sent' AND next_attempt_at <= now()  ORDER BY next_attempt_at LIMIT 32 FOR UPDATE SKIP LOCKED) UPDATE public.payouts p SET next_attempt_at = now() + 70000 * interval '1 millisecond' FROM due WHERE p.id = due.id RETURNING p.id, p.moneroo_id, p.verifications;
ROLLBACK;
\echo -- label next due (payout_store_next_due_ms)
EXPLAIN (ANALYZE, BUFFERS) SELECT ceil(extract(epoch FROM least(  (SELECT min(next_attempt_at) FROM public.payouts WHERE status = 'sent'),  (SELECT min(next_attempt_at) FROM public.payouts WHERE status = 'pending'))  - clock_timestamp()) * 1000)::int8;
\echo -- label moneroo_id taken (payout_store_record_send)
EXPLAIN (ANALYZE, BUFFERS) SELECT 1 FROM public.payouts WHERE moneroo_id = 'scale12345' AND id <> 1;
SQL
            printf '%s\n' "\\echo -- label moneroo_status view"
            echo "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM moneroo_status;"
            printf '%s\n' "\\echo -- label moneroo_needs_attention view"
            echo "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM moneroo_needs_attention;"
            if [ "$i" -le 3 ]; then
                # the baseline: how moneroo_status counted before moneroo_state_counts
                printf '%s\n' "\\echo -- label counting payouts by state (moneroo_status before 1.2: a full scan)"
                echo "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status = 'failed'), min(created_at) FILTER (WHERE status = 'pending') FROM payouts;"
            fi
        done
    } | psqlb -d moneroo_scale >"$1"
}

fig_scale() {
    local small mid big line label
    step "scale: the worker's statements and the views with $SCALE_SMALL, $SCALE_MID and $SCALE_BIG settled rows (database moneroo_scale)"
    psqlb -d postgres -c "CREATE DATABASE moneroo_scale" >/dev/null
    psqlb -d moneroo_scale -c "CREATE EXTENSION moneroo" >/dev/null
    scale_fill 1 "$SCALE_SMALL"
    # the live part, the same at every size: 1000 pending, 1000 sent (half
    # due), what moneroo_needs_attention lists: 200 rejected, 100 unknown,
    # and (1.3) what it no longer lists: SCALE_ACKED acknowledged rejections
    psqlb -d moneroo_scale <<SQL >/dev/null
SET session_replication_role = replica;
INSERT INTO payouts (request, status) SELECT $REQUEST_SQL, 'pending' FROM generate_series(1, 1000) g;
INSERT INTO payouts (request, status, moneroo_id, moneroo_status, sent_at, next_attempt_at)
SELECT $REQUEST_SQL, 'sent', 'live' || g, 'pending', now(),
       now() + CASE WHEN g % 2 = 0 THEN interval '-1 minute' ELSE interval '1 hour' END
FROM generate_series(1, 1000) g;
INSERT INTO payouts (request, status, attempts, last_error)
SELECT $REQUEST_SQL, CASE WHEN g <= 200 THEN 'rejected' ELSE 'unknown' END, 1, 'scale'
FROM generate_series(1, 300) g;
INSERT INTO payouts (request, status, attempts, last_error, completed_at,
                     acknowledged_at, acknowledged_by, acknowledgement)
SELECT $REQUEST_SQL, 'rejected', 1, 'scale', now(), now(), 'bench', 'acknowledged by the benchmark'
FROM generate_series(1, $SCALE_ACKED) g;
SQL
    scale_count
    scale_explain "$BENCH_OUT/explain_small.txt"
    local t0=$SECONDS
    scale_fill $((SCALE_SMALL + 1)) "$SCALE_MID"
    scale_explain "$BENCH_OUT/explain_mid.txt"
    scale_fill $((SCALE_MID + 1)) "$SCALE_BIG"
    say "filled to $SCALE_BIG settled rows in $((SECONDS - t0)) s; table $(psqlb -d moneroo_scale -c "SELECT pg_size_pretty(pg_total_relation_size('payouts'))")"
    scale_explain "$BENCH_OUT/explain_big.txt"
    small=$("$PY" "$BENCH/analyze.py" explain "$BENCH_OUT/explain_small.txt")
    mid=$("$PY" "$BENCH/analyze.py" explain "$BENCH_OUT/explain_mid.txt")
    big=$("$PY" "$BENCH/analyze.py" explain "$BENCH_OUT/explain_big.txt")
    say "$SCALE_SMALL settled rows:"; say "$small"
    say "$SCALE_MID settled rows:"; say "$mid"
    say "$SCALE_BIG settled rows:"; say "$big"
    while IFS= read -r line; do
        label=${line% median_ms=*}
        local vs vb bs bb target met_t
        vb=$(kv median_ms <<<"$line"); bb=$(kv buffers <<<"$line")
        vs=$(grep -F "$label median_ms=" <<<"$small" | kv median_ms)
        bs=$(grep -F "$label median_ms=" <<<"$small" | kv buffers)
        if [[ $label == *" view" ]]; then
            # what an operator watches: under 20 ms at the middle size, and flat
            local vm
            vm=$(grep -F "$label median_ms=" <<<"$mid" | kv median_ms)
            result "scale: $label, ms at $SCALE_MID settled rows (vs 20 ms)" "$vm" 20 \
                "$(calc "$vm / 20" 3)" "< 20 ms" "$(met "$vm < 20")"
            target="flat (< 2)"; met_t=$(met "$vb / $vs < 2")
            if [[ $label == moneroo_needs_attention* ]]; then
                result "scale: $label, ms at $SCALE_BIG settled rows with $SCALE_ACKED acknowledged rejections (vs 2 ms)" \
                    "$vb" 2 "$(calc "$vb / 2" 3)" "< 2 ms" "$(met "$vb < 2")"
            fi
        elif [[ $label == *"scan for due rows"* || $label == "next due"* || $label == "moneroo_id taken"* ]]; then
            # what the partial and unique indexes are for: the same work at any size
            target="flat (< 2)"; met_t=$(met "$vb / $vs < 2")
        else
            # the whole UPDATE also writes 32 new row versions into every index
            # of a table 100 times larger (one more btree level, colder pages)
            target="(info)"; met_t=-
        fi
        result "scale: $label, ms at $SCALE_BIG vs $SCALE_SMALL settled rows" "$vb" "$vs" \
            "$(calc "$vb / $vs" 2)" "$target" "$met_t"
        result "scale: $label, shared buffers touched at $SCALE_BIG vs $SCALE_SMALL" "$bb" "$bs" \
            "$(calc "$bb / $bs" 2)" "(info)" -
    done <<<"$big"
    grep -A12 -m1 'label claim' "$BENCH_OUT/explain_big.txt" >"$BENCH_OUT/explain_big_claim_plan.txt" || true
}

# ---- databases: fairness between the workers of one account (issue 14)
# db_worker DB: the pid of DB's moneroo worker, or nothing
db_worker() {
    psqlb -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'moneroo worker' AND datname = '$1'"
}
# db_commit DB: one payout committed in DB; prints "reference commit_sent_us commit_returned_us"
db_commit() {
    psqlb -d "$1" <<SQL | tr '\n' ' '
BEGIN;
INSERT INTO payouts (request) SELECT $REQUEST_SQL FROM generate_series(1, 1) g RETURNING reference;
SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint;
COMMIT;
SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint;
SQL
}
fig_databases() {
    local b=moneroo_bench_b slot_s trial row ref st line pending deadline timeouts=0
    step "databases: a backlog of $DB_BACKLOG payouts in $PGDATABASE (A), $DB_TRIALS single payouts in $b (B), rate_limit $DB_RATE"
    psqlb -d postgres -c "DROP DATABASE IF EXISTS $b WITH (FORCE)" -c "CREATE DATABASE $b" >/dev/null
    psqlb -d "$b" -c "CREATE EXTENSION moneroo" >/dev/null
    bm POST /__mock/config '{"latency_ms": 0}' >/dev/null
    bm POST /__mock/reset >/dev/null
    set_guc moneroo.max_concurrency 8
    set_guc moneroo.rate_limit "$DB_RATE"
    set_guc moneroo.database "$PGDATABASE, $b"
    for _ in $(seq 1 100); do [ -n "$(db_worker "$b")" ] && [ -n "$(db_worker "$PGDATABASE")" ] && break; sleep 0.2; done
    [ -n "$(db_worker "$b")" ] || say "B ($b) has no worker after 20 s: its trials will time out"
    psqlb -c "INSERT INTO payouts (request) SELECT $REQUEST_SQL FROM generate_series(1, $DB_BACKLOG) g" >/dev/null
    slot_s=$(calc "60 / $DB_RATE" 3)
    sleep "$(calc "3 * $slot_s" 3)"   # A's worker at its pace
    : >"$BENCH_OUT/databases_commits.txt"
    for trial in $(seq 1 "$DB_TRIALS"); do
        row=$(db_commit "$b")
        echo "$row" >>"$BENCH_OUT/databases_commits.txt"
        ref=${row%% *}
        # a fair share is the next slot or so; an unfair one waits behind A's backlog
        deadline=$((SECONDS + 120))
        while :; do
            st=$(psqlb -d "$b" -c "SELECT status FROM payouts WHERE reference = '$ref'")
            case $st in pending|sending) ;; *) break ;; esac
            [ "$SECONDS" -lt "$deadline" ] || { timeouts=$((timeouts + 1)); say "trial $trial: B's payout not sent in 120 s"; break; }
            sleep 0.02
        done
        sleep "$(awk -v s="$RANDOM" -v slot="$slot_s" 'BEGIN { srand(s); printf "%.3f", slot * (0.2 + 0.6 * rand()) }')"
    done
    pending=$(psqlb -c "SELECT count(*) FROM payouts WHERE status = 'pending'")
    bm GET /__mock/journal >"$BENCH_OUT/databases_journal.tsv"
    line=$("$PY" "$BENCH/analyze.py" databases "$BENCH_OUT/databases_commits.txt" "$BENCH_OUT/databases_journal.tsv")
    say "databases: $line; trials timed out: $timeouts; A's payouts still pending after the trials: $pending of $DB_BACKLOG"
    [ "$pending" -gt 0 ] || say "WARNING: A's backlog drained before the trials ended: make DB_BACKLOG larger"
    result "databases: B's commit-to-request median ms vs the rate slot (A: backlog of $DB_BACKLOG, rate_limit $DB_RATE)" \
        "$(kv p50_ms <<<"$line")" "$(kv slot_ms <<<"$line")" "$(kv ratio_p50 <<<"$line")" "<= 2 slots" \
        "$(met "$(kv ratio_p50 <<<"$line") <= 2 && $timeouts == 0 && $pending > 0")"
    result "databases: B's commit-to-request worst of $(kv n <<<"$line") ms vs the rate slot" \
        "$(kv max_ms <<<"$line")" "$(kv slot_ms <<<"$line")" "$(kv ratio_max <<<"$line")" "<= 3 slots" \
        "$(met "$(kv ratio_max <<<"$line") <= 3 && $timeouts == 0")"
    result "databases: A's initializes during B's trials (the backlog kept sending)" "$(kv others <<<"$line")" - - "> 0" \
        "$(met "$(kv others <<<"$line") > 0")"
    # A's backlog cancelled, what A's worker holds sent at full speed, B dropped
    psqlb -c "SELECT count(moneroo_cancel(id)) FROM payouts WHERE status = 'pending'" >/dev/null
    set_guc moneroo.rate_limit 0
    for _ in $(seq 1 100); do
        [ "$(psqlb -c "SELECT count(*) FROM payouts WHERE status IN ('pending', 'sending')")" = 0 ] && break
        sleep 0.2
    done
    set_guc moneroo.database "$PGDATABASE"
    for _ in $(seq 1 50); do [ -z "$(db_worker "$b")" ] && break; sleep 0.2; done
    psqlb -d postgres -c "DROP DATABASE IF EXISTS $b WITH (FORCE)" >/dev/null
}

fig_idle() {
    local wpid round a b ms worst=0 spun=0 base before rounds=${IDLE_ROUNDS:-8}
    step "idle worker CPU: $rounds rounds of 3 payouts sent and verified, then 3 s with nothing due"
    # the defaults (postgresql.conf of this stack says 1h for the other figures)
    psqlb -c "ALTER SYSTEM SET moneroo.api_url = '$MOCK_URL'" -c "ALTER SYSTEM SET moneroo.verify_min_interval = '2s'" \
        -c "ALTER SYSTEM SET moneroo.verify_max_interval = '10min'" >/dev/null
    set_guc moneroo.rate_limit 120
    set_guc moneroo.max_concurrency 8
    mock_ctl POST /__mock/reset >/dev/null
    wpid=$(worker_pid)
    a=$(cpu_ns "$wpid"); sleep 3; b=$(cpu_ns "$wpid")
    before=$(calc "($b - $a) / 3e6" 0)
    say "before this figure's payouts (nothing due): worker CPU $before ms per s"
    for round in $(seq 1 "$rounds"); do
        base=$(max_id)
        psqlb -c "INSERT INTO payouts (request) SELECT $REQUEST_SQL FROM generate_series(1, 3) g" >/dev/null
        for _ in $(seq 1 100); do
            [ "$(psqlb -c "SELECT count(*) FROM payouts WHERE id > $base AND status = 'success'")" = 3 ] && break
            sleep 0.2
        done
        sleep 1
        a=$(cpu_ns "$wpid"); sleep 3; b=$(cpu_ns "$wpid")
        ms=$(calc "($b - $a) / 3e6" 0)
        say "round $round: 3 payouts $(psqlb -c "SELECT string_agg(DISTINCT status, ',') FROM payouts WHERE id > $base");" \
            "then nothing due: worker CPU $ms ms per s"
        [ "$ms" -gt "$worst" ] && worst=$ms
        [ "$ms" -gt 50 ] && spun=$((spun + 1))
    done
    result "idle worker CPU ms per s, worst of $rounds rounds after sending+verifying ($spun rounds > 50)" \
        "$worst" "$before" - "~0 (no busy loop)" "$(met "$worst < 50")"
    psqlb -c "ALTER SYSTEM SET moneroo.api_url = '$BENCH_URL'" -c "ALTER SYSTEM SET moneroo.verify_min_interval = '1h'" \
        -c "ALTER SYSTEM SET moneroo.verify_max_interval = '1h'" >/dev/null
    set_guc moneroo.rate_limit 0
}

# ---- payroll: the rate budget (issue 13)
# Moneroo's webhook sender, played against the python mock: every 0.25 s,
# each payout the mock has settled and this loop has not delivered yet gets
# a signed payout.success / payout.failed through moneroo_webhook, as the
# README's receiver would hand it over.  Runs until killed.
webhook_sender() {
    local delivered=$1 id st body sig
    : >"$delivered"
    while :; do
        mock_ctl GET /__mock/payouts | "$PY" -c '
import json, sys
for p in json.load(sys.stdin):
    if p["status"] in ("success", "failed"):
        print(p["id"], p["status"])' >"$delivered.now" 2>/dev/null
        while read -r id st; do
            grep -qxF "$id" "$delivered" && continue
            body="{\"event\": \"payout.$st\", \"data\": {\"id\": \"$id\"}}"
            sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$BENCH_WEBHOOK_SECRET" -r | cut -d' ' -f1)
            printf "SELECT 1 FROM moneroo_webhook(:'body', :'sig');\n" |
                cluster_psql -At -v body="$body" -v sig="$sig" >/dev/null 2>&1
            echo "$id" >>"$delivered"
        done <"$delivered.now"
        sleep 0.25
    done
}

# payroll_round N SETTLE_S: N payouts queued in one transaction; waits until
# all are final (SETTLE_S + 120 s at the most); prints "commit_us base"
payroll_round() {
    local base ins
    base=$(max_id)
    ins=$(insert_batch payouts "$1")
    for _ in $(seq 1 $(($2 * 5 + 600))); do
        [ "$(psqlb -c "SELECT count(*) FROM payouts WHERE id > $base AND status IN ('success', 'failed')")" -ge "$1" ] && break
        sleep 0.2
    done
    [ "$(psqlb -c "SELECT count(*) FROM payouts WHERE id > $base AND status IN ('success', 'failed')")" -ge "$1" ] ||
        say "TIMEOUT: not every payout of the round is final"
    echo "${ins#* } $base"
}

# fig_payroll_run NAME WEBHOOKS(0/1) SETTLE_S [SETTLE_MAX_S]: PAYROLL_N
# payouts at rate_limit PAYROLL_RATE against the python mock (its
# sliding-window limiter), each settling SETTLE_S s after Moneroo created it
# (with SETTLE_MAX_S: at its own time between the two); the default schedule
# (verify_min_interval 2 s, max 10 min).  The earlier figures' payouts are
# removed; then a warm-up run of PAYROLL_WARMUP of the same method, as a
# production account has settled payouts behind it (the schedule learns from
# them; with webhooks, they are arriving), then the measured run.
fig_payroll_run() {
    local name=$1 hooks=$2 settle=$3 settle_max=${4:-} sender="" floor_s out line stats mock_conf
    local last=${4:-$3}		# the settle time of the last payout to settle
    step "$name: $PAYROLL_N payouts at rate_limit $PAYROLL_RATE, settling ${settle}${settle_max:+ to $settle_max} s after creation, webhooks $hooks"
    mock_conf="{\"rate_limit\": $PAYROLL_RATE, \"latency_ms\": 20, \"pending_after\": 1,
                \"final_after\": $settle, \"final_after_max\": ${settle_max:-null}, \"journal_limit\": 100000}"
    # the defaults (the stack's postgresql.conf says 1h for the other figures)
    psqlb -c "ALTER SYSTEM SET moneroo.api_url = '$MOCK_URL'" -c "ALTER SYSTEM SET moneroo.verify_min_interval = '2s'" \
        -c "ALTER SYSTEM SET moneroo.verify_max_interval = '10min'" >/dev/null
    set_guc moneroo.rate_limit "$PAYROLL_RATE"
    set_guc moneroo.max_concurrency 8
    # an account whose history is this rail's: the earlier figures' payouts
    # (settled at once by other mocks) go, triggers off, as in a scratch database
    psqlb -c "SET session_replication_role = replica" -c "DELETE FROM payouts" >/dev/null
    mock_ctl POST /__mock/reset >/dev/null
    mock_ctl POST /__mock/config "$mock_conf" >/dev/null
    if [ "$hooks" = 1 ]; then
        webhook_sender "$BENCH_OUT/${name}_delivered" &
        sender=$!
    fi
    out=$(payroll_round "$PAYROLL_WARMUP" "$last")
    say "warm-up: $PAYROLL_WARMUP payouts; the worker learns within 10 s"
    sleep 11
    mock_ctl POST /__mock/reset >/dev/null
    mock_ctl POST /__mock/config "$mock_conf" >/dev/null
    out=$(payroll_round "$PAYROLL_N" "$last")
    # (wait reports the sender's SIGTERM: not a failure of the figure, and set -e would end the run)
    [ -n "$sender" ] && { kill "$sender" 2>/dev/null; wait "$sender" 2>/dev/null || true; }
    mock_ctl GET /__mock/journal >"$BENCH_OUT/${name}_journal.json"
    stats=$(mock_ctl GET /__mock/stats); echo "$stats" >"$BENCH_OUT/${name}_stats.json"
    psqlb -c "SELECT moneroo_id, (extract(epoch FROM completed_at) * 1e6)::bigint FROM payouts
              WHERE id > ${out#* } ORDER BY id" >"$BENCH_OUT/${name}_payouts.txt"
    line=$("$PY" "$BENCH/analyze.py" payroll "$BENCH_OUT/${name}_journal.json" "$BENCH_OUT/${name}_payouts.txt" "${out% *}")
    say "$name: $line; 429s: $(field rate_limited <<<"$stats")"
    floor_s=$(calc "$PAYROLL_N * 60 / $PAYROLL_RATE" 2)
    result "$name: s until the last payout left vs the floor N/R" "$(kv sent_s <<<"$line")" "$floor_s" \
        "$(calc "$(kv sent_s <<<"$line") / $floor_s" 2)" "<= 1.25" "$(met "$(kv sent_s <<<"$line") / $floor_s <= 1.25")"
    result "$name: s until all final vs settle + 1.5 x floor" "$(kv final_s <<<"$line")" \
        "$(calc "$last + 1.5 * $floor_s" 2)" "$(calc "$(kv final_s <<<"$line") / ($last + 1.5 * $floor_s)" 2)" \
        "<= 1" "$(met "$(kv final_s <<<"$line") <= $last + 1.5 * $floor_s")"
    result "$name: requests per final payout (initialize + verify) vs 2" "$(kv per_payout <<<"$line")" 2 \
        "$(calc "$(kv per_payout <<<"$line") / 2" 2)" "<= $( [ "$hooks" = 1 ] && echo 2.2 || echo 2.5)" \
        "$(met "$(kv per_payout <<<"$line") <= $( [ "$hooks" = 1 ] && echo 2.2 || echo 2.5)")"
    result "$name: 429s from the mock's sliding window" "$(field rate_limited <<<"$stats")" 0 - "0" \
        "$(met "$(field rate_limited <<<"$stats") == 0")"
    psqlb -c "ALTER SYSTEM SET moneroo.api_url = '$BENCH_URL'" -c "ALTER SYSTEM SET moneroo.verify_min_interval = '1h'" \
        -c "ALTER SYSTEM SET moneroo.verify_max_interval = '1h'" >/dev/null
    set_guc moneroo.rate_limit 0
    # webhooks "arriving" would leave polls to the safety net for 15 minutes
    [ "$hooks" = 1 ] && cluster_restart >/dev/null
    return 0
}
fig_payroll() { fig_payroll_run payroll 0 "$PAYROLL_SETTLE"; }
fig_payroll_webhooks() { fig_payroll_run payroll_webhooks 1 "$PAYROLL_SETTLE"; }
fig_payroll_spread() { fig_payroll_run payroll_spread 0 "$PAYROLL_SPREAD_MIN" "$PAYROLL_SPREAD_MAX"; }
fig_payroll_webhooks_spread() { fig_payroll_run payroll_webhooks_spread 1 "$PAYROLL_SPREAD_MIN" "$PAYROLL_SPREAD_MAX"; }

# ---------------------------------------------------------------- standbys
STANDBY_DRAIN_N=${STANDBY_DRAIN_N:-2000}
STANDBY_PID=""
standby_up() {
    STANDBY_DATA=$WORK/standby
    STANDBY_PORT=$(free_port "$PGPORT" "$MOCK_PORT" "$BENCH_PORT")
    as_pg "$PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$STANDBY_DATA" -R -X stream >/dev/null
    as_pg "$PGBIN/pg_ctl" start -D "$STANDBY_DATA" -l "$WORK/standby.log" -w -t 60 -s \
        -o "-p $STANDBY_PORT -c hot_standby=on" >/dev/null
    STANDBY_PID=$(head -n 1 "$STANDBY_DATA/postmaster.pid")
    for _ in $(seq 1 100); do
        [ "$(psqlb -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" -ge 1 ] && return 0
        sleep 0.1
    done
    say "the standby does not stream"; return 1
}
standby_down() {
    [ -n "$STANDBY_PID" ] || return 0
    as_pg "$PGBIN/pg_ctl" stop -D "$STANDBY_DATA" -m fast -w -t 30 -s >/dev/null 2>&1 || true
    STANDBY_PID=""
}
fig_standbys() {
    local cs round base ins stats first last line
    declare -A rps=() p50=()
    step "standbys: claim_standbys 1 vs 0, a streaming standby; drains of $STANDBY_DRAIN_N, latency 20 ms, max_concurrency 32; $TRIALS one-payout commits"
    standby_up || return 0
    set_guc moneroo.max_concurrency 32
    for round in 1 2; do
        for cs in 1 0; do
            set_guc moneroo.claim_standbys "$cs"
            bm POST /__mock/config '{"latency_ms": 20}' >/dev/null
            bm POST /__mock/reset >/dev/null
            base=$(max_id)
            ins=$(insert_batch payouts "$STANDBY_DRAIN_N")
            wait_mock_creates "$STANDBY_DRAIN_N" 300 || true
            wait_settled "$base" "$STANDBY_DRAIN_N" 300 >/dev/null || true
            stats=$(bm GET /__mock/stats)
            first=$(field first_arrival_us <<<"$stats"); last=$(field last_answer_us <<<"$stats")
            rps[$cs]="${rps[$cs]:-} $(calc "$STANDBY_DRAIN_N / (($last - $first) / 1e6)")"
            bm POST /__mock/reset >/dev/null
            base=$(max_id)
            "$BIN/bench_driver" commits "$CONNINFO" "$TRIALS" 0 3 "$BENCH_OUT/commits_standbys_$cs.txt"
            wait_settled "$base" $((TRIALS + 3)) 120 >/dev/null || true
            bm GET /__mock/journal >"$BENCH_OUT/journal_standbys_$cs.tsv"
            line=$("$PY" "$BENCH/analyze.py" latency "$BENCH_OUT/commits_standbys_$cs.txt" "$BENCH_OUT/journal_standbys_$cs.tsv")
            p50[$cs]="${p50[$cs]:-} $(kv p50_ms <<<"$line")"
            say "round $round, claim_standbys $cs: drain ${rps[$cs]##* } payouts/s; latency $line"
        done
    done
    set_guc moneroo.claim_standbys 0
    standby_down
    local mean1 mean0 lat1 lat0
    mean1=$(awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.1f", s / NF }' <<<"${rps[1]}")
    mean0=$(awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.1f", s / NF }' <<<"${rps[0]}")
    lat1=$(awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.2f", s / NF }' <<<"${p50[1]}")
    lat0=$(awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.2f", s / NF }' <<<"${p50[0]}")
    result "drain payouts/s, claim_standbys 1 vs 0 (one streaming standby; mean of 2)" "$mean1" "$mean0" \
        "$(calc "$mean1 / $mean0" 3)" "(info)" -
    result "commit-to-request median ms, claim_standbys 1 vs 0 (mean of 2 medians)" "$lat1" "$lat0" \
        "$(calc "$lat1 / $lat0" 2)" "(info)" -
}

for f in $FIGURES; do
    "fig_$f"
done

step "results ($RESULTS)"
column -t -s $'\t' "$RESULTS" | tee -a "$BENCH_OUT/log.txt"
