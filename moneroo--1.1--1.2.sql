-- moneroo 1.1 -> 1.2: the account, not the payout; settling unknown payouts;
-- money controls; the audit trail.
--   - a new final state, cancelled (moneroo_cancel);
--   - moneroo_resolve: an operator records the Moneroo id of an unknown payout;
--   - moneroo_status shows the pause of every request (a refused key, the
--     circuit breaker) and counts cancelled and held payouts;
--   - send_at (scheduled payouts), created_by, idempotency_key and a
--     two-argument moneroo_transfer;
--   - moneroo_limits (max_amount, approval_above, daily_limit), a new state
--     held and moneroo_approve (four eyes);
--   - payout_events, the append-only history of every payout.  The history
--     of a payout that exists at the update starts at the update.
--   - batch (a payroll run, a day of refunds) and the moneroo_batches view.
-- Nothing here rewrites a row of payouts (the new columns have no default),
-- and the views keep their grants (they are replaced, not dropped), so the
-- update is safe while the worker sends.
\echo Use "ALTER EXTENSION moneroo UPDATE TO '1.2'" to load this file. \quit

-- cancelled: never sent (from pending or held), or Moneroo never created it
-- (from unknown, on an operator's word).  held: valid, waiting for a second
-- person (moneroo_approve).  Swapping the CHECK takes the table's strongest
-- lock for as long as checking the rows takes; the worker, whose
-- lock_timeout is 1 s, waits its turn and tries again.
ALTER TABLE @extschema@.payouts DROP CONSTRAINT payouts_status_check,
    ADD CONSTRAINT payouts_status_check
    CHECK (status IN ('held', 'pending', 'sending', 'sent', 'success', 'failed',
                      'rejected', 'unknown', 'cancelled')),
    -- not sent before this time; the row guard makes it the first
    -- next_attempt_at, so the worker's claim and its sleep already honour it
    ADD COLUMN send_at timestamptz,
    -- current_user of the INSERT or moneroo_transfer, set by the row guard
    ADD COLUMN created_by name,
    -- the caller's own key for this payout (an order id, a salary line)
    ADD COLUMN idempotency_key text
        CONSTRAINT payouts_idempotency_key_key UNIQUE
        CONSTRAINT payouts_idempotency_key_check
        CHECK (idempotency_key <> '' AND octet_length(idempotency_key) <= 255);
COMMENT ON COLUMN @extschema@.payouts.status IS
    'held, pending, sending, sent, success, failed, rejected, unknown or cancelled';
COMMENT ON COLUMN @extschema@.payouts.send_at IS 'not sent before this time (NULL: right after commit)';
COMMENT ON COLUMN @extschema@.payouts.created_by IS 'the role that queued the payout, set by the extension';
COMMENT ON COLUMN @extschema@.payouts.idempotency_key IS
    'the caller''s own unique key for this payout; moneroo_transfer(request, key) sends a key once';

-- moneroo_needs_attention reads the payouts it lists, not the table: its
-- WHERE implies this predicate (sent payouts are few: they settle).
CREATE INDEX payouts_attention ON @extschema@.payouts (id)
    WHERE status IN ('unknown', 'rejected', 'held', 'sent')
       OR (status = 'pending' AND attempts > 0 AND last_error IS NOT NULL);

-- Limits per currency, in its main unit; NULL is no limit.
--   max_amount      a larger amount is refused by validation (22023)
--   approval_above  a larger amount is held for a second person
--   daily_limit     a payout that would take the currency's payouts of the
--                   last 24 hours (pending, sending, sent, success, unknown)
--                   over it is held
CREATE TABLE moneroo_limits (
    currency       text PRIMARY KEY CHECK (currency ~ '^[A-Z]{3}$'),
    max_amount     bigint CHECK (max_amount > 0),
    approval_above bigint CHECK (approval_above >= 0),
    daily_limit    bigint CHECK (daily_limit >= 0)
);
COMMENT ON TABLE moneroo_limits IS
    'per currency: max_amount (refused above), approval_above and daily_limit (held above); NULL: no limit';
SELECT pg_catalog.pg_extension_config_dump('moneroo_limits', '');
REVOKE ALL ON TABLE moneroo_limits FROM PUBLIC;

-- One row per state change of a payout, written in the statement of the
-- change (the payouts_history trigger below).  A BEFORE trigger lets only the extension (and
-- pg_restore) insert, and refuses UPDATE, DELETE and TRUNCATE to every
-- role, the owner included.  No foreign key: the history of a deleted
-- pending payout stays, ending with its deletion.
CREATE TABLE payout_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payout_id       bigint NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    status          text NOT NULL,
    previous_status text,
    actor           text NOT NULL,
    detail          text
);
COMMENT ON TABLE payout_events IS
    'the history of every payout: one row per state change, append-only';
COMMENT ON COLUMN payout_events.actor IS
    'the role that made the change, or "moneroo worker"';
-- "the history of payout N": SELECT ... WHERE payout_id = N ORDER BY id
CREATE INDEX payout_events_history ON payout_events (payout_id, id);
SELECT pg_catalog.pg_extension_config_dump('payout_events', '');
SELECT pg_catalog.pg_extension_config_dump('payout_events_id_seq', '');

CREATE FUNCTION moneroo_payout_events_guard() RETURNS trigger
    AS 'MODULE_PATHNAME', 'moneroo_payout_events_guard' LANGUAGE C;
CREATE TRIGGER payout_events_guard
    BEFORE INSERT OR UPDATE OR DELETE ON payout_events
    FOR EACH ROW EXECUTE FUNCTION moneroo_payout_events_guard();
CREATE TRIGGER payout_events_refuse_truncate
    BEFORE TRUNCATE ON payout_events
    FOR EACH STATEMENT EXECUTE FUNCTION moneroo_payout_events_guard();
REVOKE ALL ON TABLE payout_events FROM PUBLIC;

-- How many payouts are in each state, for moneroo_status without a scan of
-- payouts: every statement that changes states appends what it changed
-- (+n into a state, -n out of one), in the statement, so the sums are exact
-- in every snapshot and no transaction waits for another on a counter; the
-- worker folds the rows into one per state every few seconds.  Not dumped:
-- pg_restore's COPY of payouts counts the rows it brings back.
CREATE TABLE moneroo_state_counts (
    status  text NOT NULL,
    payouts bigint NOT NULL
);
COMMENT ON TABLE moneroo_state_counts IS
    'changes of the number of payouts in each state; sum(payouts) by status is the count (moneroo_status)';
INSERT INTO moneroo_state_counts (status, payouts)
SELECT status, count(*) FROM @extschema@.payouts GROUP BY status;
REVOKE ALL ON TABLE moneroo_state_counts FROM PUBLIC;

-- The row guard notes every change of state; this trigger writes a
-- statement's changes as events and counts, in one statement, at the
-- statement's end (and empties the counts after a TRUNCATE).
CREATE FUNCTION moneroo_payouts_record_events() RETURNS trigger
    AS 'MODULE_PATHNAME', 'moneroo_payouts_record_events' LANGUAGE C;
CREATE TRIGGER payouts_history
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.payouts
    FOR EACH STATEMENT EXECUTE FUNCTION moneroo_payouts_record_events();
REVOKE ALL ON FUNCTION moneroo_payout_events_guard(), moneroo_payouts_record_events() FROM PUBLIC;

CREATE FUNCTION moneroo_transfer(request jsonb, idempotency_key text) RETURNS payouts
    AS 'MODULE_PATHNAME', 'moneroo_transfer' LANGUAGE C;
COMMENT ON FUNCTION moneroo_transfer(jsonb, text) IS
    'send one payout now, once per idempotency key, and return its recorded row';

CREATE FUNCTION moneroo_approve(id bigint) RETURNS payouts
    AS 'MODULE_PATHNAME', 'moneroo_approve' LANGUAGE C STRICT;
COMMENT ON FUNCTION moneroo_approve(bigint) IS
    'release a held payout to be sent; only a role other than the one that queued it';
REVOKE ALL ON FUNCTION moneroo_transfer(jsonb, text), moneroo_approve(bigint) FROM PUBLIC;

CREATE FUNCTION moneroo_cancel(id bigint) RETURNS payouts
    AS 'MODULE_PATHNAME', 'moneroo_cancel' LANGUAGE C STRICT;
COMMENT ON FUNCTION moneroo_cancel(bigint) IS
    'cancel a pending or held payout, or close an unknown one that Moneroo never created';

CREATE FUNCTION moneroo_resolve(id bigint, moneroo_id text) RETURNS payouts
    AS 'MODULE_PATHNAME', 'moneroo_resolve' LANGUAGE C STRICT;
COMMENT ON FUNCTION moneroo_resolve(bigint, text) IS
    'record the Moneroo id of an unknown payout, once Moneroo confirms it carries the payout''s reference';

REVOKE ALL ON FUNCTION moneroo_cancel(bigint), moneroo_resolve(bigint, text) FROM PUBLIC;

CREATE FUNCTION moneroo_account_info(OUT paused_until timestamptz, OUT pause_reason text)
    AS 'MODULE_PATHNAME', 'moneroo_account_info' LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION moneroo_account_info() FROM PUBLIC;

-- moneroo_status calls it, and so do the roles granted moneroo_status.  It
-- shows only whether requests are paused and why, so every role may call it:
-- grants made here would be recorded as the extension's own, and pg_dump
-- would not carry them to a restored database.
GRANT EXECUTE ON FUNCTION moneroo_account_info() TO PUBLIC;

-- New columns go last: CREATE OR REPLACE VIEW keeps the view and its grants.
-- The counts are sums of moneroo_state_counts (a few rows), the oldest
-- pending payout is found through the claim's index: the view costs the
-- same with a million settled payouts as with none.
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
       counts.held
FROM moneroo_worker_info() w
CROSS JOIN moneroo_account_info() a
CROSS JOIN counts;

-- What to do with an unknown payout now that it can be settled, and with a
-- held one.
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
               || ' fix the cause and queue a new payout'
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
WHERE p.status IN ('unknown', 'rejected', 'held')
   OR (p.status = 'pending' AND p.attempts > 0 AND p.last_error IS NOT NULL)
   OR (p.status = 'sent' AND coalesce(p.sent_at, p.updated_at) < now() - interval '1 day');

-- Batches: a payroll run, a day of refunds.  The caller's label, set on
-- INSERT and changeable while the payout has not left (like request and
-- send_at); moneroo_batches reads it through the partial index.
ALTER TABLE @extschema@.payouts ADD COLUMN batch text
    CONSTRAINT payouts_batch_check CHECK (batch <> '' AND octet_length(batch) <= 255);
COMMENT ON COLUMN @extschema@.payouts.batch IS 'the run this payout belongs to (a payroll, a day of refunds); optional';
CREATE INDEX payouts_batch ON @extschema@.payouts (batch) WHERE batch IS NOT NULL;

-- The progress of every batch at a glance, one row per batch and currency
-- (amounts of two currencies do not add up): counts by state, amounts by
-- outcome, the share settled (final: success, failed, rejected, cancelled),
-- when the first and the last payout left, and since when the oldest one
-- still pending was queued.  A filter on batch uses the index.
CREATE VIEW moneroo_batches AS
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
       -- counts cast to numeric: pg_catalog has no numeric * bigint, so an
       -- operator *(numeric, bigint) in the extension's schema would be
       -- chosen and run as whoever reads the view (edited after 1.2's
       -- release, with the same result: see moneroo--1.2--1.3.sql)
       round(100.0 * (count(*) FILTER (WHERE p.status IN ('success', 'failed', 'rejected', 'cancelled')))::numeric
             / (count(*))::numeric, 1) AS settled_percent,
       min(p.sent_at) AS first_sent_at,
       max(p.sent_at) AS last_sent_at,
       min(p.created_at) FILTER (WHERE p.status = 'pending') AS oldest_pending
FROM @extschema@.payouts p
WHERE p.batch IS NOT NULL
GROUP BY p.batch, p.currency;
COMMENT ON VIEW moneroo_batches IS
    'per batch and currency: counts by state, amounts paid/open/not paid, share settled, first and last sent, oldest pending';
REVOKE ALL ON moneroo_batches FROM PUBLIC;
