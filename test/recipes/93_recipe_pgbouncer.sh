#!/usr/bin/env bash
# Proves: moneroo through PgBouncer does what the README says, and only that [fast, ~5 s].
# test/recipes/93_recipe_pgbouncer.sh: moneroo through PgBouncer in
# transaction pooling mode (Debian 12's pgbouncer, 1.18), as README.md's
# "Through a connection pooler" says: what works, and what does not.
#
# PgBouncer runs as the postgres OS user, its configuration, auth file and
# socket in a folder of that user, on 127.0.0.1 and a free port, in front of
# the stack's server, with ONE server connection (default_pool_size = 1), so
# that every client shares it, as busy clients of a real pool end up doing.
# Through it, with psql and with psycopg (prepare_threshold=None):
#   - INSERT INTO payouts: the worker is woken by the commit and sends it;
#   - moneroo_transfer without a key, and with one, twice: one payout, one
#     initialize at the mock for it, the same row both times;
#   - moneroo_webhook: a signed delivery settles its payout.
# And what a transaction pooler breaks:
#   - a session SET ROLE stays on the server connection, and the next
#     client's payouts get that role as created_by (four eyes trusts
#     created_by); SET LOCAL ROLE inside a transaction does not leak;
#   - protocol-level prepared statements (psycopg's prepare_threshold=0):
#     two clients on one server connection clash (42P05), since PgBouncer
#     1.18 does not track them; 1.21 and later (trixie's, sid's) track them
#     with max_prepared_statements, and both clients' calls go through.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.
set -uo pipefail

# shellcheck source=test/lib/recipes.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

tap_plan 14

D=$(recipe_dir recipe-pgbouncer) || bail "cannot make PgBouncer's folder"

cleanup() {
    daemon_stop "$D" pgbouncer
    sql -c "DROP OWNED BY payouts_writer" -c "DROP ROLE payouts_writer" >/dev/null 2>&1
}
trap cleanup EXIT

webhook_stack 93_recipe_pgbouncer.sh
readme_role payouts_writer | cluster_psql >/dev/null || bail "cannot create README.md's payouts_writer"

# ---------------------------------------------------------------- PgBouncer
BPORT=$(free_port "$PGPORT" "$MOCK_PORT")
# 1.21 and later track protocol-level prepared statements when
# max_prepared_statements is above 0 (its default differs between versions).
PGB_VERSION=$(pgbouncer --version | sed -n 's/^PgBouncer \([0-9.]*\).*/\1/p')
if printf '1.21\n%s\n' "$PGB_VERSION" | sort -V -C; then
    TRACKS_PREPARED=1; PREPARED_CONF="max_prepared_statements = 100"
else
    TRACKS_PREPARED=0; PREPARED_CONF=""
fi
as_pg tee "$D/pgbouncer.ini" >/dev/null <<EOF
[databases]
$PGDATABASE = host=127.0.0.1 port=$PGPORT dbname=$PGDATABASE

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BPORT
unix_socket_dir = $D
auth_type = trust
auth_file = $D/userlist.txt
pool_mode = transaction
default_pool_size = 1
max_client_conn = 50
$PREPARED_CONF
EOF
echo '"postgres" ""' | as_pg tee "$D/userlist.txt" >/dev/null
daemon_start "$D" pgbouncer pgbouncer "$D/pgbouncer.ini" || bail "pgbouncer does not start"
wait_port "$BPORT" 20
ok $? "pgbouncer (transaction pooling, one server connection) listens on 127.0.0.1:$BPORT, as $PG_OS_USER" \
    "$(tail -n 20 "$D/pgbouncer.log" 2>/dev/null)"

# bq SQL: one psql session through PgBouncer (its statements one by one),
# unaligned, tuples only.
bq() { printf '%s\n' "$1" | "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$BPORT" -U postgres -d "$PGDATABASE" 2>&1; }
request() {
    printf '{"amount": 500, "currency": "USD", "description": "script 93 %s", "method": "moneroo_payout_demo", "customer": {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"}, "recipient": {"account_number": "4149518161"}}' "$1"
}
initializes_of() { mock_ctl GET /__mock/journal | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if e["path"] == "/v1/payouts/initialize" and e["reference"] == sys.argv[1]))' "$1"; }

# ---------------------------------------------------------------- what works
id=$(bq "INSERT INTO payouts (request) VALUES ('$(request queued)') RETURNING id")
for _ in $(seq 1 100); do [ "$(sql1 "SELECT status FROM payouts WHERE id = ${id:-0}")" = sent ] && break; sleep 0.1; done
is "$(sql1 "SELECT status || ' ' || (moneroo_id IS NOT NULL) FROM payouts WHERE id = ${id:-0}")" "sent true" \
    "INSERT INTO payouts through PgBouncer: the worker, woken by the commit, sends it"

is "$(bq "SELECT status FROM moneroo_transfer('$(request transfer)')")" "sent" \
    "moneroo_transfer through PgBouncer sends its payout and returns the row"

first=$(bq "SELECT id || ' ' || reference FROM moneroo_transfer('$(request keyed)', 't93-order-1')")
second=$(bq "SELECT id || ' ' || reference FROM moneroo_transfer('$(request keyed)', 't93-order-1')")
is "$second" "$first" "moneroo_transfer with an idempotency key, twice through PgBouncer: the same row"
is "$(initializes_of "${first#* }")" 1 "... and one initialize at Moneroo for it"

mid=$(sql1 "SELECT moneroo_id FROM payouts WHERE id = ${first%% *}")
sleep 1   # past the mock's final_after: Moneroo reports success
body="{\"event\": \"payout.success\", \"data\": {\"id\": \"$mid\", \"status\": \"success\"}}"
is "$(bq "SELECT status FROM moneroo_webhook('$body', '$(sign "$body" "$WEBHOOK_SECRET")')")" "success" \
    "moneroo_webhook through PgBouncer settles its payout"

# psycopg through PgBouncer: its own client, as the postgres OS user.
as_pg tee "$D/client.py" >/dev/null <<'EOF'
import sys
import psycopg

dsn, mode, request = sys.argv[1], sys.argv[2], sys.argv[3]
threshold = None if mode == "unprepared" else 0      # 0: every statement prepared at once
try:
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=threshold) as db:
        rows = [db.execute("SELECT status, idempotency_key FROM moneroo_transfer(%s::jsonb, %s)",
                           (request, key)).fetchone() for key in ("t93-py-" + mode, "t93-py-" + mode)]
        print(" ".join(r[0] for r in rows))
except psycopg.Error as e:
    print("ERROR", e.sqlstate)
EOF
py() { as_pg python3 "$D/client.py" "host=127.0.0.1 port=$BPORT dbname=$PGDATABASE user=postgres" "$1" "$(request "psycopg $1")" 2>&1; }
is "$(py unprepared)" "sent sent" "psycopg (prepare_threshold=None) through PgBouncer: moneroo_transfer with a key, twice"

# ---------------------------------------------------------------- what does not
# Prepared statements: the first client leaves _pg3_0 on the server
# connection, the second one's Parse of _pg3_0 lands on the same connection.
first_prepared=$(py prepared-a)
if [ "$TRACKS_PREPARED" = 1 ]; then
    is "$(py prepared-b)" "sent sent" \
        "psycopg with prepare_threshold=0: PgBouncer $PGB_VERSION tracks the first client's prepared statement, no clash" \
        "first client: $first_prepared"
else
    is "$(py prepared-b)" "ERROR 42P05" \
        "psycopg with prepare_threshold=0: a second client clashes with the first one's prepared statement (42P05)" \
        "first client: $first_prepared"
fi
bq "DEALLOCATE ALL" >/dev/null

# A session SET ROLE outlives its client: the server connection keeps it.
bq "SET ROLE payouts_writer" >/dev/null
is "$(bq "INSERT INTO payouts (request) VALUES ('$(request leaked)') RETURNING created_by")" "payouts_writer" \
    "a session SET ROLE by one client: the next client's payout is created_by that role (it leaked)"
bq "RESET ROLE" >/dev/null
is "$(bq "SELECT current_user")" "postgres" "... until someone resets it"

# SET LOCAL ROLE ends with its transaction.
is "$(bq "BEGIN; SET LOCAL ROLE payouts_writer;
          INSERT INTO payouts (request) VALUES ('$(request local)') RETURNING created_by; COMMIT")" "payouts_writer" \
    "SET LOCAL ROLE inside a transaction applies to its payout"
is "$(bq "INSERT INTO payouts (request) VALUES ('$(request after-local)') RETURNING created_by")" "postgres" \
    "... and not to the next client's"

# Nothing above was sent twice.
is "$(mock_sent_twice)" 0 "no payout reached Moneroo twice"
is "$(sql1 "SELECT count(*) FROM payouts WHERE request ->> 'description' LIKE 'script 93 psycopg%'")" \
    $((2 + TRACKS_PREPARED)) \
    "psycopg's keyed calls made one payout per key (none for a client refused with 42P05)"

exit 0
