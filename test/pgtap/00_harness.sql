-- 00_harness.sql: the test harness itself works (extension installed and
-- preloaded, mock reachable through the mock.* helpers, wait_for bounded).
BEGIN;
SELECT plan(12);

SELECT has_extension('moneroo', 'extension moneroo is installed');
SELECT ok(current_setting('shared_preload_libraries') ~ '\mmoneroo\M',
          'moneroo is in shared_preload_libraries');
SELECT has_schema('mock', 'schema mock (test/pgtap/helpers.sql) exists');

SELECT is(jsonb_typeof(mock.call('GET', '/utils/payout/methods') -> 'data'), 'array',
          'GET /utils/payout/methods answers with a data array');
SELECT is(jsonb_array_length(mock.call('GET', '/utils/payout/methods') -> 'data'), 41,
          'the mock lists the 41 payout methods');
SELECT is((mock.http('GET', '/utils/payout/methods')).status, 200,
          'mock.http() reports the HTTP status');

-- Shell metacharacters in the path, headers and body reach the mock as data.
SELECT is((mock.http('POST', '/v1/payouts/initialize?x=''$(touch%20/tmp/pwn)"`;|&',
                     '{"note": "it''s \"quoted\" $(id) `id` ; | & \\ \n end"}',
                     '{"Authorization": "Bearer wrong''key"}')).status, 401,
          'quotes and shell metacharacters are passed as data (401 for a wrong key)');

SELECT lives_ok($$SELECT mock.reset()$$, 'mock.reset() succeeds');
SELECT is((SELECT count(*) FROM mock.journal()), 0::bigint, 'the journal is empty after mock.reset()');

DO $$ BEGIN PERFORM mock.call('GET', '/utils/payout/methods'); END $$;  -- one journaled request
SELECT is((SELECT j ->> 'path' FROM mock.journal() AS j), '/utils/payout/methods',
          'mock.journal() returns the request just made');

SELECT ok(mock.wait_for('true'), 'mock.wait_for(''true'') returns true');

SELECT ok(NOT mock.wait_for('false', 0.2) AND clock_timestamp() - statement_timestamp() < interval '5 s',
          'mock.wait_for(''false'', 0.2) returns false, within the timeout');

SELECT * FROM finish();
ROLLBACK;
