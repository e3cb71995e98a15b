-- 10_transfer.sql: moneroo_transfer against the Moneroo mock.
--
-- A sandbox payout goes out as exactly one POST /v1/payouts/initialize with
-- the documented headers and body, comes back 'sent' with Moneroo's id and
-- is then settled by verification.  Every kind of fault ends in the state and
-- the error the contract (/work/shared/interface.md) demands: an ERROR only
-- where no money moved (and then nothing is left that will be sent later),
-- otherwise the row, 'unknown', with a WARNING.  The row survives a rollback
-- of the caller, and no payout is ever created twice.
--
-- No BEGIN around the file: ALTER SYSTEM and a real top-level ROLLBACK need
-- autocommit.  Helpers live in pg_temp and vanish with the session.

SET client_min_messages = warning;

-- Verifications every 200 ms (doubling), no rate limit on either side: the
-- file sends a few dozen requests and must not wait for the limiter.
ALTER SYSTEM SET moneroo.verify_min_interval = '200ms';
ALTER SYSTEM SET moneroo.rate_limit = 0;
DO $$ BEGIN
    PERFORM pg_reload_conf();
    PERFORM mock.config('{"rate_limit": 0}');
    PERFORM pg_sleep(0.5);      -- the worker reloads on SIGHUP, asynchronously
END $$;

SELECT plan(93);

-- ---------------------------------------------------------------- helpers

-- A valid sandbox request paying the given account number (a JSON string or
-- integer), with extra top-level keys merged in.
CREATE FUNCTION pg_temp.req(account jsonb, extra jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $fn$ SELECT mock.payout_request(account, 'pgTAP 10_transfer', extra => extra) $fn$;

CREATE FUNCTION pg_temp.log_size() RETURNS bigint
LANGUAGE sql VOLATILE AS $fn$
    SELECT (pg_stat_file(current_setting('moneroo_test.server_log'))).size
$fn$;

CREATE FUNCTION pg_temp.journal_seq() RETURNS bigint
LANGUAGE sql VOLATILE AS $fn$
    SELECT coalesce(max((j ->> 'seq')::bigint), 0) FROM mock.journal() j
$fn$;

-- What moneroo_transfer did, one row per call.
CREATE TEMP TABLE t10_calls (
    label     text PRIMARY KEY,
    reference uuid,             -- of the row it returned or left behind
    before_id bigint,           -- max(payouts.id) before the call
    new_ids   bigint[],         -- rows created by the call
    seq_from  bigint,           -- journal seq before / after
    seq_to    bigint,
    log_from  bigint,           -- server log size before / after
    log_to    bigint,
    sqlstate  text,             -- NULL when it returned
    message   text,
    detail    text,
    hint      text,
    returned  payouts           -- the row it returned
);

-- Calls moneroo_transfer(req), catching any ERROR, and records the outcome.
CREATE PROCEDURE pg_temp.transfer(label text, req jsonb)
LANGUAGE plpgsql AS $fn$
DECLARE
    c t10_calls;
    r payouts;
BEGIN
    c.label := label;
    c.before_id := coalesce((SELECT max(id) FROM payouts), 0);
    c.seq_from := pg_temp.journal_seq();
    c.log_from := pg_temp.log_size();
    BEGIN
        SELECT * INTO r FROM moneroo_transfer(req);
        c.returned := r;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS c.sqlstate = RETURNED_SQLSTATE, c.message = MESSAGE_TEXT,
                                c.detail = PG_EXCEPTION_DETAIL, c.hint = PG_EXCEPTION_HINT;
    END;
    c.log_to := pg_temp.log_size();
    c.seq_to := pg_temp.journal_seq();
    c.new_ids := ARRAY(SELECT id FROM payouts WHERE id > c.before_id ORDER BY id);
    c.reference := coalesce(r.reference,
                            (SELECT reference FROM payouts WHERE id = c.new_ids[1]));
    INSERT INTO t10_calls SELECT c.*;
END
$fn$;

-- 'returned <status>' or 'ERROR <sqlstate>'
CREATE FUNCTION pg_temp.outcome(l text) RETURNS text
LANGUAGE sql AS $fn$
    SELECT CASE WHEN sqlstate IS NULL THEN 'returned ' || coalesce((returned).status, '(nothing)')
                ELSE 'ERROR ' || sqlstate END
    FROM t10_calls WHERE label = l
$fn$;

-- The payouts row (as it is now) the call created.
CREATE FUNCTION pg_temp.row_of(l text) RETURNS payouts
LANGUAGE sql AS $fn$
    SELECT p FROM payouts p, t10_calls c
    WHERE c.label = l AND p.reference = c.reference
$fn$;

CREATE FUNCTION pg_temp.ref(l text) RETURNS uuid
LANGUAGE sql AS $fn$ SELECT reference FROM t10_calls WHERE label = l $fn$;

-- 'status, moneroo_id set?' of the only row the call created, e.g.
-- 'rejected, no moneroo_id'; '2 rows' or 'no row' otherwise.
CREATE FUNCTION pg_temp.left_behind(l text) RETURNS text
LANGUAGE sql AS $fn$
    SELECT CASE cardinality(c.new_ids)
               WHEN 0 THEN 'no row'
               WHEN 1 THEN (SELECT p.status || CASE WHEN p.moneroo_id IS NULL THEN ', no moneroo_id'
                                                    ELSE ', moneroo_id set' END
                            FROM payouts p WHERE p.id = c.new_ids[1])
               ELSE cardinality(c.new_ids) || ' rows' END
    FROM t10_calls c WHERE c.label = l
$fn$;

-- Did this backend log a WARNING during the call?
CREATE FUNCTION pg_temp.warned(l text) RETURNS boolean
LANGUAGE sql AS $fn$
    SELECT pg_read_file(current_setting('moneroo_test.server_log'), log_from,
                        greatest(log_to - log_from, 0))
           ~ ('(?n)\[' || pg_backend_pid() || '\][^\n]* WARNING: ')
    FROM t10_calls WHERE label = l
$fn$;

-- Payouts the mock created for a reference.
CREATE FUNCTION pg_temp.creates(ref uuid) RETURNS bigint
LANGUAGE sql VOLATILE AS $fn$
    SELECT count(*) FROM mock.payouts() p WHERE p ->> 'reference' = ref::text
$fn$;

-- Initialize POSTs the mock received, in all or for a reference.
CREATE FUNCTION pg_temp.initialize_posts(ref uuid DEFAULT NULL) RETURNS SETOF jsonb
LANGUAGE sql VOLATILE AS $fn$
    SELECT j FROM mock.journal() j
    WHERE j ->> 'method' = 'POST' AND j ->> 'path' = '/v1/payouts/initialize'
      AND (ref IS NULL OR j #>> '{body,metadata,payout_reference}' = ref::text)
$fn$;

CREATE TEMP TABLE t10_start AS
SELECT coalesce(max(id), 0) AS max_id FROM payouts;

-- ---------------------------------------------------------------- a sandbox payout

-- customer.phone as a digit string (Moneroo documents an integer), the
-- recipient number as an integer (sent as a digit string), user metadata.
CREATE TEMP TABLE t10_req AS
SELECT pg_temp.req('4149518161',
                   '{"customer": {"email": "john@example.com", "first_name": "John",
                                  "last_name": "Doe", "phone": "22951345020"},
                     "metadata": {"order": "A-1", "customer_id": "42"}}')
       || jsonb_build_object('recipient', jsonb_build_object('account_number', 4149518161))
       AS req;

SELECT req AS success_req FROM t10_req \gset
CALL pg_temp.transfer('success', :'success_req');

SELECT is(pg_temp.outcome('success'), 'returned sent',
          'a sandbox payout: moneroo_transfer returns its row in state sent');
SELECT is((SELECT (returned).moneroo_id FROM t10_calls WHERE label = 'success'),
          (SELECT j ->> 'created_id' FROM pg_temp.initialize_posts(pg_temp.ref('success')) j),
          'the returned row carries the id Moneroo created');
SELECT is((SELECT (returned).moneroo_status FROM t10_calls WHERE label = 'success'), 'initiated',
          'the returned row has moneroo_status initiated');
SELECT is((SELECT (returned).attempts FROM t10_calls WHERE label = 'success'), 1,
          'the returned row counts one attempt');
SELECT ok((SELECT (returned).sent_at IS NOT NULL FROM t10_calls WHERE label = 'success'),
          'the returned row has sent_at set');
SELECT is((SELECT row((returned).id, (returned).status, (returned).moneroo_id)::text
           FROM t10_calls WHERE label = 'success'),
          (SELECT row(p.id, p.status, p.moneroo_id)::text FROM pg_temp.row_of('success') p),
          'the payouts table holds the returned row, committed');
SELECT is((SELECT count(*) FROM pg_temp.initialize_posts(pg_temp.ref('success'))), 1::bigint,
          'exactly one POST /v1/payouts/initialize was sent for it');
SELECT is(pg_temp.creates(pg_temp.ref('success')), 1::bigint,
          'the mock created exactly one payout for its reference');
SELECT is((SELECT j #>> '{headers,authorization}' FROM pg_temp.initialize_posts(pg_temp.ref('success')) j),
          'Bearer ' || current_setting('moneroo.secret_key'),
          'the request carries Authorization: Bearer <moneroo.secret_key>');
SELECT is((SELECT j #>> '{headers,accept}' FROM pg_temp.initialize_posts(pg_temp.ref('success')) j),
          'application/json', 'the request carries Accept: application/json');
SELECT is((SELECT j #>> '{headers,content-type}' FROM pg_temp.initialize_posts(pg_temp.ref('success')) j),
          'application/json', 'the request carries Content-Type: application/json');
SELECT alike((SELECT j #>> '{headers,user-agent}' FROM pg_temp.initialize_posts(pg_temp.ref('success')) j),
            'moneroo-postgresql/' || (SELECT default_version FROM pg_available_extensions WHERE name = 'moneroo')
            || ' PostgreSQL/%',
            'the request carries User-Agent: moneroo-postgresql/<default_version of moneroo.control> PostgreSQL/<version>');
SELECT is((SELECT j -> 'body' FROM pg_temp.initialize_posts(pg_temp.ref('success')) j),
          (SELECT jsonb_set(jsonb_set(jsonb_set(req,
                      '{metadata,payout_reference}', to_jsonb(pg_temp.ref('success')::text)),
                      '{customer,phone}', '22951345020'),
                      '{recipient,account_number}', '"4149518161"')
           FROM t10_req),
          'the body is the request plus metadata.payout_reference = the row''s reference');
SELECT is((SELECT j #> '{body,customer,phone}' FROM pg_temp.initialize_posts(pg_temp.ref('success')) j),
          '22951345020'::jsonb, 'customer.phone given as a digit string is sent as an integer');
SELECT is((SELECT j #> '{body,recipient,account_number}' FROM pg_temp.initialize_posts(pg_temp.ref('success')) j),
          '"4149518161"'::jsonb, 'a recipient number given as an integer is sent as a digit string');
SELECT is((SELECT (j #> '{body,metadata}') - 'payout_reference'
           FROM pg_temp.initialize_posts(pg_temp.ref('success')) j),
          '{"order": "A-1", "customer_id": "42"}'::jsonb, 'the user''s metadata is sent unchanged');
SELECT ok(NOT pg_temp.warned('success'), 'an accepted payout raises no WARNING');

-- The other two sandbox numbers: phone as an integer stays an integer, a
-- recipient digit string stays a string.
CALL pg_temp.transfer('failed', pg_temp.req('4149518162',
    '{"customer": {"email": "jane@example.com", "first_name": "Jane", "last_name": "Roe",
                   "phone": 22951345021}}'));
CALL pg_temp.transfer('pending', pg_temp.req('4149518163'));

SELECT is(pg_temp.outcome('failed') || ', ' || pg_temp.outcome('pending'),
          'returned sent, returned sent',
          'payouts to 4149518162 and 4149518163 are sent too');
SELECT is((SELECT (j #> '{body,customer,phone}') || (j #> '{body,recipient}')
           FROM pg_temp.initialize_posts(pg_temp.ref('failed')) j),
          '[22951345021, {"account_number": "4149518162"}]'::jsonb,
          'an integer phone and a digit-string recipient number are sent as they are');

-- ---------------------------------------------------------------- validation

CALL pg_temp.transfer('invalid', pg_temp.req('4149518161', '{"amount": "500"}'));
SELECT is(pg_temp.outcome('invalid'), 'ERROR 22023',
          'an invalid request (amount as a string) is refused with SQLSTATE 22023');
SELECT matches((SELECT message FROM t10_calls WHERE label = 'invalid'), 'amount',
               'the validation error names the offending field');
SELECT ok((SELECT hint <> '' FROM t10_calls WHERE label = 'invalid'),
          'the validation error has a hint');
SELECT is(pg_temp.left_behind('invalid'), 'no row', 'an invalid request leaves no row');
SELECT is((SELECT count(*) FROM mock.journal() j, t10_calls c
           WHERE c.label = 'invalid' AND (j ->> 'seq')::bigint > c.seq_from
             AND j ->> 'method' = 'POST'), 0::bigint,
          'an invalid request never reaches Moneroo');

CALL pg_temp.transfer('null', NULL);
SELECT is(pg_temp.outcome('null') || ', ' || pg_temp.left_behind('null'), 'ERROR 22023, no row',
          'a NULL request is refused with 22023 and leaves no row');

-- ---------------------------------------------------------------- the caller rolls back

-- A real top-level transaction that calls moneroo_transfer and rolls back.
BEGIN;
SELECT reference AS rb_ref FROM moneroo_transfer(pg_temp.req('4149518161')) \gset
ROLLBACK;

SELECT is((SELECT status FROM payouts WHERE reference = :'rb_ref'), 'sent',
          'BEGIN; moneroo_transfer(); ROLLBACK; leaves the row, sent');
SELECT is((SELECT moneroo_id FROM payouts WHERE reference = :'rb_ref'),
          (SELECT p ->> 'id' FROM mock.payouts() p WHERE p ->> 'reference' = :'rb_ref'),
          'the rolled-back caller''s row keeps the id Moneroo created');

-- A subtransaction that calls moneroo_transfer, then fails and rolls back.
CREATE FUNCTION pg_temp.transfer_then_fail(req jsonb) RETURNS uuid
LANGUAGE plpgsql AS $fn$
DECLARE
    r payouts;
BEGIN
    BEGIN
        SELECT * INTO r FROM moneroo_transfer(req);
        RAISE EXCEPTION 'the caller changes its mind';
    EXCEPTION WHEN raise_exception THEN
        RETURN r.reference;
    END;
END
$fn$;
SELECT pg_temp.transfer_then_fail(pg_temp.req('4149518161')) AS sub_ref \gset

SELECT is((SELECT status FROM payouts WHERE reference = :'sub_ref'), 'sent',
          'a rolled-back subtransaction that called moneroo_transfer leaves the row, sent');
SELECT is((SELECT moneroo_id FROM payouts WHERE reference = :'sub_ref'),
          (SELECT p ->> 'id' FROM mock.payouts() p WHERE p ->> 'reference' = :'sub_ref'),
          'that row keeps the id Moneroo created');

-- An unknown outcome is kept through a rollback too.
SELECT mock.faults('{"kind": "status_after_create", "status": 500}') \g /dev/null
BEGIN;
SELECT reference AS rb_unknown_ref FROM moneroo_transfer(pg_temp.req('4149518161')) \gset
ROLLBACK;
SELECT is((SELECT status FROM payouts WHERE reference = :'rb_unknown_ref'), 'unknown',
          'BEGIN; moneroo_transfer() -> unknown; ROLLBACK; leaves the row, unknown');

-- ---------------------------------------------------------------- verification

SELECT ok(mock.wait_for($$(SELECT status FROM pg_temp.row_of('success')) = 'success'$$, 5),
          'verification settles the payout to 4149518161 as success (verify_min_interval 200ms)');
SELECT is((SELECT row(p.moneroo_status, p.completed_at IS NOT NULL)::text FROM pg_temp.row_of('success') p),
          '(success,t)', 'the successful payout has moneroo_status success and completed_at');
SELECT ok(mock.wait_for($$(SELECT status FROM pg_temp.row_of('failed')) = 'failed'$$, 5),
          'verification settles the payout to 4149518162 as failed');
SELECT is((SELECT row(p.moneroo_status, p.completed_at IS NOT NULL)::text FROM pg_temp.row_of('failed') p),
          '(failed,t)', 'the failed payout has moneroo_status failed and completed_at');
SELECT ok(mock.wait_for($$(SELECT moneroo_status FROM pg_temp.row_of('pending')) = 'pending'$$, 5),
          'verification sees the payout to 4149518163 pending');
SELECT is((SELECT row(p.status, p.completed_at IS NULL)::text FROM pg_temp.row_of('pending') p),
          '(sent,t)', 'the payout to 4149518163 stays sent while Moneroo says pending');
-- Let it settle eventually, so that later files do not see it verified forever.
SELECT mock.set_status((SELECT moneroo_id FROM pg_temp.row_of('pending')), 'failed') \g /dev/null

-- ---------------------------------------------------------------- unknown outcomes

-- Each: returns the row as unknown (no ERROR: the caller must not retry),
-- with a WARNING, and the row says why.
SELECT mock.faults('{"kind": "status", "status": 500}') \g /dev/null
CALL pg_temp.transfer('http500', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('http500'), 'returned unknown',
          'HTTP 500: moneroo_transfer returns the row as unknown, no ERROR');
SELECT ok(pg_temp.warned('http500'), 'HTTP 500: the caller gets a WARNING');
SELECT matches((SELECT status || ': ' || coalesce(last_error, '') FROM pg_temp.row_of('http500')),
               '^unknown: .*500', 'HTTP 500: the row is unknown and last_error mentions HTTP 500');

SELECT mock.faults('{"kind": "status", "status": 503}') \g /dev/null
CALL pg_temp.transfer('http503', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('http503'), 'returned unknown',
          'HTTP 503: moneroo_transfer returns the row as unknown, no ERROR');
SELECT ok(pg_temp.warned('http503'), 'HTTP 503: the caller gets a WARNING');
SELECT matches((SELECT status || ': ' || coalesce(last_error, '') FROM pg_temp.row_of('http503')),
               '^unknown: .*503', 'HTTP 503: the row is unknown and last_error mentions 503');

SELECT mock.faults('{"kind": "status_after_create", "status": 500}') \g /dev/null
CALL pg_temp.transfer('created500', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('created500'), 'returned unknown',
          'HTTP 500 after Moneroo created the payout: returned as unknown, no ERROR');
SELECT ok(pg_temp.warned('created500'), 'HTTP 500 after create: the caller gets a WARNING');
SELECT is((SELECT status FROM pg_temp.row_of('created500')), 'unknown',
          'HTTP 500 after create: the row is unknown');
SELECT is(pg_temp.creates(pg_temp.ref('created500')), 1::bigint,
          'HTTP 500 after create: the mock did create it, once');

-- request_timeout is 2s: the mock creates the payout and answers after 3s.
SELECT mock.faults('{"kind": "hang", "seconds": 3}') \g /dev/null
CALL pg_temp.transfer('hang', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('hang'), 'returned unknown',
          'a request that times out after it was sent: returned as unknown, no ERROR');
SELECT ok(pg_temp.warned('hang'), 'timeout: the caller gets a WARNING');
SELECT ok((SELECT status = 'unknown' AND last_error <> '' FROM pg_temp.row_of('hang')),
          'timeout: the row is unknown and last_error says why');
SELECT is(pg_temp.creates(pg_temp.ref('hang')), 1::bigint, 'timeout: the mock did create it, once');

SELECT mock.faults('{"kind": "reset_before"}') \g /dev/null
CALL pg_temp.transfer('reset_before', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('reset_before'), 'returned unknown',
          'a connection reset once the request started: returned as unknown, no ERROR');
SELECT ok(pg_temp.warned('reset_before'), 'reset before the answer: the caller gets a WARNING');
SELECT ok((SELECT status = 'unknown' AND last_error <> '' FROM pg_temp.row_of('reset_before')),
          'reset before the answer: the row is unknown and last_error says why');

SELECT mock.faults('{"kind": "reset_after"}') \g /dev/null
CALL pg_temp.transfer('reset_after', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('reset_after'), 'returned unknown',
          'a connection reset after Moneroo created the payout: returned as unknown, no ERROR');
SELECT ok(pg_temp.warned('reset_after'), 'reset after create: the caller gets a WARNING');
SELECT ok((SELECT status = 'unknown' AND last_error <> '' FROM pg_temp.row_of('reset_after')),
          'reset after create: the row is unknown and last_error says why');

SELECT mock.faults('{"kind": "garbage"}') \g /dev/null
CALL pg_temp.transfer('garbage', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('garbage'), 'returned unknown',
          'a 201 with an HTML body: returned as unknown, no ERROR');
SELECT ok(pg_temp.warned('garbage'), 'a 201 with an HTML body: the caller gets a WARNING');
SELECT ok((SELECT status = 'unknown' AND last_error <> '' AND moneroo_id IS NULL
           FROM pg_temp.row_of('garbage')),
          'a 201 with an HTML body: the row is unknown, without an id, and says why');

SELECT mock.faults('{"kind": "garbage_json", "status": 201,
                     "body": {"success": true, "message": "Payout transaction initialized successfully",
                              "data": {}}}') \g /dev/null
CALL pg_temp.transfer('no_id', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('no_id'), 'returned unknown',
          'a 201 whose JSON lacks data.id: returned as unknown, no ERROR');
SELECT ok(pg_temp.warned('no_id'), 'a 201 without data.id: the caller gets a WARNING');
SELECT ok((SELECT status = 'unknown' AND last_error <> '' AND moneroo_id IS NULL
           FROM pg_temp.row_of('no_id')),
          'a 201 without data.id: the row is unknown, without an id, and says why');

SELECT mock.faults(jsonb_build_object('kind', 'garbage_json', 'status', 201,
                   'body', jsonb_build_object('success', true, 'message', 'ok',
                                              'data', jsonb_build_object('id', repeat('x', 10240)))))
\g /dev/null
CALL pg_temp.transfer('huge_id', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('huge_id'), 'returned unknown',
          'a 201 with a 10 KB id: returned as unknown, never sent');
SELECT ok(pg_temp.warned('huge_id'), 'a 201 with a 10 KB id: the caller gets a WARNING');
SELECT ok((SELECT status = 'unknown' AND moneroo_id IS NULL FROM pg_temp.row_of('huge_id')),
          'a 201 with a 10 KB id: the row is unknown and does not take that id');

-- ---------------------------------------------------------------- refusals

SELECT mock.faults('{"kind": "status", "status": 422, "message": "The recipient is blocked by Moneroo.",
                     "errors": {"recipient.account_number": ["The account is blocked."]}}') \g /dev/null
CALL pg_temp.transfer('http422', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('http422'), 'ERROR 22023',
          'HTTP 422: moneroo_transfer raises SQLSTATE 22023');
SELECT matches((SELECT detail FROM t10_calls WHERE label = 'http422'),
               'The recipient is blocked by Moneroo\.',
               'HTTP 422: errdetail carries Moneroo''s message');
SELECT matches((SELECT detail FROM t10_calls WHERE label = 'http422'),
               'The account is blocked\.',
               'HTTP 422: errdetail carries Moneroo''s field errors');
SELECT ok((SELECT hint <> '' FROM t10_calls WHERE label = 'http422'),
          'HTTP 422: the error has a hint');
SELECT is(pg_temp.left_behind('http422'), 'rejected, no moneroo_id',
          'HTTP 422: the row is rejected');
SELECT is(pg_temp.creates(pg_temp.ref('http422')), 0::bigint,
          'HTTP 422: Moneroo created nothing');

SELECT mock.faults('{"kind": "status", "status": 401}') \g /dev/null
CALL pg_temp.transfer('http401', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('http401'), 'ERROR 28000',
          'HTTP 401: moneroo_transfer raises SQLSTATE 28000');
SELECT matches((SELECT detail FROM t10_calls WHERE label = 'http401'), 'Unauthenticated\.',
               'HTTP 401: errdetail carries Moneroo''s message');
SELECT ok((SELECT hint <> '' FROM t10_calls WHERE label = 'http401'),
          'HTTP 401: the error has a hint');
SELECT is(pg_temp.left_behind('http401'), 'rejected, no moneroo_id',
          'HTTP 401: the row is rejected');
-- Since 1.2 a refused key pauses every request: a reload says the key may
-- work again (the next payout is then the request that tries it).
SELECT pg_reload_conf(), pg_sleep(1) \g /dev/null

-- ---------------------------------------------------------------- Moneroo unreachable

-- The worker reloads on SIGHUP, asynchronously: give it a second.
ALTER SYSTEM SET moneroo.api_url = 'http://127.0.0.1:1';
DO $$ BEGIN PERFORM pg_reload_conf(); PERFORM pg_sleep(1); END $$;
CALL pg_temp.transfer('down', pg_temp.req('4149518161'));
ALTER SYSTEM RESET moneroo.api_url;
DO $$ BEGIN PERFORM pg_reload_conf(); PERFORM pg_sleep(1); END $$;

SELECT is(pg_temp.outcome('down'), 'ERROR 08001',
          'Moneroo unreachable (connection refused): moneroo_transfer raises SQLSTATE 08001');
SELECT ok((SELECT hint <> '' FROM t10_calls WHERE label = 'down'),
          'Moneroo unreachable: the error has a hint');
SELECT is(pg_temp.left_behind('down'), 'rejected, no moneroo_id',
          'Moneroo unreachable: the row is rejected, not pending');
SELECT ok((SELECT last_error <> '' FROM pg_temp.row_of('down')),
          'Moneroo unreachable: the row says why');
SELECT is((SELECT seq_to - seq_from FROM t10_calls WHERE label = 'down'), 0::bigint,
          'Moneroo unreachable: no request reached the mock');

-- After the URL is back, a payout goes through again.
CALL pg_temp.transfer('back', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('back'), 'returned sent',
          'with moneroo.api_url restored, moneroo_transfer sends again');

-- ---------------------------------------------------------------- nothing more is sent

-- Give the worker time to (wrongly) send anything left behind.
SELECT ok(NOT mock.wait_for(format(
              '(SELECT count(*) FROM pg_temp.initialize_posts()) > %s',
              (SELECT count(*) FROM pg_temp.initialize_posts())), 3),
          'no initialize request reaches Moneroo in the 3 s after the last call');
SELECT is((SELECT count(*) FROM payouts
           WHERE id > (SELECT max_id FROM t10_start) AND status IN ('pending', 'sending')),
          0::bigint, 'no payout of this file is pending or sending');
SELECT is((SELECT string_agg(label, ', ' ORDER BY label) FROM t10_calls
           WHERE sqlstate IS NOT NULL
             AND EXISTS (SELECT 1 FROM payouts p WHERE p.id = ANY(new_ids)
                         AND p.status NOT IN ('rejected'))),
          NULL, 'every moneroo_transfer that raised an ERROR left no row but a rejected one');
SELECT is((SELECT string_agg(label || ': ' || pg_temp.creates(reference), ', ' ORDER BY label)
           FROM t10_calls
           WHERE label IN ('created500', 'hang', 'reset_after', 'garbage', 'no_id', 'huge_id')),
          'created500: 1, garbage: 1, hang: 1, huge_id: 1, no_id: 1, reset_after: 1',
          'each unknown payout Moneroo created was created exactly once, never re-sent');
SELECT is((SELECT string_agg(label || ': ' || pg_temp.creates(reference), ', ' ORDER BY label)
           FROM t10_calls WHERE label IN ('http500', 'http503', 'reset_before', 'http422', 'http401', 'down')),
          'down: 0, http401: 0, http422: 0, http500: 0, http503: 0, reset_before: 0',
          'the payouts Moneroo never created were not sent again either');
SELECT is((SELECT string_agg(label || ': ' || (SELECT count(*) FROM pg_temp.initialize_posts(reference)),
                             ', ' ORDER BY label)
           FROM t10_calls WHERE label IN ('success', 'failed', 'pending', 'back')),
          'back: 1, failed: 1, pending: 1, success: 1',
          'each sent payout was POSTed exactly once');

-- ---------------------------------------------------------------- 429, last
-- (after a 429 the worker pauses every request for 60 s)

SELECT mock.faults('{"kind": "status", "status": 429}') \g /dev/null
CALL pg_temp.transfer('http429', pg_temp.req('4149518161'));
SELECT is(pg_temp.outcome('http429'), 'ERROR 53400',
          'HTTP 429: moneroo_transfer raises SQLSTATE 53400');
SELECT ok((SELECT hint <> '' FROM t10_calls WHERE label = 'http429'),
          'HTTP 429: the error has a hint');
SELECT is(pg_temp.left_behind('http429'), 'rejected, no moneroo_id',
          'HTTP 429: the row is rejected, not pending: it will not be sent later');
SELECT is(pg_temp.creates(pg_temp.ref('http429')), 0::bigint, 'HTTP 429: Moneroo created nothing');
SELECT is((SELECT count(*) FROM pg_temp.initialize_posts(pg_temp.ref('http429'))), 1::bigint,
          'HTTP 429: the payout was POSTed once');

SELECT is(mock.stats() -> 'duplicate_references', '[]'::jsonb,
          'across the file, Moneroo never created two payouts with the same reference');

SELECT * FROM finish();

ALTER SYSTEM RESET moneroo.verify_min_interval;
ALTER SYSTEM RESET moneroo.rate_limit;
DO $$ BEGIN PERFORM pg_reload_conf(); END $$;
