#!/usr/bin/env bash
# Proves: ALTER EXTENSION UPDATE from every earlier version keeps every payout [fast, ~5 s].
# test/packaging/60_upgrade.sh: ALTER EXTENSION moneroo UPDATE from 1.0, 1.1 and
# 1.2 to the default version (1.3).
#
# What a user upgrading a live installation needs to know holds:
#   A. In a database of its own (moneroo_upgrade, not served by the worker),
#      CREATE EXTENSION moneroo VERSION '1.0', payouts in every state, a
#      user-added payout method; ALTER EXTENSION moneroo UPDATE: every row is
#      kept column for column, the pg_dump registrations (extconfig) are
#      unchanged, the new index and view exist and the view lists exactly the
#      payouts an operator must look at.  The upgraded extension is the same,
#      object for object, as a fresh CREATE EXTENSION moneroo.
#   B. In the worker's database (moneroo_test): the extension is dropped and
#      created again at 1.1, three sandbox payouts are queued, and the update
#      runs while they are on the wire to Moneroo (the mock answers slowly).
#      They all reach their final states afterwards, none is sent twice, and
#      the extension is left at the default version as the other tests expect.
#      The update runs the scripts of 1.2 (1.1--1.2: new columns, limits,
#      the history) and 1.3 while they fly; their history starts at the update.
#      A subscription created right after the update (1.3) hears each of
#      their later events once, in order.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.  Leaves the settings and the mock as it found them,
# and moneroo_test with the extension at its default version (rows that other
# tests left in moneroo_test's payouts are dropped with the extension).
set -uo pipefail

# shellcheck source=test/lib/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"

DB_A=moneroo_upgrade          # part A: not served by the worker
DB_FRESH=moneroo_upgrade_fresh # a fresh CREATE EXTENSION, to compare with
DB_SCHEMA=moneroo_upgrade_schema # the extension in a schema of the user's choice
PLAN=40
# what pg_dump saves since 1.3 (1.2 added the limits and the history; 1.3 the restores, the
# subscriptions and the record of the database the payouts belong to, which a restore brings back)
CONFIG_1_3="moneroo_database [], moneroo_limits [], moneroo_payout_methods [WHERE NOT documented], moneroo_restores [], moneroo_subscribers [], payout_events [], payout_events_id_seq [], payouts [], payouts_id_seq []"

# ---------------------------------------------------------------- TAP
tap_plan "$PLAN"

# sql1 DB SQL: the output of every statement of SQL (unaligned, tuples only,
# one line per row), or ERROR:<message>.
sql1() {
    local out
    if out=$(printf '%s\n' "$2" | cluster_psql -d "$1" -At 2>&1); then printf '%s' "$out"; else printf 'ERROR:%s' "$out" | tr '\n' ' '; fi
}
# sqlf DB: run the script on stdin; print its output (errors included).
sqlf() { cluster_psql -d "$1" -At 2>&1; }

# ---------------------------------------------------------------- clean-up
restore() {
    set +e
    cluster_is_running || cluster_start >/dev/null 2>&1
    # the subscription of part B, and its handler, which depends on the extension's types
    cluster_psql -q -c "SELECT moneroo_unsubscribe('t60')" >/dev/null 2>&1
    cluster_psql -q -c "DROP SCHEMA IF EXISTS t60 CASCADE" >/dev/null 2>&1
    # moneroo_test keeps the extension at its default version, whatever happened
    if [ "$(sql1 "$PGDATABASE" "SELECT extversion FROM pg_extension WHERE extname = 'moneroo'")" \
         != "$(sql1 "$PGDATABASE" "SELECT default_version FROM pg_available_extensions WHERE name = 'moneroo'")" ]; then
        cluster_psql -q -c "DROP EXTENSION IF EXISTS moneroo" -c "CREATE EXTENSION moneroo" >/dev/null 2>&1 ||
            cluster_psql -q -c "ALTER EXTENSION moneroo UPDATE" >/dev/null 2>&1
    fi
    cluster_psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB_A WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $DB_FRESH WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $DB_SCHEMA WITH (FORCE)" >/dev/null 2>&1
    cluster_psql -q -c 'ALTER SYSTEM RESET moneroo.verify_min_interval' -c 'SELECT pg_reload_conf()' >/dev/null 2>&1
    mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1
}
trap restore EXIT

# A fresh server: the worker's rate-limit window and any pause after a 429
# left by an earlier script must not delay the sends this script waits for.
if ! cluster_restart >/dev/null 2>&1 || ! cluster_psql -At -c 'SELECT 1' >/dev/null 2>&1; then
    echo "Bail out! the server does not (re)start"
    exit 1
fi

# The catalogue entries that make up the extension, one line each: members,
# columns, constraints, indexes, triggers, view definitions, privileges and
# the pg_dump registrations.  Equal signatures mean equal extensions.
SIGNATURE="
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'moneroo'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rels AS (
    SELECT c.oid, c.relname FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid)
SELECT line FROM (
    SELECT 'member ' || pg_describe_object(classid, objid, 0) FROM members
    UNION ALL
    SELECT 'column ' || r.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
           || ' notnull=' || a.attnotnull || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
           || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
    FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum
    UNION ALL
    SELECT 'constraint ' || r.relname || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
    FROM rels r JOIN pg_constraint co ON co.conrelid = r.oid
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM rels r JOIN pg_index i ON i.indrelid = r.oid
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(tg.oid) FROM rels r JOIN pg_trigger tg ON tg.tgrelid = r.oid AND NOT tg.tgisinternal
    UNION ALL
    SELECT 'view ' || r.relname || ' ' || pg_get_viewdef(r.oid) FROM rels r JOIN pg_class c ON c.oid = r.oid AND c.relkind = 'v'
    UNION ALL
    SELECT 'acl ' || r.relname || ' ' || coalesce(c.relacl::text, 'default') FROM rels r JOIN pg_class c ON c.oid = r.oid
    UNION ALL
    SELECT 'acl ' || p.oid::regprocedure || ' ' || coalesce(p.proacl::text, 'default')
    FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid))
    FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid AND p.prokind = 'f'
    UNION ALL
    SELECT 'comment ' || pg_describe_object(d.classoid, d.objoid, d.objsubid) || ' ' || d.description
    FROM pg_description d JOIN members m ON m.classid = d.classoid AND m.objid = d.objoid
    UNION ALL
    SELECT 'extconfig ' || u.config::regclass || ' ' || u.condition
    FROM ext, unnest(ext.extconfig, ext.extcondition) AS u(config, condition)
) AS s(line) ORDER BY line"
EXTCONFIG="SELECT string_agg(u.config::regclass || ' [' || u.condition || ']', ', ' ORDER BY u.config::regclass::text)
           FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(config, condition)
           WHERE e.extname = 'moneroo'"
VERSION="SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'moneroo'), 'none')"
# The default version, from its one home (the Makefile reads it from there too).
DEFAULT_VERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "${REPO:-$(dirname "$0")/../..}/moneroo.control")
NEW_OBJECTS="SELECT to_regclass('payouts_created_at') IS NOT NULL AND to_regclass('moneroo_needs_attention') IS NOT NULL
                AND to_regprocedure('moneroo_cancel(bigint)') IS NOT NULL"

# ================================================================ A. a database of its own
is "$(sql1 postgres "SELECT string_agg(version, ' ' ORDER BY version) FROM pg_available_extension_versions WHERE name = 'moneroo'") / $(sql1 postgres "SELECT default_version FROM pg_available_extensions WHERE name = 'moneroo'") / $(sql1 postgres "SELECT string_agg(path, ', ' ORDER BY source) FROM pg_extension_update_paths('moneroo') WHERE target = '1.3' AND source IN ('1.0', '1.1', '1.2')")" \
    "1.0 1.1 1.2 1.3 / $DEFAULT_VERSION / 1.0--1.1--1.2--1.3, 1.1--1.2--1.3, 1.2--1.3" \
    "versions 1.0 to 1.3 are installed, moneroo.control's default is 1.3, and 1.0, 1.1 and 1.2 update to it"

meta=$(python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); print(m["version"], m["provides"]["moneroo"]["version"])' \
       "${REPO:-.}/META.json" 2>&1)
is "$meta" "$(sql1 postgres "SELECT default_version || '.0 ' || default_version || '.0' FROM pg_available_extensions WHERE name = 'moneroo'")" \
    "META.json (PGXN) announces the default version, as the distribution's and the extension's version"

out=$(cluster_psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB_A WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $DB_FRESH WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $DB_SCHEMA WITH (FORCE)" \
        -c "CREATE DATABASE $DB_A" -c "CREATE DATABASE $DB_FRESH" -c "CREATE DATABASE $DB_SCHEMA" 2>&1) ||
    { echo "Bail out! cannot create the databases: $out"; exit 1; }

is "$(sql1 $DB_A "CREATE EXTENSION moneroo VERSION '1.0'; $VERSION; $NEW_OBJECTS")" $'1.0\nf' \
    "CREATE EXTENSION moneroo VERSION '1.0' installs 1.0, without the index and view of 1.1"

# Payouts in every state (rows in states other than pending are written with
# the row guard off, as the extension itself would have left them), and a
# payout method of the user's.
out=$(sqlf $DB_A <<'SQL'
\set ON_ERROR_STOP 1
INSERT INTO moneroo_payout_methods (code, name, currency, country, recipient_field, dial_code)
VALUES ('regress_gm', 'Regress Money Gambia', 'GMD', 'GM', 'msisdn', '220');
CREATE FUNCTION pg_temp.req(descr text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('amount', 1500, 'currency', 'USD', 'description', descr,
        'method', 'moneroo_payout_demo',
        'customer', jsonb_build_object('email', 'upgrade@example.com', 'first_name', 'Up', 'last_name', 'Grade'),
        'recipient', jsonb_build_object('account_number', '4149518161'))
$$;
INSERT INTO payouts (request) VALUES (pg_temp.req('pending'));
INSERT INTO payouts (request) VALUES ('{"amount": 300, "currency": "GMD", "description": "pending, user method",
    "method": "regress_gm", "customer": {"email": "gm@example.com", "first_name": "G", "last_name": "M"},
    "recipient": {"msisdn": "2207001234"}}');
SET session_replication_role = replica;
INSERT INTO payouts (request, status, attempts, last_error, next_attempt_at) VALUES
    (pg_temp.req('pending after failed attempts'), 'pending', 2,
     'could not connect to Moneroo: Connection refused', now() + interval '10 s'),
    (pg_temp.req('pending, attempted, no error'), 'pending', 1, NULL, NULL);
INSERT INTO payouts (request, status, attempts) VALUES (pg_temp.req('sending'), 'sending', 1);
INSERT INTO payouts (request, status, attempts, moneroo_id, moneroo_status, sent_at, response, verifications) VALUES
    (pg_temp.req('sent two days ago'), 'sent', 1, 'upg_sent_old', 'pending', now() - interval '2 days', '{"success": true}', 9),
    (pg_temp.req('sent an hour ago'), 'sent', 1, 'upg_sent_new', 'pending', now() - interval '1 hour', '{"success": true}', 3);
INSERT INTO payouts (request, status, attempts, moneroo_id, moneroo_status, sent_at, completed_at, response) VALUES
    (pg_temp.req('success'), 'success', 1, 'upg_success', 'success', now() - interval '1 day', now(), '{"success": true}'),
    (pg_temp.req('failed'), 'failed', 1, 'upg_failed', 'failed', now() - interval '1 day', now(), '{"success": true}');
INSERT INTO payouts (request, status, attempts, last_error, response) VALUES
    (pg_temp.req('rejected'), 'rejected', 1, 'Moneroo refused the payout (HTTP 422): The amount is invalid',
     '{"success": false, "message": "The amount is invalid"}'),
    (pg_temp.req('unknown'), 'unknown', 1, 'Moneroo answered HTTP 500: the outcome is unknown', NULL);
RESET session_replication_role;
SELECT count(*) FROM payouts;
SQL
)
is "$out" "11" "a 1.0 database holds payouts in every state and a user-added payout method"

# the columns 1.0 had: 1.2 adds send_at, created_by, idempotency_key and
# batch, 1.3 acknowledged_at, acknowledged_by and acknowledgement
ROWS="SELECT (to_jsonb(p) - 'send_at' - 'created_by' - 'idempotency_key' - 'batch'
              - 'acknowledged_at' - 'acknowledged_by' - 'acknowledgement')::text FROM payouts p ORDER BY id"
METHODS="SELECT m::text FROM moneroo_payout_methods m ORDER BY code"
rows_before=$(sql1 $DB_A "$ROWS")
methods_before=$(sql1 $DB_A "$METHODS")
config_before=$(sql1 $DB_A "$EXTCONFIG")
seq_before=$(sql1 $DB_A "SELECT last_value || ' ' || is_called FROM payouts_id_seq")

# A site whose default privileges grant every new table to PUBLIC: the
# objects the update creates must still be closed to PUBLIC.
sql1 $DB_A "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC" >/dev/null
is "$(sql1 $DB_A "ALTER EXTENSION moneroo UPDATE; $VERSION")" "$DEFAULT_VERSION" \
    "ALTER EXTENSION moneroo UPDATE takes a 1.0 installation to the default version ($DEFAULT_VERSION)"

rows_after=$(sql1 $DB_A "$ROWS")
if [ "$rows_after" == "$rows_before" ] && [ -n "$rows_before" ]; then
    pass "every payout is kept, every column unchanged (ids, references, requests, states, times)"
else
    fail "every payout is kept, every column unchanged (ids, references, requests, states, times)" \
        "$(diff <(printf '%s\n' "$rows_before") <(printf '%s\n' "$rows_after") | head -n 20)"
fi
is "$(sql1 $DB_A "$METHODS")" "$methods_before" "the payout methods, the user's included, are unchanged"
is "$(sql1 $DB_A "SELECT last_value || ' ' || is_called FROM payouts_id_seq")" "$seq_before" \
    "the payout id sequence is where it was"
is "$(sql1 $DB_A "SELECT count(*) FROM payouts WHERE send_at IS NULL AND created_by IS NULL AND idempotency_key IS NULL AND batch IS NULL")" \
    "11" "the columns 1.2 adds are NULL for every payout that was there: nobody scheduled, keyed or batched them, or can tell who queued them"
is "$(sql1 $DB_A "SELECT count(*) FROM payout_events")" "0" \
    "payout_events starts empty: the history of the payouts already there starts at the update"
is "$config_before" "moneroo_payout_methods [WHERE NOT documented], payouts [], payouts_id_seq []" \
    "1.0 registers the three documented tables for pg_dump"
is "$(sql1 $DB_A "$EXTCONFIG")" "$CONFIG_1_3" \
    "pg_dump still saves those, since 1.2 the limits and the history too, since 1.3 the restores, the subscriptions and moneroo_database (pg_extension_config_dump)"

is "$(sql1 $DB_A "SELECT pg_get_indexdef('payouts_created_at'::regclass)")" \
    "CREATE INDEX payouts_created_at ON public.payouts USING btree (created_at)" \
    "1.1 adds the index payouts_created_at on payouts (created_at), for day exports and reports"
is "$(sql1 $DB_A "SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM payouts
                  WHERE created_at >= '2025-01-31' AND created_at < '2025-02-01'" | grep -c 'payouts_created_at')" "1" \
    "a query for one day's payouts can use it"
is "$(sql1 $DB_A "SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                  FROM pg_attribute a WHERE a.attrelid = 'moneroo_needs_attention'::regclass AND a.attnum > 0")" \
    "id bigint, reference uuid, status text, amount bigint, currency text, method text, attempts integer, last_error text, updated_at timestamp with time zone, reason text, subscription text" \
    "1.1 adds the view moneroo_needs_attention with the payout's id, reference, status, amount, currency, method, attempts, last_error, updated_at and a reason (1.3: and a failing subscription's name, last)"
is "$(sql1 $DB_A "SELECT count(*) FROM pg_depend WHERE classid = 'pg_class'::regclass
                    AND objid = 'moneroo_needs_attention'::regclass AND deptype = 'e'
                    AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'moneroo')")" "1" \
    "the view belongs to the extension (dropped with it, not dumped)"
is "$(sql1 $DB_A "SELECT count(*) FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                  WHERE c.oid = 'moneroo_needs_attention'::regclass AND a.grantee <> c.relowner")" "0" \
    "nobody but its owner may read the view, even where default privileges grant new tables to PUBLIC"
is "$(sql1 $DB_A "SELECT count(*) FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                  WHERE c.oid = 'moneroo_batches'::regclass AND a.grantee <> c.relowner")" "0" \
    "nor moneroo_batches of 1.2 (a payroll's amounts), under the same default privileges"

# The view lists what an operator must act on, and nothing else.
is "$(sql1 $DB_A "SELECT string_agg(p.request ->> 'description', ', ' ORDER BY p.id)
                  FROM moneroo_needs_attention v JOIN payouts p USING (id)")" \
    "pending after failed attempts, sent two days ago, rejected, unknown" \
    "the view lists unknown and rejected payouts, pending ones whose attempts failed, and payouts sent over a day ago; not pending-unattempted, sending, recently sent, success or failed ones"
is "$(sql1 $DB_A "SELECT count(*) FROM moneroo_needs_attention v JOIN payouts p USING (id)
                  WHERE (v.reference, v.status, v.amount, v.currency, v.method, v.attempts, v.last_error, v.updated_at)
                        IS NOT DISTINCT FROM
                        (p.reference, p.status, p.amount, p.currency, p.method, p.attempts, p.last_error, p.updated_at)")" "4" \
    "each of its rows carries the payout's own values"
is "$(sql1 $DB_A "SELECT string_agg(status || ':' || (reason ~ CASE status WHEN 'unknown' THEN 'moneroo_retry'
                                                                     WHEN 'sent' THEN 'moneroo_verify'
                                                                     WHEN 'rejected' THEN 'new payout'
                                                                     WHEN 'pending' THEN 'retried' END), ' ' ORDER BY id)
                  FROM moneroo_needs_attention")" \
    "pending:true sent:true rejected:true unknown:true" \
    "its reason says what to do: retry an unknown one after checking, verify an old sent one, queue a new payout for a rejected one, wait for a pending one" \
    "reasons: $(sql1 $DB_A "SELECT string_agg(status || ': ' || reason, ' | ' ORDER BY id) FROM moneroo_needs_attention")"

# The upgraded extension is the extension a new user gets.
sig_upgraded=$(sql1 $DB_A "$SIGNATURE")
sig_fresh=$(sql1 $DB_FRESH "CREATE EXTENSION moneroo; $SIGNATURE")
if [ "$sig_upgraded" == "$sig_fresh" ] && [ "${sig_fresh#ERROR}" == "$sig_fresh" ] &&
   [ "$(printf '%s\n' "$sig_fresh" | wc -l)" -gt 50 ]; then
    pass "an updated 1.0 installation is object for object a fresh CREATE EXTENSION moneroo (tables, columns, indexes, triggers, views, functions, privileges, comments)"
else
    fail "an updated 1.0 installation is object for object a fresh CREATE EXTENSION moneroo (tables, columns, indexes, triggers, views, functions, privileges, comments)" \
        "$(diff <(printf '%s\n' "$sig_upgraded") <(printf '%s\n' "$sig_fresh") | head -n 20)" \
        "$(printf '%s\n' "$sig_fresh" | head -n 3)"
fi
is "$(sql1 $DB_FRESH "$VERSION")" "$DEFAULT_VERSION" "a fresh CREATE EXTENSION moneroo installs the default version ($DEFAULT_VERSION)"

# In a schema of the user's choice, the update puts its objects beside the others.
is "$(sql1 $DB_SCHEMA "CREATE SCHEMA billing; CREATE EXTENSION moneroo SCHEMA billing VERSION '1.0';
                       INSERT INTO billing.payouts (request) VALUES ('{\"amount\": 1, \"currency\": \"USD\", \"description\": \"s\",
                           \"method\": \"moneroo_payout_demo\", \"recipient\": {\"account_number\": \"4149518161\"},
                           \"customer\": {\"email\": \"s@example.com\", \"first_name\": \"S\", \"last_name\": \"S\"}}');
                       ALTER EXTENSION moneroo UPDATE;
                       SELECT string_agg(c.oid::regclass::text, ' ' ORDER BY c.relname) FROM pg_class c
                       WHERE c.relname IN ('payouts', 'payouts_created_at', 'moneroo_needs_attention');
                       SELECT count(*) FROM billing.moneroo_needs_attention")" \
    $'billing.moneroo_needs_attention billing.payouts billing.payouts_created_at\n0' \
    "with CREATE EXTENSION moneroo SCHEMA billing, the update creates its view and index in billing, over billing.payouts"

# The extension keeps its statements' plans and the table's location for the
# life of a session: renaming the schema and dropping and creating the
# extension again under a session that used them must not leave it stale.
REQ='{"amount": 1, "currency": "USD", "description": "s", "method": "moneroo_payout_demo", "recipient": {"account_number": "4149518161"}, "customer": {"email": "s@example.com", "first_name": "S", "last_name": "S"}}'
is "$(sql1 $DB_SCHEMA "INSERT INTO billing.payouts (request) VALUES ('$REQ');
                       DO \$\$ BEGIN PERFORM billing.moneroo_retry(max(id)) FROM billing.payouts;
                           EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL; END \$\$;
                       ALTER SCHEMA billing RENAME TO accounts;
                       INSERT INTO accounts.payouts (request) VALUES ('$REQ');
                       DO \$\$ BEGIN PERFORM accounts.moneroo_retry(max(id)) FROM accounts.payouts;
                           EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL; END \$\$;
                       DROP EXTENSION moneroo;
                       CREATE EXTENSION moneroo SCHEMA accounts;
                       INSERT INTO accounts.payouts (request) VALUES ('$REQ');
                       DO \$\$ BEGIN PERFORM accounts.moneroo_retry(max(id)) FROM accounts.payouts;
                           EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL; END \$\$;
                       SELECT count(*) || ' ' || min(id) FROM accounts.payouts;")" \
    "1 1" \
    "in one session, after ALTER SCHEMA ... RENAME and after DROP and CREATE EXTENSION, the extension finds its table again (the kept plans and location are refreshed)"

# ================================================================ B. the worker's database
# Settle the worker first: nothing in flight may outlive the table it belongs to.
quiet=$(sql1 "$PGDATABASE" "SELECT mock.wait_for(\$\$ NOT EXISTS (SELECT FROM payouts WHERE status = 'sending')
                                                   AND (SELECT worker_running AND in_flight = 0 FROM moneroo_status) \$\$, 20)")
[ "$quiet" = t ] || printf '# the worker still had requests in flight before the drop: %s\n' "$quiet"
mock_ctl POST /__mock/reset '{}' >/dev/null
cluster_psql -q -c "ALTER SYSTEM SET moneroo.verify_min_interval = '200ms'" -c 'SELECT pg_reload_conf()' >/dev/null

version_before=$(sql1 "$PGDATABASE" "$VERSION")
is "$version_before" "$DEFAULT_VERSION" "the worker's database runs the default version, $DEFAULT_VERSION"

out=$(sql1 "$PGDATABASE" "DROP EXTENSION moneroo; CREATE EXTENSION moneroo VERSION '1.1'; $VERSION; $NEW_OBJECTS")
if [ "$out" != $'1.1\nf' ]; then
    fail "the worker's database goes back to 1.1 (DROP EXTENSION moneroo; CREATE EXTENSION moneroo VERSION '1.1')" "$out"
    skip_rest "the worker's database could not be set back to 1.1"
    exit 0
fi
pass "the worker's database goes back to 1.1 (DROP EXTENSION moneroo; CREATE EXTENSION moneroo VERSION '1.1')"
config_before=$(sql1 "$PGDATABASE" "$EXTCONFIG")

# Moneroo answers each request 1 s after receiving it: the update runs while
# the three payouts are on the wire.
mock_ctl POST /__mock/config '{"latency_ms": 1000}' >/dev/null
ids=$(sql1 "$PGDATABASE" "INSERT INTO payouts (request)
    SELECT jsonb_build_object('amount', 100 + n, 'currency', 'USD', 'description', 'upgrade #' || n,
             'method', 'moneroo_payout_demo',
             'customer', jsonb_build_object('email', 'upgrade@example.com', 'first_name', 'Up', 'last_name', 'Grade'),
             'recipient', jsonb_build_object('account_number', (4149518160 + n)::text))
    FROM generate_series(1, 3) AS n
    RETURNING id" | tr '\n' ',' | sed 's/,$//')
case $ids in
    *ERROR*|"") fail "three sandbox payouts are queued in the 1.1 table" "$ids"; skip_rest "nothing queued"; exit 0 ;;
esac
MINE="SELECT * FROM payouts WHERE id IN ($ids)"
KEYS="SELECT id || ' ' || reference || ' ' || request::text FROM ($MINE) m ORDER BY id"
keys_before=$(sql1 "$PGDATABASE" "$KEYS")
is "$(sql1 "$PGDATABASE" "SELECT mock.wait_for(\$\$ EXISTS (SELECT FROM ($MINE) m WHERE status = 'sending') \$\$, 10)")" "t" \
    "the worker on 1.1 claims the first payout and sends it"

# The worker spaces its requests to keep within moneroo.rate_limit (120/min:
# one every 0.5 s), so at this point one payout is on the wire and the others
# wait their turn: the update crosses both.
during=$(sql1 "$PGDATABASE" "ALTER EXTENSION moneroo UPDATE;
    SELECT count(*) FILTER (WHERE status = 'sending') > 0 AND count(*) FILTER (WHERE status IN ('pending', 'sending')) = 3
    FROM ($MINE) m")
is "$during" "t" \
    "ALTER EXTENSION moneroo UPDATE (1.1 to 1.3) completes while the payouts are in flight or queued, none answered yet" \
    "states when the update committed: $(sql1 "$PGDATABASE" "SELECT string_agg(status, ' ' ORDER BY id) FROM ($MINE) m")"
is "$(sql1 "$PGDATABASE" "$VERSION; $NEW_OBJECTS")" "$DEFAULT_VERSION"$'\nt' \
    "the worker's database is at $DEFAULT_VERSION, with the new index, views and functions"

# A subscription right after the update, while the payouts still fly.
is "$(sql1 "$PGDATABASE" "CREATE SCHEMA t60;
    CREATE TABLE t60.heard (event_id bigint, n bigint GENERATED ALWAYS AS IDENTITY);
    CREATE FUNCTION t60.hear(event payout_events, payout payouts) RETURNS void
        LANGUAGE sql AS 'INSERT INTO t60.heard (event_id) VALUES (event.id)';
    DO \$\$ BEGIN PERFORM moneroo_subscribe('t60', 't60.hear(payout_events, payouts)'); END \$\$;
    SELECT position = coalesce(pg_sequence_last_value('payout_events_id_seq'), 0)
    FROM moneroo_subscriptions WHERE name = 't60'")" "t" \
    "a subscription is created right after the update, starting after the last event id given out"
sub_start=$(sql1 "$PGDATABASE" "SELECT position FROM moneroo_subscriptions WHERE name = 't60'")

is "$(sql1 "$PGDATABASE" "SELECT mock.wait_for(\$\$ (SELECT string_agg(status || '/' || coalesce(moneroo_status, '-'), ' ' ORDER BY id)
                                                    FROM ($MINE) m) = 'success/success failed/failed sent/pending' \$\$, 20)")" "t" \
    "after the update the worker records Moneroo's answers and settles each payout: 4149518161 success, 4149518162 failed, 4149518163 sent (pending at Moneroo)" \
    "states: $(sql1 "$PGDATABASE" "SELECT string_agg(id || ' ' || status || '/' || coalesce(moneroo_status, '-') || ' ' || coalesce(last_error, ''), '; ' ORDER BY id) FROM ($MINE) m")"
is "$(sql1 "$PGDATABASE" "$KEYS")" "$keys_before" "their ids, references and requests are unchanged"
is "$(sql1 "$PGDATABASE" "SELECT count(*) FROM ($MINE) m JOIN (SELECT p ->> 'id' AS mid, p ->> 'reference' AS ref FROM mock.payouts() p) x
                          ON x.mid = m.moneroo_id AND x.ref = m.reference::text")" "3" \
    "each payout carries the Moneroo id of the payout Moneroo created for its reference"
is "$(sql1 "$PGDATABASE" "SELECT (s -> 'creates')::text || ' ' || (s -> 'duplicate_references')::text FROM mock.stats() s") / $(sql1 "$PGDATABASE" "SELECT count(*) FROM mock.journal() j WHERE j ->> 'path' = '/v1/payouts/initialize'")" \
    "3 [] / 3" \
    "Moneroo received exactly one initialize per payout and created each once"
is "$(sql1 "$PGDATABASE" "SELECT mock.wait_for(\$\$ (SELECT events_behind FROM moneroo_subscriptions WHERE name = 't60') = 0 \$\$, 20)
                          AND (SELECT array_agg(event_id ORDER BY n) FROM t60.heard)
                              = (SELECT array_agg(id ORDER BY id) FROM payout_events WHERE id > $sub_start)")" "t" \
    "the subscription heard every later event of the payouts that flew through the update, once, in order" \
    "heard: $(sql1 "$PGDATABASE" "SELECT string_agg(event_id::text, ' ' ORDER BY n) FROM t60.heard") events: $(sql1 "$PGDATABASE" "SELECT string_agg(id::text, ' ' ORDER BY id) FROM payout_events WHERE id > $sub_start")"
is "$(sql1 "$PGDATABASE" "$EXTCONFIG")" "$CONFIG_1_3" \
    "the pg_dump registrations of the worker's database are those of 1.3 after the update"
is "$(sql1 "$PGDATABASE" "SELECT count(*) FILTER (WHERE e.previous_status IS NULL) || ' ' || count(*) FILTER (WHERE e.status IN ('success', 'failed'))
                          FROM payout_events e WHERE e.payout_id IN (SELECT id FROM ($MINE) m)")" "0 2" \
    "the payouts that flew through the update have a history from the update on: no INSERT event, their settlement recorded"
is "$(sql1 "$PGDATABASE" "SELECT worker_running FROM moneroo_status")" "t" "the worker still runs after the update"
is "$(sql1 "$PGDATABASE" "SELECT extversion FROM pg_extension WHERE extname = 'moneroo'")" "$version_before" \
    "the worker's database is left at the version it had before the test"
