#!/usr/bin/env bash
# Proves: a standby and a failover by hand lose and double no payout [slow, ~1.5 min; needs root].
# test/ha/96_streaming_replication.sh: moneroo on a primary and a
# streaming standby made with pg_basebackup -R, and a failover by hand
# (pg_ctl stop -m immediate of the primary mid-drain, pg_ctl promote of the
# standby).  Contract: "Since 1.2: several databases, and failover".
#
# Everything runs in a temporary folder of its own owned by the postgres OS
# user (test/lib/replication.sh): three pairs of nodes, each made the way
# test/lib/cluster.sh makes the stack's cluster, and two mocks: the primaries
# send to mock A, the standbys to mock B, so a request from a standby (before
# its promotion) is seen, and a payout created twice is created at both.
#
#   (a) standby: no moneroo process under its postmaster nor in
#       pg_stat_activity (the primary's worker is, the same check sees it),
#       no "worker started" in its log, and no request at its mock while the
#       primary drains payouts that it replays;
#   (b) synchronous standby (synchronous_standby_names): immediate stop of
#       the primary with requests in flight, promote: the worker starts on the
#       new primary, the rows it had in sending become unknown (with a
#       last_error) and only they, the rest is sent; no reference created
#       twice over both mocks, every payout on record;
#   (c) asynchronous standby whose WAL receiver is stopped (SIGSTOP) mid-drain
#       for 3 s before the primary dies (immediate stop); the receiver, still
#       stopped, is then killed (SIGKILL): the WAL that sat unread in its
#       socket is lost, as it is when the network or the primary's machine
#       goes (a receiver resumed instead reads it all: the kernel's socket
#       buffers on loopback hold far more than a drain writes); then promote:
#       - moneroo.claim_standbys = 1 on the primary: while the receiver is
#         stopped nothing is created at Moneroo, claims go back to pending with
#         a last_error "not sent: ... moneroo.claim_standbys ...", and
#         moneroo_status says so; after the failover nothing was created twice;
#       - moneroo.claim_standbys = 0: what happens is printed (the number of
#         payouts created twice); the test asserts what is certain: every
#         payout on record, none left pending or sending, each double created
#         once by each primary.
#   (d) synchronous standby whose receiver is stopped while the worker's
#       claim of a payout waits for it, with another payout's answer arriving
#       meanwhile; kill -9 of the primary's postmaster: PostgreSQL ends the
#       wait with the claim on the primary alone, and the dying worker must not
#       send that payout; after the standby's promotion it is sent once.
#   (e) a synchronous standby stopped while the worker's claim waits for
#       it, and pg_ctl stop -m fast of the primary during that wait: the server stops, nothing is sent,
#       the payout is pending after the restart and sent once the standby is
#       back.
#   (f) moneroo.claim_standbys = 1 with no standby streaming: nothing is
#       claimed (no payout leaves pending), moneroo_status says why,
#       moneroo_transfer fails at once (55000), a sent payout is verified
#       meanwhile; once the standby streams, each is sent once.
#
# Run by test/run.sh (bash, TAP on stdout); uses the variables and cluster.sh
# functions it exports, not its cluster nor its mock.
set -uo pipefail

LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/../lib" && pwd)
# shellcheck source=test/lib/script.sh
. "$LIB/script.sh"
# shellcheck source=test/lib/replication.sh
. "$LIB/replication.sh"

N=60                 # payouts per failover
LATENCY_MS=400       # the mock creates at once and answers this much later
PLAN=42
tap_plan "$PLAN"

repl_setup moneroo-96 || bail "cannot make the temporary folder"
trap repl_teardown EXIT
repl_mock A || bail "mock A does not start"
repl_mock B || bail "mock B does not start"

# reset_mocks: nothing created, the latency of the test.
reset_mocks() {
    local m
    for m in A B; do
        mock_on "$m" mock_ctl POST /__mock/reset '{}' >/dev/null &&
            mock_on "$m" mock_ctl POST /__mock/config "{\"rate_limit\": 0, \"latency_ms\": $LATENCY_MS}" >/dev/null ||
            bail "cannot reset mock $m"
    done
}
created_at() {      # created_at MOCK TAG: payouts MOCK created for TAG
    mock_on "$1" mock_ctl GET /__mock/payouts | python3 -c '
import json, sys
print(sum(1 for p in json.load(sys.stdin) if str((p.get("body") or {}).get("description", "")).startswith(sys.argv[1] + " #")))' "$2"
}
requests_at() { mock_on "$1" mock_ctl GET /__mock/stats | python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"])'; }
ids_in_sending() {  # ids_in_sending NODE TAG
    on "$1" sql1 "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM payouts
                  WHERE status = 'sending' AND request ->> 'description' LIKE '$2 #%'"
}
count_ids() { if [ -z "$1" ]; then echo 0; else tr ',' '\n' <<<"$1" | wc -l; fi; }

# after_promotion NAME NODE TAG SENDING_IDS: one assertion (the worker starts
# on NODE and logs it), then waits until TAG is drained; sets BAD to the number
# of SENDING_IDS that are not unknown with a last_error.
after_promotion() {
    local name=$1 node=$2 tag=$3 ids=$4 pid rc=0
    pid=$(on "$node" wait_worker 30) && repl_worker_started "$node" || rc=1
    ok "$rc" "$name: the worker starts on the promoted standby (pid ${pid:-none}) and logs it" \
        "$(tail -n 5 "$REPL_DIR/$node/server.log")"
    repl_wait_drained "$node" "$tag" 60 || diag "$name: not drained after 60 s: $(repl_counts "$node" "$tag")"
    BAD=0
    [ -z "$ids" ] || BAD=$(on "$node" sql1 "SELECT count(*) FROM payouts WHERE id IN ($ids)
                                             AND NOT (status = 'unknown' AND coalesce(last_error, '') <> '')")
}

# ---------------------------------------------------------------- (a) the standby
reset_mocks
repl_primary p1 A || bail "cannot make the primary p1"
rc=0; repl_standby s1 p1 B || rc=1
ok "$rc" "pg_basebackup -R: standby s1 streams from p1 [$(on s1 sql1 "SELECT pg_is_in_recovery()")]"
wpid=$(on p1 wait_worker 20)
procs=$(repl_moneroo_procs p1)
rc=0; [ -n "$wpid" ] && grep -q "^ *$wpid " <<<"$procs" || rc=1
ok "$rc" "the checks see the primary's worker: in pg_stat_activity (pid ${wpid:-none}) and under p1's postmaster" \
    "moneroo processes under p1's postmaster: ${procs:-none}"
on s1 cluster_psql -c "SELECT pg_sleep(1)" >/dev/null 2>&1   # time for a worker to start, if one would
is "$(repl_moneroo_procs s1 | wc -l) $(on s1 sql1 "SELECT count(*) FROM pg_stat_activity
                                                  WHERE backend_type ILIKE '%moneroo%' OR application_name ILIKE '%moneroo%'")" \
    "0 0" "no moneroo process runs on the standby (process list, pg_stat_activity)" \
    "$(repl_moneroo_procs s1)"
TAG="96 standby"
repl_queue p1 "$TAG" 10 >/dev/null || fail "queue 10 payouts on p1"
repl_wait_drained p1 "$TAG" 30
repl_wait_replayed p1 s1
is "$(created_at A "$TAG") $(on s1 sql1 "SELECT count(*) FROM payouts WHERE request ->> 'description' LIKE '$TAG #%'") $(requests_at B)" \
    "10 10 0" "the primary sends 10 payouts, the standby replays them and sends nothing (created at A, rows on s1, requests at B)"
repl_worker_started s1; is "$?" 1 "the standby's log has no \"moneroo worker started\""

# ---------------------------------------------------------------- (b) synchronous standby
on p1 cluster_psql -c "ALTER SYSTEM SET synchronous_standby_names = 's1'" -c "SELECT pg_reload_conf()" >/dev/null
repl_wait_streaming p1 s1 sync
ok $? "s1 is p1's synchronous standby (pg_stat_replication.sync_state)"
TAG="96 sync"
repl_queue p1 "$TAG" "$N" >/dev/null || fail "queue $N payouts on p1"
repl_wait p1 "$TAG" "sending >= 1 AND done >= 12" 30; got=$?
diag "sync: at the stop: $(repl_counts p1 "$TAG") (pending sending done unknown other total)"
rc=0; on p1 as_pg "$PGBIN/pg_ctl" stop -D "$REPL_DIR/p1/data" -m immediate -w -t 30 -s || rc=$?
is "$got $rc" "0 0" "sync: pg_ctl stop -m immediate of p1 with requests in flight" "got: MOMENT_REACHED(0) PG_CTL_STATUS"
repl_caught_up s1
ids=$(ids_in_sending s1 "$TAG")
diag "sync: s1 before promotion: $(repl_counts s1 "$TAG"); in sending: ${ids:-none}"
repl_promote s1
is "$(on s1 sql1 "SELECT pg_is_in_recovery()")" f "sync: pg_ctl promote of s1"
after_promotion sync s1 "$TAG" "$ids"
nids=$(count_ids "$ids")
if [ "$nids" = 0 ]; then
    fail "sync: the rows s1 had in sending became unknown, each with a last_error" \
        "s1 had no payout in sending: the stop caught no request in flight"
else
    is "$BAD" 0 "sync: the $nids rows s1 had in sending became unknown, each with a last_error" "in sending: $ids"
fi
f=$(repl_check s1 "$TAG" "$N" --details A B)
diag "sync: $(head -n 1 <<<"$f")"
is "$(figure on_record "$f") $(figure pending "$f") $(figure sending "$f") $(figure other "$f")" "$N 0 0 0" \
    "sync: all $N payouts on record at the new primary, none pending or sending"
is "$(figure unknown "$f") $(figure done "$f")" "$nids $((N - nids))" \
    "sync: only those are unknown, the rest is sent (unknown, sent/success/failed)"
is "$(figure doubles "$f") $(figure posted_twice "$f")" "0 0" \
    "sync: no reference created twice, none POSTed twice (mocks A and B)" "$(grep '^#' <<<"$f")"
is "$(figure unrecorded "$f") $(figure phantom "$f")" "0 0" \
    "sync: every payout created is on record (sent with its id, or unknown), every id on record exists" "$(grep '^#' <<<"$f")"
on s1 cluster_stop immediate >/dev/null 2>&1

# ---------------------------------------------------------------- (c) asynchronous standby
# async_round NAME CLAIM_STANDBYS NODE_P NODE_S: primary, standby, the
# setting, N payouts replayed on the standby, the receiver stopped mid-drain
# for 3 s, the primary stopped, the receiver killed, promote.  Sets F (the
# figures), IDS (in sending at the promotion), DURING (created while stopped).
async_round() {
    local name=$1 claim=$2 p=$3 s=$4 tag=$5 got rc rc2 c1 c2
    reset_mocks
    repl_primary "$p" A || bail "$name: cannot make the primary $p"
    repl_standby "$s" "$p" B || bail "$name: cannot make the standby $s"
    on "$p" cluster_psql -c "ALTER SYSTEM SET moneroo.claim_standbys = $claim" \
        -c "ALTER SYSTEM SET moneroo.claim_standbys_timeout = '1s'" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
    sleep 0.3
    is "$(on "$p" sql1 "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$s'")/$(on "$p" sql1 "SHOW moneroo.claim_standbys")" \
        "async/$claim" "$name: $s streams asynchronously from $p, which has moneroo.claim_standbys = $claim"
    repl_queue "$p" "$tag" "$N" >/dev/null || fail "$name: queue $N payouts on $p"
    repl_wait_replayed "$p" "$s"
    repl_wait "$p" "$tag" "sending >= 1 AND done >= 8" 30; got=$?
    rc=0; repl_receiver_stop "$s" || rc=1
    diag "$name: WAL receiver of $s stopped at: $(repl_counts "$p" "$tag") (pending sending done unknown other total)"
    is "$got $rc" "0 0" "$name: the WAL receiver of $s stopped (SIGSTOP) mid-drain" "got: MOMENT_REACHED STOPPED"
    sleep 0.8; c1=$(created_at A "$tag")
    sleep 2.2; c2=$(created_at A "$tag")
    DURING=$((c2 - c1))
    diag "$name: created at Moneroo between 0.8 s and 3 s after the stop: $DURING; on $p: $(repl_counts "$p" "$tag")"
    if [ "$claim" = 1 ]; then
        is "$DURING $(on "$p" sql1 "SELECT count(*) > 0 FROM payouts WHERE status = 'pending'
                                    AND request ->> 'description' LIKE '$tag #%'")" "0 t" \
            "$name: while the standby's receiver is stopped, no payout is created at Moneroo and some wait pending"
        # the claims waiting when the receiver stopped, or made after it, are
        # given up claim_standbys_timeout (1 s) after their claim: within a
        # few seconds, whenever the claim came
        local returned="SELECT count(*) > 0 FROM payouts WHERE status = 'pending' AND request ->> 'description' LIKE '$tag #%'
                        AND last_error LIKE 'not sent:%' AND last_error LIKE '%moneroo.claim_standbys%'" deadline=$((SECONDS + 10))
        until [ "$(on "$p" sql1 "$returned")" = t ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.1; done
        is "$(on "$p" sql1 "$returned")/$(on "$p" sql1 "SELECT last_error LIKE '%moneroo.claim_standbys%' FROM moneroo_status")/$(($(created_at A "$tag") - c1))" \
            "t/t/0" "$name: the claims went back to pending with last_error 'not sent: ... moneroo.claim_standbys', and moneroo_status.last_error says so (and still none created at Moneroo)" \
            "$(on "$p" sql1 "SELECT string_agg(DISTINCT coalesce(last_error, '-'), ' | ') FROM payouts WHERE status = 'pending' AND request ->> 'description' LIKE '$tag #%'")" \
            "moneroo_status.last_error: $(on "$p" sql1 "SELECT last_error FROM moneroo_status")"
    fi
    rc=0; on "$p" as_pg "$PGBIN/pg_ctl" stop -D "$REPL_DIR/$p/data" -m immediate -w -t 30 -s || rc=$?
    # what the stopped receiver had not read dies with it
    rc2=0; repl_receiver_kill "$s" || rc2=1
    on "$s" wait_server 30 || rc2=1
    repl_caught_up "$s"
    IDS=$(ids_in_sending "$s" "$tag")
    diag "$name: $s before promotion: $(repl_counts "$s" "$tag"); in sending: ${IDS:-none}"
    repl_promote "$s"
    is "$rc $rc2 $(on "$s" sql1 "SELECT pg_is_in_recovery()")" "0 0 f" \
        "$name: pg_ctl stop -m immediate of $p, SIGKILL of $s's stopped receiver, pg_ctl promote of $s" \
        "got: PG_CTL_STATUS KILL_AND_RESTART_STATUS IN_RECOVERY"
    after_promotion "$name" "$s" "$tag" "$IDS"
    is "$BAD" 0 "$name: the $(count_ids "$IDS") rows $s had in sending at the promotion became unknown, each with a last_error" \
        "in sending: ${IDS:-none}"
    F=$(repl_check "$s" "$tag" "$N" --details A B)
    diag "$name: $(head -n 1 <<<"$F")"
    is "$(figure on_record "$F") $(figure pending "$F") $(figure sending "$F") $(figure other "$F")" "$N 0 0 0" \
        "$name: all $N payouts on record at the new primary, none pending or sending"
}

async_round "async, claim_standbys = 1" 1 p2 s2 "96 claim1"
is "$(figure doubles "$F") $(figure posted_twice "$F")" "0 0" \
    "async, claim_standbys = 1: no reference created twice, none POSTed twice (mocks A and B)" "$(grep '^#' <<<"$F")"
is "$(figure unrecorded "$F") $(figure phantom "$F")" "0 0" \
    "async, claim_standbys = 1: every payout created is on record, every id on record exists" "$(grep '^#' <<<"$F")"
on s2 cluster_stop immediate >/dev/null 2>&1

async_round "async, claim_standbys = 0" 0 p3 s3 "96 claim0"
# a payout created twice was created once by each primary, each time from a
# claim: never twice by one of them
twice_at_one=$(mock_on A mock_ctl GET /__mock/payouts | python3 -c '
import collections, json, sys
c = collections.Counter(p["reference"] for p in json.load(sys.stdin))
print(sum(1 for n in c.values() if n > 1))')
is "$twice_at_one $(figure phantom "$F")" "0 0" \
    "async, claim_standbys = 0: no payout created twice by one primary, every id on record exists"
diag "async, claim_standbys = 0: $(figure doubles "$F") payout(s) created twice at Moneroo" \
     "(created by the old primary while the standby's receiver was stopped: $DURING; unrecorded: $(figure unrecorded "$F"))"

# ---------------------------------------------------------------- (d) the postmaster dies during a claim's wait
# PostgreSQL ends a commit's wait for its synchronous standby when the
# postmaster dies, and the commit stands on the primary alone.  A claim cut
# short so must never leave: the standby lacks it and, once promoted, sends
# that payout itself.  A request in flight whose answer arrives during the
# wait gives the dying worker its best chance to send anyway: it then acts on
# its sockets before it learns of the death.
reset_mocks
mock_on A mock_ctl POST /__mock/config '{"latency_ms": 3000}' >/dev/null
repl_primary p4 A || bail "pmdeath: cannot make the primary p4"
repl_standby s4 p4 B || bail "pmdeath: cannot make the standby s4"
on p4 cluster_psql -c "ALTER SYSTEM SET synchronous_standby_names = 's4'" -c "SELECT pg_reload_conf()" >/dev/null
TAG="96 pmdeath"; CUT="96 pmdeath cut"
wpid=$(on p4 wait_worker 20)
rc=0; repl_wait_streaming p4 s4 sync || rc=1
# the one to cut short is due in 2 s, when the receiver is stopped: its row
# is on s4, its claim will not be
on p4 sql -c "INSERT INTO payouts (request, send_at) VALUES (jsonb_build_object(
                  'amount', 100, 'currency', 'USD', 'description', '$CUT #1', 'method', 'moneroo_payout_demo',
                  'customer', jsonb_build_object('email', 'ha@example.com', 'first_name', 'Fail', 'last_name', 'Over'),
                  'recipient', jsonb_build_object('account_number', '4149518161')), now() + interval '2 s')" >/dev/null || rc=1
repl_queue p4 "$TAG" 1 >/dev/null || rc=1
deadline=$((SECONDS + 10))
until [ "$(created_at A "$TAG")" = 1 ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
posted=$(date +%s.%N)
repl_wait_replayed p4 s4 || rc=1
repl_receiver_stop s4 || rc=1
syncrep="SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'moneroo worker' AND wait_event = 'SyncRep'"
deadline=$((SECONDS + 10))
until [ "$(on p4 sql1 "$syncrep")" = t ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.1; done
waiting=$(on p4 sql1 "$syncrep")
# until the in-flight request's answer has arrived (3 s after it left)
sleep "$(python3 -c "import time; print(max(0.0, $posted + 3.3 - time.time()))")"
is "$rc $waiting $(on p4 sql1 "SELECT count(*) FROM payouts WHERE status = 'sending'")" "0 t 1" \
    "pmdeath: s4's receiver stopped, the worker's claim of a payout due then waits for it (SyncRep), another's answer arrives meanwhile"
rc=0; kill -KILL "$(on p4 cluster_pid)" || rc=1
# the worker outlives its postmaster until its next wait: until it is gone
deadline=$((SECONDS + 10))
while [ -n "$wpid" ] && kill -0 "$wpid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
kill -0 "${wpid:-0}" 2>/dev/null && rc=1
cut_posts=$(mock_on A mock_ctl GET /__mock/journal | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if e.get("method") == "POST" and
          str((e.get("body") or {}).get("description", "")).startswith(sys.argv[1] + " #")))' "$CUT")
is "$rc $cut_posts" "0 0" \
    "pmdeath: kill -9 of p4's postmaster during the wait: the claim it cut short is never sent (POSTs of it at p4's mock)"
rc=0; repl_receiver_kill s4 || rc=1
on s4 wait_server 30 || rc=1
repl_caught_up s4
repl_promote s4 || rc=1
after_promotion pmdeath s4 "$CUT" ""
repl_wait_drained s4 "$TAG" 30
F=$(repl_check s4 "$CUT" 1 --details A B); G=$(repl_check s4 "$TAG" 1 --details A B)
diag "pmdeath: $(head -n 1 <<<"$F"); the one in flight: $(head -n 1 <<<"$G")"
is "$rc $(figure done "$F") $(figure created "$F") $(figure doubles "$F") $(figure unknown "$G") $(figure doubles "$G")" \
    "0 1 1 0 1 0" \
    "pmdeath: after s4's promotion the cut-short payout is sent once (by s4), the one in flight is unknown, nothing created twice" \
    "$(grep '^#' <<<"$F$G")"
on s4 cluster_stop immediate >/dev/null 2>&1

# ---------------------------------------------------------------- (e) a fast stop during a claim's wait
# The synchronous standby is gone (stopped) while the worker's claim waits
# for it: pg_ctl stop -m fast must still stop the server (as it terminates
# PostgreSQL's own backends out of that wait), and the claim, which the
# standby lacks, must not leave: it is pending again, and sent once the
# standby is back.
reset_mocks
repl_primary p5 A || bail "fast stop: cannot make the primary p5"
repl_standby s5 p5 B || bail "fast stop: cannot make the standby s5"
on p5 cluster_psql -c "ALTER SYSTEM SET synchronous_standby_names = 's5'" -c "SELECT pg_reload_conf()" >/dev/null
TAG="96 fast stop"
rc=0; repl_wait_streaming p5 s5 sync && on s5 cluster_stop immediate >/dev/null || rc=1
# the application's commit must not wait for the stopped standby: the worker's does
PGOPTIONS="-c synchronous_commit=local" repl_queue p5 "$TAG" 1 >/dev/null || rc=1
deadline=$((SECONDS + 10))
until [ "$(on p5 sql1 "$syncrep")" = t ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.1; done
waiting=$(on p5 sql1 "$syncrep")
t0=$SECONDS
on p5 as_pg "$PGBIN/pg_ctl" stop -D "$REPL_DIR/p5/data" -m fast -w -t 30 -s || rc=1
took=$((SECONDS - t0))
is "$rc $waiting $(created_at A "$TAG")" "0 t 0" \
    "fast stop: pg_ctl stop -m fast while the worker's claim waits for a gone synchronous standby stops the server ($took s), nothing sent" \
    "$(tail -n 8 "$REPL_DIR/p5/server.log")"
rc=0; on p5 cluster_start >/dev/null || rc=1
# the claim came back to pending (a new claim of it waits for the standby again: unseen)
is "$rc $(on p5 sql1 "SELECT status || ': ' || last_error FROM payouts WHERE request ->> 'description' LIKE '$TAG #%'")" \
    "0 pending: the moneroo worker stopped before sending it" \
    "fast stop: after the restart the payout is pending, last_error says why"
on s5 cluster_start >/dev/null
repl_wait_drained p5 "$TAG" 30
F=$(repl_check p5 "$TAG" 1 --details A B)
diag "fast stop: $(head -n 1 <<<"$F")"
is "$(figure done "$F") $(figure created "$F") $(figure posted_twice "$F")" "1 1 0" \
    "fast stop: once the standby streams again it is sent, once" "$(grep '^#' <<<"$F")"

# ---------------------------------------------------------------- (f) claim_standbys with no standby streaming
# A claim could only wait for a standby that is not there and go back: the
# worker claims nothing, moneroo_status says why, moneroo_transfer refuses at
# once, verifications go on, and it sends as soon as a standby streams.
reset_mocks
on p5 cluster_psql -c "ALTER SYSTEM SET synchronous_standby_names = ''" -c "ALTER SYSTEM SET moneroo.claim_standbys = 1" \
    -c "SELECT pg_reload_conf()" >/dev/null 2>&1
VTAG="96 verified meanwhile"; TAG="96 no standby"
rc=0; repl_wait_streaming p5 s5 async || rc=1
repl_queue p5 "$VTAG" 1 >/dev/null || rc=1
repl_wait p5 "$VTAG" "done = 1" 10 || rc=1
# sent, its first verification due 2 s later: by then no standby streams
on s5 cluster_stop immediate >/dev/null || rc=1
stopped=$(date +%s.%N)
repl_queue p5 "$TAG" 3 >/dev/null || rc=1
# over 3 s, never one claimed: sampled every 0.1 s
claimed=0
for _ in $(seq 30); do
    [ "$(on p5 sql1 "SELECT count(*) FROM payouts WHERE status <> 'pending' AND request ->> 'description' LIKE '$TAG #%'")" = 0 ] ||
        claimed=$((claimed + 1))
    sleep 0.1
done
is "$rc $claimed $(created_at A "$TAG") $(on p5 sql1 "SELECT last_error LIKE 'not claiming: 0 standbys stream, moneroo.claim_standbys requires 1' FROM moneroo_status")" \
    "0 0 0 t" \
    "no standby: with claim_standbys = 1 and no standby streaming, nothing is claimed nor sent over 3 s, and moneroo_status.last_error says why" \
    "moneroo_status.last_error: $(on p5 sql1 "SELECT last_error FROM moneroo_status")"
t0=$(date +%s%N)
out=$(on p5 sql -c "SELECT moneroo_transfer(jsonb_build_object(
          'amount', 100, 'currency', 'USD', 'description', '96 no standby transfer', 'method', 'moneroo_payout_demo',
          'customer', jsonb_build_object('email', 'ha@example.com', 'first_name', 'Fail', 'last_name', 'Over'),
          'recipient', jsonb_build_object('account_number', '4149518161')))" 2>&1)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
is "$(grep -o 'ERROR:  payout was not sent: too few standbys stream' <<<"$out") $([ "$ms" -lt 1000 ] && echo prompt) $(on p5 sql1 "SELECT count(*) FROM payouts WHERE request ->> 'description' = '96 no standby transfer'")" \
    "ERROR:  payout was not sent: too few standbys stream prompt 0" \
    "no standby: moneroo_transfer fails at once ($ms ms) and records nothing" "$out"
deadline=$((SECONDS + 15))
settled="SELECT status IN ('success', 'failed') FROM payouts WHERE request ->> 'description' LIKE '$VTAG #%'"
until [ "$(on p5 sql1 "$settled")" = t ] ||
      [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
vid=$(on p5 sql1 "SELECT moneroo_id FROM payouts WHERE request ->> 'description' LIKE '$VTAG #%'")
verified=$(mock_on A mock_ctl GET /__mock/journal | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin) if e.get("method") == "GET"
          and e.get("path", "").endswith("/" + sys.argv[2] + "/verify") and e["time"] > float(sys.argv[1])))' "$stopped" "${vid:-none}")
is "$(on p5 sql1 "$settled") $([ "$verified" -ge 1 ] && echo verified)" \
    "t verified" "no standby: meanwhile a sent payout is verified as usual (and settles: success or failed)" \
    "verifications at the mock since the standby stopped: $verified"
t0=$SECONDS
on s5 cluster_start >/dev/null
repl_wait_drained p5 "$TAG" 30
F=$(repl_check p5 "$TAG" 3 --details A B)
diag "no standby: $(head -n 1 <<<"$F")"
is "$(figure done "$F") $(figure created "$F") $(figure posted_twice "$F") $(grep -c 'moneroo worker is claiming payouts again: 1 standbys stream' "$REPL_DIR/p5/server.log")" \
    "3 3 0 1" \
    "no standby: once s5 streams the three are sent, each once ($((SECONDS - t0)) s after its start), and the log says the worker claims again" \
    "$(grep '^#' <<<"$F")" "$(grep 'standbys' "$REPL_DIR/p5/server.log" | tail -n 4)"
on p5 cluster_stop immediate >/dev/null 2>&1; on s5 cluster_stop immediate >/dev/null 2>&1

[ "$T" -eq "$PLAN" ] || diag "ran $T tests, planned $PLAN"
exit 0
