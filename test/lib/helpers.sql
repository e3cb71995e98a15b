-- test/lib/helpers.sql: schema "mock", SQL access to the Moneroo API mock.
--
-- Run once by test/run.sh in database moneroo_test, after CREATE EXTENSION
-- pgtap and moneroo.  The functions shell out to curl through
-- COPY ... FROM PROGRAM, so only a superuser (or pg_execute_server_program)
-- can call them; the mock's address comes from the setting
-- moneroo_test.mock_url (written to postgresql.conf by test/lib/cluster.sh).
--
--   mock.call(method, path [, body jsonb [, headers jsonb]]) -> jsonb
--       one HTTP call; the answer's body parsed as JSON (NULL when empty),
--       whatever the HTTP status.
--   mock.http(method, path [, body jsonb [, headers jsonb]]) -> (status, body)
--       the same with the HTTP status and the raw body text.
--   mock.reset(), mock.config(jsonb), mock.faults(jsonb)
--       POST /__mock/reset, /__mock/config, /__mock/faults; raise an error
--       unless the mock answers 2xx.
--   mock.clear_faults(), mock.set_status(payout_id, status)
--       DELETE /__mock/faults, POST /__mock/set_status
--   mock.journal([since]) -> SETOF jsonb   the API requests the mock received,
--       in order (entries with "seq" > since)
--   mock.sent_time(tag) -> float8   when the first initialize request for the
--       payout whose metadata.case is tag arrived (epoch), or NULL
--   mock.payouts() -> SETOF jsonb   the payouts the mock holds
--   mock.stats()   -> jsonb
--   mock.plan_of(query text) -> text
--       the EXPLAIN of the query, one line per plan line.
--   mock.error_of(statement text) -> text
--       runs the statement (with the caller's rights, for any role): 'ok', or
--       'SQLSTATE: message' when it raised an error.
--   mock.wait_for(condition text, timeout_s float8 = 20) -> boolean
--       evaluates SELECT (condition) every 50 ms, each time with a fresh
--       snapshot, until it is true (returns true) or the time is up (false).
--   mock.payout_request(account jsonb, description text [, amount int = 500
--                       [, tag text [, extra jsonb]]]) -> jsonb
--       a valid request for the sandbox method moneroo_payout_demo, in USD, to
--       account_number ACCOUNT (jsonb: a test may give a number or null);
--       TAG goes to metadata.case, EXTRA is merged last (its keys win).  The
--       one builder of the pgTAP files, whose pg_temp.req fixes their own
--       description and amount.
--
-- Headers are a JSON object, e.g. '{"Authorization": "Bearer pvk_..."}'.
-- Nothing from the caller reaches the shell unquoted: the body travels in
-- base64, every other argument inside single quotes.

SET client_min_messages = warning;

CREATE SCHEMA IF NOT EXISTS mock;
COMMENT ON SCHEMA mock IS 'test helpers driving the Moneroo API mock (test/lib/helpers.sql)';

-- Quote a string for /bin/sh: inside single quotes everything is literal
-- except the single quote itself, written '"'"'.
CREATE OR REPLACE FUNCTION mock.sh_quote(s text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $fn$ SELECT '''' || replace(s, '''', '''"''"''') || '''' $fn$;

CREATE OR REPLACE FUNCTION mock.url(path text) RETURNS text
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    base text := current_setting('moneroo_test.mock_url', true);
BEGIN
    IF base IS NULL OR base = '' THEN
        RAISE EXCEPTION 'moneroo_test.mock_url is not set'
            USING HINT = 'test/lib/cluster.sh writes it to postgresql.conf';
    END IF;
    IF path IS NULL OR left(path, 1) <> '/' THEN
        RAISE EXCEPTION 'mock path must start with "/": %', path;
    END IF;
    RETURN rtrim(base, '/') || path;
END
$fn$;

CREATE OR REPLACE FUNCTION mock.http(method text, path text, body jsonb DEFAULT NULL,
                                     headers jsonb DEFAULT NULL,
                                     OUT status integer, OUT response text)
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    cmd text;
    hdr record;
    raw text;
    m text[];
BEGIN
    IF method IS NULL OR method !~ '^[A-Z]+$' THEN
        RAISE EXCEPTION 'bad HTTP method: %', method;
    END IF;
    cmd := 'curl -sS --noproxy ''*'' --max-time 30 -X ' || method;
    IF headers IS NOT NULL THEN
        IF jsonb_typeof(headers) <> 'object' THEN
            RAISE EXCEPTION 'headers must be a JSON object';
        END IF;
        FOR hdr IN SELECT key, value FROM jsonb_each_text(headers) LOOP
            cmd := cmd || ' -H ' || mock.sh_quote(hdr.key || ': ' || coalesce(hdr.value, ''));
        END LOOP;
    END IF;
    IF body IS NOT NULL THEN
        cmd := 'printf %s '
            || mock.sh_quote(translate(encode(convert_to(body::text, 'UTF8'), 'base64'), E'\n', ''))
            || ' | base64 -d | ' || cmd
            || ' -H ''Content-Type: application/json'' --data-binary @-';
    END IF;
    -- The answer on one line: raw newlines cannot occur inside JSON strings,
    -- so turning them into spaces keeps any JSON body intact.  The status
    -- comes last; 000 when curl could not talk to the mock.
    cmd := cmd || ' -w ''\n%{http_code}'' ' || mock.sh_quote(mock.url(path))
        || ' | tr ''\r\n'' ''  ''';

    IF to_regclass('pg_temp.mock_http_out') IS NULL THEN
        CREATE TEMP TABLE mock_http_out (line text);
    END IF;
    TRUNCATE pg_temp.mock_http_out;
    -- CSV with a delimiter and a quote that never occur in the output:
    -- the whole line lands in one text value, backslashes untouched.
    EXECUTE format('COPY pg_temp.mock_http_out FROM PROGRAM %L '
                   'WITH (FORMAT csv, DELIMITER E''\x01'', QUOTE E''\x02'', ENCODING ''UTF8'')',
                   cmd);
    SELECT string_agg(coalesce(line, ''), ' ') INTO raw FROM pg_temp.mock_http_out;
    m := regexp_match(coalesce(raw, ''), '^(.*) ([0-9]{3}) *$');
    IF m IS NULL THEN
        RAISE EXCEPTION 'mock.http: unreadable curl output for % %: %', method, path, left(raw, 500);
    END IF;
    status := m[2]::integer;
    IF status = 0 THEN
        RAISE EXCEPTION 'mock.http: no answer from the mock at % (% %)', mock.url(path), method, path
            USING HINT = 'Is test/mock/moneroo_mock.py running?  The server log has curl''s message.';
    END IF;
    response := nullif(btrim(m[1]), '');
END
$fn$;

CREATE OR REPLACE FUNCTION mock.call(method text, path text, body jsonb DEFAULT NULL,
                                     headers jsonb DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    r record;
BEGIN
    r := mock.http(method, path, body, headers);
    IF r.response IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        RETURN r.response::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'mock.call: % % answered % with a body that is not JSON: %',
            method, path, r.status, left(r.response, 500);
    END;
END
$fn$;

-- POST to the control API; error unless 2xx.
CREATE OR REPLACE FUNCTION mock.control(path text, body jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    r record;
BEGIN
    r := mock.http('POST', path, coalesce(body, '{}'::jsonb));
    IF r.status NOT BETWEEN 200 AND 299 THEN
        RAISE EXCEPTION 'mock: POST % answered %: %', path, r.status, left(r.response, 500);
    END IF;
    BEGIN
        RETURN r.response::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        RETURN to_jsonb(r.response);
    END;
END
$fn$;

CREATE OR REPLACE FUNCTION mock.reset() RETURNS void
LANGUAGE sql VOLATILE
AS $fn$ SELECT mock.control('/__mock/reset', '{}'); $fn$;

-- mock.config('{"rate_limit": 10, "latency_ms": 200, "pending_after": 1, "final_after": 2}')
CREATE OR REPLACE FUNCTION mock.config(settings jsonb) RETURNS void
LANGUAGE sql VOLATILE
AS $fn$ SELECT mock.control('/__mock/config', settings); $fn$;

-- mock.faults('{"kind": "timeout", "count": 1, "route": "/v1/payouts/initialize"}'),
-- or a list of such objects.
CREATE OR REPLACE FUNCTION mock.faults(faults jsonb) RETURNS void
LANGUAGE sql VOLATILE
AS $fn$ SELECT mock.control('/__mock/faults', faults); $fn$;

CREATE OR REPLACE FUNCTION mock.clear_faults() RETURNS void
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    r record;
BEGIN
    r := mock.http('DELETE', '/__mock/faults');
    IF r.status NOT BETWEEN 200 AND 299 THEN
        RAISE EXCEPTION 'mock: DELETE /__mock/faults answered %: %', r.status, left(r.response, 500);
    END IF;
END
$fn$;

-- Force the status of a payout the mock holds (POST /__mock/set_status).
CREATE OR REPLACE FUNCTION mock.set_status(payout_id text, status text) RETURNS void
LANGUAGE sql VOLATILE
AS $fn$ SELECT mock.control('/__mock/set_status', jsonb_build_object('id', payout_id, 'status', status)); $fn$;

-- The rows of a listing: a JSON array, or the array held by an object under
-- one of the usual keys, or the values of an object of objects (keyed by id).
CREATE OR REPLACE FUNCTION mock.rows_of(doc jsonb) RETURNS SETOF jsonb
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
    k text;
BEGIN
    IF doc IS NULL OR jsonb_typeof(doc) = 'null' THEN
        RETURN;
    ELSIF jsonb_typeof(doc) = 'array' THEN
        RETURN QUERY SELECT e FROM jsonb_array_elements(doc) WITH ORDINALITY AS t(e, n) ORDER BY n;
        RETURN;
    ELSIF jsonb_typeof(doc) = 'object' THEN
        FOREACH k IN ARRAY ARRAY['journal', 'requests', 'payouts', 'entries', 'items', 'data'] LOOP
            IF jsonb_typeof(doc -> k) = 'array' THEN
                RETURN QUERY SELECT e FROM jsonb_array_elements(doc -> k) WITH ORDINALITY AS t(e, n)
                             ORDER BY n;
                RETURN;
            END IF;
        END LOOP;
        IF NOT EXISTS (SELECT 1 FROM jsonb_each(doc) WHERE jsonb_typeof(value) <> 'object') THEN
            RETURN QUERY SELECT value FROM jsonb_each(doc) ORDER BY key;
            RETURN;
        END IF;
    END IF;
    RAISE EXCEPTION 'mock: cannot read a list from %', left(doc::text, 300);
END
$fn$;

CREATE OR REPLACE FUNCTION mock.get(path text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    r record;
BEGIN
    r := mock.http('GET', path);
    IF r.status NOT BETWEEN 200 AND 299 THEN
        RAISE EXCEPTION 'mock: GET % answered %: %', path, r.status, left(r.response, 500);
    END IF;
    RETURN r.response::jsonb;
END
$fn$;

-- mock.journal(since): only the entries whose "seq" is above since.
DROP FUNCTION IF EXISTS mock.journal();     -- an older, argument-less version
CREATE OR REPLACE FUNCTION mock.journal(since bigint DEFAULT 0) RETURNS SETOF jsonb
LANGUAGE sql VOLATILE
AS $fn$ SELECT mock.rows_of(mock.get('/__mock/journal?since=' || coalesce(since, 0))); $fn$;

-- mock.sent_time(tag): the epoch time of the first initialize request the
-- mock received for a payout whose metadata.case is tag (NULL when none came).
CREATE OR REPLACE FUNCTION mock.sent_time(tag text) RETURNS float8
LANGUAGE sql VOLATILE
AS $fn$
    SELECT min((j ->> 'time')::float8) FROM mock.journal() j
    WHERE j ->> 'path' = '/v1/payouts/initialize' AND j -> 'body' -> 'metadata' ->> 'case' = tag
$fn$;

CREATE OR REPLACE FUNCTION mock.payouts() RETURNS SETOF jsonb
LANGUAGE sql VOLATILE
AS $fn$ SELECT mock.rows_of(mock.get('/__mock/payouts')); $fn$;

CREATE OR REPLACE FUNCTION mock.stats() RETURNS jsonb
LANGUAGE sql VOLATILE
AS $fn$ SELECT mock.get('/__mock/stats'); $fn$;

-- mock.wait_for('(SELECT count(*) FROM mock.journal()) = 1', 10)
-- Under READ COMMITTED every statement of a volatile function takes a new
-- snapshot, so each try sees what other sessions (the worker) committed
-- meanwhile.  REPEATABLE READ or SERIALIZABLE would freeze the snapshot, so
-- they are refused.  Rows the caller's own open transaction wrote are seen,
-- but the worker cannot see them until that transaction commits.
CREATE OR REPLACE FUNCTION mock.wait_for(condition text, timeout_s float8 DEFAULT 20)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => greatest(coalesce(timeout_s, 0), 0));
    ok boolean;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'mock.wait_for needs READ COMMITTED, not %',
            current_setting('transaction_isolation');
    END IF;
    LOOP
        EXECUTE 'SELECT (' || condition || ')::boolean' INTO ok;
        IF ok THEN
            RETURN true;
        END IF;
        EXIT WHEN clock_timestamp() >= deadline;
        PERFORM pg_sleep(least(0.05, greatest(extract(epoch FROM deadline - clock_timestamp()), 0)));
    END LOOP;
    RETURN false;
END
$fn$;

CREATE OR REPLACE FUNCTION mock.plan_of(query text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    line text;
    plan text := '';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN ' || query LOOP
        plan := plan || line || E'\n';
    END LOOP;
    RETURN plan;
END
$$;

CREATE OR REPLACE FUNCTION mock.error_of(statement text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

CREATE OR REPLACE FUNCTION mock.payout_request(account jsonb, description text,
    amount int DEFAULT 500, tag text DEFAULT NULL, extra jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'amount', amount, 'currency', 'USD', 'description', description,
        'method', 'moneroo_payout_demo',
        'customer', jsonb_build_object('email', 'ada@example.com',
                                       'first_name', 'Ada', 'last_name', 'Lovelace'),
        'recipient', jsonb_build_object('account_number', account))
    || CASE WHEN tag IS NULL THEN '{}' ELSE jsonb_build_object('metadata', jsonb_build_object('case', tag)) END
    || extra
$$;

-- Test helpers are for superusers only.
REVOKE ALL ON SCHEMA mock FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA mock FROM PUBLIC;
-- ... but mock.error_of, which runs a statement with the caller's own rights:
-- the tests check what a role may do under SET ROLE with it.
GRANT USAGE ON SCHEMA mock TO PUBLIC;
GRANT EXECUTE ON FUNCTION mock.error_of(text) TO PUBLIC;
-- ... and the request builder, which only builds a document.
GRANT EXECUTE ON FUNCTION mock.payout_request(jsonb, text, int, text, jsonb) TO PUBLIC;

RESET client_min_messages;

