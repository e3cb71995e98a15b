#!/usr/bin/env bash
# Proves: a daily limit holds exactly with 16 sessions queueing at once [fast, ~5 s].
# test/faults/52_daily_limit_race.sh: a daily limit holds exactly when 16
# sessions queue payouts at once.
#
# moneroo_limits gives USD a daily_limit with room for exactly ROOM payouts
# of AMOUNT above what the last 24 hours already used.  pgbench runs 16
# clients at once, each committing transactions of two INSERTs (64 payouts,
# 4 times the room): exactly ROOM payouts go (pending or further) and every
# other one is held, with last_error naming the daily limit; no transaction
# failed.  Then the same with every client inserting one payout per
# transaction.  Then a moneroo_transfer while another transaction keeps the
# currency's lock: it fails after the worker's lock_timeout.  The held
# payouts are cancelled and the limit removed at the end.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.
set -uo pipefail

# shellcheck source=test/lib/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"

PLAN=9
AMOUNT=100
ROOM=10
D=$(mktemp -d /tmp/moneroo-race.XXXXXX)
chmod 755 "$D"

tap_plan "$PLAN"

sql1() { printf '%s\n' "$1" | cluster_psql -At 2>&1; }
pg() { "$PGBIN/$1" -h "$PGHOST" -p "$PGPORT" -U postgres "${@:2}"; }

restore() {
    set +e
    sql1 "SELECT moneroo_cancel(id) FROM payouts WHERE status = 'held' AND request -> 'metadata' ->> 'case' LIKE 'race52-%';
          DELETE FROM moneroo_limits WHERE currency = 'USD';" >/dev/null
    rm -rf "$D"
}
trap restore EXIT

request() {
    printf '{"amount": %d, "currency": "USD", "description": "daily limit race", "method": "moneroo_payout_demo", "customer": {"email": "race@example.com", "first_name": "Ra", "last_name": "Ce"}, "recipient": {"account_number": "4149518161"}, "metadata": {"case": "%s"}}' "$AMOUNT" "$1"
}

# race TAG INSERTS_PER_TRANSACTION TRANSACTIONS_PER_CLIENT
race() {
    local tag=$1 per_txn=$2 txns=$3 i
    {
        echo "BEGIN;"
        for ((i = 0; i < per_txn; i++)); do
            echo "INSERT INTO payouts (request) VALUES ('$(request "$tag")');"
        done
        echo "COMMIT;"
    } >"$D/$tag.sql"
    sql1 "DELETE FROM moneroo_limits WHERE currency = 'USD';
          INSERT INTO moneroo_limits (currency, daily_limit)
          SELECT 'USD', coalesce(sum(amount), 0) + $ROOM * $AMOUNT FROM payouts
          WHERE currency = 'USD' AND status IN ('pending', 'sending', 'sent', 'success', 'unknown')
            AND created_at > now() - interval '24 hours';" >/dev/null
    pg pgbench -n -c 16 -j 4 -t "$txns" -f "$D/$tag.sql" "$PGDATABASE" >"$D/$tag.out" 2>&1
    echo $?
}

count() {
    sql1 "SELECT count(*) FROM payouts WHERE request -> 'metadata' ->> 'case' = '$1' AND $2"
}

for shape in "race52-pairs 2 2" "race52-single 1 4"; do
    # shellcheck disable=SC2086
    set -- $shape
    tag=$1
    total=$((16 * $2 * $3))
    rc=$(race "$@")
    is "$rc" 0 "$tag: pgbench ran 16 clients at once without a failed transaction" "$(tail -n 5 "$D/$tag.out")"
    is "$(count "$tag" "true")" "$total" "$tag: all $total payouts were recorded"
    is "$(count "$tag" "status <> 'held'")" "$ROOM" \
        "$tag: exactly $ROOM of them go, the room the daily limit left: no two sessions got past it together"
    is "$(count "$tag" "status = 'held' AND last_error LIKE 'held for approval: % would pass daily_limit (%)'")" \
        "$((total - ROOM))" "$tag: every other one is held, its last_error naming the daily limit"
done

# moneroo_transfer's payout is recorded by the worker under the same lock of
# the currency, which it waits for at most its lock_timeout (1 s): a
# transaction keeping the lock longer makes the call fail, nothing recorded
# or sent, and the worker goes on.
sql1 "UPDATE moneroo_limits SET daily_limit = daily_limit + 1000 * $AMOUNT WHERE currency = 'USD'" >/dev/null
{
    echo "BEGIN;"
    echo "INSERT INTO payouts (request) VALUES ('$(request race52-locker)');"
    echo "SELECT pg_sleep(5);"
    echo "ROLLBACK;"
} | cluster_psql -q >/dev/null 2>&1 &
locker=$!
sleep 0.5
t0=$(date +%s%N)
out=$(sql1 "SELECT status FROM moneroo_transfer('$(request race52-transfer)')")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
still=$(kill -0 "$locker" 2>/dev/null && echo locked)
wait "$locker"
rc=1; [ "$ms" -lt 4000 ] && grep -q 'lock timeout' <<<"$out" && rc=0
is "$rc $still $(count race52-transfer true)" "0 locked 0" \
    "moneroo_transfer waits at most lock_timeout for a currency's lock another transaction keeps: it fails ($ms ms), nothing recorded" \
    "$out"
