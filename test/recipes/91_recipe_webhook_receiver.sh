#!/usr/bin/env bash
# Proves: the README's Flask webhook receiver answers as its table says [fast, ~5 s].
# test/recipes/91_recipe_webhook_receiver.sh: the README's webhook receiver
# (Flask + psycopg, Debian 12's python3-flask and python3-psycopg), run as
# written, answers Moneroo as the README's table says.
#
# The receiver is the ```python block of README.md's Webhooks section, copied
# into a folder of the postgres OS user and started with `python3 -m flask
# run` on 127.0.0.1 as that user; it logs in as the README's `webhooks` role,
# created with the Security section's own SQL (and the Webhooks section's
# ALTER ROLE ... LOGIN).  curl then posts deliveries to it over HTTP, signed
# with openssl as Moneroo signs them, and each answer must be the one the
# README's table gives for the SQLSTATE of that case:
#   - a signed payout.success for a payout sent through the stack: 200, and
#     the payout is settled (success, asked of the mock), by role webhooks;
#   - a forged signature, no signature: 403, nothing asked of Moneroo;
#   - a signed event that is not a payout event (22023): 200;
#   - a signed event for a Moneroo id no payout carries (P0002): 200;
#   - Moneroo's verify failing (the mock answers 500): 500, payout unchanged.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.
set -uo pipefail

# shellcheck source=test/lib/recipes.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

tap_plan 16

D=$(recipe_dir recipe-webhook) || bail "cannot make the receiver's folder"

cleanup() {
    daemon_stop "$D" receiver
    sql -c "DROP OWNED BY webhooks; DROP ROLE webhooks" >/dev/null 2>&1
    mock_ctl DELETE /__mock/faults >/dev/null 2>&1
}
trap cleanup EXIT

webhook_stack 91_recipe_webhook_receiver.sh

# ---------------------------------------------------------------- the README's text
readme_block "## Webhooks" python | as_pg tee "$D/receiver.py" >/dev/null
grep -q 'moneroo_webhook' "$D/receiver.py"
ok $? "README.md's Webhooks section has the python receiver (extracted to $D/receiver.py)"

# The SQLSTATE -> answer table of the same section: the answers asserted below
# are the README's, so the table and the receiver must agree.
answer_for() {
    sed -n '/^## Webhooks/,/^## Security/p' "$README" |
        awk -F'|' -v state="$1" '{ s = $3; gsub(/[ `]/, "", s); if (s == state) { print $4; exit } }' |
        grep -o '[0-9][0-9][0-9]' | head -n 1
}

# The role: the Security section's SQL from "CREATE ROLE webhooks" to the end
# of its paragraph, and the login the Webhooks section gives it.
role_sql=$(readme_role webhooks)
login_sql=$(sed -n '/^## Webhooks/,/^## Security/p' "$README" | grep -o "ALTER ROLE webhooks LOGIN[^;]*;")
out=$(printf '%s\n%s\n' "$role_sql" "$login_sql" | cluster_psql 2>&1)
ok $? "the webhooks role, created as README.md's Security and Webhooks sections say" "$out" "$role_sql" "$login_sql"

# ---------------------------------------------------------------- the receiver
PORT=$(free_port "$PGPORT" "$MOCK_PORT")
daemon_start "$D" receiver env MONEROO_WEBHOOK_DSN="host=127.0.0.1 port=$PGPORT dbname=$PGDATABASE user=webhooks" \
    python3 -m flask --app "$D/receiver.py" run --host 127.0.0.1 --port "$PORT" ||
    bail "the receiver does not start"
wait_port "$PORT" 20
ok $? "the receiver listens on 127.0.0.1:$PORT (python3 -m flask run, as $PG_OS_USER)" \
    "$(tail -n 20 "$D/receiver.log" 2>/dev/null)"

# post LABEL BODY [SIGNATURE]: the receiver's HTTP status for this delivery
# (no third argument: no X-Moneroo-Signature header at all).
post() {
    local header=()
    [ $# -ge 3 ] && header=(-H "X-Moneroo-Signature: $3")
    curl -sS --noproxy '*' --max-time 10 -o /dev/null -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' "${header[@]}" --data-binary "$2" \
        "http://127.0.0.1:$PORT/moneroo/webhook"
}
event() { printf '{"event": "%s", "data": {"id": "%s", "amount": 500, "currency": "USD", "status": "%s"}}' "$1" "$2" "${1#*.}"; }
verifies_since() { mock_ctl GET "/__mock/journal?since=$1" | python3 -c '
import json, sys
print(" ".join(e["path"] for e in json.load(sys.stdin) if e["path"].endswith("/verify")))'; }
last_seq() { mock_ctl GET /__mock/journal | python3 -c 'import json, sys; print(max([e["seq"] for e in json.load(sys.stdin)] + [0]))'; }

# Two real payouts, sent through the stack to the mock.
transfer() {
    sql1 "SELECT id || ' ' || moneroo_id FROM moneroo_transfer('{\"amount\": 500, \"currency\": \"USD\",
        \"description\": \"script 91 $1\", \"method\": \"moneroo_payout_demo\",
        \"customer\": {\"email\": \"ada@example.com\", \"first_name\": \"Ada\", \"last_name\": \"Lovelace\"},
        \"recipient\": {\"account_number\": \"4149518161\"}}')"
}
read -r ID1 MID1 <<<"$(transfer settles)"
read -r ID2 MID2 <<<"$(transfer verify-fails)"
[ -n "${MID2:-}" ] || bail "moneroo_transfer did not send the payouts: $ID1 $ID2"
sleep 1.2   # past the mock's final_after: Moneroo now reports success for both

# ---------------------------------------------------------------- deliveries
seq0=$(last_seq)
body=$(event payout.success "$MID1")
is "$(post valid "$body" "$(sign "$body" "$WEBHOOK_SECRET")")" "$(answer_for '(returnstherow)')" \
    "a signed payout.success for a payout that was sent: the table's answer for a valid delivery (200)"
is "$(sql1 "SELECT status || '/' || moneroo_status FROM payouts WHERE id = $ID1")" "success/success" \
    "... and the payout is settled"
is "$(verifies_since "$seq0")" "/v1/payouts/$MID1/verify" "... by asking Moneroo (one GET .../verify)"
is "$(sql1 "SELECT actor FROM payout_events WHERE payout_id = $ID1 AND status = 'success'")" "webhooks" \
    "... as the webhooks role (payout_events names it)"

seq0=$(last_seq)
body=$(event payout.success "$MID2")
is "$(post forged "$body" "$(sign "$body" not-the-secret)")" "$(answer_for 28000)" \
    "a delivery signed with another secret: the table's answer for 28000 (403)"
is "$(post unsigned "$body")" "403" "a delivery without X-Moneroo-Signature: 403"
is "$(verifies_since "$seq0")" "" "... neither asked anything of Moneroo"

not_payout=$(event payment.success "$MID2")
is "$(post not-payout "$not_payout" "$(sign "$not_payout" "$WEBHOOK_SECRET")")" "$(answer_for 22023)" \
    "a signed payment.success (not a payout event): the table's answer for 22023"
is "$(answer_for 22023)" "200" "... which is 200: Moneroo would only deliver the same body again"
unknown=$(event payout.success t91nosuchpayout)
is "$(post unknown "$unknown" "$(sign "$unknown" "$WEBHOOK_SECRET")")" "$(answer_for P0002)" \
    "a signed event for a Moneroo id no payout carries: the table's answer for P0002 (200)"

mock_ctl POST /__mock/faults "{\"kind\": \"status\", \"status\": 500, \"route\": \"verify\", \"id\": \"$MID2\"}" >/dev/null ||
    bail "cannot queue the verify fault"
is "$(post verify-fails "$body" "$(sign "$body" "$WEBHOOK_SECRET")")" "$(answer_for other)" \
    "a signed payout.success while Moneroo's verify answers 500: the table's 500, so Moneroo delivers it again"
is "$(sql1 "SELECT status FROM payouts WHERE id = $ID2")" "sent" "... and the payout is unchanged (sent)"
is "$(post redelivered "$body" "$(sign "$body" "$WEBHOOK_SECRET")") $(sql1 "SELECT status FROM payouts WHERE id = $ID2")" \
    "200 success" "Moneroo's next delivery of it, once verify answers: 200, and the payout is settled"

exit 0
