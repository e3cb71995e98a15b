-- 60_priority.sql: sends before verifications under a tight rate limit
-- (1.2, the rate budget), read from the order in which the mock received
-- the requests.
--   * with a backlog of payouts waiting to leave and sent payouts due for
--     verification, both waiting for moneroo.rate_limit, the sends go
--     first: no two verifications in a row, about one in ten requests;
--   * verifications are not starved: they get their share (one in every
--     ten sends) while the backlog lasts, never a long run of sends
--     without one;
--   * no verification is skipped for good: once the backlog is gone every
--     payout still due is verified, and every payout of the backlog settles.
-- (verify_min_interval = verify_max_interval: every verification is due
-- 2 s after the one before, whatever the schedule learned.)
SET client_min_messages = warning;

SELECT plan(6);

CREATE FUNCTION pg_temp.req(account text, tag text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT mock.payout_request(to_jsonb(account), 'priority test ' || tag, 300, tag) $$;

SELECT 't60-' || md5(random()::text) AS run \gset
ALTER SYSTEM SET moneroo.verify_min_interval = '2s';
ALTER SYSTEM SET moneroo.verify_max_interval = '2s';
ALTER SYSTEM SET moneroo.rate_limit = 0;
SELECT pg_reload_conf() \g /dev/null
SELECT pg_sleep(0.5) \g /dev/null
SELECT mock.config('{"pending_after": 0, "final_after": 0.8}') \g /dev/null

-- ---------------------------------------------------------------- sent payouts to verify
-- four payouts Moneroo never settles (the sandbox's 4149518163): due for a
-- verification every 2 s for as long as the test runs
INSERT INTO payouts (request) SELECT pg_temp.req('4149518163', :'run' || '-due-' || g) FROM generate_series(1, 4) g;
SELECT ok(mock.wait_for(format($$(SELECT count(*) FROM payouts WHERE request -> 'metadata' ->> 'case' LIKE %L
                                  AND status = 'sent') = 4$$, :'run' || '-due-%'), 20),
          '(four payouts are sent and wait for Moneroo)');

-- ---------------------------------------------------------------- the backlog
-- 120 a minute: one request every half second, a queue of 30 sends takes 15 s
ALTER SYSTEM SET moneroo.rate_limit = 120;
SELECT pg_reload_conf() \g /dev/null
SELECT pg_sleep(2.5) \g /dev/null    -- the four are due now
SELECT coalesce(max((e ->> 'seq')::bigint), 0) AS seq0 FROM mock.journal() e \gset
INSERT INTO payouts (request) SELECT pg_temp.req('4149518161', :'run' || '-send-' || g) FROM generate_series(1, 30) g;
SELECT ok(mock.wait_for(format($$(SELECT count(*) FROM payouts WHERE request -> 'metadata' ->> 'case' LIKE %L
                                  AND status NOT IN ('pending', 'sending')) = 30$$, :'run' || '-send-%'), 60),
          'the 30 payouts of the backlog left');

-- The requests since the backlog was queued, in the order the mock received
-- them: 's' an initialize of the backlog, 'v' any verification, from the
-- first initialize of the backlog to its last.
CREATE TEMP TABLE seen AS
    SELECT (e ->> 'seq')::bigint AS seq,
           CASE WHEN e ->> 'path' = '/v1/payouts/initialize' THEN 's' ELSE 'v' END AS kind,
           e ->> 'path' AS path
    FROM mock.journal(:seq0) e
    WHERE (e ->> 'path' = '/v1/payouts/initialize' AND e -> 'body' -> 'metadata' ->> 'case' LIKE :'run' || '-send-%')
       OR e ->> 'path' LIKE '%/verify';
SELECT string_agg(kind, '' ORDER BY seq) AS pattern
FROM seen WHERE seq BETWEEN (SELECT min(seq) FROM seen WHERE kind = 's')
                        AND (SELECT max(seq) FROM seen WHERE kind = 's') \gset

SELECT ok(length(replace(:'pattern', 's', '')) <= 4 AND :'pattern' NOT LIKE '%vv%',
          format('while sends wait, they go first: %s verifications among 30 sends, never two in a row (%s)',
                 length(replace(:'pattern', 's', '')), :'pattern'));
SELECT ok(length(replace(:'pattern', 's', '')) >= 2
          AND (SELECT max(length(run)) FROM regexp_split_to_table(:'pattern', 'v+') run) <= 12,
          format('verifications still get their share while the backlog lasts: %s, at most %s sends in a row (%s)',
                 length(replace(:'pattern', 's', '')),
                 (SELECT max(length(run)) FROM regexp_split_to_table(:'pattern', 'v+') run), :'pattern'));

-- ---------------------------------------------------------------- none skipped for good
SELECT ok(mock.wait_for(format($$(SELECT count(*) FROM payouts WHERE request -> 'metadata' ->> 'case' LIKE %L
                                  AND status = 'success') = 30$$, :'run' || '-send-%'), 60),
          'every payout of the backlog is verified and settles');
SELECT max(seq) AS last_send FROM seen WHERE kind = 's' \gset
SELECT ok(mock.wait_for(format($$(SELECT count(DISTINCT p.id) FROM payouts p, mock.journal(%s) v
                                  WHERE p.request -> 'metadata' ->> 'case' LIKE %L
                                    AND v ->> 'path' = '/v1/payouts/' || p.moneroo_id || '/verify') = 4$$,
                                :'last_send', :'run' || '-due-%'), 30),
          'each payout that was due when the backlog came is verified again after it');

-- ---------------------------------------------------------------- clean up
-- Moneroo fails the four: their next verification settles them
SELECT mock.set_status(moneroo_id, 'failed') FROM payouts
WHERE request -> 'metadata' ->> 'case' LIKE :'run' || '-due-%' \g /dev/null
SELECT mock.wait_for(format($$(SELECT count(*) FROM payouts WHERE request -> 'metadata' ->> 'case' LIKE %L
                               AND status = 'failed') = 4$$, :'run' || '-due-%'), 20) \g /dev/null
ALTER SYSTEM RESET moneroo.verify_min_interval;
ALTER SYSTEM RESET moneroo.verify_max_interval;
ALTER SYSTEM RESET moneroo.rate_limit;
SELECT pg_reload_conf() \g /dev/null
SELECT mock.config('{"pending_after": 0.3, "final_after": 0.8}') \g /dev/null

SELECT * FROM finish();
