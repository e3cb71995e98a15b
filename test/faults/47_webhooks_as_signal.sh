#!/usr/bin/env bash
# Proves: once webhooks arrive, polls become the safety net (the rate budget) [fast, ~20 s].
# test/faults/47_webhooks_as_signal.sh: once webhooks arrive, polls are the
# safety net (1.2, the rate budget).
#
# Every verification spends the rate limit that payouts waiting to leave
# need.  Without webhooks the worker polls a sent payout at
# moneroo.verify_min_interval, doubling; once a signed webhook has come in
# (within the last 15 minutes), each webhook has its payout verified once,
# and the worker's own first poll of a payout waits
# moneroo.verify_max_interval: the safety net for a webhook that never comes
# (Moneroo's advice: never rely on webhooks alone).  Here min = 1 s and
# max = 6 s:
#   A  sent before any webhook: polled (twice or more in 4 s); then its
#      webhook: one verify, and Moneroo's answer (still pending) wins;
#   B  sent after: not polled in its first 4 s; its webhook never comes,
#      and the safety-net poll settles it (one verify in all);
#   C  sent after, its webhook comes: one verify settles it, and nothing
#      polls it afterwards: 2 requests for the payout in all.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

tap_plan 10

cleanup() {
    sql -c "ALTER SYSTEM RESET moneroo.verify_min_interval" -c "ALTER SYSTEM RESET moneroo.verify_max_interval" \
        -c "SELECT pg_reload_conf()" >/dev/null 2>&1
}
trap cleanup EXIT

webhook_stack 47_webhooks_as_signal.sh
sql -c "ALTER SYSTEM SET moneroo.verify_min_interval = '1s'" -c "ALTER SYSTEM SET moneroo.verify_max_interval = '6s'" \
    -c "SELECT pg_reload_conf()" >/dev/null || bail "cannot set the verification intervals"

RUN="t47-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
queue_one() {   # queue_one ACCOUNT TAG: the new payout's id
    sql1 "INSERT INTO payouts (request) VALUES ('{\"amount\": 800, \"currency\": \"USD\",
          \"description\": \"$RUN $2\", \"method\": \"moneroo_payout_demo\",
          \"customer\": {\"email\": \"signal@example.com\", \"first_name\": \"Web\", \"last_name\": \"Hook\"},
          \"recipient\": {\"account_number\": \"$1\"}}') RETURNING id"
}
status() { sql1 "SELECT status FROM payouts WHERE id = $1"; }
wait_until() {   # wait_until SECONDS SQL_CONDITION
    local deadline=$((SECONDS + $1))
    until [ "$(sql1 "SELECT ($2)")" = t ]; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 0.2; done
}
verifies() {   # verifications of payout ID the mock received
    sql1 "SELECT count(*) FROM mock.journal() j
          WHERE j ->> 'method' = 'GET'
            AND j ->> 'path' = '/v1/payouts/' || (SELECT moneroo_id FROM payouts WHERE id = $1) || '/verify'"
}
webhook() {   # webhook ID EVENT: delivered to moneroo_webhook, signed; prints the payout's status
    local body
    body="{\"event\": \"$2\", \"data\": {\"id\": \"$(sql1 "SELECT moneroo_id FROM payouts WHERE id = $1")\"}}"
    printf "SELECT status FROM moneroo_webhook(:'body', :'sig');\n" |
        cluster_psql -At -v body="$body" -v sig="$(sign "$body" "$WEBHOOK_SECRET")" 2>&1
}

# ---------------------------------------------------------------- A: no webhook yet
a=$(queue_one 4149518163 A)
wait_until 10 "(SELECT status FROM payouts WHERE id = $a) = 'sent'" || bail "payout A was not sent: $(status "$a")"
sleep 4
n=$(verifies "$a")
ok "$([ "${n:-0}" -ge 2 ]; echo $?)" "before any webhook, the worker polls a sent payout (A: $n verifications in its first 4 s)"
is "$(webhook "$a" payout.success)/$(( $(verifies "$a") - n ))" "sent/1" \
    "a signed webhook for A has it verified once, and Moneroo's answer (still pending) wins over the body"

# ---------------------------------------------------------------- B: its webhook never comes
b=$(queue_one 4149518161 B)
wait_until 10 "(SELECT status FROM payouts WHERE id = $b) = 'sent'" || bail "payout B was not sent: $(status "$b")"
is "$(sql1 "SELECT round(extract(epoch FROM next_attempt_at - sent_at)) FROM payouts WHERE id = $b")" "6" \
    "once webhooks arrive, a new payout's first poll waits moneroo.verify_max_interval (6 s), not verify_min_interval"
sleep 4
is "$(verifies "$b")" "0" "nothing polls B in its first 4 s, though Moneroo settled it long ago"
wait_until 10 "(SELECT status FROM payouts WHERE id = $b) = 'success'"
ok $? "B's webhook never comes: the safety-net poll settles it" "status: $(status "$b")"
is "$(verifies "$b")" "1" "... with one verification"

# ---------------------------------------------------------------- C: its webhook comes
c=$(queue_one 4149518161 C)
wait_until 10 "(SELECT status FROM payouts WHERE id = $c) = 'sent'" || bail "payout C was not sent: $(status "$c")"
wait_until 10 "EXISTS (SELECT FROM mock.payouts() p WHERE p ->> 'id' = (SELECT moneroo_id FROM payouts WHERE id = $c)
                       AND p ->> 'status' = 'success')" || bail "the mock did not settle payout C"
is "$(webhook "$c" payout.success)" "success" "C's webhook settles it at once"
sleep 7
is "$(verifies "$c")" "1" "one verification in all: nothing polls a settled payout"
is "$(sql1 "SELECT count(*) FROM mock.journal() j WHERE j -> 'body' ->> 'description' = '$RUN C'
                                                   OR j ->> 'path' LIKE '%' || (SELECT moneroo_id FROM payouts WHERE id = $c) || '%'")" "2" \
    "C cost two requests of the rate limit: its initialize and the webhook's verify"
is "$(mock_sent_twice)" "0" "nothing was created twice at Moneroo"
