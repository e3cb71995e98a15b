#!/usr/bin/env bash
# Proves: a handler writes its row exactly once per event across kill -9, immediate and fast stops [slow, ~1 min].
# test/outcomes/63_outcomes_exactly_once.sh: a subscription's handler writes
# its row once per event, whatever stops the worker in the middle of it (1.3).
#
# The handler (owned by and subscribed as an application role, not a
# superuser) inserts a row naming its event, then waits while a gate is
# closed: the worker is caught inside it, with the row written and the
# position not yet moved, and then
#   (a) the worker is killed with SIGKILL (the postmaster restarts every
#       backend);
#   (b) the server is stopped with pg_ctl stop -m immediate and started;
#   (c) the server is stopped with pg_ctl stop -m fast: the stop cancels the
#       handler rather than wait for it.
# After each, the gate opens and the subscription catches up: every event
# after its start is in the handler's table exactly once, in id order, and
# nothing is behind.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.
set -uo pipefail

if ! declare -F cluster_psql >/dev/null; then
    # shellcheck source=test/lib/cluster.sh
    . "${CLUSTER_LIB:-$(dirname "$0")/../lib/cluster.sh}"
fi
cluster_env
# shellcheck source=test/lib/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
# shellcheck source=test/lib/server.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/server.sh"

tap_plan 16

cleanup() {
    set +e
    cluster_is_running || cluster_start >/dev/null 2>&1
    wait_server 30
    sql -c "UPDATE t63.gate SET closed = false" >/dev/null 2>&1
    sql -c "SET ROLE t63_app; SELECT moneroo_unsubscribe('t63')" >/dev/null 2>&1
    sql -c "DROP SCHEMA t63 CASCADE; DROP OWNED BY t63_app; DROP ROLE t63_app" >/dev/null 2>&1
}
trap cleanup EXIT

out=$(sql 2>&1 <<'SQL'
ALTER SYSTEM SET moneroo.subscription_timeout = '60s';
ALTER SYSTEM SET moneroo.rate_limit = 0;
SELECT pg_reload_conf();
CREATE ROLE t63_app;
CREATE SCHEMA t63 AUTHORIZATION t63_app;
GRANT USAGE ON SCHEMA public TO t63_app;
GRANT SELECT ON payouts, payout_events TO t63_app;
GRANT EXECUTE ON FUNCTION moneroo_subscribe(text, regprocedure, text[], bigint),
    moneroo_unsubscribe(text) TO t63_app;
SET ROLE t63_app;
CREATE TABLE t63.handled (event_id bigint NOT NULL, n bigint GENERATED ALWAYS AS IDENTITY);
CREATE TABLE t63.gate (closed boolean NOT NULL);
INSERT INTO t63.gate VALUES (false);
CREATE FUNCTION t63.handle(event payout_events, payout payouts) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO t63.handled (event_id) VALUES (event.id);
    WHILE (SELECT closed FROM t63.gate) LOOP
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT moneroo_subscribe('t63', 't63.handle(payout_events, payouts)');
SQL
)
ok $? "an application role subscribes a handler that writes a row per event" "$out"
start=$(sql -c "SELECT position FROM moneroo_subscriptions WHERE name = 't63'")

# waits until the worker is inside the handler, behind the closed gate
in_handler() {
    local deadline=$((SECONDS + 30))
    until [ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'moneroo worker' AND wait_event = 'PgSleep'" 2>/dev/null)" = 1 ]; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# opens the gate and waits until the subscription has caught up with this
# script's payouts, once they are done (earlier tests leave payouts of their
# own pending or sent: not this script's to wait for)
catch_up() {
    local deadline=$((SECONDS + 60))
    sql -c "UPDATE t63.gate SET closed = false" >/dev/null
    until [ "$(sql -c "SELECT (SELECT count(*) FROM payouts WHERE status IN ('pending', 'sending', 'sent')
                                   AND request ->> 'description' LIKE 't63 %') = 0
                         AND (SELECT events_behind FROM moneroo_subscriptions WHERE name = 't63') = 0" 2>/dev/null)" = t ]; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# every event after the start handled once, in id order
exactly_once() {
    sql -c "SELECT (SELECT coalesce(array_agg(event_id ORDER BY n), '{}') FROM t63.handled)
                 = (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM payout_events WHERE id > $start)"
}

round() {
    local name=$1 stop=$2 t0 back
    sql -c "UPDATE t63.gate SET closed = true" >/dev/null
    queue "t63 $name" 3 >/dev/null
    in_handler
    ok $? "$name: the worker is inside the handler, its row written, not committed"
    t0=$SECONDS
    case $stop in
        kill) kill -KILL "$(worker_pid)" ;;
        immediate) cluster_stop immediate && cluster_start >/dev/null ;;
        fast) cluster_stop fast && cluster_start >/dev/null ;;
    esac
    wait_server 60
    ok $? "$name: the server is back ($((SECONDS - t0)) s)"
    back=$((SECONDS - t0))
    catch_up
    ok $? "$name: the subscription catches up once the gate opens"
    is "$(exactly_once)" t "$name: every event handled exactly once, in order" \
        "$(sql -c "SELECT event_id, count(*) FROM t63.handled GROUP BY 1 HAVING count(*) <> 1")"
    # the handler waits behind its gate for ever: a stop that waited it out would never be back
    [ "$stop" != fast ] || { [ "$back" -lt 55 ]; ok $? "$name: the stop did not wait out the handler" "back after $back s"; }
}

round "kill -9 of the worker" kill
round "immediate stop" immediate
round "fast stop" fast
is "$(sql -c "SELECT count(*) > 0 FROM t63.handled")" t "the handler ran at all"
is "$(sql -c "SELECT count(*) FROM moneroo_subscriptions WHERE name = 't63' AND failures = 0")" 1 \
    "and the subscription records no failure of its own"
