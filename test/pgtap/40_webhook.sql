-- 40_webhook.sql: moneroo_webhook without moneroo.webhook_secret.
--
-- moneroo.webhook_secret is restart-only and the harness's postgresql.conf
-- does not set it, so here every delivery is refused with F0000 (README,
-- Webhooks: "moneroo.webhook_secret not set | F0000 | 500 (fix the
-- configuration)"), before anything else is looked at: whatever the body
-- and the signature, nothing is parsed, nothing is asked of Moneroo and no
-- payout moves.  The signature checks themselves, which need the secret, are
-- in test/security/45_webhook_signed.sh (it sets the secret and restarts).
--
-- No BEGIN around the file: moneroo_transfer's worker commits on its own.

SET client_min_messages = warning;

SELECT plan(12);

SELECT (current_setting('moneroo.webhook_secret') = '') AS no_webhook_secret \gset

-- A sent payout the deliveries below are about.
CREATE FUNCTION pg_temp.req(account text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $fn$ SELECT mock.payout_request(to_jsonb(account), 'pgTAP 40_webhook') $fn$;

-- The worker must not settle it on its own while the file runs.
ALTER SYSTEM SET moneroo.verify_min_interval = '10min';
DO $$ BEGIN PERFORM pg_reload_conf(); PERFORM pg_sleep(0.5); END $$;

SELECT id AS payout_id, moneroo_id FROM moneroo_transfer(pg_temp.req('4149518161')) \gset
SELECT mock.set_status(:'moneroo_id', 'success') \g /dev/null
SELECT coalesce(max((j ->> 'seq')::bigint), 0) AS seq0 FROM mock.journal() j \gset

CREATE TEMP TABLE t40_calls (label text PRIMARY KEY, sqlstate text, message text, detail text, hint text);

CREATE PROCEDURE pg_temp.deliver(label text, body text, signature text)
LANGUAGE plpgsql AS $fn$
DECLARE
    st text; msg text; det text; hin text;
BEGIN
    BEGIN
        PERFORM moneroo_webhook(body, signature);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                det = PG_EXCEPTION_DETAIL, hin = PG_EXCEPTION_HINT;
    END;
    INSERT INTO t40_calls VALUES (label, coalesce(st, 'ok'), msg, det, hin);
END
$fn$;

SELECT format('{"event": "payout.success", "data": {"id": "%s", "status": "success"}}', :'moneroo_id') AS body \gset

\if :no_webhook_secret

CALL pg_temp.deliver('well formed', :'body', repeat('ab', 32));
CALL pg_temp.deliver('no signature', :'body', NULL);
CALL pg_temp.deliver('empty signature', :'body', '');
CALL pg_temp.deliver('not json', 'this is not JSON', repeat('ab', 32));
CALL pg_temp.deliver('not a payout event', '{"event": "payment.success", "data": {"id": "x"}}', repeat('ab', 32));
CALL pg_temp.deliver('unknown payout', '{"event": "payout.success", "data": {"id": "t40nosuchid"}}', repeat('ab', 32));

SELECT is((SELECT sqlstate FROM t40_calls WHERE label = 'well formed'), 'F0000',
          'without moneroo.webhook_secret, a well-formed delivery is refused with F0000');
SELECT is((SELECT sqlstate FROM t40_calls WHERE label = 'no signature'), 'F0000',
          'without moneroo.webhook_secret, a delivery with no signature gets F0000 (configuration first)');
SELECT is((SELECT sqlstate FROM t40_calls WHERE label = 'empty signature'), 'F0000',
          'without moneroo.webhook_secret, a delivery with an empty signature gets F0000');
SELECT is((SELECT sqlstate FROM t40_calls WHERE label = 'not json'), 'F0000',
          'without moneroo.webhook_secret, a body that is not JSON gets F0000: nothing is parsed');
SELECT is((SELECT sqlstate FROM t40_calls WHERE label = 'not a payout event'), 'F0000',
          'without moneroo.webhook_secret, an event that is not a payout event gets F0000');
SELECT is((SELECT sqlstate FROM t40_calls WHERE label = 'unknown payout'), 'F0000',
          'without moneroo.webhook_secret, an event for an unknown payout gets F0000');
SELECT matches((SELECT message FROM t40_calls WHERE label = 'well formed'), 'moneroo\.webhook_secret',
               'the F0000 error names moneroo.webhook_secret');
SELECT ok((SELECT coalesce(hint, '') ~* 'restart' FROM t40_calls WHERE label = 'well formed'),
          'its hint says the setting needs a restart');
SELECT is((SELECT count(*) FROM mock.journal(:seq0)), 0::bigint,
          'no refused delivery asked anything of Moneroo');
SELECT is((SELECT status || '/' || moneroo_status FROM payouts WHERE id = :payout_id), 'sent/initiated',
          'the payout the delivery was about did not move (Moneroo says success, but nobody asked)');

\else

SELECT skip('moneroo.webhook_secret is set in this cluster: the F0000 checks need it unset', 10);

\endif

-- Whatever the configuration: the function is not for everyone.
CREATE ROLE t40_nobody;
SELECT ok(NOT has_function_privilege('t40_nobody', 'moneroo_webhook(text, text)', 'EXECUTE'),
          'moneroo_webhook is not executable by PUBLIC');
DROP ROLE t40_nobody;
SELECT is(current_setting('moneroo.webhook_secret', true) IS NOT NULL, true,
          'moneroo.webhook_secret is a defined setting (a superuser may read it)');

SELECT * FROM finish();

ALTER SYSTEM RESET moneroo.verify_min_interval;
DO $$ BEGIN PERFORM pg_reload_conf(); END $$;
