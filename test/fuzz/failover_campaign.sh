#!/usr/bin/env bash
# test/fuzz/failover_campaign.sh: the failover campaign of issue 14, run by
# `bash test/campaign.sh ha` (the quick version is test/ha/97_*).
#
# For each mode, README.md's Patroni configuration (test/lib/patroni.sh):
#   sync   as README shows it (synchronous_mode: true, claim_standbys 0);
#   async  with README's asynchronous variant (synchronous_mode: false,
#          moneroo.claim_standbys: 1);
# FAILOVERS times: PAYOUTS payouts queued on the leader (and replayed by the
# replica), the leader's postmaster killed (kill -9) once a random number of
# them is sent, with requests in flight; then, on the new leader:
#   - it leads, and the worker starts there;
#   - every payout on record, none pending, none left sending;
#   - no reference created or POSTed twice (doubles must be 0);
#   - every payout the mock created is on record, every id on record exists;
#   - the old leader comes back as a standby (before the next kill).
# Figures per failover: where it was killed, seconds to the new leader and to
# its worker, payouts unknown after it, doubles.  TAP on stdout.
#
# Environment: MODES ("sync async"), FAILOVERS (5), PAYOUTS (1000),
# LATENCY_MS (100), SEED (random, printed); the rest as test/campaign.sh sets
# it (WORK, the build installed).
set -uo pipefail

LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/../lib" && pwd)
# shellcheck source=test/lib/recipes.sh
. "$LIB/recipes.sh"
# shellcheck source=test/lib/replication.sh
. "$LIB/replication.sh"
# shellcheck source=test/lib/patroni.sh
. "$LIB/patroni.sh"

export PGDATABASE=shop
MODES=${MODES:-sync async}
FAILOVERS=${FAILOVERS:-5}
PAYOUTS=${PAYOUTS:-1000}
LATENCY_MS=${LATENCY_MS:-100}
SEED=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
RANDOM=$((SEED % 32768))
n_modes=$(wc -w <<<"$MODES")
tap_plan $((n_modes * (1 + 6 * FAILOVERS)))
diag "seed $SEED, $FAILOVERS failovers of $PAYOUTS payouts in each mode ($MODES), mock latency $LATENCY_MS ms"

trap 'patroni_down; repl_teardown' EXIT
FIGURES=()

campaign_mode() {
    local mode=$1 rc i leader replica new tag at pm got t0 t_lead t_worker F
    local sync_state=""
    [ "$mode" = sync ] && sync_state=sync
    repl_setup "moneroo-ha-$mode" || bail "cannot make the temporary folder"
    rc=0; patroni_up "$mode" --set dcs.parameters.moneroo.rate_limit=0 >&2 || rc=1
    ok "$rc" "$mode: README's Patroni configuration comes up (etcd, two members, the worker)"
    if [ "$rc" != 0 ]; then
        for i in $(seq 1 $((6 * FAILOVERS))); do fail "$mode: not run: the cluster did not come up"; done
        patroni_down; repl_teardown; return
    fi
    mock_on M mock_ctl POST /__mock/config \
        "{\"rate_limit\": 0, \"latency_ms\": $LATENCY_MS, \"journal_limit\": 0}" >/dev/null
    for i in $(seq 1 "$FAILOVERS"); do
        leader=$(patroni_leader); replica=$(patroni_other "$leader")
        tag="ha $mode $i"
        repl_queue "$leader" "$tag" "$PAYOUTS" >/dev/null || diag "$mode $i: cannot queue"
        repl_wait_replayed "$leader" "$replica" >/dev/null 2>&1 || diag "$mode $i: $replica has not replayed the payouts"
        at=$((PAYOUTS / 50 + RANDOM % (PAYOUTS * 9 / 10)))
        repl_wait "$leader" "$tag" "sending >= 1 AND done >= $at" 300; got=$?
        diag "$mode $i: kill at $(repl_counts "$leader" "$tag") (pending sending done unknown other total)"
        t0=$SECONDS
        pm=$(patroni_kill_postmaster "$leader"); rc=$?
        is "$got $rc" "0 0" "$mode $i: kill -9 of $leader's postmaster (pid ${pm:-none}) with $at or more sent, requests in flight"
        new=$(patroni_wait_leader "$leader" 120); rc=$?
        t_lead=$((SECONDS - t0))
        pid=$(on "${new:-$replica}" wait_worker 120) || rc=1
        t_worker=$((SECONDS - t0))
        ok "$rc" "$mode $i: $replica leads ($t_lead s after the kill), its worker runs (pid ${pid:-none}, $t_worker s)" \
            "$(tail -n 15 "$REPL_DIR/patroni-$replica.log")"
        new=${new:-$replica}
        # async with claim_standbys 1: nothing is sent until a standby streams again
        rc=0; patroni_wait_streaming "$new" "$sync_state" 300 || rc=1
        local t_back=$((SECONDS - t0))
        repl_wait_drained "$new" "$tag" 300 || diag "$mode $i: not drained: $(repl_counts "$new" "$tag")"
        F=$(repl_check "$new" "$tag" "$PAYOUTS" --details M)
        diag "$mode $i: $(head -n 1 <<<"$F")"
        is "$(figure on_record "$F") $(figure pending "$F") $(figure sending "$F") $(figure other "$F")" \
            "$PAYOUTS 0 0 0" "$mode $i: all $PAYOUTS payouts on record at $new, none pending, none left sending"
        is "$(figure doubles "$F") $(figure posted_twice "$F")" "0 0" \
            "$mode $i: no reference created twice, none POSTed twice" "$(grep '^#' <<<"$F")"
        is "$(figure unrecorded "$F") $(figure phantom "$F")" "0 0" \
            "$mode $i: every payout created is on record, every id on record exists" "$(grep '^#' <<<"$F")"
        ok "$rc" "$mode $i: $leader is back as $new's ${sync_state:-streaming} standby ($t_back s after the kill)" \
            "$(tail -n 15 "$REPL_DIR/patroni-$leader.log")"
        FIGURES+=("$(printf '%-5s %d  killed at %4d sent  leader %3d s  worker %3d s  standby back %3d s  unknown %3d  doubles %d' \
            "$mode" "$i" "$at" "$t_lead" "$t_worker" "$t_back" "$(figure unknown "$F")" "$(figure doubles "$F")")")
    done
    patroni_down
    repl_teardown
}

for mode in $MODES; do campaign_mode "$mode"; done
diag "figures (seed $SEED; failover: kill -9 of the leader's postmaster):"
for f in "${FIGURES[@]}"; do diag "  failover $f"; done
exit 0
