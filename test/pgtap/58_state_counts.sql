-- 58_state_counts.sql: moneroo_status counts without counting (1.2).
--   * moneroo_status's counts are sums of moneroo_state_counts, which every
--     statement that changes states appends to in the statement: they equal
--     a count of payouts by status after an INSERT, a hold, a moneroo_transfer,
--     the worker's sends and verifications, a rollback to a savepoint, an
--     INSERT ... ON CONFLICT DO NOTHING that skips a row, a DELETE and a
--     moneroo_cancel, and inside an open transaction (its own changes
--     included, nobody else's);
--   * the worker folds the rows into about one per state, and the sums stay;
--   * neither moneroo_status nor moneroo_needs_attention needs to read
--     payouts whole: with sequential scans off, their plans use indexes.
-- (pg_restore and TRUNCATE: test/packaging/65_dump_restore.sh; the figures at
-- 1,000,000 payouts: test/bench/run.sh scale.)
SET client_min_messages = warning;

SELECT plan(14);

CREATE FUNCTION pg_temp.req(account text, tag text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT mock.payout_request(to_jsonb(account), 'counts test ' || tag, 700, tag) $$;

-- moneroo_status's counts, and a count of payouts, as "state=n, ..." (zeros left out)
CREATE FUNCTION pg_temp.status_counts() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT string_agg(k || '=' || v, ', ' ORDER BY k)
    FROM moneroo_status s, jsonb_each_text(jsonb_build_object(
        'pending', s.pending, 'sending', s.sending, 'sent', s.sent, 'success', s.success,
        'failed', s.failed, 'rejected', s.rejected, 'unknown', s.unknown,
        'cancelled', s.cancelled, 'held', s.held)) AS c(k, v)
    WHERE v <> '0'
$$;
CREATE FUNCTION pg_temp.row_counts() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT string_agg(status || '=' || n, ', ' ORDER BY status)
    FROM (SELECT status, count(*) AS n FROM payouts GROUP BY status) c
$$;

SELECT 't58-' || md5(random()::text) AS run \gset

SELECT is(pg_temp.status_counts(), pg_temp.row_counts(), 'at the start, moneroo_status counts what payouts holds');

-- ---------------------------------------------------------------- changes

INSERT INTO moneroo_limits (currency, approval_above) VALUES ('USD', 5000)
ON CONFLICT (currency) DO UPDATE SET approval_above = 5000;
INSERT INTO payouts (request, send_at) VALUES
    (pg_temp.req('4149518161', :'run' || '-later-1'), now() + interval '1 day'),
    (pg_temp.req('4149518161', :'run' || '-later-2'), now() + interval '1 day');
INSERT INTO payouts (request) VALUES
    (pg_temp.req('4149518161', :'run' || '-held') || '{"amount": 9000}');
SELECT is(pg_temp.status_counts(), pg_temp.row_counts(), 'after an INSERT of two scheduled payouts and a held one');

SELECT moneroo_transfer(pg_temp.req('4149518161', :'run' || '-transfer')) \g /dev/null
INSERT INTO payouts (request) VALUES
    (pg_temp.req('4149518161', :'run' || '-ok')), (pg_temp.req('4149518162', :'run' || '-fails'));
SELECT ok(mock.wait_for(format($$(SELECT count(*) FROM payouts WHERE request ->> 'description' LIKE 'counts test %s%%'
                                  AND status IN ('success', 'failed')) = 3$$, :'run'), 20),
          '(the transfer and the two queued payouts settle)');
SELECT is(pg_temp.status_counts(), pg_temp.row_counts(),
          'after moneroo_transfer and the worker''s sends and verifications');

BEGIN;
INSERT INTO payouts (request, send_at) VALUES (pg_temp.req('4149518161', :'run' || '-kept'), now() + interval '1 day');
SAVEPOINT s;
INSERT INTO payouts (request, send_at) VALUES (pg_temp.req('4149518161', :'run' || '-undone'), now() + interval '1 day');
ROLLBACK TO s;
SELECT is(pg_temp.status_counts(), pg_temp.row_counts(),
          'inside a transaction: its own changes counted, the savepoint''s undone ones not');
COMMIT;
SELECT is(pg_temp.status_counts(), pg_temp.row_counts(), 'and after its COMMIT');

INSERT INTO payouts (request, send_at, idempotency_key)
VALUES (pg_temp.req('4149518161', :'run' || '-keyed'), now() + interval '1 day', :'run');
INSERT INTO payouts (request, send_at, idempotency_key)
VALUES (pg_temp.req('4149518161', :'run' || '-keyed-again'), now() + interval '1 day', :'run')
ON CONFLICT (idempotency_key) DO NOTHING;
SELECT is(pg_temp.status_counts(), pg_temp.row_counts(),
          'an INSERT ... ON CONFLICT DO NOTHING that skipped its row counted nothing');

DELETE FROM payouts WHERE request ->> 'description' = 'counts test ' || :'run' || '-later-1';
SELECT moneroo_cancel(id) FROM payouts WHERE request ->> 'description' = 'counts test ' || :'run' || '-held' \g /dev/null
SELECT is(pg_temp.status_counts(), pg_temp.row_counts(), 'after a DELETE and a moneroo_cancel');

-- ---------------------------------------------------------------- folding

SELECT ok((SELECT count(*) FROM moneroo_state_counts) > (SELECT count(DISTINCT status) FROM payouts),
          'each statement added rows of changes');
-- the worker folds at most every 10 s, in a round: wait that long, then wake it
SELECT pg_sleep(10.5) \g /dev/null
INSERT INTO payouts (request, send_at) VALUES (pg_temp.req('4149518161', :'run' || '-wake'), now() + interval '1 day');
SELECT ok(mock.wait_for($$(SELECT count(*) FROM moneroo_state_counts)
                          <= (SELECT count(DISTINCT status) FROM payouts) + 1$$, 10),
          'the worker folds them into about one row per state');
SELECT is(pg_temp.status_counts(), pg_temp.row_counts(), 'and the counts are what they were');
SELECT ok((SELECT bool_and(payouts > 0) FROM moneroo_state_counts c
           WHERE NOT EXISTS (SELECT FROM moneroo_state_counts d WHERE d.status = c.status AND d.ctid <> c.ctid)),
          'a folded row holds its state''s count (no zero rows are kept)');

-- ---------------------------------------------------------------- plans

SET enable_seqscan = off;
SELECT unalike(mock.plan_of('SELECT * FROM moneroo_status'), '%Seq Scan on payouts%',
               'moneroo_status reads no payout but through an index (the oldest pending one)');
SELECT matches(mock.plan_of('SELECT * FROM moneroo_needs_attention'), 'payouts_attention',
               'moneroo_needs_attention reads the payouts it may list through payouts_attention');
RESET enable_seqscan;

-- ---------------------------------------------------------------- clean up

DELETE FROM moneroo_limits WHERE currency = 'USD';
DELETE FROM payouts WHERE status = 'pending' AND request ->> 'description' LIKE 'counts test ' || :'run' || '%';

SELECT * FROM finish();
