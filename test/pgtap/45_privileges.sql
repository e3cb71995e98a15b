-- 45_privileges.sql: who may do what, and nobody reads the secret key.
--
-- The four roles of the README's Security section are created with exactly
-- the README's GRANTs (names prefixed t45_ so that they cannot collide with
-- anyone's roles), and each one is tried against every door: what it may do
-- works, what it may not do fails with SQLSTATE 42501 (or the state error
-- the contract names), and the secret key stays out of reach through every
-- route PostgreSQL offers a role: SHOW, SHOW ALL, current_setting,
-- pg_settings, pg_show_all_settings, pg_file_settings, the server files,
-- pg_stat_activity of the worker, the payouts rows, and the messages of
-- failed calls.  A pg_monitor member (pg_read_all_settings) sees a mask.
--
-- Then the escalation attempts:
--   * triggers: no role but the owner may put a trigger on payouts; a
--     trigger a superuser put there makes the extension refuse to write,
--     with an error naming it, and must never run with the extension's
--     (the table owner's) rights;
--   * search_path: a role that may create a schema fills it with a fake
--     payouts table, a fake method catalogue and operators and functions
--     named like the ones the extension's statements use (=, <>, ||, now(),
--     ...), puts it first in search_path and calls the extension: the
--     extension must use its own objects, and nothing of the role's may run
--     with the extension's rights;
--   * pg_temp: any role may create temporary objects; a domain called
--     pg_temp.uuid must not be picked up by the extension's statements.
-- A probe (sequences, which a rollback does not undo) counts every call of
-- a planted function, and the calls made with superuser rights.
--
-- No BEGIN around the file: ALTER SYSTEM and the worker's transactions need
-- autocommit.  Everything created here is dropped at the end; payouts that
-- reached Moneroo stay (they cannot be deleted), so assertions look only at
-- the rows this file made (id > :start_id).

SET client_min_messages = warning;

ALTER SYSTEM SET moneroo.rate_limit = 0;
-- the worker stays away from the sent payouts: only the operator verifies here
ALTER SYSTEM SET moneroo.verify_min_interval = '10min';
DO $$ BEGIN
    PERFORM pg_reload_conf();
    PERFORM mock.config('{"rate_limit": 0}');
    PERFORM pg_sleep(0.5);      -- the worker reloads on SIGHUP, asynchronously
END $$;

SELECT coalesce(max(id), 0) AS start_id FROM payouts \gset

SELECT plan(123);

-- ---------------------------------------------------------------- the roles
-- The README's Security section, verbatim but for the names.

CREATE ROLE t45_payouts_writer;      -- the application: queue payouts
GRANT USAGE ON SCHEMA public TO t45_payouts_writer;
GRANT INSERT (request) ON payouts TO t45_payouts_writer;
GRANT SELECT ON payouts TO t45_payouts_writer;
GRANT EXECUTE ON FUNCTION moneroo_transfer(jsonb), moneroo_validate(jsonb) TO t45_payouts_writer;

CREATE ROLE t45_payouts_reader;      -- reporting
GRANT USAGE ON SCHEMA public TO t45_payouts_reader;
GRANT SELECT ON payouts, moneroo_payout_methods, moneroo_status TO t45_payouts_reader;
GRANT EXECUTE ON FUNCTION moneroo_worker_info() TO t45_payouts_reader;

CREATE ROLE t45_payouts_operator IN ROLE t45_payouts_reader;   -- reconciliation
GRANT EXECUTE ON FUNCTION moneroo_retry(bigint), moneroo_verify(bigint) TO t45_payouts_operator;

CREATE ROLE t45_webhooks;            -- the webhook receiver
GRANT USAGE ON SCHEMA public TO t45_webhooks;
GRANT EXECUTE ON FUNCTION moneroo_webhook(text, text) TO t45_webhooks;

-- and three more: one granted nothing, a monitoring role, and an attacker
-- who is both writer and operator and may create schemas in the database
CREATE ROLE t45_nobody;
CREATE ROLE t45_monitor IN ROLE pg_monitor;
CREATE ROLE t45_mallory IN ROLE t45_payouts_writer, t45_payouts_operator;
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO t45_mallory', current_database()); END $$;

-- ---------------------------------------------------------------- helpers

CREATE FUNCTION pg_temp.req(account text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $fn$ SELECT mock.payout_request(to_jsonb(account), 'pgTAP 45_privileges') $fn$;

-- Every attempt, with what it raised (sqlstate NULL: it worked).
CREATE TEMP TABLE t45_outcomes (
    n        serial PRIMARY KEY,
    label    text NOT NULL,
    role     text NOT NULL,
    sql      text NOT NULL,
    sqlstate text,
    message  text,
    detail   text,
    hint     text,
    context  text,
    result   text
);
GRANT ALL ON t45_outcomes TO PUBLIC;
GRANT ALL ON SEQUENCE t45_outcomes_n_seq TO PUBLIC;

-- try_as(label, role, sql [, search_path]): run sql (which returns one
-- value) as role, catching any error; return 'ok' or the SQLSTATE.
CREATE FUNCTION pg_temp.try_as(label text, r text, q text, path text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    v text;
    st text;
    msg text;
    det text;
    hin text;
    ctx text;
    old_path text := current_setting('search_path');
BEGIN
    BEGIN
        PERFORM set_config('role', r, true);
        IF path IS NOT NULL THEN
            PERFORM set_config('search_path', path, true);
        END IF;
        EXECUTE q INTO v;
        PERFORM set_config('search_path', old_path, true);
        PERFORM set_config('role', 'none', true);
    EXCEPTION WHEN OTHERS THEN
        -- the subtransaction's rollback has restored role and search_path
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                det = PG_EXCEPTION_DETAIL, hin = PG_EXCEPTION_HINT,
                                ctx = PG_EXCEPTION_CONTEXT;
    END;
    INSERT INTO pg_temp.t45_outcomes (label, role, sql, sqlstate, message, detail, hint, context, result)
    VALUES (label, r, q, st, msg, det, hin, ctx, v);
    RETURN coalesce(st, 'ok');
END
$fn$;

-- The value (or NULL) the attempt returned; its message.
CREATE FUNCTION pg_temp.result_of(l text) RETURNS text
LANGUAGE sql AS $fn$ SELECT result FROM t45_outcomes WHERE label = l ORDER BY n DESC LIMIT 1 $fn$;
CREATE FUNCTION pg_temp.error_of(l text) RETURNS text
LANGUAGE sql AS $fn$
    SELECT concat_ws(' | ', message, detail, hint) FROM t45_outcomes WHERE label = l ORDER BY n DESC LIMIT 1
$fn$;

CREATE FUNCTION pg_temp.journal_seq() RETURNS bigint
LANGUAGE sql VOLATILE AS $fn$
    SELECT coalesce(max((j ->> 'seq')::bigint), 0) FROM mock.journal() j
$fn$;

CREATE FUNCTION pg_temp.initialize_posts_since(since bigint) RETURNS bigint
LANGUAGE sql VOLATILE AS $fn$
    SELECT count(*) FROM mock.journal(since) j
    WHERE j ->> 'method' = 'POST' AND j ->> 'path' = '/v1/payouts/initialize'
$fn$;

-- Does text t contain the secret key (or the webhook secret, when set)?
CREATE FUNCTION pg_temp.leaks(t text) RETURNS boolean
LANGUAGE sql STABLE AS $fn$
    SELECT coalesce(position(current_setting('moneroo.secret_key') IN t) > 0, false)
        OR (current_setting('moneroo.webhook_secret') <> ''
            AND coalesce(position(current_setting('moneroo.webhook_secret') IN t) > 0, false))
$fn$;

-- The probe: planted functions count their calls here; sequences are not
-- rolled back, so a call counts even when its transaction fails.
CREATE SCHEMA t45_probe;
GRANT USAGE ON SCHEMA t45_probe TO PUBLIC;
CREATE SEQUENCE t45_probe.calls;            -- any call of a planted function
CREATE SEQUENCE t45_probe.su_calls;         -- ... made with superuser rights
CREATE SEQUENCE t45_probe.trigger_calls;    -- the foreign trigger's
CREATE SEQUENCE t45_probe.trigger_su_calls;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA t45_probe TO PUBLIC;
-- what the planted functions saw when they ran with superuser rights
CREATE TABLE t45_probe.su_log (what text, who text);
GRANT INSERT ON t45_probe.su_log TO PUBLIC;

-- How often a probe sequence was bumped (nextval'd).
CREATE FUNCTION pg_temp.bumps(seq regclass) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
BEGIN
    EXECUTE format('SELECT last_value, is_called FROM %s', seq) INTO r;
    RETURN CASE WHEN r.is_called THEN r.last_value ELSE 0 END;
END
$fn$;

-- ---------------------------------------------------------------- payouts to work on
-- One that stays 'sent' (4149518163 never settles at the mock) and one that
-- ends 'unknown' (Moneroo answers 500 and, as an operator can check, created
-- nothing: so retrying it is right), both sent by the writer.

SELECT is(pg_temp.try_as('writer transfer', 't45_payouts_writer',
                         format('SELECT (moneroo_transfer(%L::jsonb)).id', pg_temp.req('4149518163'))),
          'ok', 'payouts_writer may call moneroo_transfer');
SELECT (SELECT result FROM t45_outcomes WHERE label = 'writer transfer')::bigint AS sent_id \gset
SELECT is((SELECT status FROM payouts WHERE id = :'sent_id'::bigint), 'sent',
          'payouts_writer''s moneroo_transfer sent the payout');

SELECT mock.faults('{"kind": "status", "status": 500}') \g /dev/null
SELECT is(pg_temp.try_as('writer transfer 500', 't45_payouts_writer',
                         format('SELECT (moneroo_transfer(%L::jsonb)).id', pg_temp.req('4149518161'))),
          'ok', 'payouts_writer''s moneroo_transfer with an unknown outcome returns the row');
SELECT (SELECT result FROM t45_outcomes WHERE label = 'writer transfer 500')::bigint AS unknown_id \gset
SELECT is((SELECT status FROM payouts WHERE id = :'unknown_id'::bigint), 'unknown',
          'a 500 leaves the payout unknown');

-- ---------------------------------------------------------------- payouts_writer

SELECT is(pg_temp.try_as('writer insert', 't45_payouts_writer',
                         format('INSERT INTO payouts (request) VALUES (%L) RETURNING id', pg_temp.req('4149518161'))),
          'ok', 'payouts_writer may INSERT a request');
SELECT (SELECT result FROM t45_outcomes WHERE label = 'writer insert')::bigint AS queued_id \gset
SELECT is(pg_temp.try_as('writer select', 't45_payouts_writer',
                         format('SELECT status FROM payouts WHERE id = %s', :'queued_id')),
          'ok', 'payouts_writer may SELECT payouts');
SELECT is(pg_temp.try_as('writer validate', 't45_payouts_writer',
                         format('SELECT moneroo_validate(%L)::text', pg_temp.req('4149518161'))),
          'ok', 'payouts_writer may call moneroo_validate');
SELECT is(pg_temp.try_as('writer validate bad', 't45_payouts_writer',
                         $$SELECT moneroo_validate('{"amount": -1}')::text$$),
          '22023', 'payouts_writer''s moneroo_validate reports an invalid request (22023)');
SELECT ok(mock.wait_for(format('(SELECT status FROM payouts WHERE id = %s) = ''sent''', :'queued_id'), 10),
          'the worker sends what payouts_writer queued');

SELECT is(pg_temp.try_as('writer insert status', 't45_payouts_writer',
                         format('INSERT INTO payouts (request, status) VALUES (%L, ''sent'') RETURNING id',
                                pg_temp.req('4149518161'))),
          '42501', 'payouts_writer cannot INSERT a status (42501)');
SELECT is(pg_temp.try_as('writer update status', 't45_payouts_writer',
                         format('UPDATE payouts SET status = ''success'' WHERE id = %s RETURNING id', :'sent_id')),
          '42501', 'payouts_writer cannot UPDATE status (42501)');
SELECT is(pg_temp.try_as('writer update moneroo_id', 't45_payouts_writer',
                         format('UPDATE payouts SET moneroo_id = ''forged'' WHERE id = %s RETURNING id', :'sent_id')),
          '42501', 'payouts_writer cannot UPDATE moneroo_id (42501)');
SELECT is(pg_temp.try_as('writer update request', 't45_payouts_writer',
                         format('UPDATE payouts SET request = %L WHERE id = %s RETURNING id',
                                pg_temp.req('4149518162'), :'sent_id')),
          '42501', 'payouts_writer cannot UPDATE a request (42501)');
SELECT is(pg_temp.try_as('writer delete', 't45_payouts_writer',
                         format('DELETE FROM payouts WHERE id = %s RETURNING id', :'queued_id')),
          '42501', 'payouts_writer cannot DELETE (42501)');
SELECT is(pg_temp.try_as('writer truncate', 't45_payouts_writer', 'TRUNCATE payouts'),
          '42501', 'payouts_writer cannot TRUNCATE (42501)');
SELECT is(pg_temp.try_as('writer retry', 't45_payouts_writer',
                         format('SELECT (moneroo_retry(%s)).status', :'unknown_id')),
          '42501', 'payouts_writer cannot call moneroo_retry (42501)');
SELECT is(pg_temp.try_as('writer verify', 't45_payouts_writer',
                         format('SELECT (moneroo_verify(%s)).status', :'sent_id')),
          '42501', 'payouts_writer cannot call moneroo_verify (42501)');
SELECT is(pg_temp.try_as('writer webhook', 't45_payouts_writer',
                         $$SELECT (moneroo_webhook('{}', '')).status$$),
          '42501', 'payouts_writer cannot call moneroo_webhook (42501)');
SELECT is(pg_temp.try_as('writer add method', 't45_payouts_writer',
                         $$INSERT INTO moneroo_payout_methods (code, name, currency, country, recipient_field)
                           VALUES ('t45_any', 'Anything goes', 'USD', 'US', 'account_number') RETURNING code$$),
          '42501', 'payouts_writer cannot add a payout method to get past validation (42501)');
SELECT is(pg_temp.try_as('writer guard off', 't45_payouts_writer',
                         'ALTER TABLE payouts DISABLE TRIGGER payouts_guard'),
          '42501', 'payouts_writer cannot disable the guard trigger (42501)');
SELECT is(pg_temp.try_as('writer replica', 't45_payouts_writer',
                         $$SELECT set_config('session_replication_role', 'replica', true)$$),
          '42501', 'payouts_writer cannot turn triggers off with session_replication_role (42501)');
-- Pointing the API elsewhere (a server of one's own would receive the key)
-- or the key somewhere else is for the server's configuration only.
SELECT is((SELECT string_agg(s || ': ' || pg_temp.try_as('writer set ' || s, 't45_payouts_writer',
                   format('SELECT set_config(%L, %L, false)', s, v)), ', ' ORDER BY s)
           FROM (VALUES ('moneroo.api_url', 'http://127.0.0.1:9'), ('moneroo.ca_bundle', '/tmp/t45-ca.pem'),
                        ('moneroo.secret_key', 'pvk_t45'), ('moneroo.secret_key_file', '/tmp/t45.key')) AS t(s, v)),
          'moneroo.api_url: 55P02, moneroo.ca_bundle: 55P02, moneroo.secret_key: 55P02, moneroo.secret_key_file: 55P02',
          'payouts_writer cannot SET moneroo.api_url, ca_bundle, secret_key or secret_key_file in its session (55P02)');
SELECT is((SELECT status FROM payouts WHERE id = :'sent_id'::bigint), 'sent',
          'after all that, the payout payouts_writer tried to change is still sent');

-- ---------------------------------------------------------------- payouts_reader

SELECT is(pg_temp.try_as('reader select', 't45_payouts_reader',
                         format('SELECT status FROM payouts WHERE id = %s', :'sent_id')),
          'ok', 'payouts_reader may SELECT payouts');
SELECT is(pg_temp.try_as('reader methods', 't45_payouts_reader',
                         'SELECT count(*) FROM moneroo_payout_methods'),
          'ok', 'payouts_reader may SELECT moneroo_payout_methods');
SELECT is(pg_temp.try_as('reader status', 't45_payouts_reader',
                         'SELECT worker_running FROM moneroo_status'),
          'ok', 'payouts_reader may SELECT moneroo_status');
SELECT is(pg_temp.result_of('reader status'), 'true', 'payouts_reader sees the worker running');
SELECT is(pg_temp.try_as('reader worker_info', 't45_payouts_reader',
                         'SELECT worker_running FROM moneroo_worker_info()'),
          'ok', 'payouts_reader may call moneroo_worker_info()');
SELECT is(pg_temp.try_as('reader insert', 't45_payouts_reader',
                         format('INSERT INTO payouts (request) VALUES (%L) RETURNING id', pg_temp.req('4149518161'))),
          '42501', 'payouts_reader cannot INSERT (42501)');
SELECT is(pg_temp.try_as('reader transfer', 't45_payouts_reader',
                         format('SELECT (moneroo_transfer(%L::jsonb)).id', pg_temp.req('4149518161'))),
          '42501', 'payouts_reader cannot call moneroo_transfer (42501)');
SELECT is(pg_temp.try_as('reader update', 't45_payouts_reader',
                         format('UPDATE payouts SET status = ''pending'' WHERE id = %s RETURNING id', :'unknown_id')),
          '42501', 'payouts_reader cannot UPDATE (42501)');
SELECT is(pg_temp.try_as('reader delete', 't45_payouts_reader',
                         format('DELETE FROM payouts WHERE id = %s RETURNING id', :'unknown_id')),
          '42501', 'payouts_reader cannot DELETE (42501)');
SELECT is(pg_temp.try_as('reader retry', 't45_payouts_reader',
                         format('SELECT (moneroo_retry(%s)).status', :'unknown_id')),
          '42501', 'payouts_reader cannot call moneroo_retry (42501)');
SELECT is(pg_temp.try_as('reader verify', 't45_payouts_reader',
                         format('SELECT (moneroo_verify(%s)).status', :'sent_id')),
          '42501', 'payouts_reader cannot call moneroo_verify (42501)');
SELECT is(pg_temp.try_as('reader validate', 't45_payouts_reader',
                         format('SELECT moneroo_validate(%L)::text', pg_temp.req('4149518161'))),
          '42501', 'payouts_reader cannot call moneroo_validate (42501)');

-- ---------------------------------------------------------------- payouts_operator

SELECT is(pg_temp.try_as('operator select', 't45_payouts_operator',
                         format('SELECT status FROM payouts WHERE id = %s', :'sent_id')),
          'ok', 'payouts_operator may SELECT payouts (it is a payouts_reader)');
SELECT ok(mock.wait_for(format($$(SELECT p ->> 'status' FROM mock.payouts() p WHERE p ->> 'id' = %L) = 'pending'$$,
                               (SELECT moneroo_id FROM payouts WHERE id = :'sent_id'::bigint)), 5),
          '(setup) Moneroo reports the sent payout as pending');
SELECT pg_temp.journal_seq() AS seq_before_verify \gset
SELECT is(pg_temp.try_as('operator verify', 't45_payouts_operator',
                         format('SELECT (moneroo_verify(%s)).moneroo_status', :'sent_id')),
          'ok', 'payouts_operator may call moneroo_verify');
SELECT is(pg_temp.result_of('operator verify'), 'pending',
          'moneroo_verify records Moneroo''s answer (pending) for payouts_operator');
SELECT is((SELECT count(*) FROM mock.journal(:'seq_before_verify') j
           WHERE j ->> 'method' = 'GET'
             AND j ->> 'path' = format('/v1/payouts/%s/verify', (SELECT moneroo_id FROM payouts WHERE id = :'sent_id'::bigint))),
          1::bigint, 'payouts_operator''s moneroo_verify asked Moneroo once (GET .../verify)');
SELECT is(pg_temp.try_as('operator retry sent', 't45_payouts_operator',
                         format('SELECT (moneroo_retry(%s)).status', :'sent_id')),
          '55000', 'payouts_operator''s moneroo_retry of a sent payout is refused (55000)');
SELECT is(pg_temp.try_as('operator retry missing', 't45_payouts_operator',
                         'SELECT (moneroo_retry(-45)).status'),
          'P0002', 'payouts_operator''s moneroo_retry of a missing payout: P0002');
SELECT is(pg_temp.try_as('operator retry unknown', 't45_payouts_operator',
                         format('SELECT (moneroo_retry(%s)).status', :'unknown_id')),
          'ok', 'payouts_operator may call moneroo_retry on an unknown payout');
SELECT is(pg_temp.result_of('operator retry unknown'), 'pending',
          'payouts_operator''s moneroo_retry puts the unknown payout back to pending');
SELECT ok(mock.wait_for(format('(SELECT status FROM payouts WHERE id = %s) = ''sent''', :'unknown_id'), 10),
          'the worker sends the payout payouts_operator requeued');
SELECT is(pg_temp.try_as('operator insert', 't45_payouts_operator',
                         format('INSERT INTO payouts (request) VALUES (%L) RETURNING id', pg_temp.req('4149518161'))),
          '42501', 'payouts_operator cannot INSERT (42501)');
SELECT is(pg_temp.try_as('operator transfer', 't45_payouts_operator',
                         format('SELECT (moneroo_transfer(%L::jsonb)).id', pg_temp.req('4149518161'))),
          '42501', 'payouts_operator cannot call moneroo_transfer (42501)');
SELECT is(pg_temp.try_as('operator update', 't45_payouts_operator',
                         format('UPDATE payouts SET status = ''success'' WHERE id = %s RETURNING id', :'sent_id')),
          '42501', 'payouts_operator cannot UPDATE status (42501)');
SELECT is(pg_temp.try_as('operator delete', 't45_payouts_operator',
                         format('DELETE FROM payouts WHERE id = %s RETURNING id', :'sent_id')),
          '42501', 'payouts_operator cannot DELETE (42501)');
SELECT is(pg_temp.try_as('operator webhook', 't45_payouts_operator',
                         $$SELECT (moneroo_webhook('{}', '')).status$$),
          '42501', 'payouts_operator cannot call moneroo_webhook (42501)');

-- ---------------------------------------------------------------- webhooks

SELECT isnt(pg_temp.try_as('webhooks webhook', 't45_webhooks',
                           $$SELECT (moneroo_webhook('{"event": "payout.success", "data": {"id": "x"}}', '')).status$$),
            '42501', 'the webhooks role may call moneroo_webhook');
SELECT is(pg_temp.try_as('webhooks select', 't45_webhooks', 'SELECT count(*) FROM payouts'),
          '42501', 'the webhooks role cannot SELECT payouts (42501)');
SELECT is(pg_temp.try_as('webhooks transfer', 't45_webhooks',
                         format('SELECT (moneroo_transfer(%L::jsonb)).id', pg_temp.req('4149518161'))),
          '42501', 'the webhooks role cannot call moneroo_transfer (42501)');
SELECT is(pg_temp.try_as('webhooks verify', 't45_webhooks',
                         format('SELECT (moneroo_verify(%s)).status', :'sent_id')),
          '42501', 'the webhooks role cannot call moneroo_verify (42501)');
SELECT is(pg_temp.try_as('webhooks insert', 't45_webhooks',
                         format('INSERT INTO payouts (request) VALUES (%L) RETURNING id', pg_temp.req('4149518161'))),
          '42501', 'the webhooks role cannot INSERT (42501)');

-- ---------------------------------------------------------------- a role granted nothing

SELECT is(pg_temp.try_as('nobody select', 't45_nobody', 'SELECT count(*) FROM payouts'),
          '42501', 'a role granted nothing cannot SELECT payouts (nothing is granted to PUBLIC)');
SELECT is(pg_temp.try_as('nobody status', 't45_nobody', 'SELECT worker_running FROM moneroo_status'),
          '42501', 'a role granted nothing cannot SELECT moneroo_status');
SELECT is(pg_temp.try_as('nobody methods', 't45_nobody', 'SELECT count(*) FROM moneroo_payout_methods'),
          '42501', 'a role granted nothing cannot SELECT moneroo_payout_methods');
SELECT is(pg_temp.try_as('nobody insert', 't45_nobody',
                         format('INSERT INTO payouts (request) VALUES (%L) RETURNING id', pg_temp.req('4149518161'))),
          '42501', 'a role granted nothing cannot INSERT');
SELECT is(pg_temp.try_as('nobody transfer', 't45_nobody',
                         format('SELECT (moneroo_transfer(%L::jsonb)).id', pg_temp.req('4149518161'))),
          '42501', 'a role granted nothing cannot call moneroo_transfer');
SELECT is(pg_temp.try_as('nobody worker_info', 't45_nobody', 'SELECT worker_running FROM moneroo_worker_info()'),
          '42501', 'a role granted nothing cannot call moneroo_worker_info()');

-- ---------------------------------------------------------------- the key, route by route
-- For each role but the monitor: the key is refused or absent, never shown.

CREATE TEMP TABLE t45_roles (role text PRIMARY KEY);
INSERT INTO t45_roles VALUES ('t45_payouts_writer'), ('t45_payouts_reader'), ('t45_payouts_operator'),
                             ('t45_webhooks'), ('t45_nobody');

SELECT is((SELECT string_agg(role || ': ' || pg_temp.try_as('key show', role, 'SHOW moneroo.secret_key'), ', ' ORDER BY role)
           FROM t45_roles),
          't45_nobody: 42501, t45_payouts_operator: 42501, t45_payouts_reader: 42501, t45_payouts_writer: 42501, t45_webhooks: 42501',
          'SHOW moneroo.secret_key is refused to every role (42501)');
SELECT is((SELECT string_agg(role || ': ' || pg_temp.try_as('key current_setting', role,
                                                            $$SELECT current_setting('moneroo.secret_key')$$), ', ' ORDER BY role)
           FROM t45_roles),
          't45_nobody: 42501, t45_payouts_operator: 42501, t45_payouts_reader: 42501, t45_payouts_writer: 42501, t45_webhooks: 42501',
          'current_setting(''moneroo.secret_key'') is refused to every role (42501)');
SELECT is((SELECT string_agg(role || ': ' || pg_temp.try_as('key current_setting missing_ok', role,
                                                            $$SELECT current_setting('moneroo.secret_key', true)$$), ', ' ORDER BY role)
           FROM t45_roles),
          't45_nobody: 42501, t45_payouts_operator: 42501, t45_payouts_reader: 42501, t45_payouts_writer: 42501, t45_webhooks: 42501',
          'current_setting(''moneroo.secret_key'', true) is refused to every role (42501)');
SELECT is((SELECT string_agg(role || ': ' || pg_temp.try_as('webhook secret show', role, 'SHOW moneroo.webhook_secret'), ', ' ORDER BY role)
           FROM t45_roles),
          't45_nobody: 42501, t45_payouts_operator: 42501, t45_payouts_reader: 42501, t45_payouts_writer: 42501, t45_webhooks: 42501',
          'SHOW moneroo.webhook_secret is refused to every role (42501)');
SELECT is((SELECT string_agg(role || ': ' || pg_temp.try_as('key pg_settings', role,
                 $$SELECT count(*) FROM pg_settings WHERE name IN ('moneroo.secret_key', 'moneroo.webhook_secret')$$)
                 || '/' || pg_temp.result_of('key pg_settings'), ', ' ORDER BY role)
           FROM t45_roles),
          't45_nobody: ok/0, t45_payouts_operator: ok/0, t45_payouts_reader: ok/0, t45_payouts_writer: ok/0, t45_webhooks: ok/0',
          'pg_settings has no row for the key nor the webhook secret, for every role');
SELECT is((SELECT string_agg(role || ': ' || pg_temp.try_as('key pg_show_all_settings', role,
                 $$SELECT count(*) FROM pg_show_all_settings() s WHERE s.name LIKE 'moneroo.%secret%'$$)
                 || '/' || pg_temp.result_of('key pg_show_all_settings'), ', ' ORDER BY role)
           FROM t45_roles),
          't45_nobody: ok/0, t45_payouts_operator: ok/0, t45_payouts_reader: ok/0, t45_payouts_writer: ok/0, t45_webhooks: ok/0',
          'pg_show_all_settings() has no row for the key nor the webhook secret, for every role');
-- SHOW ALL cannot be a subquery: run it through a loop, as each role.
CREATE FUNCTION pg_temp.show_all_as(r text) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    rec record;
    everything text := '';
BEGIN
    PERFORM set_config('role', r, true);
    FOR rec IN EXECUTE 'SHOW ALL' LOOP
        everything := everything || rec.name || '=' || coalesce(rec.setting, '') || E'\n';
    END LOOP;
    PERFORM set_config('role', 'none', true);
    RETURN everything;
END
$fn$;
SELECT is((SELECT string_agg(role, ', ' ORDER BY role) FROM t45_roles
           WHERE pg_temp.leaks(pg_temp.show_all_as(role)) OR pg_temp.show_all_as(role) ~ 'moneroo\.(secret_key|webhook_secret)='),
          NULL, 'SHOW ALL shows neither the key nor the webhook secret to any role');
SELECT ok((SELECT bool_and(pg_temp.show_all_as(role) ~ 'moneroo\.api_url=') FROM t45_roles),
          '(sanity) SHOW ALL as these roles does list the moneroo settings');

SELECT is((SELECT string_agg(role || ': ' || pg_temp.try_as('key pg_file_settings', role,
                 'SELECT count(*) FROM pg_file_settings'), ', ' ORDER BY role)
           FROM t45_roles),
          't45_nobody: 42501, t45_payouts_operator: 42501, t45_payouts_reader: 42501, t45_payouts_writer: 42501, t45_webhooks: 42501',
          'pg_file_settings (the raw postgresql.conf lines) is refused to every role (42501)');
SELECT is((SELECT string_agg(role || ': ' || pg_temp.try_as('key pg_read_file', role,
                 $$SELECT pg_read_file('postgresql.conf')$$), ', ' ORDER BY role)
           FROM t45_roles),
          't45_nobody: 42501, t45_payouts_operator: 42501, t45_payouts_reader: 42501, t45_payouts_writer: 42501, t45_webhooks: 42501',
          'pg_read_file(''postgresql.conf'') is refused to every role (42501)');

-- A pg_monitor member (pg_read_all_settings, pg_read_all_stats) sees a mask.
SELECT is(pg_temp.try_as('monitor show', 't45_monitor', 'SHOW moneroo.secret_key'), 'ok',
          'a pg_monitor member may SHOW moneroo.secret_key ...');
SELECT is(pg_temp.result_of('monitor show'), '********', '... and sees only the mask');
SELECT is(pg_temp.try_as('monitor current_setting', 't45_monitor', $$SELECT current_setting('moneroo.secret_key')$$),
          'ok', 'a pg_monitor member may call current_setting(''moneroo.secret_key'') ...');
SELECT is(pg_temp.result_of('monitor current_setting'), '********', '... and gets only the mask');
SELECT is(pg_temp.try_as('monitor pg_settings', 't45_monitor',
                         $$SELECT coalesce(string_agg(concat_ws(',', setting, reset_val, boot_val), ';'), '')
                           FROM pg_settings WHERE name LIKE 'moneroo.%'$$), 'ok',
          'a pg_monitor member may read pg_settings');
SELECT ok(NOT pg_temp.leaks(pg_temp.result_of('monitor pg_settings')),
          'pg_settings (setting, reset_val, boot_val) shows a pg_monitor member no secret');
SELECT ok(NOT pg_temp.leaks(pg_temp.show_all_as('t45_monitor')),
          'SHOW ALL shows a pg_monitor member no secret');
SELECT isnt(pg_temp.try_as('monitor pg_file_settings', 't45_monitor',
                           $$SELECT coalesce(string_agg(setting, ' '), '') FROM pg_file_settings WHERE name LIKE 'moneroo.%'$$),
            'ok', 'pg_file_settings is refused to a pg_monitor member');
SELECT is(pg_temp.try_as('monitor pg_read_file', 't45_monitor', $$SELECT pg_read_file('postgresql.conf')$$),
          '42501', 'pg_read_file(''postgresql.conf'') is refused to a pg_monitor member (42501)');
SELECT is(pg_temp.try_as('monitor auto.conf', 't45_monitor', $$SELECT pg_read_file('postgresql.auto.conf')$$),
          '42501', 'pg_read_file(''postgresql.auto.conf'') is refused to a pg_monitor member (42501)');

-- pg_stat_activity of the worker, sampled while it sends: what it is doing,
-- never the key.  A pg_monitor member sees the worker's query column.
CREATE FUNCTION pg_temp.sample_worker_activity(r text, samples int) RETURNS text[]
LANGUAGE plpgsql AS $fn$
DECLARE
    worker int := (SELECT worker_pid FROM moneroo_worker_info());
    seen text[] := '{}';
    q text;
BEGIN
    PERFORM set_config('role', r, true);
    FOR i IN 1 .. samples LOOP
        FOR q IN SELECT coalesce(a.query, '(null)') FROM pg_stat_activity a WHERE a.pid = worker LOOP
            IF NOT q = ANY (seen) THEN
                seen := seen || q;
            END IF;
        END LOOP;
        PERFORM pg_stat_clear_snapshot();
        PERFORM pg_sleep(0.01);
    END LOOP;
    PERFORM set_config('role', 'none', true);
    RETURN seen;
END
$fn$;
INSERT INTO payouts (request) SELECT pg_temp.req(a) FROM unnest(ARRAY['4149518161', '4149518162', '4149518161']) a;
SELECT pg_temp.sample_worker_activity('t45_monitor', 60) AS monitor_seen \gset
SELECT ok(cardinality(:'monitor_seen'::text[]) > 0
          AND NOT EXISTS (SELECT FROM unnest(:'monitor_seen'::text[]) q WHERE q LIKE '<insufficient privilege>%'),
          'a pg_monitor member sees the worker''s query in pg_stat_activity');
SELECT ok(NOT pg_temp.leaks(:'monitor_seen'), 'the worker''s pg_stat_activity row never shows the key');
SELECT is((SELECT count(*) FROM unnest(pg_temp.sample_worker_activity('t45_payouts_writer', 3)) q
           WHERE q <> '<insufficient privilege>'),
          0::bigint, 'a payouts_writer sees nothing of the worker''s activity');
SELECT ok(mock.wait_for(format('NOT EXISTS (SELECT FROM payouts WHERE id > %s AND status IN (''pending'', ''sending''))',
                               :start_id), 10),
          'the worker has sent everything queued so far');

-- Failed calls: their messages do not carry the key.
SELECT mock.faults('{"kind": "status", "status": 401}') \g /dev/null
SELECT is(pg_temp.try_as('writer transfer 401', 't45_payouts_writer',
                         format('SELECT (moneroo_transfer(%L::jsonb)).id', pg_temp.req('4149518161'))),
          '28000', 'a moneroo_transfer that Moneroo refuses with 401 fails with 28000');
SELECT mock.faults(jsonb_build_object('kind', 'status', 'status', 401, 'route', 'verify',
                                      'id', (SELECT moneroo_id FROM payouts WHERE id = :'sent_id'::bigint))) \g /dev/null
SELECT isnt(pg_temp.try_as('operator verify 401', 't45_payouts_operator',
                           format('SELECT (moneroo_verify(%s)).status', :'sent_id')),
            'ok', 'a moneroo_verify that Moneroo refuses with 401 fails');
-- Since 1.2 a refused key pauses every request until it may work again: a
-- reload says so (the next request tries the key).
SELECT pg_reload_conf(), pg_sleep(1) \g /dev/null
SELECT is((SELECT string_agg(label, ', ') FROM t45_outcomes
           WHERE pg_temp.leaks(concat_ws(' ', message, detail, hint, context, result))),
          NULL, 'no message, detail, hint, context or result of any attempt in this file carries the key');
SELECT is((SELECT count(*) FROM payouts p WHERE p.id > :start_id AND pg_temp.leaks(p::text)),
          0::bigint, 'no payouts row carries the key');
SELECT ok(NOT pg_temp.leaks((SELECT s::text FROM moneroo_status s)), 'moneroo_status does not carry the key');

-- ---------------------------------------------------------------- triggers

CREATE FUNCTION t45_probe.foreign_trigger() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_catalog.nextval('t45_probe.trigger_calls');
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        PERFORM pg_catalog.nextval('t45_probe.trigger_su_calls');
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$fn$;

SELECT is((SELECT string_agg(role || ': ' || pg_temp.try_as('create trigger', role,
                 'CREATE TRIGGER t45_mine BEFORE INSERT ON payouts FOR EACH ROW EXECUTE FUNCTION t45_probe.foreign_trigger()'),
                 ', ' ORDER BY role)
           FROM t45_roles),
          't45_nobody: 42501, t45_payouts_operator: 42501, t45_payouts_reader: 42501, t45_payouts_writer: 42501, t45_webhooks: 42501',
          'no role but the owner may CREATE TRIGGER on payouts (42501)');

-- A superuser puts one there anyway.  Its name sorts before payouts_guard.
CREATE TRIGGER aaa_t45_foreign BEFORE INSERT OR UPDATE OR DELETE ON payouts
    FOR EACH ROW EXECUTE FUNCTION t45_probe.foreign_trigger();
SELECT pg_temp.journal_seq() AS seq_before_trigger \gset
SELECT max(id) AS id_before_trigger FROM payouts \gset

SELECT is(pg_temp.try_as('trigger insert', 't45_payouts_writer',
                         format('INSERT INTO payouts (request) VALUES (%L) RETURNING id', pg_temp.req('4149518161'))),
          '42501', 'with a foreign trigger on payouts, an INSERT is refused (42501)');
SELECT matches(pg_temp.error_of('trigger insert'), 'aaa_t45_foreign',
               'the refusal of the INSERT names the trigger');
SELECT isnt(pg_temp.try_as('trigger transfer', 't45_payouts_writer',
                           format('SELECT (moneroo_transfer(%L::jsonb)).id', pg_temp.req('4149518161'))),
            'ok', 'with a foreign trigger on payouts, moneroo_transfer fails');
SELECT matches(pg_temp.error_of('trigger transfer'), 'aaa_t45_foreign',
               'the error of moneroo_transfer names the trigger');
SELECT is(pg_temp.try_as('trigger verify', 't45_payouts_operator',
                         format('SELECT (moneroo_verify(%s)).status', :'sent_id')),
          '42501', 'with a foreign trigger on payouts, moneroo_verify cannot write its result (42501)');
SELECT matches(pg_temp.error_of('trigger verify'), 'aaa_t45_foreign',
               'the error of moneroo_verify names the trigger');
SELECT is(pg_temp.initialize_posts_since(:seq_before_trigger), 0::bigint,
          'with a foreign trigger on payouts, nothing was POSTed to Moneroo');
SELECT is((SELECT count(*) FROM payouts WHERE id > :'id_before_trigger'::bigint), 0::bigint,
          'with a foreign trigger on payouts, no payout was recorded');
SELECT is(pg_temp.bumps('t45_probe.trigger_su_calls'), 0::bigint,
          'the foreign trigger never ran with the extension''s (the table owner''s, superuser) rights');
DROP TRIGGER aaa_t45_foreign ON payouts;

-- moneroo_state_counts is written as the owner by the statement that writes
-- the history: a trigger of anyone else's there is refused the same way.
SELECT pg_temp.bumps('t45_probe.trigger_calls') AS trigger_calls_before_counts \gset
CREATE TRIGGER aaa_t45_counts BEFORE INSERT ON moneroo_state_counts
    FOR EACH ROW EXECUTE FUNCTION t45_probe.foreign_trigger();
SELECT is(pg_temp.try_as('counts trigger insert', 't45_payouts_writer',
                         format('INSERT INTO payouts (request) VALUES (%L) RETURNING id', pg_temp.req('4149518161'))),
          '42501', 'with a foreign trigger on moneroo_state_counts, an INSERT into payouts is refused (42501)');
SELECT matches(pg_temp.error_of('counts trigger insert'), 'aaa_t45_counts',
               'the refusal names the trigger on moneroo_state_counts');
SELECT is(pg_temp.bumps('t45_probe.trigger_calls'), :'trigger_calls_before_counts'::bigint,
          'the trigger on moneroo_state_counts never ran');
SELECT is((SELECT count(*) FROM payouts WHERE id > :'id_before_trigger'::bigint), 0::bigint,
          'with a foreign trigger on moneroo_state_counts, no payout was recorded');
DROP TRIGGER aaa_t45_counts ON moneroo_state_counts;
SELECT is(pg_temp.try_as('after trigger transfer', 't45_payouts_writer',
                         format('SELECT (moneroo_transfer(%L::jsonb)).status', pg_temp.req('4149518161'))),
          'ok', 'once the trigger is dropped, moneroo_transfer works again');
SELECT is(pg_temp.result_of('after trigger transfer'), 'sent', '... and sends the payout');

-- ---------------------------------------------------------------- search_path
-- The attacker's schema: a fake payouts table, a fake method catalogue with
-- a method the real one does not know, and operators and functions with the
-- names the extension's statements use.  Each planted function reports to
-- the probe and, given superuser rights, makes its owner a superuser.

SET ROLE t45_mallory;
CREATE SCHEMA t45_evil;
CREATE TABLE t45_evil.payouts (
    id bigint, reference uuid, request jsonb, status text, moneroo_id text, moneroo_status text,
    attempts integer, last_error text, response jsonb, amount bigint, currency text, method text,
    created_at timestamptz, updated_at timestamptz, sent_at timestamptz, completed_at timestamptz,
    next_attempt_at timestamptz, verifications integer);
CREATE TABLE t45_evil.moneroo_payout_methods (
    code text, name text, currency text, country text, recipient_field text, dial_code text, documented boolean);
INSERT INTO t45_evil.moneroo_payout_methods VALUES
    ('t45_evil_method', 'Evil', 'USD', 'US', 'account_number', NULL, false);

CREATE FUNCTION t45_evil.probe(what text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_catalog.nextval('t45_probe.calls');
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        PERFORM pg_catalog.nextval('t45_probe.su_calls');
        INSERT INTO t45_probe.su_log VALUES (what, CURRENT_USER);
        BEGIN
            EXECUTE 'ALTER ROLE t45_mallory SUPERUSER';
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END IF;
END
$fn$;
CREATE FUNCTION t45_evil.texteq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS
    $fn$ BEGIN PERFORM t45_evil.probe('text = text'); RETURN a OPERATOR(pg_catalog.=) b; END $fn$;
CREATE FUNCTION t45_evil.int8eq(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS
    $fn$ BEGIN PERFORM t45_evil.probe('bigint = bigint'); RETURN a OPERATOR(pg_catalog.=) b; END $fn$;
CREATE FUNCTION t45_evil.int8ne(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS
    $fn$ BEGIN PERFORM t45_evil.probe('bigint <> bigint'); RETURN a OPERATOR(pg_catalog.<>) b; END $fn$;
CREATE FUNCTION t45_evil.uuideq(a uuid, b uuid) RETURNS boolean LANGUAGE plpgsql AS
    $fn$ BEGIN PERFORM t45_evil.probe('uuid = uuid'); RETURN a OPERATOR(pg_catalog.=) b; END $fn$;
CREATE FUNCTION t45_evil.textcat(a text, b text) RETURNS text LANGUAGE plpgsql AS
    $fn$ BEGIN PERFORM t45_evil.probe('text || text'); RETURN a OPERATOR(pg_catalog.||) b; END $fn$;
CREATE OPERATOR t45_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = t45_evil.texteq);
CREATE OPERATOR t45_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = t45_evil.int8eq);
CREATE OPERATOR t45_evil.<> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = t45_evil.int8ne);
CREATE OPERATOR t45_evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = t45_evil.uuideq);
CREATE OPERATOR t45_evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = t45_evil.textcat);
CREATE FUNCTION t45_evil.now() RETURNS timestamptz LANGUAGE plpgsql AS
    $fn$ BEGIN PERFORM t45_evil.probe('now()'); RETURN pg_catalog.now(); END $fn$;
CREATE FUNCTION t45_evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
    $fn$ BEGIN PERFORM t45_evil.probe('clock_timestamp()'); RETURN pg_catalog.clock_timestamp(); END $fn$;
CREATE FUNCTION t45_evil.gen_random_uuid() RETURNS uuid LANGUAGE plpgsql AS
    $fn$ BEGIN PERFORM t45_evil.probe('gen_random_uuid()'); RETURN pg_catalog.gen_random_uuid(); END $fn$;
-- and the names of the extension's own internals
CREATE FUNCTION t45_evil.moneroo_payouts_guard() RETURNS trigger LANGUAGE plpgsql AS
    $fn$ BEGIN PERFORM t45_evil.probe('moneroo_payouts_guard()'); RETURN NEW; END $fn$;
CREATE FUNCTION t45_evil.moneroo_validate(request jsonb) RETURNS void LANGUAGE plpgsql AS
    $fn$ BEGIN PERFORM t45_evil.probe('moneroo_validate()'); END $fn$;
RESET ROLE;

SELECT is(pg_temp.try_as('sp insert', 't45_mallory',
                         format('INSERT INTO public.payouts (request) VALUES (%L) RETURNING reference', pg_temp.req('4149518161')),
                         't45_evil, pg_catalog, public'),
          'ok', 'with the attacker''s schema first in search_path, an INSERT into payouts works');
SELECT is((SELECT count(*) FROM payouts WHERE reference = pg_temp.result_of('sp insert')::uuid), 1::bigint,
          '... and the row is in the extension''s payouts');
SELECT is(pg_temp.try_as('sp insert evil method', 't45_mallory',
                         format('INSERT INTO public.payouts (request) VALUES (%L) RETURNING reference',
                                pg_temp.req('4149518161') || '{"method": "t45_evil_method"}'),
                         't45_evil, pg_catalog, public'),
          '22023', 'a method only the attacker''s moneroo_payout_methods knows is refused (22023): the validator reads the real catalogue');
SELECT is(pg_temp.try_as('sp transfer', 't45_mallory',
                         format('SELECT (moneroo_transfer(%L::jsonb)).reference', pg_temp.req('4149518161')),
                         't45_evil, pg_catalog, public'),
          'ok', 'with the attacker''s schema first in search_path, moneroo_transfer works');
SELECT is((SELECT status FROM payouts WHERE reference = pg_temp.result_of('sp transfer')::uuid), 'sent',
          '... and its payout is recorded, sent, in the extension''s payouts');
SELECT is(pg_temp.try_as('sp transfer evil method', 't45_mallory',
                         format('SELECT (moneroo_transfer(%L::jsonb)).reference',
                                pg_temp.req('4149518161') || '{"method": "t45_evil_method"}'),
                         't45_evil, pg_catalog, public'),
          '22023', 'moneroo_transfer refuses the attacker''s method too (22023)');
SELECT (SELECT id FROM payouts WHERE reference = pg_temp.result_of('sp transfer')::uuid) AS sp_id \gset
SELECT is(pg_temp.try_as('sp verify', 't45_mallory', format('SELECT (moneroo_verify(%s)).status', :'sp_id'),
                         't45_evil, pg_catalog, public'),
          'ok', 'with the attacker''s schema first in search_path, moneroo_verify works');
SELECT is(pg_temp.try_as('sp retry', 't45_mallory', format('SELECT (moneroo_retry(%s)).status', :'sp_id'),
                         't45_evil, pg_catalog, public'),
          '55000', 'with the attacker''s schema first in search_path, moneroo_retry answers as usual (55000 for a sent payout)');
SELECT is((SELECT count(*) FROM t45_evil.payouts), 0::bigint, 'the attacker''s fake payouts table got nothing');
SELECT is(pg_temp.bumps('t45_probe.su_calls'), 0::bigint,
          'none of the attacker''s operators or functions ran with superuser rights');
SELECT is((SELECT string_agg(DISTINCT what, ', ') FROM t45_probe.su_log), NULL,
          'no planted object ran with superuser rights (the list of those that did)');
SELECT is(pg_temp.bumps('t45_probe.calls'), 0::bigint,
          'the extension called none of the attacker''s operators or functions at all');
SELECT ok(NOT (SELECT rolsuper FROM pg_roles WHERE rolname = 't45_mallory'),
          'the attacker is not a superuser at the end');

-- ---------------------------------------------------------------- pg_temp
-- Needs no privilege beyond TEMPORARY, which PUBLIC has: a domain named
-- uuid in pg_temp, whose check runs the attacker's function.  While it
-- exists, nothing else in this session runs.

SELECT setval('t45_probe.calls', 1, false), setval('t45_probe.su_calls', 1, false) \g /dev/null
DELETE FROM t45_probe.su_log;
SET ROLE t45_payouts_writer;
CREATE FUNCTION pg_temp.t45_probe_uuid(u pg_catalog.uuid) RETURNS boolean
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_catalog.nextval('t45_probe.calls');
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        PERFORM pg_catalog.nextval('t45_probe.su_calls');
    END IF;
    RETURN true;
END
$fn$;
CREATE DOMAIN pg_temp.uuid AS pg_catalog.uuid CHECK (pg_temp.t45_probe_uuid(VALUE));
CREATE DOMAIN pg_temp.int8 AS pg_catalog.int8 CHECK (pg_temp.t45_probe_uuid(NULL));
SELECT pg_temp.try_as('temp domain transfer', 't45_payouts_writer',
                      format('SELECT (moneroo_transfer(%L::jsonb)).status', pg_temp.req('4149518161'))) AS temp_domain_outcome \gset
DROP DOMAIN pg_temp.uuid;
DROP DOMAIN pg_temp.int8;
DROP FUNCTION pg_temp.t45_probe_uuid(pg_catalog.uuid);
RESET ROLE;
SELECT is(:'temp_domain_outcome' || ' ' || coalesce(pg_temp.result_of('temp domain transfer'), ''), 'ok sent',
          'with a pg_temp.uuid domain planted, moneroo_transfer still sends');
SELECT is(pg_temp.bumps('t45_probe.su_calls'), 0::bigint,
          'a domain planted in pg_temp never ran its check with superuser rights');
SELECT is(pg_temp.bumps('t45_probe.calls'), 0::bigint,
          'the extension''s statements did not pick up the pg_temp domain at all');

SELECT is(mock.stats() -> 'duplicate_references', '[]'::jsonb,
          'across the file, Moneroo never created two payouts with the same reference');

SELECT * FROM finish();

-- ---------------------------------------------------------------- clean up

RESET ROLE;
RESET search_path;
DROP SCHEMA t45_evil CASCADE;
DROP SCHEMA t45_probe CASCADE;
DO $$ BEGIN EXECUTE format('REVOKE CREATE ON DATABASE %I FROM t45_mallory', current_database()); END $$;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['t45_mallory', 't45_monitor', 't45_nobody', 't45_webhooks',
                             't45_payouts_operator', 't45_payouts_reader', 't45_payouts_writer'] LOOP
        EXECUTE format('DROP OWNED BY %I CASCADE', r);
        EXECUTE format('DROP ROLE %I', r);
    END LOOP;
END $$;
ALTER SYSTEM RESET moneroo.rate_limit;
ALTER SYSTEM RESET moneroo.verify_min_interval;
DO $$ BEGIN PERFORM pg_reload_conf(); END $$;
