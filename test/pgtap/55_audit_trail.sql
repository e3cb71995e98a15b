-- 55_audit_trail.sql: payout_events, the history of every payout.
--   * complete for every path: queued, moneroo_transfer, unknown then
--     retried by an operator role, unknown then resolved, unknown then
--     cancelled, held then approved, deleted; each change once, in order,
--     with its previous status, its actor (the calling role, even though the
--     extension writes as the table's owner, or "moneroo worker") and why;
--   * written in the transaction of the change: a rolled-back INSERT leaves
--     no event;
--   * immutable for every role, the owner (a superuser here) included: no
--     UPDATE, DELETE, TRUNCATE, nor an INSERT that the extension did not make.
SET client_min_messages = warning;

SELECT plan(32);

-- ---------------------------------------------------------------- helpers

CREATE FUNCTION pg_temp.req(amount int, number text, tag text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT mock.payout_request(to_jsonb(number), 'audit test ' || tag, amount, tag) $$;

-- A payout's history in one line: status<-previous by actor, in order.
CREATE FUNCTION pg_temp.history(payout bigint) RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT string_agg(format('%s<-%s by %s', status, coalesce(previous_status, '-'), actor), ', ' ORDER BY id)
    FROM payout_events WHERE payout_id = payout
$$;

CREATE FUNCTION pg_temp.detail_of(payout bigint, to_status text) RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT detail FROM payout_events WHERE payout_id = payout AND status = to_status
    ORDER BY id DESC LIMIT 1
$$;

CREATE FUNCTION pg_temp.status(payout bigint) RETURNS text
LANGUAGE sql VOLATILE AS $$ SELECT status FROM payouts WHERE id = payout $$;

SELECT 'a55-' || left(gen_random_uuid()::text, 8) AS run \gset

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
    FOREACH r IN ARRAY ARRAY['t55_clerk', 't55_approver', 't55_operator', 't55_auditor'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('DROP OWNED BY %I', r);
            EXECUTE format('DROP ROLE %I', r);
        END IF;
    END LOOP;
END
$$;
CREATE ROLE t55_clerk;
CREATE ROLE t55_approver;
CREATE ROLE t55_operator;
CREATE ROLE t55_auditor;
GRANT USAGE ON SCHEMA public TO t55_clerk, t55_approver, t55_operator, t55_auditor;
GRANT INSERT (request), SELECT ON payouts TO t55_clerk;
GRANT EXECUTE ON FUNCTION moneroo_transfer(jsonb) TO t55_clerk;
GRANT EXECUTE ON FUNCTION moneroo_approve(bigint) TO t55_approver;
GRANT EXECUTE ON FUNCTION moneroo_retry(bigint), moneroo_resolve(bigint, text),
      moneroo_cancel(bigint) TO t55_operator;
GRANT ALL ON payout_events TO t55_auditor;

-- ---------------------------------------------------------------- queued
SET ROLE t55_clerk;
INSERT INTO payouts (request) VALUES (pg_temp.req(10, '4149518161', :'run' || '-queued'));
RESET ROLE;
SELECT id AS queued FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-queued' \gset
SELECT ok(mock.wait_for(format($$pg_temp.status(%s) = 'success'$$, :queued), 10), 'a queued payout reaches success');
SELECT is(pg_temp.history(:queued),
          'pending<-- by t55_clerk, sending<-pending by moneroo worker, sent<-sending by moneroo worker, success<-sent by moneroo worker',
          'its history: queued by the clerk, then claimed, accepted and settled by the worker');
SELECT is(pg_temp.detail_of(:queued, 'pending'), 'queued', 'the INSERT says "queued"');
SELECT is(pg_temp.detail_of(:queued, 'sent'),
          'accepted by Moneroo as ' || (SELECT moneroo_id FROM payouts WHERE id = :queued),
          'the acceptance names Moneroo''s id');
SELECT is(pg_temp.detail_of(:queued, 'success'), 'Moneroo reports success', 'the settlement Moneroo''s status');
SELECT is((SELECT count(*) FROM payout_events e JOIN payouts p ON p.id = e.payout_id
           WHERE e.payout_id = :queued AND e.status = 'pending' AND e.at = p.created_at),
          1::bigint, 'the INSERT''s event is dated like the row');

-- ---------------------------------------------------------------- moneroo_transfer
SET ROLE t55_clerk;
SELECT (moneroo_transfer(pg_temp.req(11, '4149518161', :'run' || '-transfer'))).id AS transfer \gset
RESET ROLE;
SELECT ok(mock.wait_for(format($$pg_temp.status(%s) = 'success'$$, :transfer), 10), 'a moneroo_transfer payout reaches success');
SELECT is(pg_temp.history(:transfer),
          'sending<-- by t55_clerk, sent<-sending by moneroo worker, success<-sent by moneroo worker',
          'its history starts with its caller, though the worker wrote the row');
SELECT is((SELECT created_by::text FROM payouts WHERE id = :transfer), 't55_clerk',
          'and created_by is the caller too');

-- ---------------------------------------------------------------- unknown, retried
SELECT mock.faults('{"kind": "status", "status": 500, "count": 1, "route": "initialize"}') AS faulted \gset
INSERT INTO payouts (request) VALUES (pg_temp.req(12, '4149518161', :'run' || '-retried'));
SELECT id AS retried FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-retried' \gset
SELECT ok(mock.wait_for(format($$pg_temp.status(%s) = 'unknown'$$, :retried), 10), 'a 500 leaves a payout unknown');
SET ROLE t55_operator;
SELECT is((moneroo_retry(:retried)).status, 'pending', 'an operator role retries it');
RESET ROLE;
SELECT ok(mock.wait_for(format($$pg_temp.status(%s) = 'success'$$, :retried), 10), 'it is sent again and succeeds');
SELECT is(pg_temp.history(:retried),
          'pending<-- by postgres, sending<-pending by moneroo worker, unknown<-sending by moneroo worker, '
          || 'pending<-unknown by t55_operator, sending<-pending by moneroo worker, sent<-sending by moneroo worker, '
          || 'success<-sent by moneroo worker',
          'its history shows the operator''s retry between the two attempts');
SELECT alike(pg_temp.detail_of(:retried, 'unknown'), '%HTTP 500%', 'the unknown event carries the error');
SELECT alike(pg_temp.detail_of(:retried, 'sending'), 'claimed, attempt 2', 'the second claim says attempt 2');
SELECT alike((SELECT detail FROM payout_events WHERE payout_id = :retried AND previous_status = 'unknown'),
             'moneroo_retry: requeued by moneroo_retry after: %', 'the retry names moneroo_retry');

-- ---------------------------------------------------------------- unknown, resolved
SELECT mock.faults('{"kind": "status_after_create", "status": 500, "count": 1, "route": "initialize"}') AS faulted \gset
INSERT INTO payouts (request) VALUES (pg_temp.req(13, '4149518161', :'run' || '-resolved'));
SELECT id AS resolved FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-resolved' \gset
SELECT ok(mock.wait_for(format($$pg_temp.status(%s) = 'unknown'$$, :resolved), 10), 'a 500 after create leaves a payout unknown');
SELECT m ->> 'id' AS resolved_moneroo_id FROM mock.payouts() m
WHERE m ->> 'reference' = (SELECT reference::text FROM payouts WHERE id = :resolved) \gset
SET ROLE t55_operator;
SELECT is((moneroo_resolve(:resolved, :'resolved_moneroo_id')).status IN ('sent', 'success'),
          true, 'an operator role resolves it with the id Moneroo has');
RESET ROLE;
SELECT alike((SELECT format('%s<-%s by %s: %s', status, previous_status, actor, detail) FROM payout_events
              WHERE payout_id = :resolved AND previous_status = 'unknown'),
             '%<-unknown by t55_operator: moneroo_resolve: resolved by t55_operator: Moneroo has it as %',
             'the resolution is an event by the operator, naming moneroo_resolve');

-- ---------------------------------------------------------------- unknown, cancelled
SELECT mock.faults('{"kind": "status", "status": 500, "count": 1, "route": "initialize"}') AS faulted \gset
INSERT INTO payouts (request) VALUES (pg_temp.req(14, '4149518161', :'run' || '-cancelled'));
SELECT id AS cancelled FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-cancelled' \gset
SELECT ok(mock.wait_for(format($$pg_temp.status(%s) = 'unknown'$$, :cancelled), 10), '(another unknown payout)');
SET ROLE t55_operator;
SELECT moneroo_cancel(:cancelled) AS c \gset
RESET ROLE;
SELECT alike((SELECT format('%s<-%s by %s: %s', status, previous_status, actor, detail) FROM payout_events
              WHERE payout_id = :cancelled ORDER BY id DESC LIMIT 1),
             'cancelled<-unknown by t55_operator: moneroo_cancel: cancelled by t55_operator after: %',
             'a cancellation is an event by the operator');

-- ---------------------------------------------------------------- held, approved
INSERT INTO moneroo_limits (currency, approval_above) VALUES ('USD', 100);
SET ROLE t55_clerk;
INSERT INTO payouts (request) VALUES (pg_temp.req(500, '4149518161', :'run' || '-approved'));
RESET ROLE;
SELECT id AS approved FROM payouts WHERE request -> 'metadata' ->> 'case' = :'run' || '-approved' \gset
SET ROLE t55_approver;
SELECT moneroo_approve(:approved) AS a \gset
RESET ROLE;
DELETE FROM moneroo_limits;
SELECT ok(mock.wait_for(format($$pg_temp.status(%s) = 'success'$$, :approved), 10), 'an approved payout succeeds');
SELECT is(pg_temp.history(:approved),
          'held<-- by t55_clerk, pending<-held by t55_approver, sending<-pending by moneroo worker, '
          || 'sent<-sending by moneroo worker, success<-sent by moneroo worker',
          'its history: held for the clerk, approved by the approver, then sent');
SELECT is(pg_temp.detail_of(:approved, 'pending'),
          'moneroo_approve: approved by t55_approver after: held for approval: the amount 500 USD is above approval_above (100)',
          'the approval names the approver and the rule it overrode');

-- ---------------------------------------------------------------- one transaction
BEGIN;
INSERT INTO payouts (request, send_at) VALUES (pg_temp.req(15, '4149518161', :'run' || '-rolled-back'), now() + interval '1 hour')
RETURNING id AS rolled_back \gset
ROLLBACK;
SELECT is((SELECT count(*) FROM payout_events WHERE payout_id = :rolled_back), 0::bigint,
          'a rolled-back INSERT leaves no event: the change and its event commit together');

-- INSERT ... ON CONFLICT DO NOTHING: the row guard has noted the payout
-- before the conflict is found; a row that never went in has no history
INSERT INTO payouts (request, send_at, idempotency_key)
VALUES (pg_temp.req(15, '4149518161', :'run' || '-keyed'), now() + interval '1 hour', :'run' || '-key')
RETURNING id AS keyed \gset
SELECT max(id) AS events_before FROM payout_events \gset
INSERT INTO payouts (request, send_at, idempotency_key)
VALUES (pg_temp.req(15, '4149518161', :'run' || '-keyed-again'), now() + interval '1 hour', :'run' || '-key'),
       (pg_temp.req(15, '4149518161', :'run' || '-keyed-new'), now() + interval '1 hour', :'run' || '-key-2')
ON CONFLICT (idempotency_key) DO NOTHING;
SELECT is((SELECT string_agg(coalesce(p.idempotency_key, '(no such payout)'), ', ' ORDER BY e.id) FROM payout_events e
           LEFT JOIN payouts p ON p.id = e.payout_id WHERE e.id > :events_before),
          :'run' || '-key-2',
          'INSERT ... ON CONFLICT DO NOTHING: an event for the row that went in, none for the one skipped');

-- a savepoint rolled back takes its events with it; the rest of the
-- transaction keeps its own
BEGIN;
INSERT INTO payouts (request, send_at) VALUES (pg_temp.req(15, '4149518161', :'run' || '-kept'), now() + interval '1 hour')
RETURNING id AS kept \gset
SAVEPOINT s;
INSERT INTO payouts (request, send_at) VALUES (pg_temp.req(15, '4149518161', :'run' || '-savepoint'), now() + interval '1 hour')
RETURNING id AS savepoint \gset
ROLLBACK TO s;
COMMIT;
SELECT is((SELECT count(*) FROM payout_events WHERE payout_id = :savepoint) || ' ' || pg_temp.history(:kept),
          '0 pending<-- by postgres',
          'a payout rolled back to a savepoint leaves no event; the one before it keeps its own');
-- an error caught inside a function (a subtransaction) drops only its events
DO $$
BEGIN
    INSERT INTO payouts (request, send_at) VALUES (pg_temp.req(15, '4149518161', 'a55-caught-outer'), now() + interval '1 hour');
    BEGIN
        INSERT INTO payouts (request, send_at) VALUES (pg_temp.req(15, '4149518161', 'a55-caught-inner'), now() + interval '1 hour');
        RAISE EXCEPTION 'caught';
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
END
$$;
SELECT is((SELECT string_agg(p.request -> 'metadata' ->> 'case' || ':' || e.status, ',')
           FROM payout_events e JOIN payouts p ON p.id = e.payout_id
           WHERE p.request -> 'metadata' ->> 'case' LIKE 'a55-caught-%'),
          'a55-caught-outer:pending',
          'inside a function, a caught error drops the events of what it undid, and only those');
DELETE FROM payouts WHERE request -> 'metadata' ->> 'case' IN ('a55-caught-outer', :'run' || '-kept', :'run' || '-keyed', :'run' || '-keyed-new');

INSERT INTO payouts (request, send_at) VALUES (pg_temp.req(16, '4149518161', :'run' || '-deleted'), now() + interval '1 hour')
RETURNING id AS deleted \gset
DELETE FROM payouts WHERE id = :deleted;
SELECT is(pg_temp.history(:deleted), 'pending<-- by postgres, deleted<-pending by postgres',
          'a deleted pending payout keeps its history, ending with the deletion');

-- ---------------------------------------------------------------- immutable
SELECT is(mock.error_of(format('UPDATE payout_events SET actor = %L WHERE payout_id = %s', 'nobody', :queued))
          || ' / ' || mock.error_of(format('DELETE FROM payout_events WHERE payout_id = %s', :queued))
          || ' / ' || mock.error_of('TRUNCATE payout_events')
          || ' / ' || mock.error_of(format('INSERT INTO payout_events (payout_id, status, actor) VALUES (%s, %L, %L)',
                                              :queued, 'failed', 'postgres')),
          '42501: cannot update payout_events / 42501: cannot delete from payout_events / '
          || '42501: cannot truncate payout_events / 42501: cannot insert into payout_events',
          'the owner, a superuser, can neither update, delete, truncate nor forge an event');
SET ROLE t55_auditor;
SELECT is(mock.error_of(format('UPDATE payout_events SET actor = %L WHERE payout_id = %s', 'nobody', :queued))
          || ' / ' || mock.error_of(format('DELETE FROM payout_events WHERE payout_id = %s', :queued))
          || ' / ' || mock.error_of('TRUNCATE payout_events')
          || ' / ' || mock.error_of(format('INSERT INTO payout_events (payout_id, status, actor) VALUES (%s, %L, %L)',
                                              :queued, 'failed', 't55_auditor')),
          '42501: cannot update payout_events / 42501: cannot delete from payout_events / '
          || '42501: cannot truncate payout_events / 42501: cannot insert into payout_events',
          'nor can a role granted every privilege on it');
RESET ROLE;
SELECT is(pg_temp.history(:queued),
          'pending<-- by t55_clerk, sending<-pending by moneroo worker, sent<-sending by moneroo worker, success<-sent by moneroo worker',
          'the history is unchanged');

-- ---------------------------------------------------------------- clean-up
SELECT mock.clear_faults() AS cleared \gset
ALTER SYSTEM RESET moneroo.rate_limit;
ALTER SYSTEM RESET moneroo.verify_min_interval;
SELECT pg_reload_conf() AS reloaded \gset
-- the roles go; the payouts they queued keep their names in created_by
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['t55_clerk', 't55_approver', 't55_operator', 't55_auditor'] LOOP
        EXECUTE format('DROP OWNED BY %I', r);
        EXECUTE format('DROP ROLE %I', r);
    END LOOP;
END
$$;

SELECT * FROM finish();
