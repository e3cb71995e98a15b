#!/usr/bin/env bash
# Proves: moneroo_webhook accepts only deliveries signed with the secret [fast, ~5 s].
# test/security/45_webhook_signed.sh: moneroo_webhook with a signing secret.
#
# moneroo.webhook_secret is restart-only, so this script appends it (a
# distinctive random value) to postgresql.conf and restarts; test/run.sh
# puts the original postgresql.conf back afterwards.  Then a pgTAP run (one
# psql session, TAP on stdout) checks the README's Webhooks section:
#
#   - a valid delivery settles its payout by asking Moneroo (the mock's
#     journal shows the GET .../verify), and Moneroo's verify answer wins
#     over the body: "payout.success" for a payout Moneroo reports failed
#     ends failed; for one Moneroo still reports pending, it stays sent;
#   - a duplicate delivery for a settled payout, or an old event replayed
#     after it, moves nothing and asks Moneroo nothing;
#   - 28000 for a signature made with the wrong secret, a tampered body, a
#     truncated, uppercase, empty, missing or prefixed signature (and the
#     signature is checked before the body is even parsed);
#   - 22023 for a body that is not JSON, not a payout event, or has no data.id;
#   - P0002 for a Moneroo id no payout carries;
#   - a verification that fails leaves the payout alone and raises an error
#     that makes the receiver answer 500 (so that Moneroo retries);
#   - the README's webhooks role may settle payouts and nothing else; it
#     cannot read the secret, a pg_monitor member sees a mask; a webhooks
#     role with its own schema first in search_path cannot make the
#     extension run its operators with the extension's rights;
#   - the secret is restart-only: a reload does not change it;
#   - no error message carries the secret or the expected signature, and the
#     server log never contains the secret.
# The expected signatures are computed with pgcrypto's hmac() (in a schema
# created and dropped here), cross-checked once against openssl.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and
# cluster.sh functions it exports.
set -uo pipefail

# shellcheck source=test/lib/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"

# Not exported: the server's environment must not carry it either.
WEBHOOK_SECRET="whsec_t45w_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

cluster_conf_append "" "# ---- 45_webhook_signed.sh ----" \
    "moneroo.webhook_secret = '$WEBHOOK_SECRET'" \
    "moneroo.rate_limit = 0" \
    "moneroo.verify_min_interval = '10min'" || bail "cannot append to postgresql.conf"
cluster_restart >&2 || bail "the server does not restart with moneroo.webhook_secret set"
for _ in $(seq 1 100); do
    cluster_psql -At -c "SELECT worker_running FROM moneroo_worker_info()" 2>/dev/null | grep -qx t && break
    sleep 0.1
done
# Sent payouts left by earlier tests were scheduled under the old intervals;
# their verifications must not land in this script's journal windows.
cluster_psql -q -c "SET session_replication_role = replica" \
    -c "UPDATE payouts SET next_attempt_at = now() + interval '1 hour' WHERE status = 'sent'" >&2 ||
    bail "cannot postpone earlier tests' verifications"
sleep 0.5
mock_ctl POST /__mock/reset '{}' >/dev/null || bail "cannot reset the mock"
mock_ctl POST /__mock/config '{"rate_limit": 0}' >/dev/null || bail "cannot configure the mock"

# One signature computed outside PostgreSQL, for a payout nobody has: the
# function must accept it (and then answer P0002).
# (Since 1.3 a delivery for an id asked about in the last 10 s asks nothing and
# is answered 53400: each check of an answer from Moneroo has an id of its own.)
OSSL_BODY='{"event": "payout.failed", "data": {"id": "t45wnosuchossl"}}'
OSSL_SIG=$(printf '%s' "$OSSL_BODY" | openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" -r | cut -d' ' -f1)
[[ $OSSL_SIG =~ ^[0-9a-f]{64}$ ]] || bail "openssl did not compute an HMAC"
RELOAD_BODY='{"event": "payout.failed", "data": {"id": "t45wnosuchreload"}}'
RELOAD_SIG=$(printf '%s' "$RELOAD_BODY" | openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" -r | cut -d' ' -f1)

cluster_psql -q -t -A -v ON_ERROR_STOP=1 -v ossl_body="$OSSL_BODY" -v ossl_sig="$OSSL_SIG" \
    -v reload_body="$RELOAD_BODY" -v reload_sig="$RELOAD_SIG" <<'SQL'
SET client_min_messages = warning;
SELECT plan(67);

CREATE SCHEMA t45w_crypto;
CREATE EXTENSION pgcrypto SCHEMA t45w_crypto;

-- ---------------------------------------------------------------- helpers

CREATE FUNCTION pg_temp.req(account text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $fn$ SELECT mock.payout_request(to_jsonb(account), 'script 45_webhook_signed') $fn$;

-- X-Moneroo-Signature as Moneroo computes it: lowercase hex HMAC-SHA256 of
-- the raw body with the signing secret.
CREATE FUNCTION pg_temp.sig(body text, secret text DEFAULT current_setting('moneroo.webhook_secret'))
RETURNS text LANGUAGE sql STABLE AS $fn$
    SELECT encode(t45w_crypto.hmac(convert_to(body, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'), 'hex')
$fn$;

CREATE FUNCTION pg_temp.event(kind text, moneroo_id text) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT format('{"event": "%s", "data": {"id": "%s", "status": "%s", "amount": 500, "currency": "USD"}}',
                  kind, moneroo_id, split_part(kind, '.', 2))
$fn$;

CREATE FUNCTION pg_temp.journal_seq() RETURNS bigint
LANGUAGE sql VOLATILE AS $fn$
    SELECT coalesce(max((j ->> 'seq')::bigint), 0) FROM mock.journal() j
$fn$;

-- One row per delivery: what it raised or returned, and what reached Moneroo.
CREATE TEMP TABLE t45w_calls (
    n serial PRIMARY KEY, label text UNIQUE, role text,
    sqlstate text, message text, detail text, hint text,
    status text, moneroo_status text, requests text
);
GRANT ALL ON t45w_calls TO PUBLIC;
GRANT ALL ON SEQUENCE t45w_calls_n_seq TO PUBLIC;

-- deliver(label, body, signature [, role [, search_path]]): call
-- moneroo_webhook, catch any error; return 'ok' or the SQLSTATE.
CREATE FUNCTION pg_temp.deliver(label text, body text, signature text,
                                r text DEFAULT NULL, path text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    seq0 bigint := pg_temp.journal_seq();
    old_path text := current_setting('search_path');
    c t45w_calls;
    res text;
BEGIN
    c.label := label;
    c.role := coalesce(r, current_user);
    BEGIN
        IF r IS NOT NULL THEN
            PERFORM set_config('role', r, true);
        END IF;
        IF path IS NOT NULL THEN
            PERFORM set_config('search_path', path, true);
        END IF;
        -- the row as text: no operator of a planted schema is needed to read it
        EXECUTE 'SELECT moneroo_webhook($1, $2)::text' INTO res USING body, signature;
        PERFORM set_config('search_path', old_path, true);
        PERFORM set_config('role', 'none', true);
        c.status := (res::payouts).status;
        c.moneroo_status := (res::payouts).moneroo_status;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS c.sqlstate = RETURNED_SQLSTATE, c.message = MESSAGE_TEXT,
                                c.detail = PG_EXCEPTION_DETAIL, c.hint = PG_EXCEPTION_HINT;
    END;
    c.requests := (SELECT coalesce(string_agg((j ->> 'method') || ' ' || (j ->> 'path'), ', '), '')
                   FROM mock.journal(seq0) j);
    INSERT INTO t45w_calls (label, role, sqlstate, message, detail, hint, status, moneroo_status, requests)
    VALUES (c.label, c.role, c.sqlstate, c.message, c.detail, c.hint, c.status, c.moneroo_status, c.requests);
    RETURN coalesce(c.sqlstate, 'ok');
END
$fn$;

CREATE FUNCTION pg_temp.requests_of(l text) RETURNS text
LANGUAGE sql AS $fn$ SELECT requests FROM t45w_calls WHERE label = l $fn$;
CREATE FUNCTION pg_temp.returned(l text) RETURNS text
LANGUAGE sql AS $fn$ SELECT coalesce(sqlstate, status || '/' || moneroo_status) FROM t45w_calls WHERE label = l $fn$;

-- ---------------------------------------------------------------- payouts
-- Sent through the worker; Moneroo's (the mock's) status is then forced, so
-- that each verification has a known answer.  The worker leaves them alone
-- (verify_min_interval = 10min): only deliveries verify here.

CREATE TEMP TABLE t45w_payouts (name text PRIMARY KEY, id bigint, moneroo_id text);
WITH t AS MATERIALIZED (
    SELECT name, moneroo_transfer(pg_temp.req('4149518163')) AS p
    FROM unnest(ARRAY['success', 'failed', 'pending', 'verify_fails', 'role', 'attack']) AS name)
INSERT INTO t45w_payouts SELECT name, (p).id, (p).moneroo_id FROM t;
SELECT mock.set_status(moneroo_id,
                       CASE name WHEN 'failed' THEN 'failed' WHEN 'pending' THEN 'pending'
                                 WHEN 'verify_fails' THEN 'pending' ELSE 'success' END)
FROM t45w_payouts \g /dev/null

-- From here on only deliveries verify: the database's worker is stopped
-- (moneroo.database names another database), so that none of its own
-- requests, for these payouts or for earlier tests', falls in a delivery's
-- journal window or changes a payout a check reads.  (Reset at the end, and
-- by the shell after this session whatever happened.)
ALTER SYSTEM SET moneroo.database = 'postgres';
SELECT pg_reload_conf() \g /dev/null
SELECT mock.wait_for($$ NOT (SELECT worker_running FROM moneroo_worker_info()) $$, 20) AS worker_stopped \gset
SELECT ok(:'worker_stopped', 'the database''s worker stops for the deliveries (moneroo.database elsewhere)');

CREATE FUNCTION pg_temp.mid(n text) RETURNS text
LANGUAGE sql AS $fn$ SELECT moneroo_id FROM t45w_payouts WHERE name = n $fn$;
CREATE FUNCTION pg_temp.row_status(n text) RETURNS text
LANGUAGE sql AS $fn$
    SELECT p.status || '/' || coalesce(p.moneroo_status, '-') FROM payouts p JOIN t45w_payouts t USING (id) WHERE t.name = n
$fn$;

SELECT is((SELECT string_agg(pg_temp.row_status(name), ' ' ORDER BY name) FROM t45w_payouts),
          'sent/initiated sent/initiated sent/initiated sent/initiated sent/initiated sent/initiated',
          '(setup) six payouts are sent and not yet verified');
SELECT isnt(current_setting('moneroo.webhook_secret'), '', '(setup) moneroo.webhook_secret is set');

-- ---------------------------------------------------------------- valid deliveries

SELECT is(pg_temp.deliver('valid', pg_temp.event('payout.success', pg_temp.mid('success')),
                          pg_temp.sig(pg_temp.event('payout.success', pg_temp.mid('success')))),
          'ok', 'a correctly signed payout.success delivery is accepted');
SELECT is(pg_temp.returned('valid'), 'success/success', '... and returns the payout, settled: success');
SELECT is(pg_temp.requests_of('valid'), format('GET /v1/payouts/%s/verify', pg_temp.mid('success')),
          '... after asking Moneroo once (GET /v1/payouts/{id}/verify), and nothing else');
SELECT is(pg_temp.row_status('success'), 'success/success', '... and the payouts row is success');
SELECT ok((SELECT completed_at IS NOT NULL FROM payouts WHERE id = (SELECT id FROM t45w_payouts WHERE name = 'success')),
          '... with completed_at set');

SELECT is(pg_temp.deliver('body lies', pg_temp.event('payout.success', pg_temp.mid('failed')),
                          pg_temp.sig(pg_temp.event('payout.success', pg_temp.mid('failed')))),
          'ok', 'a correctly signed payout.success for a payout Moneroo reports failed is accepted');
SELECT is(pg_temp.returned('body lies'), 'failed/failed', '... and Moneroo''s verify answer wins: the payout is failed');
SELECT is(pg_temp.requests_of('body lies'), format('GET /v1/payouts/%s/verify', pg_temp.mid('failed')),
          '... Moneroo was asked (GET .../verify)');
SELECT is(pg_temp.row_status('failed'), 'failed/failed', '... and the payouts row is failed, not success');

SELECT is(pg_temp.deliver('still pending', pg_temp.event('payout.success', pg_temp.mid('pending')),
                          pg_temp.sig(pg_temp.event('payout.success', pg_temp.mid('pending')))),
          'ok', 'a correctly signed payout.success for a payout Moneroo still reports pending is accepted');
SELECT is(pg_temp.row_status('pending'), 'sent/pending',
          '... and the payout stays sent (Moneroo says pending), whatever the body says');
SELECT is(pg_temp.requests_of('still pending'), format('GET /v1/payouts/%s/verify', pg_temp.mid('pending')),
          '... Moneroo was asked (GET .../verify)');

SELECT is(pg_temp.deliver('openssl', :'ossl_body', :'ossl_sig'), 'P0002',
          'a signature computed by openssl is accepted (P0002: no payout carries that id), so the test''s HMAC is Moneroo''s');

-- ---------------------------------------------------------------- duplicates and replays

SELECT is(pg_temp.deliver('duplicate', pg_temp.event('payout.success', pg_temp.mid('success')),
                          pg_temp.sig(pg_temp.event('payout.success', pg_temp.mid('success')))),
          'ok', 'a duplicate delivery for a settled payout is accepted');
SELECT is(pg_temp.returned('duplicate'), 'success/success', '... returns the payout as it is');
SELECT is(pg_temp.requests_of('duplicate'), '', '... and asks Moneroo nothing');
SELECT is(pg_temp.deliver('replay pending', pg_temp.event('payout.pending', pg_temp.mid('success')),
                          pg_temp.sig(pg_temp.event('payout.pending', pg_temp.mid('success')))),
          'ok', 'an old payout.pending event replayed after success is accepted');
SELECT is(pg_temp.row_status('success'), 'success/success', '... and does not move the payout backwards');
SELECT is(pg_temp.requests_of('replay pending'), '', '... nor ask Moneroo anything');
SELECT is(pg_temp.deliver('replay failed', pg_temp.event('payout.success', pg_temp.mid('failed')),
                          pg_temp.sig(pg_temp.event('payout.success', pg_temp.mid('failed')))),
          'ok', 'the payout.success delivery for the failed payout, delivered again, is accepted');
SELECT is(pg_temp.row_status('failed') || ' ' || pg_temp.requests_of('replay failed'), 'failed/failed ',
          '... leaves it failed and asks Moneroo nothing');

-- ---------------------------------------------------------------- bad signatures: 28000

SELECT pg_temp.event('payout.success', pg_temp.mid('pending')) AS body \gset
SELECT pg_temp.sig(:'body') AS good \gset

SELECT is(pg_temp.deliver('wrong secret', :'body', pg_temp.sig(:'body', 'not-the-webhook-secret')), '28000',
          'a signature made with another secret is refused with 28000');
SELECT is(pg_temp.deliver('tampered', replace(:'body', '"status": "success"', '"status": "success" '), :'good'), '28000',
          'a body changed after signing (one space) is refused with 28000');
SELECT is(pg_temp.deliver('tampered id', pg_temp.event('payout.success', pg_temp.mid('role')), :'good'), '28000',
          'a body pointing at another payout, with the first body''s signature, is refused with 28000');
SELECT is(pg_temp.deliver('truncated', :'body', left(:'good', 63)), '28000',
          'a truncated signature (63 hex digits) is refused with 28000');
SELECT is(pg_temp.deliver('half', :'body', left(:'good', 32)), '28000',
          'a half signature (32 hex digits) is refused with 28000');
SELECT is(pg_temp.deliver('longer', :'body', :'good' || '0'), '28000',
          'the signature with one digit more is refused with 28000');
SELECT is(pg_temp.deliver('uppercase', :'body', upper(:'good')), '28000',
          'the right signature in uppercase hex is refused with 28000 (lowercase only)');
SELECT is(pg_temp.deliver('prefixed', :'body', 'sha256=' || :'good'), '28000',
          'the right signature with a "sha256=" prefix is refused with 28000');
SELECT is(pg_temp.deliver('empty', :'body', ''), '28000', 'an empty signature header is refused with 28000');
SELECT is(pg_temp.deliver('missing', :'body', NULL), '28000', 'a missing signature (NULL) is refused with 28000');
SELECT is(pg_temp.deliver('bad sig, bad body', 'not JSON at all', repeat('0', 64)), '28000',
          'a bad signature on a body that is not JSON gets 28000: the signature is checked first');
SELECT is((SELECT string_agg(label || ': ' || requests, '; ') FROM t45w_calls WHERE sqlstate = '28000' AND requests <> ''),
          NULL, 'no delivery refused for its signature asked anything of Moneroo');
SELECT is(pg_temp.row_status('pending'), 'sent/pending', 'the payout those deliveries were about did not move');
SELECT ok((SELECT bool_and(hint <> '' AND message <> '') FROM t45w_calls WHERE sqlstate = '28000'),
          'every 28000 refusal has a message and a hint');

-- ---------------------------------------------------------------- bad bodies: 22023, unknown: P0002

SELECT is(pg_temp.deliver('not json', 'not JSON at all', pg_temp.sig('not JSON at all')), '22023',
          'a signed body that is not JSON is refused with 22023');
SELECT is(pg_temp.deliver('array', '[1, 2]', pg_temp.sig('[1, 2]')), '22023',
          'a signed JSON array is refused with 22023');
SELECT is(pg_temp.deliver('not payout', pg_temp.event('payment.success', pg_temp.mid('pending')),
                          pg_temp.sig(pg_temp.event('payment.success', pg_temp.mid('pending')))), '22023',
          'a signed payment.success event (not a payout event) is refused with 22023');
SELECT is(pg_temp.deliver('no event', format('{"data": {"id": "%s"}}', pg_temp.mid('pending')),
                          pg_temp.sig(format('{"data": {"id": "%s"}}', pg_temp.mid('pending')))), '22023',
          'a signed body without "event" is refused with 22023');
SELECT is(pg_temp.deliver('no data', '{"event": "payout.success"}', pg_temp.sig('{"event": "payout.success"}')), '22023',
          'a signed payout event without data is refused with 22023');
SELECT is(pg_temp.deliver('no id', '{"event": "payout.success", "data": {}}',
                          pg_temp.sig('{"event": "payout.success", "data": {}}')), '22023',
          'a signed payout event without data.id is refused with 22023');
SELECT is(pg_temp.deliver('numeric id', '{"event": "payout.success", "data": {"id": 42}}',
                          pg_temp.sig('{"event": "payout.success", "data": {"id": 42}}')), '22023',
          'a signed payout event whose data.id is not a string is refused with 22023');
SELECT is(pg_temp.deliver('unknown id', pg_temp.event('payout.success', 't45wnosuchpayout'),
                          pg_temp.sig(pg_temp.event('payout.success', 't45wnosuchpayout'))), 'P0002',
          'a signed event for a Moneroo id no payout carries is refused with P0002');
-- The same signed delivery, again and again (a replay): since 1.3 it asks
-- Moneroo nothing more for 10 s and is answered 53400 (the receiver answers
-- 503: a delivery of Moneroo's own comes again later).
SELECT is((SELECT string_agg(DISTINCT pg_temp.deliver('unknown id #' || i, pg_temp.event('payout.failed', 't45wnosuchpayout'),
                                                      pg_temp.sig(pg_temp.event('payout.failed', 't45wnosuchpayout'))), ', ')
           FROM generate_series(1, 25) i),
          '53400', 'the same signed delivery for an unknown id, 25 times within 10 s: 53400 every time (never 22023)');
SELECT is((SELECT string_agg(label || ': ' || requests, '; ') FROM t45w_calls
           WHERE sqlstate = '22023' AND requests <> ''),
          NULL, 'no delivery refused for its body asked anything of Moneroo');
-- Since 1.2 an id no row carries may be an unknown payout's: Moneroo is asked,
-- and its 404 is what makes the answer P0002; since 1.3 only once in 10 s.
-- (The worker's own requests of the same moments, for payouts of other
-- tests, are not the deliveries': only those of this id count.)
SELECT is((SELECT string_agg(c.label || ': ' || f.requests, '; ' ORDER BY c.n)
           FROM t45w_calls c,
                LATERAL (SELECT coalesce(string_agg(r, ', '), '') AS requests
                         FROM unnest(string_to_array(c.requests, ', ')) AS r
                         WHERE r LIKE '%t45wnosuchpayout%') AS f
           WHERE c.label LIKE 'unknown id%' AND f.requests <> ''),
          'unknown id: GET /v1/payouts/t45wnosuchpayout/verify',
          'the first delivery for an id no payout carries asked Moneroo one verify of that id, its replays nothing');

-- ---------------------------------------------------------------- Moneroo cannot answer

-- The worker must not verify this payout on its own meanwhile: it is put
-- out of its schedule for the check (superuser, triggers off).
SET session_replication_role = replica;
UPDATE payouts SET next_attempt_at = now() + interval '1 hour'
WHERE id = (SELECT id FROM t45w_payouts WHERE name = 'verify_fails');
RESET session_replication_role;
SELECT mock.faults(jsonb_build_object('kind', 'status', 'status', 500, 'route', 'verify',
                                      'id', pg_temp.mid('verify_fails'))) \g /dev/null
SELECT isnt(pg_temp.deliver('verify fails', pg_temp.event('payout.success', pg_temp.mid('verify_fails')),
                            pg_temp.sig(pg_temp.event('payout.success', pg_temp.mid('verify_fails')))), 'ok',
            'when Moneroo''s verify answers 500, the delivery fails');
SELECT ok((SELECT sqlstate NOT IN ('28000', '22023', 'P0002') FROM t45w_calls WHERE label = 'verify fails'),
          '... with an error the README''s receiver answers with 500, so that Moneroo delivers again');
SELECT is(pg_temp.row_status('verify_fails'), 'sent/initiated', '... and the payout is unchanged');
SELECT is(pg_temp.deliver('verify fails, again', pg_temp.event('payout.success', pg_temp.mid('verify_fails')),
                          pg_temp.sig(pg_temp.event('payout.success', pg_temp.mid('verify_fails')))), 'ok',
          'Moneroo''s next delivery of the same event, once verify answers, is accepted');
SELECT is(pg_temp.row_status('verify_fails'), 'sent/pending', '... and records Moneroo''s answer (pending)');

-- ---------------------------------------------------------------- roles

CREATE ROLE t45w_webhooks;            -- the README's webhook receiver, verbatim
GRANT USAGE ON SCHEMA public TO t45w_webhooks;
GRANT EXECUTE ON FUNCTION moneroo_webhook(text, text) TO t45w_webhooks;
CREATE ROLE t45w_monitor IN ROLE pg_monitor;
CREATE ROLE t45w_mallory IN ROLE t45w_webhooks;
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO t45w_mallory', current_database()); END $$;

SELECT is(pg_temp.deliver('as webhooks', pg_temp.event('payout.success', pg_temp.mid('role')),
                          pg_temp.sig(pg_temp.event('payout.success', pg_temp.mid('role'))), 't45w_webhooks'),
          'ok', 'the webhooks role (EXECUTE on moneroo_webhook only) may deliver');
SELECT is(pg_temp.row_status('role'), 'success/success', '... and its delivery settles the payout');
SELECT is(pg_temp.deliver('as webhooks, bad', pg_temp.event('payout.success', pg_temp.mid('role')),
                          upper(pg_temp.sig(pg_temp.event('payout.success', pg_temp.mid('role')))), 't45w_webhooks'),
          '28000', 'the webhooks role gets 28000 for a bad signature like anyone');

CREATE FUNCTION pg_temp.setting_as(r text, name text, OUT state text, OUT value text)
LANGUAGE plpgsql AS $fn$
BEGIN
    BEGIN
        PERFORM set_config('role', r, true);
        value := current_setting(name);
        PERFORM set_config('role', 'none', true);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
    END;
END
$fn$;
SELECT is((pg_temp.setting_as('t45w_webhooks', 'moneroo.webhook_secret')).state, '42501',
          'the webhooks role cannot read moneroo.webhook_secret (42501)');
SELECT is((pg_temp.setting_as('t45w_monitor', 'moneroo.webhook_secret')).value, '********',
          'a pg_monitor member sees moneroo.webhook_secret as a mask');
SELECT is((SELECT count(*) FROM pg_settings WHERE name = 'moneroo.webhook_secret'), 0::bigint,
          'moneroo.webhook_secret is not listed in pg_settings');

-- search_path: the webhooks role creates a schema whose = operator on text
-- (the one the lookup by Moneroo id uses) reports with what rights it ran.
CREATE SEQUENCE public.t45w_su_calls;
GRANT USAGE ON SEQUENCE public.t45w_su_calls TO PUBLIC;
SET ROLE t45w_mallory;
CREATE SCHEMA t45w_evil;
CREATE FUNCTION t45w_evil.texteq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $fn$
BEGIN
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        PERFORM pg_catalog.nextval('public.t45w_su_calls');
    END IF;
    RETURN a OPERATOR(pg_catalog.=) b;
END $fn$;
CREATE OPERATOR t45w_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = t45w_evil.texteq);
CREATE FUNCTION t45w_evil.int8eq(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $fn$
BEGIN
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        PERFORM pg_catalog.nextval('public.t45w_su_calls');
    END IF;
    RETURN a OPERATOR(pg_catalog.=) b;
END $fn$;
CREATE OPERATOR t45w_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = t45w_evil.int8eq);
RESET ROLE;

SELECT is(pg_temp.deliver('search_path', pg_temp.event('payout.success', pg_temp.mid('attack')),
                          pg_temp.sig(pg_temp.event('payout.success', pg_temp.mid('attack'))),
                          't45w_mallory', 't45w_evil, pg_catalog, public'),
          'ok', 'a webhooks role with its own schema first in search_path may deliver');
SELECT is(pg_temp.row_status('attack'), 'success/success', '... and the payout is settled');
SELECT is((SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.t45w_su_calls), 0::bigint,
          '... but its operators never ran with the extension''s (superuser) rights');

-- ---------------------------------------------------------------- restart-only

ALTER SYSTEM SET moneroo.webhook_secret = 't45w-reloaded-secret';
SELECT pg_reload_conf() \g /dev/null
SELECT pg_sleep(0.3) \g /dev/null
SELECT is(pg_temp.deliver('after reload, old secret', :'reload_body', :'reload_sig'), 'P0002',
          'after ALTER SYSTEM SET moneroo.webhook_secret and a reload, the old secret still signs (restart-only)');
SELECT is(pg_temp.deliver('after reload, new secret', :'ossl_body', pg_temp.sig(:'ossl_body', 't45w-reloaded-secret')),
          '28000', '... and the new one does not, until a restart');
ALTER SYSTEM RESET moneroo.webhook_secret;
SELECT pg_reload_conf() \g /dev/null

-- ---------------------------------------------------------------- nothing leaks

SELECT is((SELECT string_agg(label, ', ') FROM t45w_calls
           WHERE position(current_setting('moneroo.webhook_secret') IN concat_ws(' ', message, detail, hint)) > 0
              OR position(pg_temp.sig(:'body') IN concat_ws(' ', message, detail, hint)) > 0),
          NULL, 'no error carries the secret or the expected signature');
SELECT is(position(current_setting('moneroo.webhook_secret')
                   IN pg_read_file(current_setting('moneroo_test.server_log'))), 0,
          'the server log does not contain the webhook secret');

ALTER SYSTEM RESET moneroo.database;
SELECT pg_reload_conf() \g /dev/null
SELECT * FROM finish();

-- ---------------------------------------------------------------- clean up
RESET ROLE;
DROP SCHEMA t45w_evil CASCADE;
DROP SEQUENCE public.t45w_su_calls;
DO $$ BEGIN EXECUTE format('REVOKE CREATE ON DATABASE %I FROM t45w_mallory', current_database()); END $$;
DROP OWNED BY t45w_mallory, t45w_monitor, t45w_webhooks CASCADE;
DROP ROLE t45w_mallory;
DROP ROLE t45w_monitor;
DROP ROLE t45w_webhooks;
DROP SCHEMA t45w_crypto CASCADE;
SQL
rc=$?
cluster_psql -q -c "ALTER SYSTEM RESET moneroo.database" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1 || true
exit $rc
