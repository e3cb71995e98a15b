-- 25_queue_faults.sql: every fault of the Moneroo mock on the queue path
-- (INSERT INTO payouts, sent by the worker).  Each case queues one payout
-- behind one fault and checks the state the contract demands, the attempts,
-- what last_error says, and how many times the mock was POSTed and created
-- the payout: never twice on the extension's own initiative.
--
--   provably never sent (connection refused)            -> pending, retried
--   refused (400, 422)                                   -> rejected
--   the key refused (401, since 1.2)                     -> pending, uncounted
--   outcome unknown (5xx, timeout after connecting,
--     reset before or after create, garbage 2xx body)    -> unknown, never re-sent
--   verify failing or undocumented                       -> stays sent
--
-- One payout at a time, so that each fault meets the request it is meant for.
-- Settings changed here (ALTER SYSTEM) are reset at the end.
SET client_min_messages = warning;

SELECT plan(66);

-- ---------------------------------------------------------------- helpers

CREATE TEMP TABLE mine (id bigint PRIMARY KEY, reference uuid NOT NULL, tag text NOT NULL);

SELECT 'q25-' || left(gen_random_uuid()::text, 8) AS run \gset
SELECT set_config('q25.run', :'run', false) AS run_set \gset

-- Queues one valid sandbox payout tagged <run>-<tag> and returns its id; the
-- statement's commit wakes the worker.
CREATE FUNCTION pg_temp.queue(tag text, number text DEFAULT '4149518161') RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    full_tag text := current_setting('q25.run') || '-' || tag;
    new_id bigint;
    new_ref uuid;
BEGIN
    INSERT INTO payouts (request)
    VALUES (mock.payout_request(to_jsonb(number), 'fault test ' || full_tag, 250, full_tag))
    RETURNING id, reference INTO new_id, new_ref;
    INSERT INTO pg_temp.mine VALUES (new_id, new_ref, tag);
    RETURN new_id;
END
$$;

-- Initialize requests the mock received for a payout (whatever came of them).
CREATE FUNCTION pg_temp.posts(payout bigint) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT count(*) FROM mock.journal() j
    WHERE j ->> 'method' = 'POST' AND j ->> 'path' = '/v1/payouts/initialize'
      AND j -> 'body' -> 'metadata' ->> 'payout_reference'
          = (SELECT reference::text FROM pg_temp.mine WHERE id = payout)
$$;

-- Payouts the mock created for a payout's reference.
CREATE FUNCTION pg_temp.creates(payout bigint) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT count(*) FROM mock.payouts() p
    WHERE p ->> 'reference' = (SELECT reference::text FROM pg_temp.mine WHERE id = payout)
$$;

-- What became of a payout: state, attempts, POSTs and creates at the mock.
CREATE FUNCTION pg_temp.outcome(payout bigint)
RETURNS TABLE (status text, attempts integer, posts bigint, creates bigint)
LANGUAGE sql VOLATILE AS $$
    SELECT p.status, p.attempts, pg_temp.posts(p.id), pg_temp.creates(p.id)
    FROM payouts p WHERE p.id = payout
$$;

CREATE FUNCTION pg_temp.last_error(payout bigint) RETURNS text
LANGUAGE sql VOLATILE AS $$ SELECT last_error FROM payouts WHERE id = payout $$;

-- Waits until the worker is done with a payout (neither pending nor sending).
CREATE FUNCTION pg_temp.settled(payout bigint, timeout_s float8 DEFAULT 5) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT mock.wait_for(format($w$(SELECT status NOT IN ('pending', 'sending')
                                    FROM payouts WHERE id = %s)$w$, payout), timeout_s)
$$;

-- No rate limit on either side; first verification 2 s after a send (the
-- default), time enough to queue a verify fault for the payout's Moneroo id.
ALTER SYSTEM SET moneroo.rate_limit = 0;
ALTER SYSTEM SET moneroo.verify_min_interval = '2s';
SELECT pg_reload_conf() AS reloaded \gset
SELECT mock.config('{"rate_limit": 0}') AS configured \gset
SELECT pg_sleep(0.3) AS slept \gset

-- Nobody else's payout may be on its way while faults are queued.
SELECT mock.wait_for($$NOT EXISTS (SELECT 1 FROM payouts WHERE status IN ('pending', 'sending'))$$, 15)
    AS queue_empty \gset

-- ---------------------------------------------------------------- 5xx: unknown
SELECT mock.faults('{"kind": "status", "status": 500}') AS queued \gset
SELECT pg_temp.queue('500') AS p500 \gset
SELECT ok(pg_temp.settled(:p500), 'HTTP 500: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :p500),
                  $$VALUES ('unknown', 1, 1::bigint, 0::bigint)$$,
                  'HTTP 500 -> unknown after one attempt, POSTed once');
SELECT matches(pg_temp.last_error(:p500), '500', 'its last_error tells of the 500');

SELECT mock.faults('{"kind": "status", "status": 503}') AS queued \gset
SELECT pg_temp.queue('503') AS p503 \gset
SELECT ok(pg_temp.settled(:p503), 'HTTP 503: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :p503),
                  $$VALUES ('unknown', 1, 1::bigint, 0::bigint)$$,
                  'HTTP 503 -> unknown after one attempt, POSTed once');
SELECT matches(pg_temp.last_error(:p503), '503', 'its last_error tells of the 503');

SELECT mock.faults('{"kind": "status_after_create", "status": 500}') AS queued \gset
SELECT pg_temp.queue('created-500') AS pc500 \gset
SELECT ok(pg_temp.settled(:pc500), 'created, then HTTP 500: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :pc500),
                  $$VALUES ('unknown', 1, 1::bigint, 1::bigint)$$,
                  'created then answered 500 -> unknown, created exactly once');
SELECT matches(pg_temp.last_error(:pc500), '500', 'its last_error tells of the 500');

-- ---------------------------------------------------------------- 4xx: rejected
SELECT mock.faults('{"kind": "status", "status": 422}') AS queued \gset
SELECT pg_temp.queue('422') AS p422 \gset
SELECT ok(pg_temp.settled(:p422), 'HTTP 422: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :p422),
                  $$VALUES ('rejected', 1, 1::bigint, 0::bigint)$$,
                  'HTTP 422 -> rejected, nothing created');
SELECT matches(pg_temp.last_error(:p422), 'The selected method is invalid',
               'its last_error carries Moneroo''s message');
SELECT ok((SELECT completed_at IS NOT NULL AND next_attempt_at IS NULL FROM payouts WHERE id = :p422),
          'a rejected payout is final: completed, nothing scheduled');

SELECT mock.faults('{"kind": "status", "status": 400}') AS queued \gset
SELECT pg_temp.queue('400') AS p400 \gset
SELECT ok(pg_temp.settled(:p400), 'HTTP 400: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :p400),
                  $$VALUES ('rejected', 1, 1::bigint, 0::bigint)$$,
                  'HTTP 400 -> rejected, nothing created');
SELECT matches(pg_temp.last_error(:p400), 'Malformed JSON', 'its last_error carries Moneroo''s message');

-- Since 1.2 a 401 is the key's fault, not the payout's: it waits pending,
-- its attempt uncounted, until the key works (here: a reload).
SELECT mock.faults('{"kind": "status", "status": 401}') AS queued \gset
SELECT pg_temp.queue('401') AS p401 \gset
SELECT ok(mock.wait_for(format($$(SELECT status = 'pending' AND last_error IS NOT NULL
                                  FROM payouts WHERE id = %s)$$, :p401), 5),
          'HTTP 401: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :p401),
                  $$VALUES ('pending', 0, 1::bigint, 0::bigint)$$,
                  'HTTP 401 -> pending, the attempt not counted, nothing created');
SELECT matches(pg_temp.last_error(:p401), 'Unauthenticated', 'its last_error carries Moneroo''s message');
SELECT pg_reload_conf() AS reloaded \gset
SELECT ok(mock.wait_for(format($$(SELECT status FROM payouts WHERE id = %s) IN ('sent', 'success')$$, :p401), 10)
          AND pg_temp.creates(:p401) = 1,
          'after a reload with a working key it is sent, and created once');

-- ---------------------------------------------------------------- resets: unknown
SELECT coalesce(max((j ->> 'seq')::int), 0) AS seq_rb FROM mock.journal() j \gset
SELECT mock.faults('{"kind": "reset_before"}') AS queued \gset
SELECT pg_temp.queue('reset-before') AS prb \gset
SELECT ok(pg_temp.settled(:prb), 'reset before create: the worker records an outcome');
SELECT results_eq(format('SELECT status, attempts, creates FROM pg_temp.outcome(%s)', :prb),
                  $$VALUES ('unknown', 1, 0::bigint)$$,
                  'connection reset once the request went out -> unknown (it cannot be told from a reset after create)');
SELECT is((SELECT count(*) FROM mock.journal(:seq_rb) j
           WHERE j ->> 'path' = '/v1/payouts/initialize' AND j ->> 'fault' = 'reset_before'), 1::bigint,
          'the mock saw that one request, and reset it');
SELECT matches(pg_temp.last_error(:prb), '[Rr]eset|[Rr]ecv|[Ss]end|[Cc]losed|no answer',
               'its last_error tells of the lost connection');

SELECT mock.faults('{"kind": "reset_after"}') AS queued \gset
SELECT pg_temp.queue('reset-after') AS pra \gset
SELECT ok(pg_temp.settled(:pra), 'reset after create: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :pra),
                  $$VALUES ('unknown', 1, 1::bigint, 1::bigint)$$,
                  'connection reset after Moneroo created it -> unknown, created exactly once');
SELECT matches(pg_temp.last_error(:pra), '[Rr]eset|[Rr]ecv|[Ss]end|[Cc]losed|no answer',
               'its last_error tells of the lost connection');

-- ---------------------------------------------------------------- garbage 2xx: unknown
SELECT mock.faults('{"kind": "garbage"}') AS queued \gset
SELECT pg_temp.queue('garbage') AS pg \gset
SELECT ok(pg_temp.settled(:pg), 'HTML with 201: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :pg),
                  $$VALUES ('unknown', 1, 1::bigint, 1::bigint)$$,
                  '201 with an HTML body -> unknown (created once), never success');
SELECT matches(pg_temp.last_error(:pg), 'JSON|id', 'its last_error says the answer was unreadable');

SELECT mock.faults('{"kind": "garbage_json", "body": {"data": {}}}') AS queued \gset
SELECT pg_temp.queue('no-id') AS pni \gset
SELECT ok(pg_temp.settled(:pni), '201 {"data":{}}: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :pni),
                  $$VALUES ('unknown', 1, 1::bigint, 1::bigint)$$,
                  '201 without an id -> unknown (created once)');
SELECT matches(pg_temp.last_error(:pni), '\mid\M', 'its last_error says the answer carries no id');

SELECT mock.faults(jsonb_build_object('kind', 'garbage_json',
    'body', '{"success":true,"message":"Payout transaction initialized successfully","data":{"id":"abc12')) AS queued \gset
SELECT pg_temp.queue('truncated') AS ptr \gset
SELECT ok(pg_temp.settled(:ptr), '201 with truncated JSON: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :ptr),
                  $$VALUES ('unknown', 1, 1::bigint, 1::bigint)$$,
                  '201 with truncated JSON -> unknown (created once)');
SELECT is((SELECT moneroo_id FROM payouts WHERE id = :ptr), NULL,
          'no id is taken from the truncated answer');

SELECT mock.faults(jsonb_build_object('kind', 'garbage_json',
    'body', jsonb_build_object('success', true, 'message', 'Payout transaction initialized successfully',
                               'data', jsonb_build_object('id', repeat('a', 10240)), 'errors', NULL))) AS queued \gset
SELECT pg_temp.queue('huge-id') AS phi \gset
SELECT ok(pg_temp.settled(:phi), '201 with a 10 KB id: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :phi),
                  $$VALUES ('unknown', 1, 1::bigint, 1::bigint)$$,
                  '201 with a 10 KB id -> unknown (created once)');
SELECT ok((SELECT moneroo_id IS NULL AND octet_length(last_error) < 2000 FROM payouts WHERE id = :phi),
          'the 10 KB id is not recorded as the Moneroo id, nor copied whole into last_error');

-- ---------------------------------------------------------------- timeouts: unknown
-- moneroo.request_timeout is 2 s here.
SELECT mock.faults('{"kind": "hang", "seconds": 4}') AS queued \gset
SELECT pg_temp.queue('hang') AS phang \gset
SELECT ok(pg_temp.settled(:phang, 6), 'created, then no answer within the timeout: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :phang),
                  $$VALUES ('unknown', 1, 1::bigint, 1::bigint)$$,
                  'a timeout after the request was sent -> unknown, created once');
SELECT matches(pg_temp.last_error(:phang), '[Tt]ime|[Tt]imed out', 'its last_error tells of the timeout');

SELECT mock.faults('{"kind": "hang_before_create", "seconds": 3}') AS queued \gset
SELECT pg_temp.queue('hang-before') AS phb \gset
SELECT ok(pg_temp.settled(:phb, 6), 'connected, then no answer within the timeout: the worker records an outcome');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :phb),
                  $$VALUES ('unknown', 1, 1::bigint, 0::bigint)$$,
                  'a timeout once connected -> unknown (the request may have been acted on)');
SELECT matches(pg_temp.last_error(:phb), '[Tt]ime|[Tt]imed out', 'its last_error tells of the timeout');

-- ---------------------------------------------------------------- verify faults
-- A sent payout whose verification answers 500 stays sent, says so, and is
-- verified again.
SELECT pg_temp.queue('verify-500') AS pv \gset
SELECT ok(mock.wait_for(format($$(SELECT status FROM payouts WHERE id = %s) = 'sent'$$, :pv), 5),
          'a payout for the verify-500 case is sent');
SELECT mock.faults(jsonb_build_object('kind', 'status', 'status', 500, 'route', 'verify',
                                      'id', (SELECT moneroo_id FROM payouts WHERE id = :pv))) AS queued \gset
SELECT ok(mock.wait_for(format($$(SELECT status = 'sent' AND last_error ~ '500' FROM payouts WHERE id = %s)$$,
                               :pv), 5),
          'a verification answered 500 leaves the payout sent, with last_error telling of the 500');
SELECT ok(mock.wait_for(format($$(SELECT status FROM payouts WHERE id = %s) = 'success'$$, :pv), 10),
          'it is verified again later, and settles in success');
SELECT results_eq(
    format($$SELECT count(*), count(*) FILTER (WHERE (j ->> 'status')::int = 500)
               FROM mock.journal() j
              WHERE j ->> 'path' = '/v1/payouts/' || (SELECT moneroo_id FROM payouts WHERE id = %s) || '/verify'$$,
           :pv),
    $$VALUES (2::bigint, 1::bigint)$$,
    'two verifications: the one answered 500, then the one that settled it');
SELECT results_eq(format('SELECT * FROM pg_temp.outcome(%s)', :pv),
                  $$VALUES ('success', 1, 1::bigint, 1::bigint)$$,
                  'the verify failure never led to a second POST');

-- Moneroo reports a status it does not document: the payout stays sent.
SELECT pg_temp.queue('weird') AS pw \gset
SELECT ok(mock.wait_for(format($$(SELECT status FROM payouts WHERE id = %s) = 'sent'$$, :pw), 5),
          'a payout for the undocumented-status case is sent');
SELECT moneroo_id AS pw_mid FROM payouts WHERE id = :pw \gset
SELECT mock.faults(jsonb_build_object('kind', 'verify_status', 'value', 'weird', 'count', -1,
                                      'id', :'pw_mid')) AS queued \gset
SELECT ok(mock.wait_for(format($$(SELECT verifications >= 2 FROM payouts WHERE id = %s)$$, :pw), 12),
          'the worker verifies it twice while Moneroo answers "weird"');
SELECT results_eq(format($$SELECT status, moneroo_status IS DISTINCT FROM 'success', completed_at IS NULL
                             FROM payouts WHERE id = %s$$, :pw),
                  $$VALUES ('sent', true, true)$$,
                  'an undocumented status leaves the payout sent, never success');
SELECT matches(pg_temp.last_error(:pw), 'weird', 'its last_error names the status Moneroo reported');
SELECT is((SELECT p ->> 'status' FROM mock.payouts() p WHERE p ->> 'id' = :'pw_mid'), 'success',
          '(the payout behind it has succeeded: only the verify answer was odd)');
SELECT mock.clear_faults() AS cleared \gset
SELECT is(mock.error_of(format('SELECT moneroo_verify(%s)', :pw)), 'ok',
          'once Moneroo answers properly, moneroo_verify settles it');
SELECT is((SELECT status FROM payouts WHERE id = :pw), 'success', 'and it is success');

-- ---------------------------------------------------------------- Moneroo unreachable
-- Connection refused: provably never sent, so back to pending and retried
-- (10 s later) once the API can be reached again, created exactly once.
ALTER SYSTEM SET moneroo.api_url = 'http://127.0.0.1:1';
SELECT pg_reload_conf() AS reloaded \gset
SELECT pg_sleep(0.5) AS slept \gset
SELECT pg_temp.queue('down') AS pdown \gset
SELECT ok(mock.wait_for(format($$(SELECT status = 'pending' AND attempts >= 1 FROM payouts WHERE id = %s)$$,
                               :pdown), 5),
          'with Moneroo unreachable the payout goes back to pending after its attempt');
SELECT matches(pg_temp.last_error(:pdown), '[Cc]onnect', 'its last_error tells of the failed connection');
SELECT is(pg_temp.posts(:pdown), 0::bigint, 'nothing reached the mock');
ALTER SYSTEM RESET moneroo.api_url;
SELECT pg_reload_conf() AS reloaded \gset
SELECT ok(mock.wait_for(format($$(SELECT status FROM payouts WHERE id = %s) IN ('sent', 'success')$$, :pdown), 15),
          'once Moneroo is reachable again the payout is sent');
SELECT results_eq(format('SELECT posts, creates FROM pg_temp.outcome(%s)', :pdown),
                  $$VALUES (1::bigint, 1::bigint)$$,
                  'it was POSTed and created exactly once');

-- ---------------------------------------------------------------- afterwards
-- Well after the timeouts and resets, no unknown payout was ever sent again.
SELECT is((SELECT count(*) FROM payouts p JOIN mine m USING (id)
           WHERE p.status = 'unknown' AND p.attempts = 1 AND pg_temp.posts(p.id) <= 1
             AND pg_temp.creates(p.id) <= 1), 11::bigint,
          'the 11 unknown payouts were each POSTed at most once and never retried on their own');
SELECT is(mock.stats() -> 'duplicate_references', '[]'::jsonb, 'the mock never created a reference twice');
SELECT ok(mock.wait_for($$NOT EXISTS (SELECT 1 FROM payouts p JOIN mine m USING (id)
                                      WHERE p.status IN ('pending', 'sending', 'sent'))$$, 10),
          'every payout of this file ends in a final state (or unknown)');
SELECT is((SELECT count(*) FROM payouts p JOIN mine m USING (id) WHERE p.status = 'sending'), 0::bigint,
          'no payout of this file is left in sending');

ALTER SYSTEM RESET moneroo.rate_limit;
ALTER SYSTEM RESET moneroo.verify_min_interval;
SELECT pg_reload_conf() AS reloaded \gset

SELECT * FROM finish();
