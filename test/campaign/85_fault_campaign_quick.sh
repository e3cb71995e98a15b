#!/usr/bin/env bash
# Proves: random kills and faults mid-drain lose and double no payout [slow, ~1 min].
# 85_fault_campaign_quick.sh: the fault campaign, quick version (TAP).
#
# 3 rounds (one kill -9 of the worker, one pg_ctl stop -m immediate, one
# fast shutdown, at random moments) of a 200-payout drain with faults
# injected at random; the mock gone for 20 s; result write-back refused for
# 8 s mid-drain; the worker's database read-only; 16 pgbench clients while
# an operator retries.  After each: no row in sending, no reference created
# twice, every payout the mock created recorded with its id or unknown, every
# row accounted for.  The long version is test/campaign.sh.  FAULT_SEED=N
# repeats a run's random choices.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=/usr/bin/python3; [ -x "$py" ] || py=$(command -v python3)
exec "$py" "$here/fuzz/fault_campaign.py" --seed "${FAULT_SEED:-85}" --rounds 3 --payouts 200 \
    --api-gone 20 --writeback 8 --readonly 6 --clients 16 --per-client 15
