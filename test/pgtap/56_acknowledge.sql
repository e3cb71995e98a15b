-- 56_acknowledge.sql: moneroo_acknowledge, an attention list that empties (1.3).
--   * a rejected, failed or cancelled payout is acknowledged by an operator
--     role with a note: it keeps its state, the row says who, when and how
--     (columns no caller may write), payout_events has an event by that role
--     with the note (status = previous_status), moneroo_state_counts does
--     not move, and moneroo_needs_attention no longer lists it;
--   * refused: another state (55000, naming the state), a second
--     acknowledgement (55000), an empty, blank, NULL or long note (22023),
--     an id no payout has (P0002), a role without EXECUTE (42501; PUBLIC has
--     none); a refusal or a rollback records nothing;
--   * the view still reads only through payouts_attention, whose predicate
--     leaves acknowledged payouts out.
SET client_min_messages = warning;

SELECT plan(33);

-- ---------------------------------------------------------------- helpers

CREATE FUNCTION pg_temp.req(number text, tag text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'amount', 300, 'currency', 'USD', 'description', 'acknowledge test ' || tag,
        'method', 'moneroo_payout_demo',
        'customer', jsonb_build_object('email', 'ack@example.com',
                                       'first_name', 'Ack', 'last_name', 'Nowledge'),
        'recipient', jsonb_build_object('account_number', number),
        'metadata', jsonb_build_object('case', tag))
$$;

CREATE FUNCTION pg_temp.status(payout bigint) RETURNS text
LANGUAGE sql VOLATILE AS $$ SELECT status FROM payouts WHERE id = payout $$;

CREATE FUNCTION pg_temp.events(payout bigint) RETURNS bigint
LANGUAGE sql VOLATILE AS $$ SELECT count(*) FROM payout_events WHERE payout_id = payout $$;

-- the id of this run's payout for a case
CREATE FUNCTION pg_temp.id_of(tag text) RETURNS bigint
LANGUAGE sql VOLATILE AS $$ SELECT id FROM payouts WHERE request -> 'metadata' ->> 'case' = tag $$;

SELECT 'k56-' || left(gen_random_uuid()::text, 8) AS run \gset

ALTER SYSTEM SET moneroo.rate_limit = 0;
ALTER SYSTEM SET moneroo.verify_min_interval = '200ms';
SELECT pg_reload_conf() AS reloaded \gset
SELECT mock.config('{"rate_limit": 0}') AS configured \gset
SELECT mock.clear_faults() AS cleared \gset
SELECT pg_sleep(0.3) AS slept \gset

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['t56_operator', 't56_clerk'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('DROP OWNED BY %I', r);
            EXECUTE format('DROP ROLE %I', r);
        END IF;
    END LOOP;
END
$$;
CREATE ROLE t56_operator;
CREATE ROLE t56_clerk;
GRANT USAGE ON SCHEMA public TO t56_operator, t56_clerk;
GRANT SELECT ON payouts TO t56_operator, t56_clerk;
GRANT UPDATE ON payouts TO t56_clerk;   -- every column: the row guard is what refuses
GRANT EXECUTE ON FUNCTION moneroo_acknowledge(bigint, text) TO t56_operator;

-- ---------------------------------------------------------------- payouts in several states
-- rejected: Moneroo answers 422; failed: any number but 4149518161;
-- success: 4149518161; unknown: a 500; cancelled, pending and held without
-- the worker.
SELECT mock.faults('{"kind": "status", "status": 422, "count": 1, "route": "initialize"}') AS faulted \gset
INSERT INTO payouts (request) VALUES (pg_temp.req('4149518161', :'run' || '-rejected'));
SELECT ok(mock.wait_for(format($$pg_temp.status(%s) = 'rejected'$$, pg_temp.id_of(:'run' || '-rejected')), 15),
          'a 422 leaves a payout rejected');
SELECT mock.faults('{"kind": "status", "status": 500, "count": 1, "route": "initialize"}') AS faulted \gset
INSERT INTO payouts (request) VALUES (pg_temp.req('4149518161', :'run' || '-unknown'));
SELECT ok(mock.wait_for(format($$pg_temp.status(%s) = 'unknown'$$, pg_temp.id_of(:'run' || '-unknown')), 15),
          'a 500 leaves one unknown');
INSERT INTO payouts (request) VALUES (pg_temp.req('4149518162', :'run' || '-failed')),
                                     (pg_temp.req('4149518161', :'run' || '-success'));
SELECT ok(mock.wait_for(format($$pg_temp.status(%s) = 'failed' AND pg_temp.status(%s) = 'success'$$,
                               pg_temp.id_of(:'run' || '-failed'), pg_temp.id_of(:'run' || '-success')), 20),
          'Moneroo fails one and pays another');
INSERT INTO payouts (request, send_at) VALUES
    (pg_temp.req('4149518161', :'run' || '-cancelled'), now() + interval '1 day'),
    (pg_temp.req('4149518161', :'run' || '-pending'), now() + interval '1 day');
SELECT status AS c FROM moneroo_cancel(pg_temp.id_of(:'run' || '-cancelled')) \gset
INSERT INTO moneroo_limits (currency, approval_above) VALUES ('USD', 100)
ON CONFLICT (currency) DO UPDATE SET approval_above = 100;
INSERT INTO payouts (request) VALUES (pg_temp.req('4149518161', :'run' || '-held') || '{"amount": 900}');
DELETE FROM moneroo_limits WHERE currency = 'USD';

SELECT pg_temp.id_of(:'run' || '-rejected') AS rejected, pg_temp.id_of(:'run' || '-failed') AS failed,
       pg_temp.id_of(:'run' || '-cancelled') AS cancelled, pg_temp.id_of(:'run' || '-success') AS success,
       pg_temp.id_of(:'run' || '-unknown') AS unknown, pg_temp.id_of(:'run' || '-pending') AS pending,
       pg_temp.id_of(:'run' || '-held') AS held \gset
SELECT is(pg_temp.status(:held), 'held', '(and one held for approval)');

SELECT alike((SELECT reason FROM moneroo_needs_attention WHERE id = :rejected),
             '%moneroo_acknowledge(id, note)%', 'moneroo_needs_attention lists the rejected payout, and says how to close it');
SELECT count(*) AS listed_before FROM moneroo_needs_attention \gset

-- ---------------------------------------------------------------- privileges
SELECT ok(NOT has_function_privilege('t56_clerk', 'moneroo_acknowledge(bigint, text)', 'EXECUTE'),
          'PUBLIC may not run moneroo_acknowledge (a role without a grant may not)');
SET ROLE t56_clerk;
SELECT alike(mock.error_of(format($$SELECT moneroo_acknowledge(%s, 'done')$$, :rejected)),
             '42501: permission denied for function moneroo_acknowledge',
             'a role without EXECUTE is refused (42501)');
SELECT alike(mock.error_of(format($$UPDATE payouts SET acknowledged_at = now() WHERE id = %s$$, :pending)),
             '42501: column "acknowledged_at" of payouts is maintained by the moneroo extension',
             'a caller with UPDATE on every column of payouts cannot write acknowledged_at');
RESET ROLE;
SELECT alike(mock.error_of(format($$UPDATE payouts SET acknowledged_by = 'postgres', acknowledgement = 'x' WHERE id = %s$$, :rejected)),
             '42501: column "acknowledged_by" of payouts is maintained by the moneroo extension',
             'nor can the table''s owner write acknowledged_by');
SELECT alike(mock.error_of(format($$INSERT INTO payouts (request, acknowledgement) VALUES (%L, 'seen')$$,
                                  pg_temp.req('4149518161', :'run' || '-forged'))),
             '42501: column "acknowledgement" of payouts is maintained by the moneroo extension',
             'nor insert a payout that comes acknowledged');

-- ---------------------------------------------------------------- refusals
SET ROLE t56_operator;
SELECT is(mock.error_of(format($$SELECT moneroo_acknowledge(%s, '')$$, :rejected)),
          '22023: an acknowledgement needs a note', 'an empty note is refused (22023)');
SELECT is(mock.error_of(format($$SELECT moneroo_acknowledge(%s, E' \n\t ')$$, :rejected)),
          '22023: an acknowledgement needs a note', 'a blank note too');
SELECT is(mock.error_of(format($$SELECT moneroo_acknowledge(%s, NULL)$$, :rejected)),
          '22023: an acknowledgement needs a note', 'and a NULL one');
SELECT is(mock.error_of(format($$SELECT moneroo_acknowledge(%s, repeat('x', 256))$$, :rejected)),
          '22023: the note of an acknowledgement is limited to 255 bytes', 'a note over 255 bytes too');
SELECT is(mock.error_of('SELECT moneroo_acknowledge(-42, ''done'')'),
          'P0002: payout -42 does not exist', 'an id no payout has: P0002, as moneroo_cancel');
SELECT is(mock.error_of(format($$SELECT moneroo_acknowledge(%s, 'done')$$, :success)),
          format('55000: payout %s is success, not rejected, failed or cancelled', :success),
          'a paid payout is refused (55000), naming its state');
SELECT is(mock.error_of(format($$SELECT moneroo_acknowledge(%s, 'done')$$, :unknown)),
          format('55000: payout %s is unknown, not rejected, failed or cancelled', :unknown),
          'an unknown one too: it must be settled first');
SELECT is(mock.error_of(format($$SELECT moneroo_acknowledge(%s, 'done')$$, :pending)) || ' | ' ||
          mock.error_of(format($$SELECT moneroo_acknowledge(%s, 'done')$$, :held)),
          format('55000: payout %s is pending, not rejected, failed or cancelled | ', :pending) ||
          format('55000: payout %s is held, not rejected, failed or cancelled', :held),
          'and a pending or a held one');
RESET ROLE;
SELECT is((SELECT count(*) FROM payout_events
           WHERE payout_id IN (:rejected, :success, :unknown, :pending, :held) AND status = previous_status),
          0::bigint, 'the refusals recorded nothing');

BEGIN;
SET LOCAL ROLE t56_operator;
SELECT moneroo_acknowledge(:rejected, 'rolled back') AS r \gset
ROLLBACK;
SELECT is((SELECT count(*) FROM payout_events WHERE payout_id = :rejected AND status = previous_status) ||
          ' ' || (SELECT acknowledged_at IS NULL FROM payouts WHERE id = :rejected),
          '0 true', 'a rolled-back acknowledgement leaves no event and no mark');

-- ---------------------------------------------------------------- acknowledged
SELECT pg_temp.events(:rejected) AS rejected_events \gset
SET ROLE t56_operator;
SELECT status AS ack_status, acknowledged_by AS ack_by, acknowledgement AS ack_note,
       acknowledged_at = now() AS ack_now
FROM moneroo_acknowledge(:rejected, 'recipient''s account closed; paid by cheque, ticket 4711') \gset
RESET ROLE;
SELECT is(:'ack_status'::text, 'rejected', 'moneroo_acknowledge returns the row, still rejected');
SELECT is(:'ack_by' || ' | ' || :'ack_note' || ' | ' || :'ack_now',
          't56_operator | recipient''s account closed; paid by cheque, ticket 4711 | t',
          'the row says who acknowledged it, how, and when');
SELECT is(pg_temp.events(:rejected), (:rejected_events + 1)::bigint, 'one event more');
SELECT is((SELECT format('%s<-%s by %s: %s', status, previous_status, actor, detail) FROM payout_events
           WHERE payout_id = :rejected ORDER BY id DESC LIMIT 1),
          'rejected<-rejected by t56_operator: moneroo_acknowledge: recipient''s account closed; paid by cheque, ticket 4711',
          'the event: the same state, the operator as actor, the note as detail');
SELECT is((SELECT count(*) FROM moneroo_needs_attention WHERE id = :rejected), 0::bigint,
          'moneroo_needs_attention no longer lists it');
SELECT is((SELECT count(*) FROM moneroo_needs_attention), (:listed_before - 1)::bigint,
          'and lists everything else it listed');

SET ROLE t56_operator;
SELECT is(mock.error_of(format($$SELECT moneroo_acknowledge(%s, 'again')$$, :rejected)),
          format('55000: payout %s is already acknowledged', :rejected),
          'a second acknowledgement is refused (55000)');
SELECT is((moneroo_acknowledge(:failed, 'Moneroo failed it: the recipient''s operator was down; queued again')).status,
          'failed', 'a failed payout is acknowledged, and stays failed');
SELECT is((moneroo_acknowledge(:cancelled, 'cancelled at the customer''s request')).status,
          'cancelled', 'a cancelled one too');
RESET ROLE;
SELECT is((SELECT string_agg(format('%s<-%s by %s', status, previous_status, actor), ', ' ORDER BY payout_id)
           FROM payout_events WHERE payout_id IN (:failed, :cancelled) AND status = previous_status),
          'failed<-failed by t56_operator, cancelled<-cancelled by t56_operator',
          'each with its event');
SELECT is((SELECT string_agg(format('%s=%s', status, n), ', ' ORDER BY status)
           FROM (SELECT status, sum(payouts) AS n FROM moneroo_state_counts
                 WHERE status IN ('rejected', 'failed', 'cancelled') GROUP BY status) c),
          (SELECT string_agg(format('%s=%s', status, n), ', ' ORDER BY status)
           FROM (SELECT status, count(*) AS n FROM payouts
                 WHERE status IN ('rejected', 'failed', 'cancelled') GROUP BY status) c),
          'moneroo_state_counts still counts the payouts of the three states: an acknowledgement moves none');

-- ---------------------------------------------------------------- the plan
SET enable_seqscan = off;
SELECT matches(mock.plan_of('SELECT * FROM moneroo_needs_attention'), 'payouts_attention',
               'moneroo_needs_attention reads through payouts_attention');
RESET enable_seqscan;
SELECT ok((SELECT pg_get_indexdef('payouts_attention'::regclass) ~ 'acknowledged_at IS NULL'),
          'whose predicate leaves acknowledged rejections out');

-- ---------------------------------------------------------------- clean up
DELETE FROM payouts WHERE status = 'pending' AND request -> 'metadata' ->> 'case' LIKE :'run' || '%';
SELECT moneroo_cancel(:held) AS c, moneroo_cancel(:unknown) AS u \gset

SELECT * FROM finish();
