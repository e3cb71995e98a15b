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

-- ------------------------------------------------------------------------
-- Outcomes reach the application.
--
-- Every event of payout_events is also a NOTIFY on the channel
-- moneroo_payouts, sent by the statement that writes it (C code, no object
-- here).  A listener that was away catches up with moneroo_events_since.
-- A subscription names a handler the worker calls once per matching event,
-- in event id order, each call in a transaction that also moves the
-- subscription's position past the event: what the handler writes happens
-- once per event.  It runs as the role that subscribed.
--
-- One row per subscription, read and written by the extension as its
-- owner.  handler is the text of the function's signature, schema-qualified
-- (an oid would not survive a dump or pg_upgrade); subscriber is the role
-- that subscribed.  Dumped with the extension, positions included, so that
-- a restore goes on where the dump stopped.
CREATE TABLE moneroo_subscribers (
    name          text PRIMARY KEY CHECK (name <> '' AND octet_length(name) < 64),
    handler       text NOT NULL,
    subscriber    regrole NOT NULL,
    statuses      text[],
    position      bigint NOT NULL,
    paused        boolean NOT NULL DEFAULT false,
    failures      integer NOT NULL DEFAULT 0,
    last_error    text,
    failed_at     timestamptz,
    retry_at      timestamptz,
    delivered_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE moneroo_subscribers IS
    'subscriptions to the events of payouts: handler, the role it runs as, position (last event done), failures';
SELECT pg_catalog.pg_extension_config_dump('moneroo_subscribers', '');
REVOKE ALL ON TABLE moneroo_subscribers FROM PUBLIC;

CREATE FUNCTION moneroo_events_since(after_event_id bigint, max_events integer DEFAULT 1000)
    RETURNS SETOF payout_events
    AS 'MODULE_PATHNAME', 'moneroo_events_since' LANGUAGE C STRICT;
COMMENT ON FUNCTION moneroo_events_since(bigint, integer) IS
    'the events after after_event_id, in id order, none of them ever to be followed by a lower id; needs SELECT on payout_events';

CREATE FUNCTION moneroo_subscribe(name text, handler regprocedure, statuses text[] DEFAULT NULL,
                                  from_event bigint DEFAULT NULL) RETURNS void
    AS 'MODULE_PATHNAME', 'moneroo_subscribe' LANGUAGE C;
COMMENT ON FUNCTION moneroo_subscribe(text, regprocedure, text[], bigint) IS
    'call handler(event payout_events, payout payouts) once per event of these statuses (NULL: all), from from_event (NULL: after now), as the calling role';
CREATE FUNCTION moneroo_unsubscribe(name text) RETURNS void
    AS 'MODULE_PATHNAME', 'moneroo_unsubscribe' LANGUAGE C;
COMMENT ON FUNCTION moneroo_unsubscribe(text) IS 'drop a subscription (its role, a member of it or a superuser)';
CREATE FUNCTION moneroo_subscription_pause(name text, paused boolean) RETURNS void
    AS 'MODULE_PATHNAME', 'moneroo_subscription_pause' LANGUAGE C;
COMMENT ON FUNCTION moneroo_subscription_pause(text, boolean) IS
    'pause a subscription (its events wait) or resume it (tried again at once)';
REVOKE ALL ON FUNCTION moneroo_events_since(bigint, integer),
    moneroo_subscribe(text, regprocedure, text[], bigint), moneroo_unsubscribe(text),
    moneroo_subscription_pause(text, boolean) FROM PUBLIC;

-- Each subscription and how far behind it is: the events of its statuses
-- after its position, and the age of the oldest of them.
CREATE VIEW moneroo_subscriptions AS
SELECT s.name,
       s.handler,
       s.statuses,
       s.position,
       behind.events AS events_behind,
       coalesce(round(extract(epoch FROM now() - behind.oldest), 3), 0) AS seconds_behind,
       s.failures,
       s.last_error,
       s.paused,
       s.subscriber,
       s.retry_at,
       s.delivered_at
FROM @extschema@.moneroo_subscribers s
CROSS JOIN LATERAL (
    SELECT count(*) AS events, min(e.at) AS oldest
    FROM @extschema@.payout_events e
    WHERE e.id > s.position
      AND (s.statuses IS NULL OR e.status = ANY (s.statuses))
) AS behind;
REVOKE ALL ON moneroo_subscriptions FROM PUBLIC;

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

-- Each arm of the payouts' WHERE implies an arm of payouts_attention's
-- predicate, so the planner reads the view's rows through it.  It also lists
-- a subscription (see "Outcomes reach the application" above) that failed 3
-- times or more in a row (its events wait): the payout columns are NULL,
-- attempts is its failures and subscription its name (a new column, last).
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
       END AS reason,
       NULL::text AS subscription
FROM @extschema@.payouts p
WHERE p.status IN ('unknown', 'held')
   OR (p.status = 'rejected' AND p.acknowledged_at IS NULL)
   OR (p.status = 'pending' AND p.attempts > 0 AND p.last_error IS NOT NULL)
   OR (p.status = 'sent' AND coalesce(p.sent_at, p.updated_at) < now() - interval '1 day')
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL,
       s.failures,
       s.last_error,
       s.failed_at,
       'subscription ' || quote_ident(s.name) || ': its handler ' || s.handler || ' failed '
       || s.failures::text || ' times in a row (see last_error); the same event is tried again later'
       || ' and none is skipped: fix the handler, or moneroo_subscription_pause(name, true)',
       s.name
FROM @extschema@.moneroo_subscribers s
WHERE s.failures >= 3;

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
