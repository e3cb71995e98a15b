-- 57_batches.sql: batches (1.2), a payroll run's progress at a glance.
--   * payouts.batch: optional, the caller's label; '' and labels over 255
--     bytes are refused (23514); changeable while pending or held, never
--     once the payout may have reached Moneroo (55000);
--   * moneroo_batches: one row per batch and currency, with counts by state,
--     amounts paid / open / not paid, the share settled, the first and last
--     sent and the oldest pending, as the payouts move; a filter on batch
--     reads the index payouts_batch; PUBLIC may not read it.
-- The sandbox numbers decide the outcomes: 4149518161 succeeds, 4149518162
-- fails, 4149518163 stays pending at Moneroo (our state: sent).
SET client_min_messages = warning;

SELECT plan(23);

CREATE FUNCTION pg_temp.req(amount int, account text, tag text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT mock.payout_request(to_jsonb(account), 'batch test ' || tag, amount, tag) $$;

SELECT 't57-' || md5(random()::text) AS run \gset

-- ---------------------------------------------------------------- the column

SELECT has_column('payouts', 'batch', 'payouts has a batch column');
SELECT has_index('payouts', 'payouts_batch', 'and an index on it');
SELECT is(mock.error_of(format($$INSERT INTO payouts (request, batch) VALUES (%L, '')$$,
                                  pg_temp.req(100, '4149518161', :'run' || '-empty'))),
          '23514: new row for relation "payouts" violates check constraint "payouts_batch_check"',
          'an empty batch label is refused');
SELECT is(mock.error_of(format($$INSERT INTO payouts (request, batch) VALUES (%L, %L)$$,
                                  pg_temp.req(100, '4149518161', :'run' || '-long'), repeat('b', 256))),
          '23514: new row for relation "payouts" violates check constraint "payouts_batch_check"',
          'a label over 255 bytes is refused');

-- ---------------------------------------------------------------- a run

-- XOF payouts need approval here, so the run has a held line in a second currency.
INSERT INTO moneroo_limits (currency, approval_above) VALUES ('XOF', 0)
ON CONFLICT (currency) DO UPDATE SET approval_above = 0;

INSERT INTO payouts (request, batch, send_at) VALUES
    (pg_temp.req(100, '4149518161', :'run' || '-a'), :'run', NULL),
    (pg_temp.req(200, '4149518161', :'run' || '-b'), :'run', NULL),
    (pg_temp.req(300, '4149518161', :'run' || '-c'), :'run', NULL),
    (pg_temp.req(400, '4149518162', :'run' || '-fails'), :'run', NULL),
    (pg_temp.req(500, '4149518163', :'run' || '-stays'), :'run', NULL),
    (pg_temp.req(600, '4149518161', :'run' || '-tomorrow'), :'run', now() + interval '1 day'),
    (jsonb_build_object('amount', 7000, 'currency', 'XOF', 'description', 'batch test xof',
                        'method', 'mtn_bj',
                        'customer', jsonb_build_object('email', 'batch@example.com',
                                                       'first_name', 'Batch', 'last_name', 'Run'),
                        'recipient', jsonb_build_object('msisdn', '22951345020')),
     :'run', NULL);
-- and a payout of no batch, which the view leaves out
INSERT INTO payouts (request) VALUES (pg_temp.req(999, '4149518161', :'run' || '-none'));

SELECT ok(mock.wait_for(format($$(SELECT count(*) FROM payouts WHERE batch = %L
                                  AND status IN ('success', 'failed', 'sent')) = 5
                                 AND (SELECT count(*) FROM payouts WHERE batch = %L
                                      AND status = 'sent' AND moneroo_status = 'pending') = 1$$,
                                :'run', :'run'), 20),
          'the five lines due now leave and settle as the sandbox says');

SELECT is((SELECT count(*) FROM moneroo_batches WHERE batch = :'run'), 2::bigint,
          'one row per currency of the batch');
SELECT row_eq(format($$SELECT payouts, amount, held, pending, sending, sent, unknown, success,
                              failed, rejected, cancelled FROM moneroo_batches
                       WHERE batch = %L AND currency = 'USD'$$, :'run'),
              ROW(6::bigint, 2100::numeric, 0::bigint, 1::bigint, 0::bigint, 1::bigint, 0::bigint,
                  3::bigint, 1::bigint, 0::bigint, 0::bigint),
              'USD: 6 payouts of 2,100 in all: 3 success, 1 failed, 1 sent, 1 pending (scheduled)');
SELECT row_eq(format($$SELECT amount_paid, amount_open, amount_not_paid, settled_percent
                       FROM moneroo_batches WHERE batch = %L AND currency = 'USD'$$, :'run'),
              ROW(600::numeric, 1100::numeric, 400::numeric, 66.7::numeric),
              'USD: 600 paid, 1,100 open (sent and pending), 400 not paid, 66.7 % settled');
SELECT row_eq(format($$SELECT payouts, amount, held, amount_open, settled_percent, first_sent_at
                       FROM moneroo_batches WHERE batch = %L AND currency = 'XOF'$$, :'run'),
              ROW(1::bigint, 7000::numeric, 1::bigint, 7000::numeric, 0.0::numeric, NULL::timestamptz),
              'XOF: the held line, open, nothing settled, nothing sent');
SELECT ok((SELECT first_sent_at = (SELECT min(sent_at) FROM payouts WHERE batch = :'run')
              AND last_sent_at = (SELECT max(sent_at) FROM payouts WHERE batch = :'run')
              AND first_sent_at <= last_sent_at
           FROM moneroo_batches WHERE batch = :'run' AND currency = 'USD'),
          'first and last sent are the batch''s earliest and latest sent_at');
SELECT is((SELECT oldest_pending FROM moneroo_batches WHERE batch = :'run' AND currency = 'USD'),
          (SELECT created_at FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-tomorrow'),
          'oldest pending: when the line still waiting was queued');
SELECT is((SELECT count(*) FROM moneroo_batches WHERE batch IS NULL), 0::bigint,
          'payouts of no batch are not a batch');

-- ---------------------------------------------------------------- changing the label

SELECT is(mock.error_of(format($$UPDATE payouts SET batch = %L WHERE request -> 'metadata' ->> 'case' = %L$$,
                                  :'run' || '-next', :'run' || '-tomorrow')),
          'ok', 'a pending payout may move to another batch');
SELECT is((SELECT payouts FROM moneroo_batches WHERE batch = :'run' || '-next'), 1::bigint,
          'and the view follows it');
SELECT is(mock.error_of(format($$UPDATE payouts SET batch = NULL WHERE request -> 'metadata' ->> 'case' = %L$$,
                                  :'run' || '-tomorrow')),
          'ok', 'or leave every batch');
SELECT is(mock.error_of(format($$UPDATE payouts SET batch = %L WHERE currency = 'XOF' AND batch = %L$$,
                                  :'run' || '-next', :'run')),
          'ok', 'a held payout may move too');
SELECT matches(mock.error_of(format($$UPDATE payouts SET batch = 'elsewhere' WHERE request -> 'metadata' ->> 'case' = %L$$,
                                       :'run' || '-a')),
               '^55000: cannot change the batch of payout [0-9]+: it is success$',
               'a paid payout stays in its batch (55000)');
SELECT matches(mock.error_of(format($$UPDATE payouts SET batch = NULL WHERE request -> 'metadata' ->> 'case' = %L$$,
                                       :'run' || '-stays')),
               '^55000: cannot change the batch of payout [0-9]+: it is sent$',
               'so does one Moneroo has');
SELECT is((SELECT count(*) FROM payouts WHERE batch = :'run'), 5::bigint,
          'the refused changes changed nothing');
SELECT row_eq(format($$SELECT payouts, pending, settled_percent, oldest_pending FROM moneroo_batches
                       WHERE batch = %L AND currency = 'USD'$$, :'run'),
              ROW(5::bigint, 0::bigint, 80.0::numeric, NULL::timestamptz),
              'the batch without its scheduled line: 5 payouts, 4 settled, nothing pending');

-- ---------------------------------------------------------------- reading it

SET enable_seqscan = off;
SELECT matches(mock.plan_of(format('SELECT * FROM moneroo_batches WHERE batch = %L', :'run')),
               'payouts_batch', 'a filter on batch reads the index');
RESET enable_seqscan;

CREATE ROLE moneroo_t57_nobody;
SELECT ok(NOT has_table_privilege('moneroo_t57_nobody', 'moneroo_batches', 'SELECT'),
          'PUBLIC may not read moneroo_batches (amounts are payroll data)');
DROP ROLE moneroo_t57_nobody;

-- ---------------------------------------------------------------- clean up

DELETE FROM moneroo_limits WHERE currency = 'XOF';
SELECT moneroo_cancel(id) IS NOT NULL FROM payouts
WHERE request -> 'metadata' ->> 'case' = :'run' || '-tomorrow' OR (currency = 'XOF' AND batch = :'run' || '-next')
\g /dev/null
SELECT is((SELECT count(*) FROM payouts WHERE status IN ('pending', 'held')
                                          AND request ->> 'description' LIKE 'batch test%'), 0::bigint,
          'nothing of this file is left to send');

SELECT * FROM finish();
