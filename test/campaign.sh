#!/usr/bin/env bash
# test/campaign.sh: the long fault and bad-input campaign (issue 4), on a
# throwaway cluster and mock of its own.  Not part of test/run.sh, which runs
# the quick versions (test/campaign/80_*, 82_*, 85_*).
#
#   bash test/campaign.sh                   # everything, about 20-30 minutes
#   bash test/campaign.sh faults            # only the fault campaign
#   bash test/campaign.sh fuzz              # only the bad-input campaign
#   bash test/campaign.sh garbage           # only the API-garbage cases
#   bash test/campaign.sh ha                # only the failover campaign under Patroni (not in "all")
#   bash test/campaign.sh fuzz --seed S --count N --replay I   # replay one generated request
#
# Knobs (environment):
#   ROUNDS=21 PAYOUTS=1000        stop rounds (kill -9 / immediate / fast, 7 each) x payouts per round
#   API_GONE=180                  seconds the mock stays down
#   WRITEBACK=60                  seconds result write-back is refused mid-drain
#   READONLY=15                   seconds the worker's database stays read-only
#   CLIENTS=16 PER_CLIENT=200     pgbench clients x inserts each
#   OUTAGES=6                     outages of Moneroo (503s, hangs) of 5-40 s during one 1,000-payout drain
#   FUZZ_COUNT=100000             generated requests
#   FAILOVERS=5 HA_PAYOUTS=1000   ha: failovers per mode x payouts per drain
#   HA_MODES="sync async"         ha: Patroni's synchronous_mode, or asynchronous with claim_standbys 1
#   SEED=N                        seed of the campaigns (default: random, printed)
#   KEEP=1                        keep the work directory (logs, data directory)
# Output: TAP per part (in $WORK/*.tap), then a summary; exit status 0 only
# when nothing failed.  See test/fuzz/README.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export REPO   # test/lib/recipes.sh reads README.md (the Patroni configuration) from it
cd "$REPO"
unset WORK PGDATA PGHOST PGPORT PGUSER MOCK_PORT MOCK_URL SERVER_LOG MOCK_LOG MOCK_SCRIPT \
    CLUSTER_EXTRA_CONF CLUSTER_LIB PGOPTIONS PGSERVICE || true

WHAT=${1:-all}
[ $# -gt 0 ] && shift
case $WHAT in all|faults|fuzz|garbage|ha) ;; *) echo "usage: $0 [all|faults|fuzz|garbage|ha] [fuzz options]" >&2; exit 2 ;; esac

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo -n); fi
export PGDATABASE=moneroo_test
SEED=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
PY=/usr/bin/python3; [ -x "$PY" ] || PY=$(command -v python3)

# shellcheck source=test/lib/build.sh
. "$REPO/test/lib/build.sh"
# shellcheck source=test/lib/cluster.sh
. "$REPO/test/lib/cluster.sh"

T0=$SECONDS
echo "== packages and build"
install_packages >/dev/null
build_extension >/dev/null
work_create "$REPO" moneroo-campaign
trap stack_down EXIT
echo "== stack in $WORK (seed $SEED)"
# The breaker off, as in test/run.sh: the stop rounds inject one fault after
# another; the outage phase turns it on for itself.  The failover campaign
# brings up its own nodes and mock (test/lib/patroni.sh).
export CLUSTER_EXTRA_CONF="moneroo.breaker_threshold = 0"
STACK=0
if [ "$WHAT" != ha ]; then
    stack_up >/dev/null
    STACK=1
fi
export CLUSTER_LIB="$WORK/test/lib/cluster.sh" PGDATA PGHOST PGPORT MOCK_PORT MOCK_URL SERVER_LOG MOCK_LOG PGBIN

# fuzz replay: hand the arguments through
if [ "$WHAT" = fuzz ] && [ $# -gt 0 ]; then
    "$PY" "$WORK/test/fuzz/fuzz_requests.py" "$@"
    exit $?
fi

PARTS=()
FAILED=0
run_part() {        # run_part NAME COMMAND...: TAP into $WORK/NAME.tap, failures echoed
    local name=$1 t=$SECONDS rc=0
    shift
    echo
    echo "== $name  [$((SECONDS - T0))s]"
    [ "$STACK" = 0 ] || mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1 || true
    set +e
    "$@" 2>"$WORK/$name.err" | tee "$WORK/$name.tap" | grep --line-buffered -v '^ok '
    rc=${PIPESTATUS[0]}
    set -e
    local pass fail plan
    pass=$(grep -c '^ok ' "$WORK/$name.tap" || true)
    fail=$(grep -c '^not ok ' "$WORK/$name.tap" || true)
    plan=$(grep -m1 -o '^1\.\.[0-9]*' "$WORK/$name.tap" | cut -c4- || true)
    if [ "$rc" -ne 0 ] || [ -z "$plan" ] || [ "$plan" -ne $((pass + fail)) ]; then
        fail=$((fail + 1))
        echo "   $name exited with status $rc (plan ${plan:-none}, ran $((pass + fail - 1)))"
        tail -n 20 "$WORK/$name.err" | sed 's/^/   /'
    fi
    FAILED=$((FAILED + fail))
    PARTS+=("$(printf '%-10s %4d passed, %d failed  (%ds)' "$name" "$pass" "$fail" $((SECONDS - t)))")
    [ "$STACK" = 0 ] && return 0
    cluster_is_running || cluster_start
    mock_is_running || mock_start
}

if [ "$WHAT" = all ] || [ "$WHAT" = faults ]; then
    run_part faults "$PY" "$WORK/test/fuzz/fault_campaign.py" --seed "$SEED" \
        --rounds "${ROUNDS:-21}" --payouts "${PAYOUTS:-1000}" --drain-timeout 300 \
        --api-gone "${API_GONE:-180}" --gone-payouts 500 \
        --writeback "${WRITEBACK:-60}" --wb-payouts 1000 \
        --readonly "${READONLY:-15}" --ro-payouts 300 \
        --clients "${CLIENTS:-16}" --per-client "${PER_CLIENT:-200}" --journal-limit 0 \
        --outages "${OUTAGES:-6}" --outage-payouts 1000
fi
if [ "$WHAT" = all ] || [ "$WHAT" = fuzz ]; then
    run_part fuzz "$PY" "$WORK/test/fuzz/fuzz_requests.py" --seed "$SEED" --count "${FUZZ_COUNT:-100000}" \
        --insert-sample 5000 --update-sample 2000 --transfer-sample 2000 --timeout 3000
fi
if [ "$WHAT" = all ] || [ "$WHAT" = garbage ]; then
    run_part garbage "$PY" "$WORK/test/fuzz/api_garbage.py"
fi
if [ "$WHAT" = ha ]; then
    SEED=$SEED FAILOVERS=${FAILOVERS:-5} PAYOUTS=${HA_PAYOUTS:-1000} MODES=${HA_MODES:-sync async} \
        run_part ha bash "$WORK/test/fuzz/failover_campaign.sh"
fi

echo
echo "==== campaign summary  [$((SECONDS - T0))s]  seed $SEED"
for p in "${PARTS[@]}"; do echo "  $p"; done
grep -h '^# \(stops\|faults injected\|payouts\|seed\|  kind\|  model\|  failover\|figures\)' "$WORK"/*.tap 2>/dev/null | sed 's/^# */  /' || true
if [ "$FAILED" -eq 0 ]; then echo "campaign passed"; else echo "campaign FAILED: $FAILED failure(s); TAP in $WORK (KEEP=1 keeps it)"; fi
[ "$FAILED" -eq 0 ]
