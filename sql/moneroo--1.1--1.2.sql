-- moneroo 1.1 -> 1.2: the account, not the payout, and settling unknown payouts.
--   - a new final state, cancelled (moneroo_cancel);
--   - moneroo_resolve: an operator records the Moneroo id of an unknown payout;
--   - moneroo_status shows the pause of every request (a refused key, the
--     circuit breaker) and counts cancelled payouts.
-- Nothing here rewrites a row of payouts, and the views keep their grants
-- (they are replaced, not dropped), so the update is safe while the worker sends.
\echo Use "ALTER EXTENSION moneroo UPDATE TO '1.2'" to load this file. \quit

-- cancelled: never sent (from pending), or Moneroo never created it (from
-- unknown, on an operator's word).  Swapping the CHECK takes the table's
-- strongest lock for as long as checking the rows takes; the worker, whose
-- lock_timeout is 1 s, waits its turn and tries again.
ALTER TABLE @extschema@.payouts DROP CONSTRAINT payouts_status_check,
    ADD CONSTRAINT payouts_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'success', 'failed',
                      'rejected', 'unknown', 'cancelled'));
COMMENT ON COLUMN @extschema@.payouts.status IS
    'pending, sending, sent, success, failed, rejected, unknown or cancelled';

CREATE FUNCTION moneroo_cancel(id bigint) RETURNS payouts
    AS 'MODULE_PATHNAME', 'moneroo_cancel' LANGUAGE C STRICT;
COMMENT ON FUNCTION moneroo_cancel(bigint) IS
    'cancel a pending payout, or close an unknown one that Moneroo never created';

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
CREATE OR REPLACE VIEW moneroo_status AS
SELECT w.worker_running,
       w.worker_pid,
       count(*) FILTER (WHERE p.status = 'pending')  AS pending,
       count(*) FILTER (WHERE p.status = 'sending')  AS sending,
       count(*) FILTER (WHERE p.status = 'sent')     AS sent,
       count(*) FILTER (WHERE p.status = 'success')  AS success,
       count(*) FILTER (WHERE p.status = 'failed')   AS failed,
       count(*) FILTER (WHERE p.status = 'rejected') AS rejected,
       count(*) FILTER (WHERE p.status = 'unknown')  AS unknown,
       min(p.created_at) FILTER (WHERE p.status = 'pending') AS oldest_pending,
       w.in_flight,
       w.requests_last_minute,
       w.last_error,
       w.last_error_at,
       a.paused_until,
       a.pause_reason,
       count(*) FILTER (WHERE p.status = 'cancelled') AS cancelled
FROM moneroo_worker_info() w
CROSS JOIN moneroo_account_info() a
LEFT JOIN @extschema@.payouts p ON true
GROUP BY w.worker_running, w.worker_pid, w.in_flight, w.requests_last_minute,
         w.last_error, w.last_error_at, a.paused_until, a.pause_reason;

-- What to do with an unknown payout now that it can be settled.
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
       END AS reason
FROM @extschema@.payouts p
WHERE p.status IN ('unknown', 'rejected')
   OR (p.status = 'pending' AND p.attempts > 0 AND p.last_error IS NOT NULL)
   OR (p.status = 'sent' AND coalesce(p.sent_at, p.updated_at) < now() - interval '1 day');
