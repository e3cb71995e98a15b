#!/usr/bin/env bash
# Proves: a copied or restored database pays nothing until an operator adopts it [fast, ~40 s].
# test/ha/66_copied_database.sh: a copied or restored database pays
# nothing until an operator adopts it (1.3).
#
# With moneroo.database = '*', CREATE DATABASE copy TEMPLATE shop used to be
# served within seconds and paid shop's pending payouts a second time, under
# the same references.  Here, on databases made for it (t66_shop, its copy
# t66_copy, its restore t66_restored, and t66_old, made at 1.2):
#   1. shop's payouts are sent once, by shop's worker; the copy's worker
#      claims none of the copy's (they stay pending), moneroo_status says
#      why (copy_of, last_error), moneroo_transfer in the copy is refused
#      (55000) and the mock created each reference once;
#   2. moneroo_adopt_database() is refused to a role that is granted EXECUTE
#      but is neither the extension's owner nor a superuser (42501); a
#      superuser's adoption empties copy_of, says what was recorded, and the
#      copy's payouts are sent (the operator's word: now twice at the mock);
#   3. a pg_dump of shop restored (moneroo.restoring on) into a new database
#      is a restore: copy_of names shop until it is adopted;
#   4. a database made at 1.2 and updated to 1.3 is recorded by the update:
#      copy_of is NULL.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.  Leaves the settings, the mock and the databases as it
# found them.
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

tap_plan 15

DBS=(t66_shop t66_copy t66_restored t66_old)
ROLE=t66_operator
D=$(mktemp -d /tmp/moneroo-t66.XXXXXX)
chmod 755 "$D"

# dsql DB QUERY: its value in database DB (ERROR:<message> on failure)
dsql() {
    local out
    if out=$(cluster_psql -d "$1" -At -c "$2" 2>&1); then printf '%s' "$out"; else printf 'ERROR:%s' "$out" | tr '\n' ' '; fi
}
# dstate DB QUERY: its value, or the SQLSTATE of its error
dstate() {
    local out
    out=$(cluster_psql -d "$1" -At -v ON_ERROR_STOP=1 -c '\set VERBOSITY verbose' -c "$2" 2>&1) ||
        out=$(printf '%s' "$out" | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): .*$/\1/p' | head -n 1)
    printf '%s' "$out"
}
# wait_in DB SECONDS CONDITION: until CONDITION holds in DB
wait_in() {
    local deadline=$((SECONDS + $2))
    until [ "$(dsql "$1" "SELECT ($3)")" = t ]; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 0.2; done
}
states() { dsql "$1" "SELECT coalesce(string_agg(status || ':' || n, ' ' ORDER BY status), 'none')
                      FROM (SELECT status, count(*) AS n FROM payouts GROUP BY status) s"; }

cleanup() {
    set +e
    sql -q -c 'ALTER SYSTEM RESET moneroo.database' -c 'SELECT pg_reload_conf()' >/dev/null 2>&1
    local db
    for db in "${DBS[@]}"; do
        cluster_psql -d postgres -q -c "SET client_min_messages = warning" \
            -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    done
    cluster_psql -d postgres -q -c "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1
    mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1
    rm -rf "$D"
}
trap cleanup EXIT

wait_server 30 || bail "the server does not answer"
quiet_stack
mock_ctl POST /__mock/reset '{}' >/dev/null || bail "cannot reset the mock"
for db in "${DBS[@]}"; do
    cluster_psql -d postgres -q -c "SET client_min_messages = warning" \
        -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || bail "cannot drop database $db"
done
cluster_psql -d postgres -q -c "DROP ROLE IF EXISTS $ROLE" -c "CREATE ROLE $ROLE LOGIN" || bail "cannot create role $ROLE"

# ---------------------------------------------------------------- 1. a copy
# t66_shop is not served yet (moneroo.database names the test database):
# its payouts wait, as they would in a shop whose connections are closed.
cluster_psql -d postgres -q -c "CREATE DATABASE t66_shop" || bail "cannot create t66_shop"
cluster_psql -d t66_shop -q -c 'CREATE EXTENSION moneroo' || bail "cannot CREATE EXTENSION in t66_shop"
queue -d t66_shop "t66 queued" 3 >/dev/null || bail "cannot queue payouts in t66_shop"
cluster_psql -d postgres -q -c "CREATE DATABASE t66_copy TEMPLATE t66_shop" || bail "cannot copy t66_shop"
is "$(dsql t66_shop "SELECT coalesce(copy_of, 'none') FROM moneroo_status")/$(states t66_copy)" "none/pending:3" \
    "a database with the extension created in it is its own (copy_of NULL); its copy holds its 3 pending payouts"

sql -q -c "ALTER SYSTEM SET moneroo.database = '*'" -c 'SELECT pg_reload_conf()' >/dev/null
wait_in t66_shop 20 "(SELECT count(*) FROM payouts WHERE status = 'success') = 3"
is "$(states t66_shop)" "success:3" "with moneroo.database = '*', the shop's worker sends its payouts"
wait_in t66_copy 20 "(SELECT worker_running AND last_error LIKE '%moneroo_adopt_database()%' FROM moneroo_status)"
is "$(states t66_copy)" "pending:3" "the copy's worker claims none of the copy's payouts: they stay pending"
is "$(dsql t66_copy "SELECT worker_running || ' / ' || (copy_of LIKE '\"t66_shop\" (OID %') || ' / ' || last_error FROM moneroo_status")" \
    "true / true / not claiming: this database is a copy or a restore of $(dsql t66_copy "SELECT copy_of FROM moneroo_status"); run SELECT moneroo_adopt_database() to let it pay" \
    "moneroo_status says so: copy_of names t66_shop, last_error says what to run"
is "$(dstate t66_copy "SELECT moneroo_transfer(request) FROM payouts LIMIT 1")" "55000" \
    "moneroo_transfer in the copy is refused (55000): nothing is sent"
is "$(mock_sent_twice)/$(mock_ctl GET /__mock/payouts | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')" "0/3" \
    "Moneroo created each of the three payouts once"

# ---------------------------------------------------------------- 2. adoption
cluster_psql -d t66_copy -q -c "GRANT EXECUTE ON FUNCTION moneroo_adopt_database() TO $ROLE" >/dev/null
is "$(cluster_psql -d t66_copy -U "$ROLE" -At -c '\set VERBOSITY verbose' -c 'SELECT moneroo_adopt_database()' 2>&1 |
      sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): .*$/\1/p')/$(states t66_copy)" "42501/pending:3" \
    "a role granted EXECUTE that is neither the owner nor a superuser cannot adopt it (42501)"
is "$(dsql t66_copy "SELECT moneroo_adopt_database() LIKE '\"t66_shop\" (OID %'")" "t" \
    "a superuser adopts the copy: moneroo_adopt_database() returns what was recorded (t66_shop)"
is "$(dsql t66_copy "SELECT coalesce(copy_of, 'none') FROM moneroo_status")/$(dsql t66_copy "SELECT database_name || ' ' || recorded_by FROM moneroo_database")" \
    "none/t66_copy postgres" "copy_of is NULL now, and moneroo_database says who adopted which database"
wait_in t66_copy 20 "(SELECT count(*) FROM payouts WHERE status = 'success') = 3"
is "$(states t66_copy)/$(mock_sent_twice)" "success:3/3" \
    "on the operator's word the copy's payouts are sent (each reference now twice at Moneroo)"
is "$(dsql t66_copy "SELECT moneroo_adopt_database() IS NULL")" "t" \
    "adopting the database again returns NULL: it was this database's already"

# ---------------------------------------------------------------- 3. a restore
rc=0
out=$("$PGBIN/pg_dump" -h "$PGHOST" -p "$PGPORT" -U postgres -Fc -f "$D/shop.dump" t66_shop 2>&1 &&
      cluster_psql -d postgres -q -c "CREATE DATABASE t66_restored" 2>&1 &&
      PGOPTIONS='-c moneroo.restoring=on' "$PGBIN/pg_restore" -h "$PGHOST" -p "$PGPORT" -U postgres \
          --exit-on-error -d t66_restored "$D/shop.dump" 2>&1) || rc=$?
is "$rc" "0" "a dump of t66_shop restores into a new database" "$(printf '%s' "$out" | head -n 5)"
is "$(dsql t66_restored "SELECT copy_of LIKE '\"t66_shop\" (OID %' FROM moneroo_status")" "t" \
    "the restored database is not its own: copy_of names t66_shop (the dumped record)"
is "$(dsql t66_restored "SELECT moneroo_adopt_database() IS NOT NULL")/$(dsql t66_restored "SELECT copy_of IS NULL FROM moneroo_status")" "t/t" \
    "once adopted, it is"

# ---------------------------------------------------------------- 4. an update
cluster_psql -d postgres -q -c "CREATE DATABASE t66_old" || bail "cannot create t66_old"
is "$(dsql t66_old "CREATE EXTENSION moneroo VERSION '1.2'; ALTER EXTENSION moneroo UPDATE;
                    SELECT coalesce(copy_of, 'none') FROM moneroo_status")/$(dsql t66_old "SELECT database_name FROM moneroo_database")" \
    "none/t66_old" "a database made at 1.2 is recorded by the update to 1.3: copy_of is NULL"
