-- 62_outcomes.sql: the application hears every outcome (1.3).
--   * moneroo_events_since: the events after an id, in id order, at most
--     max_events; only for roles that may read payout_events;
--   * moneroo_subscribe refuses a handler of the wrong signature (42883,
--     42804), an unknown status (22023), a name in use (42710), a role
--     without EXECUTE on the handler or SELECT on payouts (42501);
--   * the worker calls a handler once per matching event, in id order, as
--     the role that subscribed (never the extension's owner), and moves the
--     subscription's position; a status filter delivers only its statuses;
--   * a handler cannot switch roles; one that fails or runs past
--     moneroo.subscription_timeout is rolled back, its failures and error
--     shown, in moneroo_needs_attention after 3 in a row, and once fixed
--     every event is delivered once, in order;
--   * pause and resume; replay with from_event; only the subscriber
--     unsubscribes.
SET client_min_messages = warning;

SELECT plan(43);

-- What an earlier run left (its handlers would hold the extension's types).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 't62_app') THEN
        DELETE FROM moneroo_subscribers WHERE name IN ('all', 'finals', 'flaky', 'climber');
        DROP SCHEMA IF EXISTS t62 CASCADE;
        DROP OWNED BY t62_app, t62_other, t62_nobody;
        DROP ROLE t62_app, t62_other, t62_nobody;
    END IF;
END
$$;

CREATE FUNCTION pg_temp.req(amount int, tag text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT mock.payout_request('4149518161', 'outcomes ' || tag, amount, tag) $$;

ALTER SYSTEM SET moneroo.rate_limit = 0;
ALTER SYSTEM SET moneroo.verify_min_interval = '200ms';
ALTER SYSTEM SET moneroo.subscription_timeout = '500ms';
SELECT pg_reload_conf() AS reloaded \gset
SELECT mock.config('{"rate_limit": 0}') AS configured \gset
SELECT mock.clear_faults() AS cleared \gset
SELECT pg_sleep(0.3) AS slept \gset

CREATE ROLE t62_app;
CREATE ROLE t62_other;
CREATE ROLE t62_nobody;
CREATE SCHEMA t62 AUTHORIZATION t62_app;
GRANT USAGE ON SCHEMA public TO t62_app, t62_other, t62_nobody;
GRANT USAGE ON SCHEMA t62 TO t62_other, t62_nobody;
GRANT SELECT ON payouts, payout_events, moneroo_subscriptions TO t62_app, t62_other;
GRANT EXECUTE ON FUNCTION moneroo_events_since(bigint, integer),
    moneroo_subscribe(text, regprocedure, text[], bigint), moneroo_unsubscribe(text),
    moneroo_subscription_pause(text, boolean) TO t62_app, t62_other;
GRANT EXECUTE ON FUNCTION moneroo_events_since(bigint, integer) TO t62_nobody;

-- The application's tables and handlers, owned by t62_app.
SET ROLE t62_app;
CREATE TABLE t62.heard (sub text, event_id bigint, payout_id bigint, status text, reference uuid,
                        who name, n bigint GENERATED ALWAYS AS IDENTITY);
CREATE TABLE t62.switch (fail boolean, sleep float8);
INSERT INTO t62.switch VALUES (false, 0);
CREATE FUNCTION t62.all_events(event payout_events, payout payouts) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO t62.heard (sub, event_id, payout_id, status, reference, who)
    VALUES ('all', event.id, event.payout_id, event.status, payout.reference, current_user)
$$;
CREATE FUNCTION t62.finals(event payout_events, payout payouts) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO t62.heard (sub, event_id, payout_id, status, who)
    VALUES ('finals', event.id, event.payout_id, event.status, current_user)
$$;
CREATE FUNCTION t62.flaky(event payout_events, payout payouts) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO t62.heard (sub, event_id, payout_id, status, who)
    VALUES ('flaky', event.id, event.payout_id, event.status, current_user);
    PERFORM pg_sleep(sleep) FROM t62.switch;
    IF (SELECT fail FROM t62.switch) THEN
        RAISE EXCEPTION 'the shop is closed' USING ERRCODE = 'P0001';
    END IF;
END
$$;
CREATE FUNCTION t62.climber(event payout_events, payout payouts) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    SET SESSION AUTHORIZATION DEFAULT;
    INSERT INTO t62.heard (sub, event_id, who) VALUES ('climber', event.id, current_user);
END
$$;
CREATE FUNCTION t62.wrong_args(event payout_events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION t62.wrong_result(event payout_events, payout payouts) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION t62.private(event payout_events, payout payouts) RETURNS void LANGUAGE sql AS $$ SELECT $$;
REVOKE EXECUTE ON FUNCTION t62.private(payout_events, payouts) FROM PUBLIC;
GRANT INSERT, SELECT ON t62.heard TO t62_other;
RESET ROLE;

-- ---------------------------------------------------------------- errors
SET ROLE t62_app;
SELECT is(mock.error_of($$SELECT moneroo_subscribe('x', 't62.wrong_args(payout_events)')$$),
            '42883: function t62.wrong_args(payout_events) cannot handle payout events',
            'a handler with other arguments: 42883');
SELECT is(mock.error_of($$SELECT moneroo_subscribe('x', 't62.wrong_result(payout_events, payouts)')$$),
            '42804: handler t62.wrong_result(payout_events,payouts) must return void',
            'a handler that returns something: 42804');
SELECT is(mock.error_of($$SELECT moneroo_subscribe('x', 't62.all_events(payout_events, payouts)', '{success,paid}')$$),
            '22023: unknown payout status in statuses: ''paid''', 'an unknown status: 22023');
SELECT is(mock.error_of($$SELECT moneroo_subscribe('x', 't62.all_events(payout_events, payouts)', '{}')$$),
            '22023: statuses is empty', 'an empty list of statuses: 22023');
RESET ROLE;
SET ROLE t62_other;
SELECT is(mock.error_of($$SELECT moneroo_subscribe('x', 't62.private(payout_events, payouts)')$$),
            '42501: role "t62_other" may not execute t62.private(payout_events,payouts)',
            'a role without EXECUTE on the handler: 42501');
RESET ROLE;
SET ROLE t62_nobody;
SELECT is(mock.error_of($$SELECT moneroo_subscribe('x', 't62.all_events(payout_events, payouts)')$$),
            '42501: permission denied for function moneroo_subscribe', 'moneroo_subscribe is not granted to PUBLIC');
SELECT is(mock.error_of($$SELECT * FROM moneroo_events_since(0)$$),
            '42501: permission denied for table payout_events',
            'moneroo_events_since needs SELECT on payout_events');
RESET ROLE;
REVOKE SELECT ON payouts FROM t62_other;
SET ROLE t62_other;
SELECT is(mock.error_of($$SELECT moneroo_subscribe('x', 't62.all_events(payout_events, payouts)')$$),
            '42501: role "t62_other" may not read payouts', 'a role that may not read payouts: 42501');
RESET ROLE;
GRANT SELECT ON payouts TO t62_other;

-- ---------------------------------------------------------------- delivery
SET ROLE t62_app;
SELECT lives_ok($$SELECT moneroo_subscribe('all', 't62.all_events(payout_events, payouts)')$$,
                'the application subscribes a handler to every change');
SELECT lives_ok($$SELECT moneroo_subscribe('finals', 't62.finals(payout_events, payouts)', '{success,failed}')$$,
                'and one to success and failed only');
SELECT is(mock.error_of($$SELECT moneroo_subscribe('all', 't62.finals(payout_events, payouts)')$$),
            '42710: subscription "all" already exists', 'a name in use: 42710');
RESET ROLE;
SELECT is((SELECT position FROM moneroo_subscriptions WHERE name = 'all'),
          (SELECT coalesce(pg_sequence_last_value('payout_events_id_seq'), 0)),
          'a new subscription starts after the last event id given out');

SELECT coalesce(max(id), 0) AS before FROM payout_events \gset
INSERT INTO payouts (request, batch) SELECT pg_temp.req(i, 'one-' || i), 't62' FROM generate_series(1, 3) i;
SELECT ok(mock.wait_for($$(SELECT count(*) FROM payouts WHERE batch = 't62' AND status = 'success') = 3$$, 20),
          'three payouts reach success');
SELECT ok(mock.wait_for($$(SELECT count(*) FROM t62.heard WHERE sub = 'all') = 12
                          AND (SELECT events_behind FROM moneroo_subscriptions WHERE name = 'all') = 0$$, 20),
          'the handler heard 12 events (3 payouts x pending, sending, sent, success)');
SELECT is((SELECT array_agg(event_id ORDER BY n) FROM t62.heard WHERE sub = 'all'),
          (SELECT array_agg(e.id ORDER BY e.id) FROM payout_events e JOIN payouts p ON p.id = e.payout_id
           WHERE p.batch = 't62'),
          'each event once, in id order');
SELECT is((SELECT count(*) FROM t62.heard h JOIN payouts p ON p.id = h.payout_id
           WHERE h.sub = 'all' AND h.reference = p.reference), 12::bigint, 'with the payout''s row');
SELECT is((SELECT array_agg(DISTINCT who) FROM t62.heard), ARRAY['t62_app']::name[],
          'run as the role that subscribed, not as the extension''s owner');
SELECT ok(mock.wait_for($$(SELECT count(*) FROM t62.heard WHERE sub = 'finals') = 3$$, 10)
          AND (SELECT bool_and(status = 'success') FROM t62.heard WHERE sub = 'finals'),
          'the filtered subscription heard the 3 successes only');
SELECT is((SELECT position FROM moneroo_subscriptions WHERE name = 'all'),
          (SELECT max(event_id) FROM t62.heard WHERE sub = 'all'), 'the position is the last event delivered');
SELECT is((SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
           WHERE attrelid = 'moneroo_subscriptions'::regclass AND attnum > 0)::text[],
          ARRAY['name', 'handler', 'statuses', 'position', 'events_behind', 'seconds_behind', 'failures',
                'last_error', 'paused', 'subscriber', 'retry_at', 'delivered_at'],
          'moneroo_subscriptions shows name, handler, statuses, position, lag, failures, last_error, paused');

-- ---------------------------------------------------------------- events_since
SET ROLE t62_app;
SELECT is((SELECT array_agg(id) FROM moneroo_events_since(:before)),
          (SELECT array_agg(id ORDER BY id) FROM payout_events WHERE id > :before),
          'moneroo_events_since: every event after the id, in id order');
SELECT is((SELECT count(*) FROM moneroo_events_since(:before, 5)), 5::bigint, 'at most max_events');
SELECT is(mock.error_of($$SELECT * FROM moneroo_events_since(0, 0)$$), '22023: max_events must be positive',
            'max_events 0: 22023');
RESET ROLE;

-- ---------------------------------------------------------------- roles
SET ROLE t62_other;
SELECT is(mock.error_of($$SELECT moneroo_unsubscribe('all')$$),
            '42501: subscription "all" belongs to role "t62_app"', 'another role cannot unsubscribe it');
SELECT is(mock.error_of($$SELECT moneroo_subscription_pause('all', true)$$),
            '42501: subscription "all" belongs to role "t62_app"', 'nor pause it');
SELECT is(mock.error_of($$SELECT moneroo_unsubscribe('nope')$$),
            '42704: subscription "nope" does not exist', 'an unknown subscription: 42704');
SELECT lives_ok($$SELECT moneroo_subscribe('climber', 't62.climber(payout_events, payouts)')$$,
                'a role subscribes a handler that tries to become the session''s superuser');
RESET ROLE;
INSERT INTO payouts (request, batch) VALUES (pg_temp.req(4, 'climb'), 't62-climb');
SELECT ok(mock.wait_for($$(SELECT failures FROM moneroo_subscriptions WHERE name = 'climber') >= 1$$, 10),
          'its handler fails');
SELECT alike((SELECT last_error FROM moneroo_subscriptions WHERE name = 'climber'),
            '%cannot set parameter "session_authorization" within security-definer function%',
            'it cannot switch roles (SECURITY_LOCAL_USERID_CHANGE)');
SELECT is((SELECT count(*) FROM t62.heard WHERE sub = 'climber'), 0::bigint, 'and wrote nothing');
SET ROLE t62_other;
SELECT moneroo_unsubscribe('climber') AS gone \gset
RESET ROLE;

-- ---------------------------------------------------------------- failures, retries, replay
SELECT mock.wait_for($$(SELECT count(*) FROM payouts WHERE batch = 't62-climb' AND status = 'success') = 1$$, 10) AS settled \gset
SELECT coalesce(max(id), 0) AS start FROM payout_events \gset
UPDATE t62.switch SET fail = true;
SET ROLE t62_app;
SELECT lives_ok($$SELECT moneroo_subscribe('flaky', 't62.flaky(payout_events, payouts)')$$, 'a flaky handler subscribes');
RESET ROLE;
INSERT INTO payouts (request, batch) SELECT pg_temp.req(i, 'flaky-' || i), 't62-flaky' FROM generate_series(1, 2) i;
SELECT ok(mock.wait_for($$(SELECT failures FROM moneroo_subscriptions WHERE name = 'flaky') >= 3$$, 20),
          'a failing handler is retried (3 failures in a row)');
SELECT is((SELECT position FROM moneroo_subscriptions WHERE name = 'flaky'), :start::bigint,
          'its position stays before the event it fails on');
SELECT is((SELECT count(*) FROM t62.heard WHERE sub = 'flaky'), 0::bigint, 'what it wrote was rolled back');
SELECT ok((SELECT reason LIKE 'subscription flaky: its handler t62.flaky(%failed%' AND last_error = 'the shop is closed'
           FROM moneroo_needs_attention WHERE subscription = 'flaky'),
          'moneroo_needs_attention lists it with its error');
SELECT ok((SELECT retry_at > now() FROM moneroo_subscriptions WHERE name = 'flaky'), 'the next try waits');
UPDATE t62.switch SET sleep = 2, fail = false;
SELECT ok(mock.wait_for($$(SELECT last_error FROM moneroo_subscriptions WHERE name = 'flaky') LIKE '%statement timeout%'$$, 30),
          'a handler that runs past moneroo.subscription_timeout is cancelled');
UPDATE t62.switch SET sleep = 0;
SELECT moneroo_subscription_pause('flaky', true) AS paused \gset
SELECT moneroo_subscription_pause('flaky', false) AS resumed \gset
SELECT ok(mock.wait_for($$(SELECT count(*) FROM payouts WHERE batch = 't62-flaky' AND status = 'success') = 2
                          AND (SELECT events_behind FROM moneroo_subscriptions WHERE name = 'flaky') = 0$$, 20),
          'fixed and resumed, it catches up');
SELECT is((SELECT array_agg(event_id ORDER BY n) FROM t62.heard WHERE sub = 'flaky'),
          (SELECT array_agg(id ORDER BY id) FROM payout_events WHERE id > :start),
          'every event once, in order, none skipped');
SELECT is((SELECT count(*) FROM moneroo_needs_attention WHERE subscription = 'flaky'), 0::bigint,
          'and it leaves moneroo_needs_attention');

SET ROLE t62_app;
SELECT moneroo_unsubscribe('flaky') AS gone \gset
SELECT lives_ok(format($$SELECT moneroo_subscribe('flaky', 't62.flaky(payout_events, payouts)', NULL, %s)$$, :start + 1),
                'subscribed again from an earlier event (replay)');
RESET ROLE;
SELECT ok(mock.wait_for($$(SELECT events_behind FROM moneroo_subscriptions WHERE name = 'flaky') = 0$$, 20),
          'the replay catches up');
SELECT is((SELECT array_agg(event_id ORDER BY n) FROM t62.heard WHERE sub = 'flaky'),
          (SELECT array_agg(id ORDER BY round, id) FROM (SELECT 1 AS round, id FROM payout_events WHERE id > :start
                                                         UNION ALL SELECT 2, id FROM payout_events WHERE id > :start) x),
          'it delivered those events once more, in order');

SELECT * FROM finish();

-- Nothing left behind: a handler depends on the extension's types.
SET client_min_messages = warning;
SELECT count(moneroo_unsubscribe(name)) AS gone FROM moneroo_subscriptions WHERE name IN ('all', 'finals', 'flaky') \gset
DROP SCHEMA t62 CASCADE;
DROP OWNED BY t62_app, t62_other, t62_nobody;
DROP ROLE t62_app, t62_other, t62_nobody;
