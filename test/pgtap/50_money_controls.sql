-- 50_money_controls.sql: the money controls of 1.2.
--   * send_at: a scheduled payout is not sent before its time and is sent
--     within a second after it; cancelled before, it is never sent;
--   * moneroo_limits: max_amount refuses (22023) on INSERT and
--     moneroo_transfer; approval_above and daily_limit hold (status held,
--     last_error naming the rule); moneroo_transfer of a payout that would be
--     held raises 55000 and records nothing;
--   * moneroo_approve: four eyes (42501 for the role that queued it), 55000
--     for any state but held; an approved payout is sent; a changed request
--     is judged again;
--   * created_by: set by the extension, never by the caller;
--   * idempotency keys: moneroo_transfer(request, key) twice sends once;
--     another request under a used key is 22023; an INSERT reusing one 23505;
--   * moneroo_needs_attention and moneroo_status show held payouts.
-- (The daily limit under 16 concurrent inserters: test/faults/52_daily_limit_race.sh.)
--
-- Rows are told apart from other files' by the temp table "mine" and by
-- metadata.case tags.  moneroo_limits and the settings are reset at the end.
SET client_min_messages = warning;

SELECT plan(58);

-- ---------------------------------------------------------------- helpers

CREATE FUNCTION pg_temp.req(amount int, tag text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT mock.payout_request('"4149518161"', 'controls test ' || tag, amount, tag) $$;

-- Initialize requests the mock received for a payout tagged so.
CREATE FUNCTION pg_temp.posts(tag text) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT count(*) FROM mock.journal() j
    WHERE j ->> 'method' = 'POST' AND j ->> 'path' = '/v1/payouts/initialize'
      AND j -> 'body' -> 'metadata' ->> 'case' = tag
$$;

-- The status of the payout tagged so (NULL when there is none).
CREATE FUNCTION pg_temp.status_of(tag text) RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT status FROM payouts WHERE request -> 'metadata' ->> 'case' = tag
$$;

SELECT 'c50-' || left(gen_random_uuid()::text, 8) AS run \gset

ALTER SYSTEM SET moneroo.rate_limit = 0;
ALTER SYSTEM SET moneroo.verify_min_interval = '200ms';
SELECT pg_reload_conf() AS reloaded \gset
SELECT mock.config('{"rate_limit": 0}') AS configured \gset
SELECT pg_sleep(0.3) AS slept \gset

-- The roles of the README's Security section that matter here: a clerk
-- queues payouts, an approver approves them.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['t50_clerk', 't50_approver'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON payouts FROM %I', r);
            EXECUTE format('REVOKE ALL ON SCHEMA public FROM %I', r);
            EXECUTE format('REVOKE ALL ON FUNCTION moneroo_approve(bigint), moneroo_transfer(jsonb, text) FROM %I', r);
            EXECUTE format('DROP ROLE %I', r);
        END IF;
    END LOOP;
END
$$;
CREATE ROLE t50_clerk;
CREATE ROLE t50_approver;
GRANT USAGE ON SCHEMA public TO t50_clerk, t50_approver;
GRANT INSERT (request, send_at, idempotency_key), SELECT ON payouts TO t50_clerk;
GRANT UPDATE (request, send_at) ON payouts TO t50_clerk;
GRANT EXECUTE ON FUNCTION moneroo_approve(bigint) TO t50_clerk, t50_approver;
GRANT SELECT ON payouts TO t50_approver;

-- ---------------------------------------------------------------- send_at
SELECT extract(epoch FROM clock_timestamp() + interval '2 s') AS due \gset
INSERT INTO payouts (request, send_at)
VALUES (pg_temp.req(10, :'run' || '-scheduled'), to_timestamp(:due));
INSERT INTO payouts (request, send_at)
VALUES (pg_temp.req(10, :'run' || '-scheduled-cancelled'), to_timestamp(:due));

SELECT is(mock.error_of(format('INSERT INTO payouts (request, send_at) VALUES (%L, %L)',
                                  pg_temp.req(10, :'run' || '-infinity'), 'infinity')),
          '22023: send_at of a payout must be a finite time',
          'an infinite send_at is refused (22023): the worker sleeps until a due time');

SELECT pg_sleep(1) AS slept \gset
SELECT is(pg_temp.posts(:'run' || '-scheduled'), 0::bigint,
          'a payout scheduled 2 s ahead is not sent 1 s later');
SELECT is(pg_temp.status_of(:'run' || '-scheduled'), 'pending', 'it waits, pending');
SELECT is((moneroo_cancel((SELECT id FROM payouts
                           WHERE request -> 'metadata' ->> 'case' = :'run' || '-scheduled-cancelled'))).status,
          'cancelled', 'a scheduled payout can be cancelled before it leaves');

SELECT ok(mock.wait_for(format('mock.sent_time(%L) IS NOT NULL', :'run' || '-scheduled'), 5),
          'the scheduled payout is sent');
SELECT cmp_ok(mock.sent_time(:'run' || '-scheduled'), '>=', :due::float8,
              'not before its send_at');
SELECT cmp_ok(mock.sent_time(:'run' || '-scheduled') - :due, '<', 1.0::float8,
              'and within 1 s after it: the worker sleeps until the next due time');
SELECT pg_sleep(0.5) AS slept \gset
SELECT is(pg_temp.posts(:'run' || '-scheduled-cancelled'), 0::bigint,
          'the cancelled scheduled payout is never sent');
SELECT ok(mock.wait_for(format($$pg_temp.status_of(%L) = 'success'$$, :'run' || '-scheduled'), 10),
          'the scheduled payout reaches success');
SELECT is(mock.error_of(format('SELECT moneroo_cancel(%s)',
                                  (SELECT id FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-scheduled'))),
          format('55000: payout %s is success, not pending, held or unknown',
                 (SELECT id FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-scheduled')),
          'a payout that has been sent cannot be cancelled (55000, naming its state)');

-- ---------------------------------------------------------------- max_amount
INSERT INTO moneroo_limits (currency, max_amount, approval_above)
VALUES ('USD', 100000, 5000);

SELECT is(mock.error_of(format('INSERT INTO payouts (request) VALUES (%L)',
                                  pg_temp.req(100001, :'run' || '-too-big'))),
          '22023: invalid "amount" in payout request: 100001 USD is above max_amount (100000)',
          'an INSERT above max_amount is refused (22023, naming amount and the limit)');
SELECT is(mock.error_of(format('SELECT moneroo_transfer(%L)',
                                  pg_temp.req(100001, :'run' || '-too-big'))),
          '22023: invalid "amount" in payout request: 100001 USD is above max_amount (100000)',
          'so is a moneroo_transfer');
SELECT is((SELECT count(*) FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-too-big'),
          0::bigint, 'neither left a row');
SELECT is(pg_temp.posts(:'run' || '-too-big'), 0::bigint, 'nor a request to Moneroo');
SELECT is(mock.error_of(format('SELECT moneroo_validate(%L)', pg_temp.req(100000, 'x'))), 'ok',
          'max_amount itself is allowed');

-- ---------------------------------------------------------------- approval_above
SET ROLE t50_clerk;
INSERT INTO payouts (request) VALUES (pg_temp.req(6000, :'run' || '-big'));
INSERT INTO payouts (request) VALUES (pg_temp.req(7000, :'run' || '-big-self'));
INSERT INTO payouts (request) VALUES (pg_temp.req(8000, :'run' || '-big-cancelled'));
RESET ROLE;
SELECT id AS big FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-big' \gset
SELECT id AS big_self FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-big-self' \gset
SELECT id AS big_cancelled FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-big-cancelled' \gset

SELECT is(pg_temp.status_of(:'run' || '-big'), 'held', 'an amount above approval_above is held');
SELECT is((SELECT last_error FROM payouts WHERE id = :big),
          'held for approval: the amount 6000 USD is above approval_above (5000)',
          'last_error says which rule held it');
SELECT is((SELECT created_by::text FROM payouts WHERE id = :big), 't50_clerk',
          'created_by is the role that queued it');
SELECT is((SELECT count(*) FROM moneroo_needs_attention WHERE id = :big AND status = 'held'
             AND reason LIKE '%other than t50_clerk%moneroo_approve(id)%moneroo_cancel(id)%'),
          1::bigint, 'moneroo_needs_attention lists it, with what to do');
SELECT cmp_ok((SELECT held FROM moneroo_status), '>=', 3::bigint, 'moneroo_status counts held payouts');
SELECT pg_sleep(1) AS slept \gset
SELECT is(pg_temp.posts(:'run' || '-big'), 0::bigint, 'a held payout is not sent');

SET ROLE t50_clerk;
SELECT is(mock.error_of(format('SELECT moneroo_approve(%s)', :big_self)),
          format('42501: payout %s cannot be approved by t50_clerk, who queued it', :big_self),
          'the role that queued a payout cannot approve it (42501: four eyes)');
RESET ROLE;
SELECT is(pg_temp.status_of(:'run' || '-big-self'), 'held', 'it stays held');

BEGIN;
SET LOCAL ROLE t50_approver;
SELECT is((moneroo_approve(:big)).status, 'pending', 'a second role approves it: pending');
SELECT is(mock.error_of(format('SELECT moneroo_approve(%s)', :big)),
          format('55000: payout %s is pending, not held', :big),
          'approving it again is refused (55000, naming its state)');
COMMIT;
SELECT ok(mock.wait_for(format($$pg_temp.status_of(%L) = 'success'$$, :'run' || '-big'), 10),
          'the approved payout is sent and reaches success');
SELECT is(pg_temp.posts(:'run' || '-big'), 1::bigint, 'once');
SELECT is((SELECT last_error FROM payouts WHERE id = :big), NULL,
          'a settled payout carries no error');

SELECT is((moneroo_cancel(:big_cancelled)).status, 'cancelled', 'a held payout can be cancelled');
SELECT is(mock.error_of(format('SELECT moneroo_approve(%s)', :big_cancelled)),
          format('55000: payout %s is cancelled, not held', :big_cancelled),
          'a cancelled payout cannot be approved');

-- A changed request is judged again: an approval does not carry over.
SET ROLE t50_clerk;
UPDATE payouts SET request = pg_temp.req(4000, :'run' || '-big-self') WHERE id = :big_self;
RESET ROLE;
SELECT isnt(pg_temp.status_of(:'run' || '-big-self'), 'held',
          'a held payout whose request now passes every limit goes');
SELECT ok(mock.wait_for(format($$pg_temp.status_of(%L) = 'success'$$, :'run' || '-big-self'), 10),
          'and is sent');

-- moneroo_transfer cannot wait for a second person.
SELECT is(left(mock.error_of(format('SELECT moneroo_transfer(%L)', pg_temp.req(6000, :'run' || '-transfer-held'))), 58),
          '55000: payout was not sent: it would be held for approval',
          'moneroo_transfer of a payout that would be held raises 55000');
SELECT is((SELECT count(*) FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-transfer-held'),
          0::bigint, 'and records nothing');
SELECT is(pg_temp.posts(:'run' || '-transfer-held'), 0::bigint, 'and sends nothing');

-- ---------------------------------------------------------------- daily_limit
-- The limit is set just above what the last 24 hours of USD already used.
SELECT coalesce(sum(amount), 0) + 1000 AS daily FROM payouts
WHERE currency = 'USD' AND status IN ('pending', 'sending', 'sent', 'success', 'unknown')
  AND created_at > now() - interval '24 hours' \gset
UPDATE moneroo_limits SET daily_limit = :daily, approval_above = NULL WHERE currency = 'USD';
INSERT INTO payouts (request) VALUES (pg_temp.req(400, :'run' || '-daily-1')),
                                     (pg_temp.req(400, :'run' || '-daily-2')),
                                     (pg_temp.req(400, :'run' || '-daily-3'));
SELECT is((SELECT count(*) FROM payouts WHERE status <> 'held'
             AND request -> 'metadata' ->> 'case' IN (:'run' || '-daily-1', :'run' || '-daily-2')),
          2::bigint, 'payouts within the daily limit go, even in one statement');
SELECT is(pg_temp.status_of(:'run' || '-daily-3'), 'held',
          'the one that would pass it is held');
SELECT alike((SELECT last_error FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-daily-3'),
            'held for approval: % USD in the last 24 hours and this 400 would pass daily_limit (%)',
            'its last_error names the daily limit');
SELECT is(left(mock.error_of(format('SELECT moneroo_transfer(%L)', pg_temp.req(300, :'run' || '-daily-transfer'))), 58),
          '55000: payout was not sent: it would be held for approval',
          'a moneroo_transfer over the daily limit raises 55000');
-- a rolled-back savepoint gives its payouts' room back
BEGIN;
SAVEPOINT s;
INSERT INTO payouts (request) VALUES (pg_temp.req(150, :'run' || '-daily-rolled-back'));
ROLLBACK TO s;
INSERT INTO payouts (request) VALUES (pg_temp.req(200, :'run' || '-daily-4'));
COMMIT;
SELECT isnt(pg_temp.status_of(:'run' || '-daily-4'), 'held',
          'a payout rolled back to a savepoint no longer counts against the limit');
SELECT id AS daily_3 FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-daily-3' \gset
SET ROLE t50_approver;
SELECT is((moneroo_approve(:daily_3)).status, 'pending', 'an approval overrides the daily limit');
RESET ROLE;
INSERT INTO payouts (request) VALUES (pg_temp.req(1, :'run' || '-daily-5'));
SELECT is(pg_temp.status_of(:'run' || '-daily-5'), 'held',
          'and the approved payout counts: the limit is used up');
SELECT is((moneroo_cancel((SELECT id FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-daily-5'))).status,
          'cancelled', '(cancelled)');
UPDATE moneroo_limits SET daily_limit = NULL WHERE currency = 'USD';

-- ---------------------------------------------------------------- created_by
SET ROLE t50_clerk;
SELECT is(mock.error_of(format('INSERT INTO payouts (request, created_by) VALUES (%L, %L)',
                                  pg_temp.req(10, :'run' || '-forged'), 't50_approver')),
          '42501: permission denied for table payouts',
          'a caller without the column privilege cannot set created_by');
RESET ROLE;
SELECT is(mock.error_of(format('INSERT INTO payouts (request, created_by) VALUES (%L, %L)',
                                  pg_temp.req(10, :'run' || '-forged'), 't50_approver')),
          '42501: column "created_by" of payouts is maintained by the moneroo extension',
          'not even the owner sets created_by');
SELECT is(mock.error_of(format('UPDATE payouts SET created_by = %L WHERE id = %s', 'postgres', :big)),
          '42501: column "created_by" of payouts cannot be changed',
          'nor changes it');
-- nor when: a payout queued "yesterday" would be outside the daily limit's 24 hours
SELECT is(mock.error_of(format('INSERT INTO payouts (request, created_at) VALUES (%L, now() - interval ''1 day'')',
                                  pg_temp.req(10, :'run' || '-backdated'))),
          '42501: column "created_at" of payouts is maintained by the moneroo extension',
          'nobody, the owner included, queues a payout in the past (created_at)');
SELECT is(mock.error_of(format('INSERT INTO payouts (request, created_at, send_at) VALUES (%L, now(), now() + interval ''1 hour'') RETURNING id',
                                  pg_temp.req(10, :'run' || '-now'))),
          'ok', 'created_at given as now() (its default) is accepted');
DELETE FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-now';

-- ---------------------------------------------------------------- idempotency
SELECT (moneroo_transfer(pg_temp.req(20, :'run' || '-key'), :'run' || '-key')).id AS key_id \gset
SELECT is((moneroo_transfer(pg_temp.req(20, :'run' || '-key'), :'run' || '-key')).id, :key_id::bigint,
          'moneroo_transfer again with the same key returns the first payout');
SELECT is(pg_temp.posts(:'run' || '-key'), 1::bigint, 'and sends nothing: one POST in all');
SELECT is((SELECT idempotency_key FROM payouts WHERE id = :key_id), :'run' || '-key',
          'the key is on the row');
SELECT is(left(mock.error_of(format('SELECT moneroo_transfer(%L, %L)', pg_temp.req(21, :'run' || '-key'), :'run' || '-key')), 20),
          '22023: idempotency k', 'the same key with another request is refused (22023)');
SELECT is(pg_temp.posts(:'run' || '-key'), 1::bigint, 'still one POST');
SELECT is(left(mock.error_of(format('INSERT INTO payouts (request, idempotency_key) VALUES (%L, %L)',
                                       pg_temp.req(20, :'run' || '-key-insert'), :'run' || '-key')), 5),
          '23505', 'an INSERT reusing a key fails with 23505');
INSERT INTO payouts (request, idempotency_key) VALUES (pg_temp.req(20, :'run' || '-key-queued'), :'run' || '-key-queued');
SELECT is((moneroo_transfer(pg_temp.req(20, :'run' || '-key-queued'), :'run' || '-key-queued')).request -> 'metadata' ->> 'case',
          :'run' || '-key-queued', 'a key used by an INSERT answers moneroo_transfer with that payout');
SELECT is(left(mock.error_of(format('SELECT moneroo_transfer(%L, %L)', pg_temp.req(20, 'x'), '')), 43),
          '22023: invalid idempotency key: it is empty', 'an empty key is refused (22023)');
SELECT is((moneroo_transfer(pg_temp.req(20, :'run' || '-no-key'), NULL)).status, 'sent',
          'a NULL key is no key');
SELECT is((moneroo_transfer(pg_temp.req(20, :'run' || '-one-arg'))).status, 'sent',
          'the one-argument moneroo_transfer keeps working');

-- ---------------------------------------------------------------- clean-up
DELETE FROM moneroo_limits;
ALTER SYSTEM RESET moneroo.rate_limit;
ALTER SYSTEM RESET moneroo.verify_min_interval;
SELECT pg_reload_conf() AS reloaded \gset
-- the roles go; the payouts they queued keep their names in created_by
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['t50_clerk', 't50_approver'] LOOP
        EXECUTE format('DROP OWNED BY %I', r);
        EXECUTE format('DROP ROLE %I', r);
    END LOOP;
END
$$;

SELECT * FROM finish();
