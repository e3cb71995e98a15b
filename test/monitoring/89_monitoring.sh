#!/usr/bin/env bash
# Proves: README's Monitoring as written: the real exporter reads the queries file, promtool checks and tests the alert rules [fast, ~30 s].
# test/monitoring/89_monitoring.sh: README.md's "Monitoring" as written, with
# Debian 12's prometheus-postgres-exporter (0.11) and promtool (prometheus 2.42).
#
#   - the queries file and the rules file README names are the checkout's
#     (the rules file at the path README installs it from: make install puts
#     both there), and promtool check rules passes on the rules file;
#   - promtool test rules: each alert fires on the series it is about, after
#     its delay, and stays quiet on the others (unit tests written below);
#   - the real exporter, started as README says (its role from README's
#     Security and Monitoring sections, --extend.query-path) on 127.0.0.1 and a
#     free port against the test cluster, scrapes every query without an
#     error, after payouts in every state (success, failed, rejected,
#     unknown, sent, held, pending scheduled and pending held back by a
#     refused key): /metrics has the counts by state and the open amount per
#     currency that SQL computes, the unknown count, the pause with its
#     cause and reason, requests in the last minute, the queue's delay and a
#     verification's lag; after a new key, the pause is gone; a 429 is
#     counted, and its minute of silence shown;
#   - none of the queries reads payouts through a sequential scan when an
#     index can serve it (enable_seqscan off), as the file's header says.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.
set -uo pipefail

# shellcheck source=test/lib/recipes.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

tap_plan 26

REPO_TOP=$(cd "$(dirname "$README")" && pwd)
D=$(recipe_dir monitoring) || bail "cannot make the exporter's folder"

cleanup() {
    daemon_stop "$D" exporter
    mock_ctl POST /__mock/config "{\"secret_key\": \"$MONEROO_TEST_KEY\"}" >/dev/null 2>&1
    mock_ctl DELETE /__mock/faults >/dev/null 2>&1
    sql -c "DELETE FROM moneroo_limits WHERE currency = 'USD'" \
        -c "DROP OWNED BY prometheus" -c "DROP ROLE prometheus" \
        -c "DROP OWNED BY payouts_monitor" -c "DROP ROLE payouts_monitor" >/dev/null 2>&1
}
trap cleanup EXIT

# ---------------------------------------------------------------- the README's files
# The exporter's settings block of README's Monitoring section: the
# /etc/default/prometheus-postgres-exporter lines.
# README writes the paths for 15 and says "-17, -18 for the other majors":
# so does this test on the major it runs on.
for_major() { sed "s|postgresql-doc-15/|postgresql-doc-${PG_MAJOR:-15}/|g"; }
DEFAULTS=$(readme_block "## Monitoring" sh 1 | for_major)
ARGS=$(printf '%s\n' "$DEFAULTS" | sed -n "s/^ARGS='\(.*\)'$/\1/p")
QUERIES=$(printf '%s\n' "$ARGS" | sed -n 's/.*--extend.query-path=\([^ ]*\).*/\1/p')
RULES=$(readme_block "## Monitoring" sh 2 | for_major | sed -n 's/^install .* \([^ ]*moneroo-alerts.yml\) .*/\1/p')
cmp -s "$QUERIES" "$REPO_TOP/moneroo-exporter.yml" && cmp -s "$RULES" "$REPO_TOP/moneroo-alerts.yml"
ok $? "README's queries and rules files ($QUERIES, $RULES) are the checkout's moneroo-exporter.yml and moneroo-alerts.yml" \
    "ARGS: '$ARGS'" "rules: '$RULES'"

out=$(promtool check rules "$RULES" 2>&1)
ok $? "promtool check rules: $(printf '%s' "$out" | grep -o 'SUCCESS.*')" "$out"

# promtool test rules: one case per alert, each with a series that should
# fire it and one that should not (another database, another cause).
cat >"$D/alerts_test.yml" <<EOF
rule_files:
  - $RULES
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'moneroo_unknown_payouts{datname="shop"}'
        values: '0 0 2 2'
      - series: 'moneroo_unknown_payouts{datname="other"}'
        values: '0 0 0 0'
      - series: 'moneroo_account_paused{datname="shop",cause="key_refused",reason="Moneroo refused the secret key (HTTP 401 or 403)"}'
        values: '0 1 1 1'
      - series: 'moneroo_account_paused{datname="other",cause="moneroo_failing",reason="Moneroo is failing"}'
        values: '1x14'
      - series: 'moneroo_queue_delay_seconds{datname="shop"}'
        values: '0 400 400 400 400'
      - series: 'moneroo_queue_delay_seconds{datname="other"}'
        values: '0 200 250 290 100'
      - series: 'moneroo_worker_running{datname="shop"}'
        values: '1 0 0 0'
      - series: 'moneroo_rate_limited_total{datname="shop"}'
        values: '3 3 4 4 4x20'
      - series: 'moneroo_rate_limited_total{datname="other"}'
        values: '7x24'
    alert_rule_test:
      - eval_time: 1m
        alertname: MonerooPayoutUnknown
      - eval_time: 2m
        alertname: MonerooPayoutUnknown
        exp_alerts:
          - exp_labels: {severity: critical, datname: shop}
            exp_annotations:
              summary: "2 moneroo payout(s) in shop have an unknown outcome"
              description: "SELECT id, reason FROM moneroo_needs_attention WHERE status = 'unknown'; look each up in Moneroo by reference, then moneroo_resolve, moneroo_retry or moneroo_cancel."
      - eval_time: 1m
        alertname: MonerooKeyRefused
        exp_alerts:
          - exp_labels: {severity: critical, datname: shop, cause: key_refused, reason: "Moneroo refused the secret key (HTTP 401 or 403)"}
            exp_annotations:
              summary: "Moneroo refuses the secret key used by shop"
              description: "Moneroo refused the secret key (HTTP 401 or 403). Install a valid key (moneroo.secret_key_file is re-read when it changes)."
      - eval_time: 9m
        alertname: MonerooAccountPaused
        exp_alerts: []
      - eval_time: 11m
        alertname: MonerooAccountPaused
        exp_alerts:
          - exp_labels: {severity: warning, datname: other, cause: moneroo_failing, reason: "Moneroo is failing"}
            exp_annotations:
              summary: "Every request to Moneroo from other has been paused for 10 minutes"
              description: "Moneroo is failing."
      - eval_time: 2m
        alertname: MonerooQueueStuck
      - eval_time: 3m
        alertname: MonerooQueueStuck
        exp_alerts:
          - exp_labels: {severity: warning, datname: shop}
            exp_annotations:
              summary: "A payout due in shop has waited 6m 40s to be sent"
              description: "SELECT * FROM moneroo_status; its last_error and pause_reason say why."
      - eval_time: 1m
        alertname: MonerooRateLimited
      - eval_time: 3m
        alertname: MonerooRateLimited
        exp_alerts:
          - exp_labels: {severity: warning, datname: shop}
            exp_annotations:
              summary: "Moneroo answered 429 (too many requests) to shop's account in the last 15 minutes"
              description: "Each 429 pauses every request for a minute. Check moneroo.rate_limit against the account's limit, and what else uses the key."
      - eval_time: 20m
        alertname: MonerooRateLimited
      - eval_time: 3m
        alertname: MonerooWorkerDown
        exp_alerts:
          - exp_labels: {severity: critical, datname: shop}
            exp_annotations:
              summary: "No moneroo worker serves shop"
              description: "Check moneroo.database and the server log; the launcher restarts a worker that stops."
EOF
out=$(promtool test rules "$D/alerts_test.yml" 2>&1)
ok $? "promtool test rules: each alert fires on its series after its delay, and only then" "$out"

# ---------------------------------------------------------------- payouts in every state
cluster_conf_append "" "# ---- 89_monitoring.sh ----" "moneroo.rate_limit = 0" \
    "moneroo.verify_min_interval = '500ms'" || bail "cannot append to postgresql.conf"
quiet_stack
cluster_restart >&2 || bail "the server does not restart"
wait_worker 20 >/dev/null || bail "the worker does not start"

run="m89-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# queue CASE NUMBER [AMOUNT [CURRENCY METHOD FIELD [SEND_AT]]]: one payout; prints its id
queue() {
    sql1 "INSERT INTO payouts (request, send_at) VALUES (jsonb_build_object(
            'amount', ${3:-500}, 'currency', '${4:-USD}', 'description', 'monitoring $run $1',
            'method', '${5:-moneroo_payout_demo}',
            'customer', jsonb_build_object('email', 'ops@example.com', 'first_name', 'Op', 'last_name', 'S'),
            'recipient', jsonb_build_object('${6:-account_number}', '$2')), ${7:-NULL}) RETURNING id"
}
status_of() { sql1 "SELECT status FROM payouts WHERE id = ${1:-0}"; }
wait_status() {  # wait_status ID STATUS: until the payout is in STATUS (20 s at most)
    local _
    for _ in $(seq 1 200); do [ "$(status_of "$1")" = "$2" ] && return 0; sleep 0.1; done
    return 1
}

mock_ctl POST /__mock/faults '{"kind": "status", "status": 422, "count": 1, "route": "initialize"}' >/dev/null
rejected=$(queue rejected 4149518161); wait_status "$rejected" rejected
mock_ctl POST /__mock/faults '{"kind": "status", "status": 500, "count": 1, "route": "initialize"}' >/dev/null
unknown=$(queue unknown 4149518161); wait_status "$unknown" unknown
success=$(queue success 4149518161); failed=$(queue failed 4149518162)
sent=$(queue sent 4149518163)    # Moneroo keeps it pending for ever: sent, verified again and again
wait_status "$success" success && wait_status "$failed" failed && wait_status "$sent" sent
sql -c "INSERT INTO moneroo_limits (currency, approval_above) VALUES ('USD', 1000)
        ON CONFLICT (currency) DO UPDATE SET approval_above = 1000" >/dev/null
held=$(queue held 4149518161 5000)
scheduled=$(queue scheduled 22951345020 700 XOF mtn_bj msisdn "now() + interval '1 day'")
is "$(status_of "$rejected") $(status_of "$unknown") $(status_of "$success") $(status_of "$failed") $(status_of "$sent") $(status_of "$held") $(status_of "$scheduled")" \
    "rejected unknown success failed sent held pending" "payouts in every state (422, 500, paid, failed, kept pending by Moneroo, held, scheduled)"

# A refused key: the worker's next request gets 401 and every request pauses;
# the payout it tried goes back to the queue, due and waiting.
mock_ctl POST /__mock/config '{"secret_key": "pvk_sandbox_revoked"}' >/dev/null
waiting=$(queue waiting 4149518161)
for _ in $(seq 1 200); do
    [ -n "$(sql1 "SELECT pause_reason FROM moneroo_status")" ] && [ "$(status_of "$waiting")" = pending ] && break
    sleep 0.1
done
is "$(sql1 "SELECT pause_reason FROM moneroo_status") / $(status_of "$waiting")" \
    "Moneroo refused the secret key (HTTP 401 or 403) / pending" "a refused key pauses every request; the payout waits, pending"
# the sent payout's verification comes due while nothing may be asked
sql -c "SET session_replication_role = replica" \
    -c "UPDATE payouts SET next_attempt_at = now() - interval '42 seconds' WHERE id = $sent" >/dev/null

# ---------------------------------------------------------------- the exporter
readme_role payouts_monitor | cluster_psql >/dev/null || bail "cannot create README's payouts_monitor"
readme_block "## Monitoring" sql 1 | cluster_psql >/dev/null || bail "cannot run README's Monitoring SQL"
EPORT=$(free_port "$PGPORT" "$MOCK_PORT")
DSN=$(printf '%s\n' "$DEFAULTS" | sed -n "s/^DATA_SOURCE_NAME='\(.*\)'$/\1/p")
user=$(printf '%s' "$DSN" | sed -n 's/.*user=\([^ ]*\).*/\1/p')
# the README's ARGS as they are, the test cluster's address for /run/postgresql
# shellcheck disable=SC2086
daemon_start "$D" exporter env "DATA_SOURCE_NAME=user=$user host=127.0.0.1 port=$PGPORT dbname=$PGDATABASE sslmode=disable" \
    prometheus-postgres-exporter $ARGS --web.listen-address="127.0.0.1:$EPORT" || bail "the exporter does not start"
wait_port "$EPORT" 20
ok $? "prometheus-postgres-exporter listens on 127.0.0.1:$EPORT, as README's $user" "$(tail -n 20 "$D/exporter.log" 2>/dev/null)"

# metrics: every sample of /metrics as "name{label="v",...} value", labels
# sorted, without the server label the exporter adds to every query's metric
metrics() {
    curl -fsS --noproxy '*' --max-time 30 "http://127.0.0.1:$EPORT/metrics" | python3 -c '
import re, sys
for line in sys.stdin:
    m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line.strip())
    if not m or line.startswith("#"):
        continue
    labels = sorted(l for l in re.findall(r"(\w+)=\"((?:[^\"\\]|\\.)*)\"", m.group(2) or "")
                    if l[0] != "server")
    value = float(m.group(3))
    # a whole number is printed whole (the exporter writes 3e15 as 3.000000000539775e+15)
    text = "%d" % value if value.is_integer() and abs(value) < 2 ** 53 else "%.15g" % value
    print("%s{%s} %s" % (m.group(1), ",".join("%s=\"%s\"" % l for l in labels), text))'
}
M=$(metrics)
# value NAME{LABELS}: that sample's value, or "none"
value() { printf '%s\n' "$M" | awk -v k="$1" 'index($0, k " ") == 1 { print $NF; f = 1 } END { if (!f) print "none" }'; }
db="datname=\"$PGDATABASE\""

is "$(value 'pg_exporter_last_scrape_error{}')" 0 "every query of the file ran without an error (pg_exporter_last_scrape_error 0)" \
    "$(grep -i 'error' "$D/exporter.log" | tail -n 5)"
is "$(printf '%s\n' "$M" | grep '^moneroo_payouts_in_state' | sort)" \
   "$(sql -c "SELECT format('moneroo_payouts_in_state{datname=\"%s\",status=\"%s\"} %s', current_database(), s, count(p.id))
              FROM unnest('{held,pending,sending,sent,success,failed,rejected,unknown,cancelled}'::text[]) s
              LEFT JOIN payouts p ON p.status = s GROUP BY s ORDER BY 1" | sort)" \
   "moneroo_payouts_in_state{status}: a count of payouts by state, for each of the nine"
is "$(printf '%s\n' "$M" | grep '^moneroo_open_' | sort)" \
   "$(sql -c "SELECT format('moneroo_open_%s{currency=\"%s\",datname=\"%s\"} %s', m, currency, current_database(), v)
              FROM (SELECT currency, sum(amount) AS amount, count(*) AS payouts FROM payouts
                    WHERE status IN ('held', 'pending', 'sending', 'sent', 'unknown') GROUP BY currency) o,
                   LATERAL (VALUES ('amount', o.amount), ('payouts', o.payouts)) AS x(m, v)" | sort)" \
   "moneroo_open_amount and moneroo_open_payouts per currency: what is not final yet, in USD and XOF"
ok "$(awk -v v="$(value "moneroo_open_amount{currency=\"XOF\",$db}")" 'BEGIN { exit !(v >= 700) }'; echo $?)" \
   "(the scheduled XOF payout is among them)"
is "$(value "moneroo_unknown_payouts{$db}")" "$(sql1 "SELECT count(*) FROM payouts WHERE status = 'unknown'")" \
   "moneroo_unknown_payouts: the unknown ones"
is "$(value "moneroo_account_paused{cause=\"key_refused\",$db,reason=\"Moneroo refused the secret key (HTTP 401 or 403)\"}")" 1 \
   "moneroo_account_paused{cause=\"key_refused\", reason}: 1, with moneroo_status's words" \
   "$(printf '%s\n' "$M" | grep '^moneroo_account')"
refused="cause=\"key_refused\",$db,reason=\"Moneroo refused the secret key (HTTP 401 or 403)\""
ok "$(awk -v v="$(value "moneroo_account_pause_remaining_seconds{$refused}")" 'BEGIN { exit !(v > 0 && v <= 600) }'; echo $?)" \
   "moneroo_account_pause_remaining_seconds: the pause's time left ($(value "moneroo_account_pause_remaining_seconds{$refused}") s)"
is "$(value "moneroo_worker_running{$db}")" 1 "moneroo_worker_running: 1"
ok "$(awk -v v="$(value "moneroo_requests_last_minute{$db}")" 'BEGIN { exit !(v >= 6) }'; echo $?)" \
   "moneroo_requests_last_minute counts the requests just made ($(value "moneroo_requests_last_minute{$db}"))"
ok "$(awk -v v="$(value "moneroo_queue_delay_seconds{$db}")" 'BEGIN { exit !(v > 0 && v < 120) }'; echo $?)" \
   "moneroo_queue_delay_seconds: the due payout waits ($(value "moneroo_queue_delay_seconds{$db}") s)"
ok "$(awk -v v="$(value "moneroo_verification_lag_seconds{$db}")" 'BEGIN { exit !(v >= 42 && v < 120) }'; echo $?)" \
   "moneroo_verification_lag_seconds: the overdue verification is late by 42 s and more ($(value "moneroo_verification_lag_seconds{$db}"))"
ok "$(awk -v v="$(value "moneroo_oldest_pending_seconds{$db}")" -v w="$(sql1 "SELECT extract(epoch FROM now() - oldest_pending) FROM moneroo_status")" \
      'BEGIN { exit !(v > 0 && v <= w) }'; echo $?)" \
   "moneroo_oldest_pending_seconds: the oldest pending payout's age ($(value "moneroo_oldest_pending_seconds{$db}") s)"

# ---------------------------------------------------------------- a new key
mock_ctl POST /__mock/config "{\"secret_key\": \"$MONEROO_TEST_KEY\"}" >/dev/null
cluster_reload
wait_status "$waiting" sent
is "$(status_of "$waiting")" sent "with the key accepted again and a reload, the waiting payout leaves"
M=$(metrics)
is "$(value "moneroo_account_paused{cause=\"\",$db,reason=\"\"}")" 0 "moneroo_account_paused: 0, with empty labels" \
   "$(printf '%s\n' "$M" | grep '^moneroo_account')"
is "$(value "moneroo_queue_delay_seconds{$db}")" 0 "moneroo_queue_delay_seconds: 0, nothing due waits"

# ---------------------------------------------------------------- a 429
limited=$(value "moneroo_rate_limited_total{$db}")
mock_ctl POST /__mock/faults '{"kind": "status", "status": 429, "count": 1, "route": "initialize"}' >/dev/null
throttled=$(queue throttled 4149518161)
for _ in $(seq 1 200); do
    [ "$(sql1 "SELECT rate_limited FROM moneroo_rate_info()")" != "$limited" ] && break
    sleep 0.1
done
M=$(metrics)
is "$(value "moneroo_rate_limited_total{$db}") $(status_of "$throttled")" "$((${limited%.*} + 1)) pending" \
   "a 429: moneroo_rate_limited_total counts it (from $limited), and the payout waits, pending"
ok "$(awk -v v="$(value "moneroo_rate_pause_remaining_seconds{$db}")" 'BEGIN { exit !(v > 30 && v <= 60) }'; echo $?)" \
   "moneroo_rate_pause_remaining_seconds: the minute of silence Moneroo asks for ($(value "moneroo_rate_pause_remaining_seconds{$db}") s)"

# ---------------------------------------------------------------- cost
# each query of the file with sequential scans off: payouts is read through
# an index (the state counts, the partial indexes of open payouts)
n=0; seq=""
while IFS= read -r -d '' q; do
    n=$((n + 1))
    plan=$(printf 'SET enable_seqscan = off;\nEXPLAIN %s;\n' "$q" | cluster_psql -At 2>&1)
    if grep -q 'Seq Scan on payouts' <<<"$plan"; then seq+="query $n: $plan"$'\n'; fi
done < <(awk '/^  query: \|$/ { if (q != "") printf "%s%c", q, 0; q = ""; inq = 1; next }
              inq && /^    / { q = q substr($0, 5) "\n"; next }
              { inq = 0 }
              END { if (q != "") printf "%s%c", q, 0 }' "$QUERIES")
is "$n" 5 "the file has five queries"
is "$seq" "" "none reads payouts through a sequential scan"

is "$(sql1 "SELECT count(*) FROM payouts WHERE request ->> 'description' LIKE 'monitoring $run %' AND status = 'pending' AND id NOT IN ($scheduled, $throttled)")" 0 \
   "(nothing of this script is left due)"
sql -c "SELECT moneroo_cancel(id) FROM payouts WHERE id IN ($held, $scheduled, $unknown, $throttled)" >/dev/null
