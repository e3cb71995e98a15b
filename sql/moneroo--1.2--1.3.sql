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
-- Acknowledging: an attention list that empties.
--
-- A rejected payout stayed in moneroo_needs_attention for ever: at 2 %
-- rejected, 20,000 rows at a million payouts, and the ones that still need
-- a person lost among them.  moneroo_acknowledge(id, note) records that an
-- operator dealt with a payout that ended unpaid (rejected, failed or
-- cancelled): who, when and how on the row (columns only the extension
-- writes, like the state columns), and an event in payout_events whose
-- status is its previous_status (so moneroo_state_counts, which counts +1
-- into status and -1 out of previous_status, does not move).  The view no
-- longer lists an acknowledged payout, and its index no longer holds one,
-- so that the view reads only what it lists however many were acknowledged.
-- The new columns have no default: no row is rewritten.  Rebuilding the
-- index reads payouts once, under a lock that lets the worker read but not
-- write for as long.
ALTER TABLE @extschema@.payouts
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by name,
    ADD COLUMN acknowledgement text;
COMMENT ON COLUMN @extschema@.payouts.acknowledged_at IS
    'when an operator acknowledged this unpaid payout (moneroo_acknowledge); set by the extension';
COMMENT ON COLUMN @extschema@.payouts.acknowledged_by IS 'the role that acknowledged it; set by the extension';
COMMENT ON COLUMN @extschema@.payouts.acknowledgement IS 'how it was dealt with, in the operator''s words';

DROP INDEX @extschema@.payouts_attention;
CREATE INDEX payouts_attention ON @extschema@.payouts (id)
    WHERE status IN ('unknown', 'held', 'sent')
       OR (status = 'rejected' AND acknowledged_at IS NULL)
       OR (status = 'pending' AND attempts > 0 AND last_error IS NOT NULL);

CREATE FUNCTION moneroo_acknowledge(id bigint, note text) RETURNS payouts
    AS 'MODULE_PATHNAME', 'moneroo_acknowledge' LANGUAGE C;
COMMENT ON FUNCTION moneroo_acknowledge(bigint, text) IS
    'record that an operator dealt with a rejected, failed or cancelled payout, and how; it leaves moneroo_needs_attention';
REVOKE ALL ON FUNCTION moneroo_acknowledge(bigint, text) FROM PUBLIC;

-- Each arm of the WHERE implies an arm of payouts_attention's predicate, so
-- the planner reads the view's rows through it.
CREATE OR REPLACE VIEW moneroo_needs_attention AS
SELECT p.id,
       p.reference,
       p.status,
       p.amount,
       p.currency,
       p.method,
       p.attempts,
       p.last_error,
       p.updated_at,
       CASE p.status
           WHEN 'unknown' THEN
               'outcome unknown: money may have moved; look the payout up in Moneroo'
               || ' (metadata.payout_reference = reference), then moneroo_resolve(id, moneroo_id) if it'
               || ' exists, moneroo_retry(id) to send it or moneroo_cancel(id) to close it if it does not'
           WHEN 'rejected' THEN
               'not paid: refused by Moneroo or abandoned by moneroo_transfer (see last_error);'
               || ' fix the cause and queue a new payout, then moneroo_acknowledge(id, note) says how'
           WHEN 'pending' THEN
               'not sent yet: ' || p.attempts::text || ' attempt(s) did not go through (see last_error);'
               || ' it is retried automatically'
           WHEN 'sent' THEN
               'sent to Moneroo more than a day ago and still not final; moneroo_verify(id) asks now'
           WHEN 'held' THEN
               'waiting for approval (see last_error): a role other than '
               || coalesce(quote_ident(p.created_by::text COLLATE "default"), 'the one that queued it')
               || ' sends it with moneroo_approve(id), or moneroo_cancel(id) drops it'
       END AS reason
FROM @extschema@.payouts p
WHERE p.status IN ('unknown', 'held')
   OR (p.status = 'rejected' AND p.acknowledged_at IS NULL)
   OR (p.status = 'pending' AND p.attempts > 0 AND p.last_error IS NOT NULL)
   OR (p.status = 'sent' AND coalesce(p.sent_at, p.updated_at) < now() - interval '1 day');

-- ------------------------------------------------------------------------
-- Monitoring: the account's rate limit as moneroo-exporter.yml reads it.
--
-- moneroo_status shows the requests of the last minute but not Moneroo's
-- 429 answers, which pause every request for a minute: a count since the
-- server started (a Prometheus counter) and the end of the pause they
-- started.
CREATE FUNCTION moneroo_rate_info(OUT requests_last_minute int, OUT rate_limited bigint,
                                  OUT rate_paused_until timestamptz)
    AS 'MODULE_PATHNAME', 'moneroo_rate_info' LANGUAGE C STRICT;
COMMENT ON FUNCTION moneroo_rate_info() IS
    'the account''s requests in the last minute, Moneroo''s 429 answers since the server started, and the pause they started';
REVOKE ALL ON FUNCTION moneroo_rate_info() FROM PUBLIC;
