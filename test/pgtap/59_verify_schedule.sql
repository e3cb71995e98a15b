-- 59_verify_schedule.sql: the verification schedule learns (1.2, the rate budget).
--   * after payouts of a method settle in about X seconds at Moneroo (here
--     Wave Senegal's, which the mock fails 3 s after it created them: its
--     final_after, by Moneroo's own failed_at), the first verification of
--     the next one is near X: one verification settles it.  (A method no
--     other test sends: the worker learns from the newest settled payouts
--     of each method, and the sandbox method's settle at other speeds in the
--     files before this one.);
--   * a payout that does not settle is still verified again and again: past
--     the learned times the short backoff takes over, none is skipped;
--   * with nothing learned, the schedule starts at verify_min_interval.
-- (Webhooks as the signal: test/faults/47_webhooks_as_signal.sh.)
SET client_min_messages = warning;

SELECT plan(6);

CREATE FUNCTION pg_temp.req(account text, tag text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT mock.payout_request(to_jsonb(account), 'schedule test ' || tag, 300, tag) $$;
-- seconds from the payout's initialize to its first verification, at the mock
-- the same, for Wave Senegal (XOF): the mock fails its payouts (not a sandbox number)
CREATE FUNCTION pg_temp.wave(tag text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_temp.req('4149518161', tag) || jsonb_build_object(
        'currency', 'XOF', 'method', 'wave_sn', 'recipient', jsonb_build_object('msisdn', '221771234567'))
$$;
CREATE FUNCTION pg_temp.seconds_to_first_verify(tag text) RETURNS float8
LANGUAGE sql VOLATILE AS $$
    SELECT min((v ->> 'time')::float8) - min((i ->> 'time')::float8)
    FROM mock.journal() i, mock.journal() v, payouts p
    WHERE p.request -> 'metadata' ->> 'case' = tag
      AND i ->> 'path' = '/v1/payouts/initialize' AND i -> 'body' -> 'metadata' ->> 'case' = tag
      AND v ->> 'path' = '/v1/payouts/' || p.moneroo_id || '/verify'
$$;
CREATE FUNCTION pg_temp.verifies(tag text) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT count(*) FROM mock.journal() v, payouts p
    WHERE p.request -> 'metadata' ->> 'case' = tag AND v ->> 'path' = '/v1/payouts/' || p.moneroo_id || '/verify'
$$;

SELECT 't59-' || md5(random()::text) AS run \gset
ALTER SYSTEM SET moneroo.verify_min_interval = '500ms';
ALTER SYSTEM SET moneroo.verify_max_interval = '1min';
ALTER SYSTEM SET moneroo.rate_limit = 0;   -- the schedule is under test, not the limiter
SELECT pg_reload_conf() \g /dev/null
SELECT pg_sleep(0.5) \g /dev/null

-- ---------------------------------------------------------------- nothing learned yet
-- (history of this method from earlier files is cleared from the worker's
-- view: they settled at other speeds; the worker learns from the newest 500)
SELECT mock.config('{"pending_after": 0, "final_after": 3}');
INSERT INTO payouts (request) VALUES (pg_temp.req('4149518161', :'run' || '-cold'));
SELECT ok(mock.wait_for(format($$(SELECT status FROM payouts WHERE request -> 'metadata' ->> 'case' = %L) = 'success'$$,
                               :'run' || '-cold'), 15), '(a first payout settles)');

-- ---------------------------------------------------------------- learning
INSERT INTO payouts (request) SELECT pg_temp.wave(:'run' || '-learn-' || g) FROM generate_series(1, 10) g;
SELECT ok(mock.wait_for(format($$(SELECT count(*) FROM payouts WHERE request -> 'metadata' ->> 'case' LIKE %L
                                  AND status = 'failed') = 10$$, :'run' || '-learn-%'), 30),
          '10 payouts of the method settle (failed), 3 s after they reached Moneroo');
-- the worker learns every 10 s while awake: let it, then wake it
SELECT pg_sleep(10.5) \g /dev/null
INSERT INTO payouts (request, send_at) VALUES (pg_temp.req('4149518161', :'run' || '-wake'), now() + interval '1 day');
SELECT pg_sleep(0.5) \g /dev/null

INSERT INTO payouts (request) VALUES (pg_temp.wave(:'run' || '-learned'));
SELECT ok(mock.wait_for(format($$(SELECT status FROM payouts WHERE request -> 'metadata' ->> 'case' = %L) = 'failed'$$,
                               :'run' || '-learned'), 15), 'the next payout settles');
SELECT ok(pg_temp.seconds_to_first_verify(:'run' || '-learned') BETWEEN 3.0 AND 5.0,
          format('its first verification came near the learned 3 s (%s s after its initialize), not at 0.5 s',
                 round(pg_temp.seconds_to_first_verify(:'run' || '-learned')::numeric, 2)));
SELECT is(pg_temp.verifies(:'run' || '-learned'), 1::bigint, 'one verification settled it');

-- ---------------------------------------------------------------- never skipped
INSERT INTO payouts (request) VALUES (pg_temp.req('4149518163', :'run' || '-stays'));
SELECT pg_sleep(9) \g /dev/null
SELECT ok(pg_temp.verifies(:'run' || '-stays') >= 2
          AND (SELECT next_attempt_at BETWEEN now() AND now() + interval '1 min'
               FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-stays'),
          format('a payout that does not settle is verified again and again (%s times in 9 s), and its next verification is due within verify_max_interval',
                 pg_temp.verifies(:'run' || '-stays')));

-- ---------------------------------------------------------------- clean up
SELECT mock.config('{"pending_after": 0.3, "final_after": 0.8}') \g /dev/null
DELETE FROM payouts WHERE status = 'pending' AND request -> 'metadata' ->> 'case' = :'run' || '-wake';
ALTER SYSTEM RESET moneroo.verify_min_interval;
ALTER SYSTEM RESET moneroo.verify_max_interval;
ALTER SYSTEM RESET moneroo.rate_limit;
SELECT pg_reload_conf() \g /dev/null

SELECT * FROM finish();
