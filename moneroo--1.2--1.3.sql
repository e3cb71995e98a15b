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
-- test/security/46_planted_operators.sh plants an operator for every such
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

-- ---------------------------------------------------------------- restores
-- Restore mode (moneroo.restoring) brings payouts back as they were dumped,
-- with their own history; the restore itself is recorded here: who, when,
-- how many payouts in which states, one row per statement that restored
-- rows (pg_restore's COPY of payouts is one).  Not in payout_events: its ids
-- come from a sequence that the dump sets back after the data, so an event
-- written during the restore would collide with the next one.  No sequence
-- here, for the same reason.  Written by the extension as the table's owner.
CREATE TABLE moneroo_restores (
    restored_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    restored_by name        NOT NULL,
    payouts     bigint      NOT NULL,
    statuses    jsonb       NOT NULL
);
COMMENT ON TABLE moneroo_restores IS
    'every restore of payouts with moneroo.restoring on: when, by whom, how many in which states';
REVOKE ALL ON moneroo_restores FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('moneroo_restores', '');
