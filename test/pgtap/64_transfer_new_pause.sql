-- 64_transfer_new_pause.sql: a moneroo_transfer returned unsent by a pause
-- that began after it was admitted reports the pause (1.3).
--   A payout P is queued and its request goes; the mock answers it 401 after
--   2 s.  Meanwhile a moneroo_transfer T is admitted (nothing is paused yet)
--   and waits for a place (moneroo.max_concurrency 1: P's request holds it).  P's 401 pauses every request; T is returned unsent, and its
--   caller used to be told 08001 ("could not reach Moneroo"): it is told
--   28000, Moneroo refused the secret key, as a call made during the pause.
SET client_min_messages = warning;

SELECT plan(4);

CREATE FUNCTION pg_temp.req(tag text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'amount', 300, 'currency', 'USD', 'description', 'new pause test ' || tag,
        'method', 'moneroo_payout_demo',
        'customer', jsonb_build_object('email', 'pause@example.com',
                                       'first_name', 'New', 'last_name', 'Pause'),
        'recipient', jsonb_build_object('account_number', '4149518161'),
        'metadata', jsonb_build_object('case', tag))
$$;

SELECT 't64-' || md5(random()::text) AS run \gset
ALTER SYSTEM SET moneroo.max_concurrency = 1;
ALTER SYSTEM SET moneroo.request_timeout = '10s';   -- the mock's 2 s are no timeout
ALTER SYSTEM SET moneroo.rate_limit = 0;
SELECT pg_reload_conf() \g /dev/null
SELECT pg_sleep(0.5) \g /dev/null
SELECT mock.config('{"latency_ms": 2000}');
SELECT mock.faults('[{"kind": "status", "status": 401, "route": "initialize", "count": 1}]');

INSERT INTO payouts (request) VALUES (pg_temp.req(:'run' || '-P'));
SELECT ok(mock.wait_for($$(mock.stats() ->> 'in_flight')::int = 1$$, 10),
          'P''s request is at Moneroo (the mock answers it 401 in 2 s)');
SELECT is((SELECT pause_reason FROM moneroo_status), NULL, 'nothing is paused yet: moneroo_transfer admits T');

SELECT mock.error_of(format('SELECT moneroo_transfer(%L)', pg_temp.req(:'run' || '-T'))) AS t_error \gset
SELECT is(left(:'t_error', 6), '28000:',
          'T, returned unsent by the pause that P''s 401 began, reports the refused key (28000), not 08001');

-- nothing of this file is left to send, and no pause: a reload lets the
-- worker try the key again (the mock takes it now), as README says
SELECT moneroo_cancel(id) FROM payouts
 WHERE request -> 'metadata' ->> 'case' LIKE :'run' || '-%' AND status IN ('pending', 'held') \g /dev/null
SELECT mock.config('{"latency_ms": 0}');
ALTER SYSTEM RESET moneroo.rate_limit;
ALTER SYSTEM RESET moneroo.max_concurrency;
ALTER SYSTEM RESET moneroo.request_timeout;
SELECT pg_reload_conf() \g /dev/null
SELECT ok(mock.wait_for('(SELECT pause_reason IS NULL FROM moneroo_status)', 20),
          'after a reload the worker tries the key again, and the pause ends');

SELECT * FROM finish();
