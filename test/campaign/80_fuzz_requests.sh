#!/usr/bin/env bash
# Proves: 10,000 generated requests are judged as the contract's validation says [fast, ~10 s].
# 80_fuzz_requests.sh: the bad-input campaign, quick version (TAP).
#
# 10,000 generated payout requests (valid ones, valid ones mutated field by
# field, random JSON, huge and deeply nested documents, unicode, escapes next
# to NUL) judged by a Python model of the contract's validation rules and run
# through jsonb input + moneroo_validate, a sample through INSERT, UPDATE and
# moneroo_transfer, all in one transaction that is rolled back: invalid ones
# refused with 22023, valid ones accepted, nothing stored, nothing sent, no
# crash.  See test/fuzz/README.md.  The seed is fixed (deterministic);
# FUZZ_SEED=N picks another, FUZZ_SEED=-1 a random one (printed), FUZZ_COUNT=N
# the number of requests.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=/usr/bin/python3; [ -x "$py" ] || py=$(command -v python3)
exec "$py" "$here/fuzz/fuzz_requests.py" --count "${FUZZ_COUNT:-10000}" ${FUZZ_SEED:+--seed "$FUZZ_SEED"}
