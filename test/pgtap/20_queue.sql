-- 20_queue.sql: the queue path.  INSERT INTO payouts (request) ... is sent by
-- the background worker right after the inserting transaction commits (never
-- when it rolls back), each payout is created exactly once at Moneroo, the
-- worker verifies it to its final state, moneroo_retry/moneroo_verify behave
-- as the contract says, and the worker keeps to moneroo.rate_limit and backs
-- off after a 429.
--
-- Rows are told apart from other files' by the temp table "mine" (ids and
-- references of every payout this file queues) and by metadata.case tags.
-- Settings changed here (ALTER SYSTEM) are reset at the end.
--
-- The 429 case comes last: the worker then pauses every request for 60 s,
-- which this file does not wait out (test/run.sh restarts the server before
-- the next file); its two payouts, still pending, are deleted at the end so
-- that nothing of this file is sent later.
SET client_min_messages = warning;

SELECT plan(52);

-- ---------------------------------------------------------------- helpers

-- A valid sandbox request to 4149518161 (success), ...62 (failed) or ...63
-- (stays pending); metadata.case carries a tag to find it in the journal.
CREATE FUNCTION pg_temp.req(number text, tag text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT mock.payout_request(to_jsonb(number), 'queue test ' || tag, 100, tag) $$;

-- Initialize requests the mock received for a reference (whatever came of them).
CREATE FUNCTION pg_temp.posts(ref uuid) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT count(*) FROM mock.journal() j
    WHERE j ->> 'method' = 'POST' AND j ->> 'path' = '/v1/payouts/initialize'
      AND j -> 'body' -> 'metadata' ->> 'payout_reference' = ref::text
$$;

-- Payouts the mock created for a reference.
CREATE FUNCTION pg_temp.creates(ref uuid) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT count(*) FROM mock.payouts() p WHERE p ->> 'reference' = ref::text
$$;

-- Waits (at most 10 s) until the worker has nothing queued and nothing due
-- within 2 s, so that only a commit can wake it soon after.
CREATE FUNCTION pg_temp.worker_idle() RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT mock.wait_for($w$
        NOT EXISTS (SELECT 1 FROM payouts
                    WHERE status = 'sending'
                       OR (status IN ('pending', 'sent')
                           AND coalesce(next_attempt_at, '-infinity') < clock_timestamp() + interval '2 s'))
    $w$, 10)
$$;

CREATE TEMP TABLE mine (id bigint PRIMARY KEY, reference uuid NOT NULL, num text, tag text);

SELECT 'q20-' || left(gen_random_uuid()::text, 8) AS run \gset

-- Fast settings for this file: no rate limit on either side, quick verifications.
ALTER SYSTEM SET moneroo.rate_limit = 0;
ALTER SYSTEM SET moneroo.verify_min_interval = '200ms';
SELECT pg_reload_conf() AS reloaded \gset
SELECT mock.config('{"rate_limit": 0}') AS configured \gset
SELECT pg_sleep(0.3) AS slept \gset

SELECT is(current_setting('moneroo.poll_interval'), '1min',
          'the worker''s fallback poll runs every minute, so a send within 1 s can only come from a wake-up');
SELECT ok((SELECT worker_running FROM moneroo_status), 'moneroo_status shows the worker running');

-- ---------------------------------------------------------------- rollback
-- A payout inserted by a transaction that rolls back is never sent.
BEGIN;
INSERT INTO payouts (request) VALUES (pg_temp.req('4149518161', :'run' || '-rollback'))
RETURNING reference AS rb_ref \gset
ROLLBACK;
SELECT pg_sleep(2) AS slept \gset

SELECT is(pg_temp.posts(:'rb_ref'), 0::bigint,
          'a rolled-back insert is never sent: no request carries its reference 2 s later');
SELECT is((SELECT count(*) FROM mock.journal() j
           WHERE j -> 'body' -> 'metadata' ->> 'case' = :'run' || '-rollback'), 0::bigint,
          'no request at all carries the rolled-back payout''s tag');
SELECT is((SELECT count(*) FROM payouts WHERE reference = :'rb_ref'), 0::bigint,
          'the rolled-back payout left no row');

-- ---------------------------------------------------------------- wake at commit
-- A single insert is sent within 1 s of its commit.
SELECT pg_temp.worker_idle() AS idle \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
WITH ins AS (
    INSERT INTO payouts (request) VALUES (pg_temp.req('4149518161', :'run' || '-wake'))
    RETURNING id, reference, request)
INSERT INTO mine SELECT id, reference, request -> 'recipient' ->> 'account_number',
                        request -> 'metadata' ->> 'case' FROM ins;

SELECT ok(mock.wait_for(format('mock.sent_time(%L) IS NOT NULL', :'run' || '-wake'), 5),
          'a committed insert is sent by the worker');
SELECT cmp_ok(coalesce(mock.sent_time(:'run' || '-wake') - :t0, 999), '<', 1.0::float8,
              'it reaches Moneroo within 1 s of the commit (woken by the commit, not by the 60 s poll)');

-- An ordinary role, granted only what an application needs, queues payouts.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'queue_writer') THEN
        REVOKE ALL ON payouts, moneroo_payout_methods FROM queue_writer;
        REVOKE ALL ON SCHEMA public FROM queue_writer;
        DROP ROLE queue_writer;
    END IF;
END
$$;
CREATE ROLE queue_writer LOGIN;
GRANT USAGE ON SCHEMA public TO queue_writer;
GRANT INSERT (request) ON payouts TO queue_writer;

SELECT pg_temp.req('4149518161', :'run' || '-writer')::text AS qw_req \gset

SELECT pg_temp.worker_idle() AS idle \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SET ROLE queue_writer;
SELECT lives_ok(format('INSERT INTO payouts (request) VALUES (%L)', :'qw_req'),
                'a role granted only USAGE on the schema and INSERT (request) on payouts can queue a payout');
RESET ROLE;
INSERT INTO mine SELECT id, reference, request -> 'recipient' ->> 'account_number',
                        request -> 'metadata' ->> 'case'
FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-writer';

SELECT ok(mock.wait_for(format('mock.sent_time(%L) IS NOT NULL', :'run' || '-writer'), 5),
          'the worker sends that role''s payout');
SELECT cmp_ok(coalesce(mock.sent_time(:'run' || '-writer') - :t0, 999), '<', 1.0::float8,
              'it reaches Moneroo within 1 s of the commit: the role''s commit wakes the worker');

REVOKE ALL ON payouts, moneroo_payout_methods FROM queue_writer;
REVOKE ALL ON SCHEMA public FROM queue_writer;
DROP ROLE queue_writer;

-- ---------------------------------------------------------------- 100 in one transaction
CREATE TEMP TABLE batch (id bigint PRIMARY KEY, reference uuid NOT NULL, num text NOT NULL);
WITH ins AS (
    INSERT INTO payouts (request)
    SELECT pg_temp.req(CASE i % 3 WHEN 1 THEN '4149518161' WHEN 2 THEN '4149518162'
                                  ELSE '4149518163' END,
                       :'run' || '-batch-' || i)
    FROM generate_series(1, 100) AS i
    RETURNING id, reference, request)
INSERT INTO batch SELECT id, reference, request -> 'recipient' ->> 'account_number' FROM ins;
INSERT INTO mine SELECT id, reference, num, NULL FROM batch;

SELECT ok(mock.wait_for($$
    (SELECT count(*) FROM payouts p JOIN batch b USING (id)
     WHERE (b.num, p.status, p.moneroo_status) IN (('4149518161', 'success', 'success'),
                                                   ('4149518162', 'failed', 'failed'),
                                                   ('4149518163', 'sent', 'pending'))) = 100
    $$, 30),
    '100 payouts queued by one INSERT ... SELECT all reach the state their numbers lead to');

SELECT results_eq(
    $$SELECT b.num, p.status, p.moneroo_status, count(*)
        FROM payouts p JOIN batch b USING (id) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3$$,
    $$VALUES ('4149518161', 'success', 'success', 34::bigint),
             ('4149518162', 'failed', 'failed', 33::bigint),
             ('4149518163', 'sent', 'pending', 33::bigint)$$,
    '...61 ends in success, ...62 in failed, ...63 stays sent with Moneroo status pending');

CREATE TEMP TABLE batch_mock AS
SELECT p ->> 'reference' AS reference, p ->> 'id' AS moneroo_id FROM mock.payouts() p;
CREATE TEMP TABLE batch_posts AS
SELECT j -> 'body' -> 'metadata' ->> 'payout_reference' AS reference, count(*) AS posts
FROM mock.journal() j
WHERE j ->> 'path' = '/v1/payouts/initialize' GROUP BY 1;

SELECT is((SELECT count(*) FROM batch b
           WHERE (SELECT count(*) FROM batch_mock m WHERE m.reference = b.reference::text) = 1),
          100::bigint, 'the mock created each of the 100 references exactly once');
SELECT is((SELECT count(*) FROM batch b
           JOIN batch_posts j ON j.reference = b.reference::text AND j.posts = 1),
          100::bigint, 'each of the 100 payouts was POSTed exactly once');
SELECT is(mock.stats() -> 'duplicate_references', '[]'::jsonb,
          'the mock saw no reference created twice');
SELECT is((SELECT count(DISTINCT p.moneroo_id) FROM payouts p JOIN batch b USING (id)
           WHERE p.moneroo_id IS NOT NULL), 100::bigint,
          'every row carries its own moneroo_id');
SELECT is((SELECT count(*) FROM payouts p JOIN batch b USING (id)
           JOIN batch_mock m ON m.reference = b.reference::text AND m.moneroo_id = p.moneroo_id),
          100::bigint, 'each moneroo_id is the id Moneroo gave that reference');
SELECT is((SELECT count(*) FROM payouts p JOIN batch b USING (id)
           WHERE p.attempts = 1 AND p.last_error IS NULL), 100::bigint,
          'each was sent in one attempt and carries no error');
SELECT is((SELECT count(*) FROM payouts p JOIN batch b USING (id)
           WHERE p.created_at IS NOT NULL AND p.sent_at >= p.created_at
             AND p.updated_at >= p.created_at), 100::bigint,
          'each has created_at, and sent_at and updated_at no earlier than it');
SELECT is((SELECT count(*) FROM payouts p JOIN batch b USING (id)
           WHERE CASE WHEN p.status IN ('success', 'failed')
                      THEN p.completed_at >= p.sent_at
                      ELSE p.completed_at IS NULL END), 100::bigint,
          'completed_at is set on the 67 final rows (after sent_at) and empty on the 33 still pending');
SELECT is((SELECT count(*) FROM payouts p JOIN batch b USING (id)
           WHERE p.request ->> 'amount' = '100' AND p.amount = 100 AND p.currency = 'USD'
             AND p.method = 'moneroo_payout_demo'), 100::bigint,
          'amount, currency and method are derived from each request');

-- moneroo_status counts: what it shows = this file's batch + every other
-- row, read in one statement (one snapshot).
SELECT is(
    (SELECT format('running=%s success=%s failed=%s sent=%s sending=%s',
                   s.worker_running, s.success, s.failed, s.sent, s.sending)
       FROM moneroo_status s),
    (SELECT format('running=%s success=%s failed=%s sent=%s sending=%s', true,
                   count(*) FILTER (WHERE status = 'success') + 34,
                   count(*) FILTER (WHERE status = 'failed') + 33,
                   count(*) FILTER (WHERE status = 'sent') + 33,
                   count(*) FILTER (WHERE status = 'sending'))
       FROM payouts WHERE id NOT IN (SELECT id FROM batch)),
    'moneroo_status: worker running, and the batch''s 34 success, 33 failed, 33 sent counted');

-- ---------------------------------------------------------------- moneroo_retry refusals
SELECT min(p.id) AS sent_id
FROM payouts p JOIN batch b USING (id) WHERE p.status = 'sent' \gset
SELECT mock.error_of(format('SELECT moneroo_retry(%s)', :sent_id)) AS retry_sent \gset
SELECT is(left(:'retry_sent', 5), '55000', 'moneroo_retry on a sent payout is refused with SQLSTATE 55000');
SELECT matches(:'retry_sent'::text, '\msent\M', 'the refusal names the state the payout is in (sent)');
SELECT is((SELECT status FROM payouts WHERE id = :sent_id), 'sent', 'the refused retry left the payout sent');

SELECT (SELECT max(id) FROM payouts) + 1000000 AS missing_id \gset
SELECT is(left(mock.error_of(format('SELECT moneroo_retry(%s)', :missing_id)), 5), 'P0002',
          'moneroo_retry on a missing id is refused with SQLSTATE P0002');

-- ---------------------------------------------------------------- moneroo_verify
-- Moneroo settles one of the pending payouts; moneroo_verify brings the news now.
SELECT p.id AS v_id, p.moneroo_id AS v_mid
FROM payouts p JOIN batch b USING (id) WHERE p.status = 'sent' ORDER BY p.id DESC LIMIT 1 \gset
SELECT mock.set_status(:'v_mid', 'success') AS forced \gset
CREATE TEMP TABLE verified AS SELECT * FROM payouts WITH NO DATA;
SELECT lives_ok(format('INSERT INTO verified SELECT * FROM moneroo_verify(%s)', :v_id),
                'moneroo_verify on a sent payout asks Moneroo and returns the row');
SELECT results_eq(
    $$SELECT status, moneroo_status, completed_at IS NOT NULL FROM verified$$,
    $$VALUES ('success', 'success', true)$$,
    'the returned row shows Moneroo''s new status: success, completed');
SELECT results_eq(
    format('SELECT status, moneroo_status FROM payouts WHERE id = %s', :v_id),
    $$VALUES ('success', 'success')$$,
    'moneroo_verify recorded the new status in payouts');

-- The other 32 never settle in the sandbox: settle them so that nothing of
-- this file keeps the worker busy (moneroo_verify, errors ignored).
SELECT count(mock.set_status(p.moneroo_id, 'failed')) AS forced
FROM payouts p JOIN batch b USING (id) WHERE p.status = 'sent' \gset
SELECT count(mock.error_of(format('SELECT moneroo_verify(%s)', p.id))) AS settled
FROM payouts p JOIN batch b USING (id) WHERE p.status = 'sent' \gset

-- ---------------------------------------------------------------- moneroo_retry of an unknown payout
-- Moneroo creates the payout but answers 500: unknown.  The operator
-- retries it: it is sent again (the second create is the operator's call).
SELECT mock.faults('{"kind": "status_after_create", "status": 500}') AS queued \gset
WITH ins AS (
    INSERT INTO payouts (request) VALUES (pg_temp.req('4149518161', :'run' || '-retry'))
    RETURNING id, reference, request)
INSERT INTO mine SELECT id, reference, request -> 'recipient' ->> 'account_number',
                        request -> 'metadata' ->> 'case' FROM ins
RETURNING id AS u_id, reference AS u_ref \gset

SELECT ok(mock.wait_for(format($$(SELECT status FROM payouts WHERE id = %s) = 'unknown'$$, :u_id), 10),
          'a payout answered 500 after Moneroo created it becomes unknown');
SELECT results_eq(
    format('SELECT attempts, last_error ~ ''500'' FROM payouts WHERE id = %s', :u_id),
    $$VALUES (1, true)$$,
    'the unknown payout: one attempt, last_error mentions the 500');
SELECT is(pg_temp.creates(:'u_ref'), 1::bigint, 'Moneroo created it once');

CREATE TEMP TABLE retried AS SELECT * FROM payouts WITH NO DATA;
SELECT lives_ok(format('INSERT INTO retried SELECT * FROM moneroo_retry(%s)', :u_id),
                'moneroo_retry on an unknown payout succeeds');
SELECT is((SELECT status FROM retried), 'pending', 'moneroo_retry returns the payout back in pending');
SELECT ok(mock.wait_for(format($$(SELECT status FROM payouts WHERE id = %s) = 'success'$$, :u_id), 10),
          'the worker sends the retried payout again, and it reaches success');
SELECT is(pg_temp.creates(:'u_ref'), 2::bigint,
          'exactly two creates for that reference: the first and the operator''s retry');
SELECT is((SELECT attempts FROM payouts WHERE id = :u_id), 2, 'the retried payout shows two attempts');

-- ---------------------------------------------------------------- rate limit
-- moneroo.rate_limit = 60 (one request a second), the mock unlimited: the
-- mock never sees two requests closer than ~1 s, nor more than 60 a minute.
SELECT mock.reset() AS reset \gset
SELECT mock.config('{"rate_limit": 0}') AS configured \gset
ALTER SYSTEM SET moneroo.rate_limit = 60;
SELECT pg_reload_conf() AS reloaded \gset
SELECT pg_sleep(0.3) AS slept \gset
SELECT is(current_setting('moneroo.rate_limit'), '60', 'moneroo.rate_limit is now 60 a minute');

WITH ins AS (
    INSERT INTO payouts (request)
    SELECT pg_temp.req('4149518161', :'run' || '-rate-' || i) FROM generate_series(1, 4) AS i
    RETURNING id, reference, request)
INSERT INTO mine SELECT id, reference, request -> 'recipient' ->> 'account_number',
                        request -> 'metadata' ->> 'case' FROM ins;

SELECT ok(mock.wait_for(format($$
    (SELECT count(*) FROM payouts WHERE request -> 'metadata' ->> 'case' LIKE %L
       AND status IN ('sent', 'success')) = 4
    AND (SELECT count(*) FROM mock.journal()) >= 6$$, :'run' || '-rate-%'), 15),
    'the 4 payouts are sent, and verifications follow, under a limit of 60 a minute');
CREATE TEMP TABLE rate_journal AS
SELECT (j ->> 'seq')::int AS seq, (j ->> 'time')::float8 AS t, j ->> 'path' AS path
FROM mock.journal() j;
SELECT cmp_ok((SELECT count(*) FROM rate_journal), '>=', 6::bigint,
              'the mock received at least 6 requests in that time');
SELECT cmp_ok((SELECT min(t - prev) FROM (SELECT t, lag(t) OVER (ORDER BY t) AS prev FROM rate_journal) s),
              '>=', 0.95::float8,
              'no two requests, initialize or verify, reached the mock less than 0.95 s apart');
SELECT cmp_ok((mock.stats() ->> 'max_accepted_in_any_60s_window')::int, '<=', 60,
              'the mock never saw more than 60 requests in any 60 s window');

ALTER SYSTEM SET moneroo.rate_limit = 0;
SELECT pg_reload_conf() AS reloaded \gset
SELECT pg_sleep(0.3) AS slept \gset

-- Everything so far is settled.
SELECT ok(mock.wait_for($$NOT EXISTS (SELECT 1 FROM payouts p JOIN mine m USING (id)
                                      WHERE p.status IN ('pending', 'sending', 'sent'))$$, 15),
          'every payout queued so far ends in a final state');
SELECT is((SELECT count(*) FROM payouts p JOIN mine m USING (id) WHERE p.status IN ('sending', 'unknown')),
          0::bigint, 'none is left in sending, none is unknown');

-- ---------------------------------------------------------------- 429
-- A 429 proves nothing was created: the payout goes back to pending, to be
-- retried 60 s later, and the worker sends nothing at all for 60 s.
SELECT pg_temp.worker_idle() AS idle \gset
SELECT mock.faults('{"kind": "status", "status": 429}') AS queued \gset
WITH ins AS (
    INSERT INTO payouts (request) VALUES (pg_temp.req('4149518161', :'run' || '-429'))
    RETURNING id, reference, request)
INSERT INTO mine SELECT id, reference, request -> 'recipient' ->> 'account_number',
                        request -> 'metadata' ->> 'case' FROM ins
RETURNING id AS r_id, reference AS r_ref \gset

SELECT ok(mock.wait_for(format($$(SELECT status = 'pending' AND attempts = 1 FROM payouts WHERE id = %s)$$,
                               :r_id), 5),
          'after a 429 the payout is back in pending, with one attempt');
SELECT coalesce(max((j ->> 'seq')::int), 0) AS seq429
FROM mock.journal() j WHERE (j ->> 'status')::int = 429 \gset
SELECT matches((SELECT last_error FROM payouts WHERE id = :r_id), '429|[Rr]ate',
               'its last_error says it was rate limited');
SELECT ok((SELECT next_attempt_at BETWEEN clock_timestamp() + interval '55 s'
                                      AND clock_timestamp() + interval '61 s'
           FROM payouts WHERE id = :r_id),
          'it is due again about 60 s later (next_attempt_at)');
SELECT results_eq(format('SELECT pg_temp.posts(%L), pg_temp.creates(%L)', :'r_ref', :'r_ref'),
                  $$VALUES (1::bigint, 0::bigint)$$,
                  'it was POSTed once, and nothing was created for it');

-- Another payout queued now would go out at once, were the worker not paused.
WITH ins AS (
    INSERT INTO payouts (request) VALUES (pg_temp.req('4149518161', :'run' || '-after-429'))
    RETURNING id, reference, request)
INSERT INTO mine SELECT id, reference, request -> 'recipient' ->> 'account_number',
                        request -> 'metadata' ->> 'case' FROM ins
RETURNING id AS a_id \gset
SELECT pg_sleep(2) AS slept \gset
SELECT is((SELECT count(*) FROM mock.journal(:seq429)), 0::bigint,
          'for 2 s after the 429 no request at all reaches the mock');
SELECT results_eq(format('SELECT status, attempts FROM payouts WHERE id IN (%s, %s) ORDER BY id', :r_id, :a_id),
                  $$VALUES ('pending', 1), ('pending', 0)$$,
                  'both payouts wait in pending: the 429''d one and one queued during the pause');

-- Not waiting out the pause: both are still pending, so they may be deleted,
-- and nothing of this file is sent after it ends.
SELECT is(mock.error_of(format('DELETE FROM payouts WHERE id IN (%s, %s)', :r_id, :a_id)), 'ok',
          'the two pending payouts can be deleted');

-- ---------------------------------------------------------------- the end
SELECT is((SELECT count(*) FROM payouts p JOIN mine m USING (id) WHERE p.status IN ('pending', 'sending')),
          0::bigint, 'nothing of this file is left pending or sending');

ALTER SYSTEM RESET moneroo.rate_limit;
ALTER SYSTEM RESET moneroo.verify_min_interval;
SELECT pg_reload_conf() AS reloaded \gset

SELECT * FROM finish();
