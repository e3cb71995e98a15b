#!/usr/bin/env bash
# Proves: README's Patroni setup fails over mid-drain, doubling nothing [slow, ~2.5 min; needs root].
# test/ha/97_patroni_failover.sh: README.md's tested Patroni
# configuration, run as it is, and one failover mid-drain.
#
# One etcd (etcd-server 3.4.23) and two PostgreSQL members under Patroni 3.0.2
# (test/lib/patroni.sh), all on 127.0.0.1 in a temporary folder owned by the
# postgres OS user, each member's file made from README's YAML
# (test/lib/patroni_config.py: ports, folders, the mock's address and the
# test key's file changed, moneroo.rate_limit lifted).  The worker's database
# is made on the leader after the bootstrap, as README says.  Then N payouts,
# and kill -9 of the leader's postmaster while requests are in flight:
#   - the other member becomes leader (Patroni's REST API, pg_is_in_recovery);
#   - the worker starts there and logs it;
#   - every payout is on record there, none pending or sending;
#   - no reference was created (nor POSTed) twice at the mock, every payout
#     the mock created is on record (sent with its id, or unknown);
#   - the old leader comes back as the new one's synchronous standby.
#
# Run by test/run.sh (bash, TAP on stdout); uses the variables and cluster.sh
# functions it exports, not its cluster nor its mock.
set -uo pipefail

LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/../lib" && pwd)
# shellcheck source=test/lib/recipes.sh
. "$LIB/recipes.sh"
# shellcheck source=test/lib/replication.sh
. "$LIB/replication.sh"
# shellcheck source=test/lib/patroni.sh
. "$LIB/patroni.sh"

export PGDATABASE=shop   # README's moneroo.database
N=60
LATENCY_MS=300
TAG="97 failover"
tap_plan 9

repl_setup moneroo-97 || bail "cannot make the temporary folder"
trap 'patroni_down; repl_teardown' EXIT

t=$SECONDS
rc=0; patroni_up sync --set dcs.parameters.moneroo.rate_limit=0 >&2 || rc=1
leader=$(patroni_leader); replica=$(patroni_other "${leader:-pg1}")
ok "$rc" "README's Patroni configuration: etcd, $leader leads, $replica streams as its synchronous standby, the worker runs (in $((SECONDS - t)) s)"
[ "$rc" = 0 ] || { skip_rest "the Patroni cluster did not come up"; exit 0; }
is "$(on "$replica" sql1 "SELECT count(*) FROM pg_stat_activity WHERE backend_type ILIKE '%moneroo%'")" 0 \
    "no moneroo worker on the replica $replica"

mock_on M mock_ctl POST /__mock/config "{\"rate_limit\": 0, \"latency_ms\": $LATENCY_MS}" >/dev/null
repl_queue "$leader" "$TAG" "$N" >/dev/null || fail "queue $N payouts on $leader"
repl_wait "$leader" "$TAG" "sending >= 1 AND done >= 12" 30; got=$?
diag "at the kill: $(repl_counts "$leader" "$TAG") (pending sending done unknown other total)"
t0=$SECONDS
pm=$(patroni_kill_postmaster "$leader"); rc=$?
is "$got $rc" "0 0" "kill -9 of $leader's postmaster (pid ${pm:-none}) while requests are in flight" \
    "got: MOMENT_REACHED KILL_STATUS"

new=$(patroni_wait_leader "$leader" 90); rc=$?
t_lead=$((SECONDS - t0))
ok "$rc" "Patroni fails over: $replica leads (in $t_lead s)" "$(tail -n 20 "$REPL_DIR/patroni-$replica.log")"
[ "$rc" = 0 ] || { skip_rest "no failover"; exit 0; }
pid=$(on "$new" wait_worker 60) && repl_worker_started "$new"; rc=$?
ok "$rc" "the worker starts on the new leader $new (pid ${pid:-none}, $((SECONDS - t0)) s after the kill) and logs it" \
    "$(tail -n 10 "$REPL_DIR/$new/server.log")"

repl_wait_drained "$new" "$TAG" 90 || diag "not drained after 90 s: $(repl_counts "$new" "$TAG")"
F=$(repl_check "$new" "$TAG" "$N" --details M)
diag "$(head -n 1 <<<"$F")"
is "$(figure on_record "$F") $(figure pending "$F") $(figure sending "$F") $(figure other "$F")" "$N 0 0 0" \
    "all $N payouts on record at the new leader, none pending, none left sending"
is "$(figure doubles "$F") $(figure posted_twice "$F")" "0 0" \
    "no reference created twice, none POSTed twice" "$(grep '^#' <<<"$F")"
is "$(figure unrecorded "$F") $(figure phantom "$F")" "0 0" \
    "none lost: every payout the mock created is on record (sent with its id, or unknown), every id on record exists" \
    "$(grep '^#' <<<"$F")"

patroni_wait_streaming "$new" sync 120
ok $? "the old leader $leader comes back as $new's synchronous standby ($((SECONDS - t0)) s after the kill)" \
    "$(tail -n 20 "$REPL_DIR/patroni-$leader.log")"
exit 0
