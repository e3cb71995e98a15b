#!/usr/bin/env bash
# Proves: no operator planted in the extension's schema binds into or runs from its objects [fast, ~15 s].
# test/security/46_planted_operators.sh: an operator planted in the extension's
# schema never binds into the extension's objects.
#
# PostgreSQL runs CREATE EXTENSION and ALTER EXTENSION UPDATE with
# search_path set to the extension's schema and binds each operator of a view,
# constraint, default or index when its statement runs.  pg_catalog comes
# first, but only for an operator of exactly the argument types: for
# numeric * bigint (moneroo_batches' 100.0 * count(*) in 1.2) an operator
# *(numeric, bigint) in the extension's schema wins, and then runs as whoever
# reads the view, a superuser included.
#
# A role that may only create in public (no superuser, no privilege on the
# extension) plants, in public, an operator for every operator name and every
# pair of common types for which pg_catalog has no operator of exactly those
# types but resolves the expression through an implicit cast (or an untyped
# literal): several hundred, *(numeric, bigint) and /(numeric, bigint) among
# them.  Each records its call (operator, current_user, query) and then
# returns what pg_catalog's operator would.  Then, in three databases:
#   fresh  CREATE EXTENSION moneroo (1.0's script, then every update script);
#   1.1    CREATE EXTENSION moneroo VERSION '1.1' before the planting, then
#          ALTER EXTENSION moneroo UPDATE (1.1--1.2 and 1.2--1.3);
#   1.2    the same from 1.2 (1.2--1.3 only), whose moneroo_batches is first
#          bound to the planted operators, as the released 1.1--1.2 left it
#          when they were there: the update must replace it;
# each succeeds, no object depends on a planted operator, payouts in several
# states are written (the generated columns are computed), a superuser reads
# every view of the extension (moneroo_batches computes the share settled
# right), and no planted operator has run.  In the fresh database, README's
# query of the roles that may create in the schema (Security) names the
# planting role, and runs none of its operators either.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and
# cluster.sh functions it exports.  Creates its own databases and role and
# drops them; the worker does not serve these databases.
set -uo pipefail

if ! declare -F cluster_psql >/dev/null; then
    # shellcheck source=test/lib/cluster.sh
    . "${CLUSTER_LIB:-$(dirname "$0")/../lib/cluster.sh}"
fi
cluster_env
# shellcheck source=test/lib/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
# shellcheck source=test/lib/server.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/server.sh"

PLANTER=moneroo_t46_planter
CASES="fresh 1.1 1.2"
db_of() { printf 'moneroo_t46_%s' "${1//./_}"; }
PLAN=$((1 + 6 * 3 + 2))   # the update paths; six per database; README's query; the bound 1.2 view
tap_plan "$PLAN"

# in_db DB SQL: SQL's output in DB (one line per row), or ERROR:<message>.
in_db() { PGDATABASE=$1 sql1 "$2"; }

cleanup() {
    set +e
    local c
    for c in $CASES; do
        cluster_psql -q -d postgres -c "DROP DATABASE IF EXISTS $(db_of "$c") WITH (FORCE)" >/dev/null 2>&1
    done
    cluster_psql -q -d postgres -c "DROP ROLE IF EXISTS $PLANTER" >/dev/null 2>&1
}
trap cleanup EXIT
cleanup

DEFAULT_VERSION=$(in_db postgres "SELECT default_version FROM pg_available_extensions WHERE name = 'moneroo'")
out=$(cluster_psql -d postgres -c "CREATE ROLE $PLANTER NOLOGIN" 2>&1) || bail "cannot create $PLANTER: $out"

# The planting, run as $PLANTER in public.  For each operator name and pair
# of types (l, r) without an exact pg_catalog operator: what pg_catalog alone
# makes of NULL::l op NULL::r (and, for l = r, of NULL::l op NULL and NULL op
# NULL::r, where an untyped literal takes the other side's type), and if it
# makes something, an operator op(l, r) of that result type in public.
PLANT=$(cat <<'SQL'
CREATE TABLE public.t46_calls (operator text, called_by name, query text);
GRANT INSERT ON public.t46_calls TO PUBLIC;
DO $plant$
DECLARE
    types text[] := ARRAY['bigint', 'integer', 'smallint', 'numeric', 'double precision', 'real',
                          'text', 'character varying', '"char"', 'name', 'jsonb', 'json', 'uuid',
                          'timestamp with time zone', 'timestamp without time zone', 'date',
                          'interval', 'boolean', 'bytea', 'oid', 'text[]', 'bigint[]'];
    ops text[] := ARRAY['+', '-', '*', '/', '%', '^', '||', '=', '<>', '<', '>', '<=', '>=',
                        '->>', '->', '#>', '#>>', '~', '~*', '!~', '~~', '~~*', '!~~',
                        '@>', '<@', '?', '?|', '?&', '&&', '#-'];
    op text;
    l text;
    r text;
    rt text;
    probe text;
    n integer := 0;
BEGIN
    FOREACH op IN ARRAY ops LOOP
        FOREACH l IN ARRAY types LOOP
            FOREACH r IN ARRAY types LOOP
                CONTINUE WHEN EXISTS (SELECT FROM pg_catalog.pg_operator o
                                      WHERE o.oprname = op AND o.oprleft = l::regtype
                                        AND o.oprright = r::regtype
                                        AND o.oprnamespace = 'pg_catalog'::regnamespace);
                rt := NULL;
                FOREACH probe IN ARRAY ARRAY[format('NULL::%s %s NULL::%s', l, op, r)]
                        || CASE WHEN l = r THEN ARRAY[format('NULL::%s %s NULL', l, op),
                                                      format('NULL %s NULL::%s', op, r)] END
                LOOP
                    BEGIN
                        PERFORM set_config('search_path', 'pg_catalog', true);
                        EXECUTE 'SELECT pg_typeof(' || probe || ')::text' INTO rt;
                    EXCEPTION WHEN OTHERS THEN
                        rt := NULL;
                    END;
                    EXIT WHEN rt IS NOT NULL;
                END LOOP;
                CONTINUE WHEN rt IS NULL;
                n := n + 1;
                EXECUTE format($f$
                    CREATE FUNCTION public.t46_planted_%s(a %s, b %s) RETURNS %s
                    LANGUAGE plpgsql SET search_path = pg_catalog AS $body$
                    DECLARE
                        result %s;
                    BEGIN
                        INSERT INTO public.t46_calls VALUES (%L, current_user, current_query());
                        EXECUTE 'SELECT $1 %s $2' INTO result USING a, b;
                        RETURN result;
                    END
                    $body$$f$, n, l, r, rt, rt, format('%s(%s, %s)', op, l, r), op);
                EXECUTE format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.t46_planted_%s)',
                               op, l, r, n);
            END LOOP;
        END LOOP;
    END LOOP;
END
$plant$;
SET search_path = pg_catalog;
SELECT count(*), count(*) FILTER (WHERE oprname IN ('*', '/') AND oprleft = 'numeric'::regtype
                                        AND oprright = 'bigint'::regtype)
FROM pg_operator WHERE oprnamespace = 'public'::regnamespace;
SQL
)

# plant DB: prints "<operators planted>|2"
plant() {
    in_db "$1" "GRANT CREATE ON SCHEMA public TO $PLANTER; SET ROLE $PLANTER;
$PLANT"
}

# A valid sandbox request: req DESCRIPTION
req() {
    printf '{"amount": 2000, "currency": "USD", "description": "%s", "method": "moneroo_payout_demo",
             "customer": {"email": "t46@example.com", "first_name": "Planted", "last_name": "Operator"},
             "recipient": {"account_number": "4149518161"}}' "$1"
}
# Payouts of one batch in four states (pending through the row guard, the
# others as the worker would have left them), and a held one in another
# batch: 3 of the first batch's 4 are final (75.0 % settled).
WRITE="INSERT INTO payouts (request, batch) VALUES ('$(req pending)', 'payroll');
SET session_replication_role = replica;
INSERT INTO payouts (request, batch, status, attempts, moneroo_id, moneroo_status, sent_at, completed_at) VALUES
    ('$(req success)', 'payroll', 'success', 1, 't46_success', 'success', now(), now()),
    ('$(req failed)', 'payroll', 'failed', 1, 't46_failed', 'failed', now(), now());
INSERT INTO payouts (request, batch, status, attempts, last_error) VALUES
    ('$(req rejected)', 'payroll', 'rejected', 1, 'refused'),
    ('$(req unknown)', NULL, 'unknown', 1, 'no answer'),
    ('$(req held)', 'refunds', 'held', 0, 'over approval_above');
RESET session_replication_role;
SELECT count(*) FROM payouts WHERE amount = 2000 AND currency = 'USD' AND method = 'moneroo_payout_demo'"

# Every view of the extension, each row as text (every column computed).
READ_VIEWS="DO \$\$
DECLARE
    v regclass;
    rows text;
BEGIN
    FOR v IN SELECT c.oid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid = d.objid
             WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'e' AND c.relkind = 'v'
               AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'moneroo')
    LOOP
        EXECUTE format('SELECT pg_catalog.string_agg(v::text, '';'') FROM %s v', v) INTO rows;
    END LOOP;
END \$\$;
SELECT settled_percent FROM moneroo_batches WHERE batch = 'payroll'"

# README's Security section: the query that lists the roles, superusers
# aside, that may create in the schema (two lines, indented in a list item).
README_CREATORS=$(sed -n '/^  SELECT rolname FROM pg_roles$/{N;s/^  //;s/\n  / /;p;q}' \
                  "${REPO:-$(dirname "$0")/../..}/README.md")
[ -n "$README_CREATORS" ] || bail "README.md's Security section has no query of the roles that may create in the schema"

# The test's own bookkeeping runs with only pg_catalog in search_path, where
# the planted operators are not found: the objects that depend on a planted
# operator, and the calls of planted operators.
BOUND="SET search_path = pg_catalog;
SELECT coalesce(string_agg(use, '; ' ORDER BY use COLLATE \"C\"), 'none') FROM (
    SELECT pg_describe_object(d.classid, d.objid, d.objsubid) || ' uses ' || o.oid::regoperator::text
    FROM pg_depend d JOIN pg_operator o ON d.refclassid = 'pg_operator'::regclass AND d.refobjid = o.oid
    WHERE o.oprnamespace = 'public'::regnamespace) AS uses(use)"
CALLS="SET search_path = pg_catalog;
SELECT coalesce(string_agg(operator || ' as ' || called_by || ' in: ' || regexp_replace(left(query, 100), '\s+', ' ', 'g'), ' | '), 'none')
FROM public.t46_calls"

out=$(in_db postgres "SELECT string_agg(path, ', ' ORDER BY source) FROM pg_extension_update_paths('moneroo')
                      WHERE target = '$DEFAULT_VERSION' AND source IN ('1.1', '1.2')")
is "$out" "1.1--1.2--$DEFAULT_VERSION, 1.2--$DEFAULT_VERSION" \
    "1.1 and 1.2 update to the default version, $DEFAULT_VERSION"

for c in $CASES; do
    db=$(db_of "$c")
    out=$(cluster_psql -d postgres -c "CREATE DATABASE $db" 2>&1) || bail "cannot create $db: $out"
    if [ "$c" = fresh ]; then
        install="CREATE EXTENSION moneroo"
    else
        out=$(in_db "$db" "CREATE EXTENSION moneroo VERSION '$c'")
        [ "${out#ERROR}" = "$out" ] || bail "CREATE EXTENSION moneroo VERSION '$c' failed: $out"
        install="ALTER EXTENSION moneroo UPDATE"
    fi

    planted=$(plant "$db")
    if [[ $planted =~ ^([0-9]+)\|2$ ]] && [ "${BASH_REMATCH[1]}" -gt 100 ]; then
        pass "$c: a role that may only create in public plants ${BASH_REMATCH[1]} operators there, *(numeric, bigint) and /(numeric, bigint) among them"
    else
        fail "$c: a role that may only create in public plants operators there, *(numeric, bigint) and /(numeric, bigint) among them" "$planted"
    fi
    if [ "$c" = 1.2 ]; then
        # An installation made while the operators were there, by the
        # released 1.1--1.2 (which did not cast the counts): its view is
        # bound to them, until the update replaces it.
        is "$(in_db "$db" "DO \$\$ BEGIN
                               EXECUTE 'CREATE OR REPLACE VIEW moneroo_batches AS '
                                       || replace(pg_get_viewdef('moneroo_batches'::regclass), ')::numeric', ')');
                           END \$\$;
                           $BOUND")" \
            "rule _RETURN on view public.moneroo_batches uses public.*(numeric,bigint); rule _RETURN on view public.moneroo_batches uses public./(numeric,bigint)" \
            "$c: moneroo_batches as the released 1.1--1.2 made it while the operators were there uses *(numeric, bigint) and /(numeric, bigint)"
    fi

    if [ "$c" = fresh ]; then
        is "$(in_db "$db" "$README_CREATORS")" "$PLANTER" \
            "$c: README's query of the roles that may create in the schema names the planting role"
    fi
    is "$(in_db "$db" "$install; SELECT extversion FROM pg_extension WHERE extname = 'moneroo'")" "$DEFAULT_VERSION" \
        "$c: $install succeeds (version $DEFAULT_VERSION) with the planted operators in the extension's schema"
    is "$(in_db "$db" "$BOUND")" "none" \
        "$c: no view, constraint, default or index of the extension uses a planted operator"
    is "$(in_db "$db" "$WRITE")" "6" \
        "$c: payouts are written in six states, their amount, currency and method generated from the request"
    is "$(in_db "$db" "$READ_VIEWS")" "75.0" \
        "$c: a superuser reads every view of the extension; moneroo_batches says 75.0 % of a batch of 4 with 3 final payouts settled"
    is "$(in_db "$db" "$CALLS")" "none" \
        "$c: no planted operator ran: not during $install, nor for the writes, nor for the superuser's reads"
done
