-- 00_harness.sql: the test harness itself works (extension installed and
-- preloaded, mock reachable through the mock.* helpers, wait_for bounded).
BEGIN;
SELECT plan(13);

SELECT has_extension('moneroo', 'extension moneroo is installed');
SELECT ok(current_setting('shared_preload_libraries') ~ '\mmoneroo\M',
          'moneroo is in shared_preload_libraries');
SELECT has_schema('mock', 'schema mock (test/lib/helpers.sql) exists');

SELECT is(jsonb_typeof(mock.call('GET', '/utils/payout/methods') -> 'data'), 'array',
          'GET /utils/payout/methods answers with a data array');
SELECT is(jsonb_array_length(mock.call('GET', '/utils/payout/methods') -> 'data'), 41,
          'the mock lists the 41 payout methods');
SELECT is((mock.http('GET', '/utils/payout/methods')).status, 200,
          'mock.http() reports the HTTP status');

SELECT lives_ok($$SELECT mock.reset()$$, 'mock.reset() succeeds');
SELECT is((SELECT count(*) FROM mock.journal()), 0::bigint, 'the journal is empty after mock.reset()');

-- Shell metacharacters in the path, a header and the body reach the mock as
-- data, byte for byte.
CREATE TEMP TABLE harness_sent AS
SELECT '/v1/payouts/initialize?x=''$(touch%20/tmp/pwn)"`;|&'::text AS path,
       '{"note": "it''s \"quoted\" $(id) `id` ; | & \\ \n end", "n": 1.50, "u": "é€"}'::jsonb AS body,
       'Bearer wrong''key $(id)'::text AS auth;

SELECT is((SELECT (mock.http('POST', path, body, jsonb_build_object('Authorization', auth))).status
           FROM harness_sent), 401,
          'a POST with a wrong key gets 401');
SELECT results_eq(
    $$SELECT j ->> 'method', j ->> 'path', j -> 'body', j -> 'headers' ->> 'authorization'
        FROM mock.journal() AS j$$,
    $$SELECT 'POST', path, body, auth FROM harness_sent$$,
    'the journal holds that one request, with path, body and header intact');

SELECT ok(mock.wait_for('true'), 'mock.wait_for(''true'') returns true');

SELECT ok(NOT mock.wait_for('false', 0.2)
          AND clock_timestamp() - statement_timestamp() BETWEEN interval '0.2 s' AND interval '5 s',
          'mock.wait_for(''false'', 0.2) returns false after about 0.2 s');

-- (only the request above: the worker may verify older payouts meanwhile)
SELECT ok(mock.wait_for($$(SELECT count(*) FROM mock.journal() j
                           WHERE j ->> 'path' LIKE '/v1/payouts/initialize?x=%') = 1$$, 2),
          'mock.wait_for() evaluates a query');

SELECT * FROM finish();
ROLLBACK;
