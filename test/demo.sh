#!/usr/bin/env bash
# test/demo.sh: see moneroo work, on a fresh Debian 12 machine, in one command.
#
#   bash test/demo.sh           # as root: installs, builds, runs, cleans up
#   bash test/demo.sh --check   # unattended: no screen refresh, exits non-zero
#                               # unless every payout ends where it should
#
# It starts a throwaway PostgreSQL ($PG_MAJOR, 15 by default) with moneroo preloaded and a local
# sandbox Moneroo API (test/mock/moneroo_mock.py), sends payouts both ways
# (moneroo_transfer and INSERT), and shows them moving through their states.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
# a cluster of our own, whatever the caller's environment points at
unset WORK PGDATA PGHOST PGPORT PGUSER MOCK_PORT MOCK_URL SERVER_LOG MOCK_LOG MOCK_SCRIPT \
    CLUSTER_EXTRA_CONF KEEP
CHECK=0
[ "${1:-}" = --check ] && CHECK=1
[ -t 1 ] || CHECK=1

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/${PG_MAJOR:-15}/bin/pg_config}   # test/cassert.sh sets its own
if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
export PGDATABASE=moneroo_demo STACK_EXTENSIONS=moneroo

# shellcheck source=test/lib/build.sh
. "$REPO/test/lib/build.sh"
# shellcheck source=test/lib/cluster.sh
. "$REPO/test/lib/cluster.sh"

echo "== installing and building (quiet unless something fails)"
install_packages >/dev/null
build_extension >/dev/null

work_create "$REPO" moneroo-demo
trap stack_down EXIT
echo "== starting PostgreSQL with moneroo preloaded, and the local sandbox API"
stack_up "moneroo.database = '$PGDATABASE'" \
         "moneroo.verify_min_interval = '1s'" \
         "moneroo.verify_max_interval = '2s'" >/dev/null
# slow the sandbox down so each state is visible for a moment
mock_ctl POST /__mock/config '{"pending_after": 2, "final_after": 5}' >/dev/null

psql_demo() { cluster_psql -X -q -v ON_ERROR_STOP=1 "$@"; }

show() {
    psql_demo -c "SELECT id, status, moneroo_status, moneroo_id, amount, currency,
                         request->'recipient'->>'account_number' AS recipient, attempts,
                         left(coalesce(last_error, ''), 50) AS last_error
                  FROM payouts ORDER BY id" \
              -c "SELECT worker_running, pending, sending, sent, success, failed, rejected, unknown,
                         requests_last_minute FROM moneroo_status"
}

echo
echo "== 1. moneroo_transfer sends one payout now and returns its row"
psql_demo <<'SQL'
SELECT id, status, moneroo_id, moneroo_status
FROM moneroo_transfer('{"amount": 500, "currency": "USD", "description": "Refund of order 1042",
                        "method": "moneroo_payout_demo",
                        "customer": {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"},
                        "recipient": {"account_number": "4149518161"}}');
SQL

echo "== 2. a bad request is refused before anything is sent"
psql_demo -c "SELECT moneroo_transfer('{\"amount\": 12.5, \"currency\": \"USD\"}')" 2>&1 |
    sed 's/^/   /' || true

echo "== 3. INSERT queues payouts; the worker sends them when the transaction commits"
psql_demo <<'SQL'
INSERT INTO payouts (request)
SELECT jsonb_build_object(
         'amount', 100 * n, 'currency', 'USD', 'method', 'moneroo_payout_demo',
         'description', 'Salary ' || who,
         'customer', jsonb_build_object('email', lower(who) || '@example.com',
                                        'first_name', who, 'last_name', 'Demo'),
         'recipient', jsonb_build_object('account_number', number))
FROM (VALUES (1, 'Grace', '4149518161'),   -- the sandbox pays it
             (2, 'Alan',  '4149518162'),   -- the sandbox fails it
             (3, 'Edsger','4149518163'))   -- the sandbox leaves it pending
     AS t(n, who, number);
SQL

echo "== 4. watching them move: pending -> sending -> sent -> success | failed"
for i in $(seq 1 10); do
    if [ "$CHECK" = 0 ]; then clear; echo "moneroo demo: second $i of 10 (Ctrl-C stops it)"; fi
    show
    sleep 1
done

echo
echo "== what happened"
outcome=$(psql_demo -At -c "
    SELECT string_agg(request->'recipient'->>'account_number' || '=' || status, ' ' ORDER BY id)
    FROM payouts")
echo "   $outcome"

cat <<'TXT'

== to pay through your real Moneroo sandbox
   1. In postgresql.conf:  shared_preload_libraries = 'moneroo'
                            moneroo.database = 'yourdb'
                            moneroo.secret_key_file = '/etc/postgresql/moneroo.key'  (chmod 600, owned by postgres)
      (moneroo.api_url defaults to https://api.moneroo.io; a sandbox key selects the sandbox)
   2. Restart PostgreSQL, then in yourdb:  CREATE EXTENSION moneroo;
   3. SELECT * FROM moneroo_transfer('{...}');  or  INSERT INTO payouts (request) VALUES ('{...}');
   See README.md for everything else. The demo cluster is now removed.
TXT

if [ "$CHECK" = 1 ]; then
    expected="4149518161=success 4149518161=success 4149518162=failed 4149518163=sent"
    if [ "$outcome" != "$expected" ]; then
        echo "demo check FAILED: expected '$expected'" >&2
        exit 1
    fi
    echo "demo check passed"
fi
