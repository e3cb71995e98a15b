-- moneroo 1.0 -> 1.1: an index for day exports and reports, and a view of the
-- payouts an operator must look at.  Nothing here touches a row of payouts,
-- so the update is safe while the worker is sending.
\echo Use "ALTER EXTENSION moneroo UPDATE TO '1.1'" to load this file. \quit

-- Day exports, reconciliation and reports select payouts by creation time:
--   SELECT ... FROM payouts WHERE created_at >= '2025-01-31' AND created_at < '2025-02-01'
CREATE INDEX payouts_created_at ON @extschema@.payouts (created_at);

-- The payouts that will not settle on their own, with the reason in words:
--   unknown   money may have moved; the extension never re-sends it by itself
--   rejected  Moneroo refused the request (or moneroo_transfer gave up before
--             sending it); nothing was paid
--   pending   queued, but earlier attempts did not go through (no connection,
--             429): retried automatically, but a lasting cause needs a person
--   sent      accepted by Moneroo more than a day ago and still not final
CREATE VIEW moneroo_needs_attention AS
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
               || ' (metadata.payout_reference = reference), then moneroo_retry(id) if it was not created'
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

COMMENT ON VIEW moneroo_needs_attention IS
    'payouts an operator must look at: unknown, rejected, pending after failed attempts, sent over a day ago';

REVOKE ALL ON moneroo_needs_attention FROM PUBLIC;
