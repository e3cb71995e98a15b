#!/usr/bin/env bash
# Proves: the README's demo runs to completion and settles as the sandbox says [fast, ~15 s].
# The README's first command, run unattended: the demo must complete and
# every payout must end in the state the sandbox number dictates.
echo "1..1"
if out=$(bash "$REPO/test/demo.sh" --check 2>&1); then
    echo "ok 1 - the demo runs to completion and its payouts settle as expected"
else
    echo "not ok 1 - the demo runs to completion and its payouts settle as expected"
    printf '%s\n' "$out" | tail -n 30 | sed 's/^/# /'
fi
