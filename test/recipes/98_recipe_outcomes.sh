#!/usr/bin/env bash
# Proves: README's "Reacting to outcomes" handler and psycopg LISTEN loop work as written [fast, ~20 s].
# test/recipes/98_recipe_outcomes.sh: README's "Reacting to outcomes" (1.3),
# run as written.
#   - the SQL block, run as the Security section's payouts_listener role (the
#     owner of a schema shop with orders and an outbox): its handler marks
#     order 1042 refunded when its refund payout succeeds and 1043
#     refund_failed when its payout fails, each outbox message once;
#   - the python block (Debian's python3-psycopg), as that role's login: it
#     prints every event after its start once, in order; stopped, it misses
#     nothing: started again, it goes on from the event it saved.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.
set -uo pipefail

# shellcheck source=test/lib/recipes.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

tap_plan 8

D=$(recipe_dir recipe-outcomes) || bail "cannot make the listener's folder"

cleanup() {
    daemon_stop "$D" listener
    sql -c "SELECT moneroo_unsubscribe('refunds')" >/dev/null 2>&1
    sql -c "DROP SCHEMA IF EXISTS shop CASCADE; DROP OWNED BY payouts_listener; DROP ROLE payouts_listener" >/dev/null 2>&1
}
trap cleanup EXIT

role_sql=$(readme_role payouts_listener)
out=$(printf '%s\nALTER ROLE payouts_listener LOGIN;\n' "$role_sql" | cluster_psql 2>&1)
ok $? "the payouts_listener role, as README.md's Security section creates it" "$out" "$role_sql"

handler_sql=$(readme_block "## Reacting to outcomes" sql)
out=$( { cat <<'SQL'
CREATE SCHEMA shop AUTHORIZATION payouts_listener;
SET ROLE payouts_listener;
CREATE TABLE shop.orders (id bigint PRIMARY KEY, status text NOT NULL);
CREATE TABLE shop.outbox (order_id bigint, message text, n bigint GENERATED ALWAYS AS IDENTITY);
INSERT INTO shop.orders VALUES (1042, 'refunding'), (1043, 'refunding');
SQL
printf '%s\n' "$handler_sql"; } | cluster_psql 2>&1)
ok $? "README's handler and its subscription, run as payouts_listener" "$out" "$handler_sql"

refund() {
    sql -c "INSERT INTO payouts (request) VALUES (jsonb_build_object('amount', 50, 'currency', 'USD',
        'description', 'Refund of order $1', 'method', 'moneroo_payout_demo',
        'customer', jsonb_build_object('email', 'r@example.com', 'first_name', 'Re', 'last_name', 'Fund'),
        'recipient', jsonb_build_object('account_number', '$2'),
        'metadata', jsonb_build_object('order_id', '$1'))) RETURNING id"
}

readme_block "## Reacting to outcomes" python | as_pg tee "$D/listener.py" >/dev/null
daemon_start "$D" listener env MONEROO_LISTENER_DSN="host=127.0.0.1 port=$PGPORT dbname=$PGDATABASE user=payouts_listener" \
    "$(cluster_python)" listener.py
ok $? "README's listener starts (python3 listener.py, as $PG_OS_USER)"
sleep 1

p1=$(refund 1042 4149518161)
p2=$(refund 1043 4149518162)
settled() {
    sql -c "SELECT mock.wait_for(\$\$ (SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM shop.orders)
                                     = '1042:refunded 1043:refund_failed' \$\$, 30)"
}
is "$(settled)" t "the handler marks 1042 refunded and 1043 refund_failed" \
    "$(sql -c "SELECT * FROM shop.orders")"
is "$(sql -c "SELECT string_agg(order_id || ' ' || message, ', ' ORDER BY n) FROM shop.outbox")" \
    "1042 refund success, 1043 refund failed" "one outbox message per outcome"

# the events of both payouts, as the listener printed them
events_of() {
    sql -c "SELECT string_agg(id || ' ' || payout_id || ' ' || status, E'\n' ORDER BY id)
            FROM payout_events WHERE payout_id IN ($1)"
}
printed_of() {
    awk -v ids=" $1 " 'index(ids, " " $2 " ")' "$D/listener.log"
}
wait_printed() {
    local deadline=$((SECONDS + 20))
    until [ "$(printed_of "$2")" = "$(events_of "$1")" ]; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
wait_printed "$p1, $p2" "$p1 $p2"
ok $? "the listener printed every event of both payouts once, in order" \
    "$(events_of "$p1, $p2")" "--- printed:" "$(cat "$D/listener.log")"

daemon_stop "$D" listener
p3=$(refund 1044 4149518161)
sql -c "SELECT mock.wait_for(\$\$ (SELECT status FROM payouts WHERE id = $p3) = 'success' \$\$, 20)" >/dev/null
daemon_start "$D" listener env MONEROO_LISTENER_DSN="host=127.0.0.1 port=$PGPORT dbname=$PGDATABASE user=payouts_listener" \
    "$(cluster_python)" listener.py
ok $? "stopped while a payout was sent, the listener starts again"
wait_printed "$p3" "$p3"
ok $? "it prints the events it missed, once, from where it stopped" "$(events_of "$p3")" "--- printed:" "$(cat "$D/listener.log")"
