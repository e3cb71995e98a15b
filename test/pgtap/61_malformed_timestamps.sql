-- 61_malformed_timestamps.sql: a malformed timestamp in Moneroo's answer
-- never stops the worker (1.3).
--   The verification schedule learns from the success_at / failed_at of the
--   newest settled payouts (59_verify_schedule.sql).  A value that only
--   began like an ISO time (a valid one followed by junk) or was no date on
--   the calendar (30 February) failed the cast: the worker's upkeep failed
--   every 10 s and, since learning ran in its start-up transaction, the
--   worker exited at every start and sent nothing.  Here the newest settled
--   payouts carry such values (written as Moneroo's answers would be, with
--   the triggers off); the worker, restarted, starts and sends.
SET client_min_messages = warning;

SELECT plan(3);

CREATE FUNCTION pg_temp.req(tag text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'amount', 300, 'currency', 'USD', 'description', 'timestamp test ' || tag,
        'method', 'moneroo_payout_demo',
        'customer', jsonb_build_object('email', 'time@example.com',
                                       'first_name', 'Time', 'last_name', 'Stamp'),
        'recipient', jsonb_build_object('account_number', '4149518161'),
        'metadata', jsonb_build_object('case', tag))
$$;

SELECT 't61-' || md5(random()::text) AS run \gset

-- six settled payouts of the sandbox method, the newest of the table, whose
-- answers carry timestamps no cast can read
INSERT INTO payouts (request, send_at)
SELECT pg_temp.req(:'run' || '-bad-' || i), now() + interval '1 day' FROM generate_series(1, 6) AS i;
SET session_replication_role = replica;
UPDATE payouts p
   SET status = 'success', moneroo_status = 'success', moneroo_id = 't61-' || p.id,
       sent_at = now() - interval '1 minute', completed_at = now(), next_attempt_at = NULL,
       response = jsonb_build_object('data', jsonb_build_object('status', 'success', 'success_at', v.at))
  FROM (VALUES (1, '2026-02-30T10:00:00.000000Z'),      -- not on the calendar
               (2, '2026-01-15T10:00:00.000000Zjunk'),  -- a valid time, then junk
               (3, '2026-01-15T10:00:00Z and more'),
               (4, '2025-02-29T10:00:00Z'),             -- 2025 is no leap year
               (5, '2026-04-31T10:00:00Z'),
               (6, '0000-01-01T00:00:00Z')) AS v(i, at)
 WHERE p.request -> 'metadata' ->> 'case' = :'run' || '-bad-' || v.i;
RESET session_replication_role;

-- the worker starts again (the launcher restarts it) and reads them
SELECT pid AS old_worker FROM pg_stat_activity
 WHERE backend_type = 'moneroo worker' AND datname = current_database() \gset
SELECT pg_terminate_backend(:old_worker) \g /dev/null
SELECT ok(mock.wait_for(format($$EXISTS (SELECT FROM moneroo_status WHERE worker_running AND worker_pid <> %s)$$,
                               :old_worker), 20),
          'a worker starts again although the newest settled payouts carry malformed timestamps');

INSERT INTO payouts (request) VALUES (pg_temp.req(:'run' || '-after'));
SELECT ok(mock.wait_for(format($$(SELECT status FROM payouts WHERE request -> 'metadata' ->> 'case' = %L)
                                 IN ('sent', 'success')$$, :'run' || '-after'), 20),
          'and it sends: a payout queued now leaves');
SELECT is((SELECT worker_pid FROM moneroo_status),
          (SELECT pid FROM pg_stat_activity WHERE backend_type = 'moneroo worker' AND datname = current_database()),
          'the worker that started is still running (it did not exit on the timestamps)');

-- later files learn from payouts of their own
SET session_replication_role = replica;
UPDATE payouts SET response = NULL WHERE request -> 'metadata' ->> 'case' LIKE :'run' || '-bad-%';
RESET session_replication_role;

SELECT * FROM finish();
