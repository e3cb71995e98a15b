-- moneroo 1.2 -> 1.3 (unreleased: several changes land in this one script;
-- each adds its own section below, headed by a comment that says what it
-- changes and why).
--
-- Rules for every statement of this script (and of any later one):
--   - PostgreSQL runs it with search_path set to the extension's schema, and
--     binds a view's, constraint's, default's or index's operators when the
--     statement runs.  pg_catalog is searched first, but only for an
--     operator whose argument types match exactly: for any other (numeric *
--     bigint, say) a same-named operator of exactly those types in the
--     extension's schema wins, and runs as whoever later reads the view or
--     writes the row.  So every operator must have arguments of the exact
--     types of a pg_catalog operator (cast the operands, as in
--     (count(*))::numeric), or be written OPERATOR(pg_catalog.op).
--   - SQL and PL/pgSQL functions resolve their operators when they run, under
--     the caller's search_path: give them SET search_path = pg_catalog, pg_temp
--     and name the extension's objects @extschema@.name.
--   - Views are replaced (CREATE OR REPLACE VIEW, new columns last), never
--     dropped, so that they keep their grants; nothing here may rewrite a row
--     of payouts, so that the update stays safe while the worker sends.
\echo Use "ALTER EXTENSION moneroo UPDATE TO '1.3'" to load this file. \quit

-- ------------------------------------------------------------------------
-- Operators that resolve to pg_catalog's, whatever the schema holds.
--
-- moneroo_batches of 1.2 computed 100.0 * count(*) and ... / count(*):
-- numeric with bigint, for which pg_catalog has no operator of exactly those
-- types, so a role that could create in the extension's schema before the
-- update to 1.2 could plant *(numeric, bigint) and /(numeric, bigint) there:
-- the view bound them, and they ran as every reader, superusers included.
-- The view is replaced with the counts cast to numeric; that binds
-- pg_catalog's numeric * numeric and numeric / numeric again, the same
-- result, and drops a planted operator an installation may have bound.
--
-- The scripts of earlier versions, which a new CREATE EXTENSION still runs
-- (1.0 and then each update), were edited the same way after their release:
-- moneroo--1.1--1.2.sql for this view, and moneroo--1.0.sql for the
-- generated columns amount, currency and method of payouts, whose
-- request ->> 'amount' takes a planted ->>(jsonb, jsonb) (which can only make
-- CREATE EXTENSION fail: 'amount' is no jsonb); the columns an installation
-- has are pg_catalog's ->>(jsonb, text), so nothing here changes them.
-- test/scripts/46_planted_operators.sh plants an operator for every such
-- mixed pair of common types and checks that no script binds one.
CREATE OR REPLACE VIEW moneroo_batches AS
SELECT p.batch,
       p.currency,
       count(*) AS payouts,
       sum(p.amount) AS amount,
       count(*) FILTER (WHERE p.status = 'held')      AS held,
       count(*) FILTER (WHERE p.status = 'pending')   AS pending,
       count(*) FILTER (WHERE p.status = 'sending')   AS sending,
       count(*) FILTER (WHERE p.status = 'sent')      AS sent,
       count(*) FILTER (WHERE p.status = 'unknown')   AS unknown,
       count(*) FILTER (WHERE p.status = 'success')   AS success,
       count(*) FILTER (WHERE p.status = 'failed')    AS failed,
       count(*) FILTER (WHERE p.status = 'rejected')  AS rejected,
       count(*) FILTER (WHERE p.status = 'cancelled') AS cancelled,
       coalesce(sum(p.amount) FILTER (WHERE p.status = 'success'), 0) AS amount_paid,
       coalesce(sum(p.amount) FILTER (WHERE p.status IN ('held', 'pending', 'sending', 'sent', 'unknown')), 0)
           AS amount_open,
       coalesce(sum(p.amount) FILTER (WHERE p.status IN ('failed', 'rejected', 'cancelled')), 0)
           AS amount_not_paid,
       round(100.0 * (count(*) FILTER (WHERE p.status IN ('success', 'failed', 'rejected', 'cancelled')))::numeric
             / (count(*))::numeric, 1) AS settled_percent,
       min(p.sent_at) AS first_sent_at,
       max(p.sent_at) AS last_sent_at,
       min(p.created_at) FILTER (WHERE p.status = 'pending') AS oldest_pending
FROM @extschema@.payouts p
WHERE p.batch IS NOT NULL
GROUP BY p.batch, p.currency;

-- ------------------------------------------------------------------------
-- A copied or restored database pays nothing until an operator adopts it.
--
-- CREATE DATABASE copy TEMPLATE shop copies shop's pending and scheduled
-- payouts with their references; with moneroo.database = '*' a worker
-- served the copy within seconds and paid them a second time.  A restore
-- into another database is the same (the original may still pay them).
-- So the database the payouts belong to is recorded here, at CREATE
-- EXTENSION or at this update, and the worker claims nothing (and
-- moneroo_transfer sends nothing) while the table holds anything but one
-- row naming this very database (its OID: a copy gets a new one; ALTER
-- DATABASE RENAME, pg_upgrade, a promoted standby keep it).  The row is
-- dumped: a restore brings the dumped row beside the one its CREATE
-- EXTENSION wrote, so a restored database, whatever its OID, waits for an
-- operator too.  moneroo_adopt_database() (the extension's owner or a
-- superuser) makes this database the one, and says who and when.
CREATE TABLE moneroo_database (
    database_oid  oid NOT NULL,
    database_name name NOT NULL,
    recorded_by   name NOT NULL,
    recorded_at   timestamptz NOT NULL
);
COMMENT ON TABLE moneroo_database IS
    'the database whose payouts these are: the worker claims nothing in any other (a copy, a restore) until moneroo_adopt_database()';
INSERT INTO moneroo_database (database_oid, database_name, recorded_by, recorded_at)
SELECT d.oid, d.datname, current_user, pg_catalog.now()
FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database();
SELECT pg_catalog.pg_extension_config_dump('moneroo_database', '');
REVOKE ALL ON TABLE moneroo_database FROM PUBLIC;

CREATE FUNCTION moneroo_copy_of() RETURNS text
    AS 'MODULE_PATHNAME', 'moneroo_copy_of' LANGUAGE C STRICT;
COMMENT ON FUNCTION moneroo_copy_of() IS
    'NULL, or the database(s) whose payouts a copied or restored database holds until moneroo_adopt_database()';
CREATE FUNCTION moneroo_adopt_database() RETURNS text
    AS 'MODULE_PATHNAME', 'moneroo_adopt_database' LANGUAGE C STRICT;
COMMENT ON FUNCTION moneroo_adopt_database() IS
    'a copied or restored database pays its payouts from now on (the extension''s owner or a superuser)';
REVOKE ALL ON FUNCTION moneroo_copy_of(), moneroo_adopt_database() FROM PUBLIC;
-- like moneroo_account_info: moneroo_status's readers call it
GRANT EXECUTE ON FUNCTION moneroo_copy_of() TO PUBLIC;

CREATE OR REPLACE VIEW moneroo_status AS
WITH counts AS (
    SELECT coalesce(sum(c.payouts) FILTER (WHERE c.status = 'pending'), 0)::bigint   AS pending,
           coalesce(sum(c.payouts) FILTER (WHERE c.status = 'sending'), 0)::bigint   AS sending,
           coalesce(sum(c.payouts) FILTER (WHERE c.status = 'sent'), 0)::bigint      AS sent,
           coalesce(sum(c.payouts) FILTER (WHERE c.status = 'success'), 0)::bigint   AS success,
           coalesce(sum(c.payouts) FILTER (WHERE c.status = 'failed'), 0)::bigint    AS failed,
           coalesce(sum(c.payouts) FILTER (WHERE c.status = 'rejected'), 0)::bigint  AS rejected,
           coalesce(sum(c.payouts) FILTER (WHERE c.status = 'unknown'), 0)::bigint   AS unknown,
           coalesce(sum(c.payouts) FILTER (WHERE c.status = 'cancelled'), 0)::bigint AS cancelled,
           coalesce(sum(c.payouts) FILTER (WHERE c.status = 'held'), 0)::bigint      AS held
    FROM @extschema@.moneroo_state_counts c
)
SELECT w.worker_running,
       w.worker_pid,
       counts.pending,
       counts.sending,
       counts.sent,
       counts.success,
       counts.failed,
       counts.rejected,
       counts.unknown,
       (SELECT min(p.created_at) FROM @extschema@.payouts p WHERE p.status = 'pending') AS oldest_pending,
       w.in_flight,
       w.requests_last_minute,
       w.last_error,
       w.last_error_at,
       a.paused_until,
       a.pause_reason,
       counts.cancelled,
       counts.held,
       @extschema@.moneroo_copy_of() AS copy_of
FROM @extschema@.moneroo_worker_info() w
CROSS JOIN @extschema@.moneroo_account_info() a
CROSS JOIN counts;
