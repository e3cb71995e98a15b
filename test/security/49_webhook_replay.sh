#!/usr/bin/env bash
# Proves: replayed webhooks cost no requests from the rate budget [fast, ~20 s].
# test/security/49_webhook_replay.sh: replayed webhooks cost no requests (1.3).
#
# A signed webhook body has no timestamp or nonce: whoever sees deliveries
# can replay one.  Each delivery for an unsettled payout, or for an id no
# row holds, used to ask Moneroo once, from the account's one allowance.
# Here a signed delivery is replayed 20 times in a row:
#   1. for a payout that is sent (Moneroo keeps it pending): Moneroo is asked
#      once; the replays schedule one verification by the worker 10 s after
#      that ask, which it makes (with verify_min_interval at 10 min, nothing
#      else would ask before then);
#   2. for an id no payout carries: Moneroo is asked once (P0002), the
#      replays are refused at once (53400, answer 503) and ask nothing.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.  test/run.sh restores postgresql.conf afterwards.
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

tap_plan 5

RUN="t49-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PY=$(cluster_python)

# verifies ID: how many verify requests for Moneroo id ID reached the mock
verifies() {
    mock_ctl GET /__mock/journal | "$PY" -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if e["path"] == "/v1/payouts/%s/verify" % sys.argv[1]))' "$1"
}
# deliver_times N BODY: N deliveries of BODY, signed; the SQLSTATEs, one a line ("ok" for none)
deliver_times() {
    local sig
    sig=$(sign "$2" "$WEBHOOK_SECRET")
    cluster_psql -qAt -v body="$2" -v sig="$sig" -v n="$1" <<'SQL'
SET client_min_messages = error;
SET t49.body = :'body';
SET t49.sig = :'sig';
SET t49.n = :'n';
CREATE TEMP TABLE t49_states (n int, state text);
DO $$
DECLARE
    st text;
BEGIN
    FOR i IN 1 .. current_setting('t49.n')::int LOOP
        BEGIN
            PERFORM moneroo_webhook(current_setting('t49.body'), current_setting('t49.sig'));
            st := 'ok';
        EXCEPTION WHEN OTHERS THEN
            st := SQLSTATE;
        END;
        INSERT INTO t49_states VALUES (i, st);
    END LOOP;
END
$$;
SELECT state || ' x' || count(*) FROM t49_states GROUP BY state ORDER BY min(n);
SQL
}
event() { printf '{"event": "%s", "data": {"id": "%s", "status": "pending"}}' "$1" "$2"; }

webhook_stack "49_webhook_replay.sh"
mock_ctl POST /__mock/reset '{}' >/dev/null || bail "cannot reset the mock"

# ---------------------------------------------------------------- 1. a sent payout
sql -q -c "INSERT INTO payouts (request) VALUES (jsonb_build_object(
    'amount', 700, 'currency', 'USD', 'description', '$RUN sent', 'method', 'moneroo_payout_demo',
    'customer', jsonb_build_object('email', 't49@example.com', 'first_name', 'Re', 'last_name', 'Play'),
    'recipient', jsonb_build_object('account_number', '4149518163')))"
for _ in $(seq 1 100); do
    mid=$(sql1 "SELECT moneroo_id FROM payouts WHERE request ->> 'description' = '$RUN sent' AND status = 'sent'")
    [ -n "$mid" ] && break
    sleep 0.2
done
[ -n "$mid" ] || bail "the payout was not sent"
before=$(verifies "$mid")
states=$(deliver_times 20 "$(event payout.pending "$mid")" 2>&1 | tr '\n' ' ')
is "$(( $(verifies "$mid") - before ))/$states" "1/ok x20 " \
    "20 deliveries of one signed webhook for a sent payout ask Moneroo once, and each answers with the payout"
is "$(sql1 "SELECT status = 'sent' AND next_attempt_at <= now() + interval '10 s' FROM payouts WHERE moneroo_id = '$mid'")" "t" \
    "the replays leave one verification to the worker, 10 s after the ask (verify_min_interval is 10 min)"
deadline=$((SECONDS + 25))
until [ "$(( $(verifies "$mid") - before ))" -ge 2 ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.5; done
is "$(( $(verifies "$mid") - before ))" "2" "the worker makes that verification: a delivery with news settles the payout then"

# ---------------------------------------------------------------- 2. an id no payout carries
nosuch="${RUN}nosuch"
states=$(deliver_times 20 "$(event payout.success "$nosuch")" 2>&1 | tr '\n' ' ')
is "$states" "P0002 x1 53400 x19 " \
    "20 deliveries for an id no payout carries: the first is answered 'no payout' (P0002), the others 'later' (53400)"
is "$(verifies "$nosuch")" "1" "... and Moneroo was asked about it once"
