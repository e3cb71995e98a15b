#!/usr/bin/env bash
# Proves: README's payouts_writer grant lets the application choose the reference [fast, ~2 s].
# test/security/43_readme_writer_reference.sh: README's payouts_writer may
# choose the reference, as README's payouts table section says applications may.
#
# README's Security section creates payouts_writer (run here verbatim but for
# the role's name, t43_payouts_writer); its "The payouts table" section tells
# applications to queue with INSERT INTO payouts (reference, request) ...
# ON CONFLICT (reference) DO NOTHING, so that an application's retry queues
# nothing twice.  As that role, in a database the worker does not serve:
# the insert queues the payout under the application's reference, and the
# same insert again queues nothing.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and
# cluster.sh functions it exports.  Drops the database and role it creates.
set -uo pipefail

# shellcheck source=test/lib/recipes.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

DB=moneroo_t43
ROLE=t43_payouts_writer
REFERENCE=0f6a3a4e-43a0-4c43-9e43-000000000043
tap_plan 3

cleanup() {
    set +e
    cluster_psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
        -c "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1
}
trap cleanup EXIT
cleanup

role_sql=$(readme_role payouts_writer)
[ -n "$role_sql" ] || bail "README.md's Security section creates no payouts_writer"
out=$(cluster_psql -d postgres -c "CREATE DATABASE $DB" 2>&1) || bail "cannot create $DB: $out"
out=$(cluster_psql -d "$DB" -c "CREATE EXTENSION moneroo" 2>&1) || bail "CREATE EXTENSION moneroo failed: $out"
out=$(printf '%s\n' "${role_sql//payouts_writer/$ROLE}" | cluster_psql -d "$DB" 2>&1)
is "$out" "" "README's payouts_writer is created as README writes it"

# README's statement, as the role, with the application's reference
QUEUE="SET ROLE $ROLE;
INSERT INTO payouts (reference, request) VALUES ('$REFERENCE', '{\"amount\": 700, \"currency\": \"USD\",
    \"description\": \"t43\", \"method\": \"moneroo_payout_demo\", \"recipient\": {\"account_number\": \"4149518161\"},
    \"customer\": {\"email\": \"t43@example.com\", \"first_name\": \"Ref\", \"last_name\": \"Erence\"}}')
ON CONFLICT (reference) DO NOTHING RETURNING reference, status, created_by"
is "$(PGDATABASE=$DB sql1 "$QUEUE")" "$REFERENCE|pending|$ROLE" \
    "README's payouts_writer queues a payout under a reference of its own choosing (INSERT ... (reference, request) ... ON CONFLICT (reference) DO NOTHING)"
is "$(PGDATABASE=$DB sql1 "$QUEUE")$(PGDATABASE=$DB sql1 "SELECT count(*) FROM payouts WHERE reference = '$REFERENCE'")" "1" \
    "the same insert again (an application's retry) queues nothing: one payout carries the reference"
