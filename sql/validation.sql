--
-- validation: every way a payout request can be refused before anything is
-- sent, with the SQLSTATE, message, detail and hint a user sees.
--
-- Everything runs inside one transaction that is rolled back at the end, so
-- that no row is ever committed to payouts (the background worker would send
-- it) and the database is left as it was found.
--
-- pg_temp.try(request) calls moneroo_validate(request) and prints 'ok', or
--     SQLSTATE: message | detail | HINT: hint
-- instead of aborting; pg_temp.try_insert, try_update and try_transfer do the
-- same for INSERT INTO payouts, UPDATE payouts and moneroo_transfer().
--
\set ON_ERROR_ROLLBACK on
\set VERBOSITY default
SET client_min_messages = warning;
BEGIN;

-- The error as one line: SQLSTATE, message, detail and hint.  Constraint
-- violations (class 23) name the column or constraint instead of the
-- detail, which quotes the whole failing row (ids, uuids, timestamps).
CREATE FUNCTION pg_temp.error_line(state text, message text, detail text, hint text,
                                   column_name text, constraint_name text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT state || ': ' || message
        || CASE WHEN state LIKE '23%'
                THEN coalesce(' | column ' || nullif(column_name, ''), '')
                  || coalesce(' | constraint ' || nullif(constraint_name, ''), '')
                ELSE coalesce(' | ' || nullif(detail, ''), '') END
        || coalesce(' | HINT: ' || nullif(hint, ''), '')
$$;

CREATE FUNCTION pg_temp.try(request jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    s text; m text; d text; h text; c text; k text;
BEGIN
    PERFORM moneroo_validate(request);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL,
        h = PG_EXCEPTION_HINT, c = COLUMN_NAME, k = CONSTRAINT_NAME;
    RETURN pg_temp.error_line(s, m, d, h, c, k);
END
$$;

-- INSERT one request; the row is kept (until the final ROLLBACK) when valid.
CREATE FUNCTION pg_temp.try_insert(request jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    s text; m text; d text; h text; c text; k text;
BEGIN
    INSERT INTO payouts (request) VALUES (request);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL,
        h = PG_EXCEPTION_HINT, c = COLUMN_NAME, k = CONSTRAINT_NAME;
    RETURN pg_temp.error_line(s, m, d, h, c, k);
END
$$;

CREATE FUNCTION pg_temp.try_update(payout_id bigint, new_request jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    s text; m text; d text; h text; c text; k text;
BEGIN
    UPDATE payouts SET request = new_request WHERE id = payout_id;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL,
        h = PG_EXCEPTION_HINT, c = COLUMN_NAME, k = CONSTRAINT_NAME;
    RETURN pg_temp.error_line(s, m, d, h, c, k);
END
$$;

-- moneroo_transfer() sends valid requests at once, and a payout that may
-- have reached Moneroo stays on record even after ROLLBACK.  This wrapper
-- therefore never calls it with a request moneroo_validate accepts.
CREATE FUNCTION pg_temp.try_transfer(request jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    s text; m text; d text; h text; c text; k text;
BEGIN
    IF request IS NOT NULL AND pg_temp.try(request) = 'ok' THEN
        RETURN 'NOT CALLED: the request is valid and would be sent';
    END IF;
    PERFORM moneroo_transfer(request);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL,
        h = PG_EXCEPTION_HINT, c = COLUMN_NAME, k = CONSTRAINT_NAME;
    RETURN pg_temp.error_line(s, m, d, h, c, k);
END
$$;

-- A valid request (the example of Moneroo's documentation) and variants of it.
CREATE FUNCTION pg_temp.req() RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"amount": 1000, "currency": "XOF", "description": "Order refund",
             "method": "mtn_bj",
             "customer": {"email": "john@example.com", "first_name": "John", "last_name": "Doe"},
             "recipient": {"msisdn": "22951345020"}}'::jsonb
$$;
-- The sandbox method: USD, recipient.account_number, no dial-code check.
CREATE FUNCTION pg_temp.demo() RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"amount": 500, "currency": "USD", "description": "Sandbox payout",
             "method": "moneroo_payout_demo",
             "customer": {"email": "john@example.com", "first_name": "John", "last_name": "Doe"},
             "recipient": {"account_number": "4149518161"}}'::jsonb
$$;
-- req() with the value at path replaced (or added).
CREATE FUNCTION pg_temp.req_with(path text[], value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT jsonb_set(pg_temp.req(), path, value, true) $$;
-- req() without the key at path.
CREATE FUNCTION pg_temp.req_without(path text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT pg_temp.req() #- path $$;

-- The base requests are valid.
SELECT pg_temp.try(pg_temp.req()) AS req, pg_temp.try(pg_temp.demo()) AS demo;

--
-- What the errors look like in psql, uncaught.
--
SELECT moneroo_validate('{"amount": 1000}');
SELECT moneroo_validate(pg_temp.req_with('{customer,email}', '"john.example.com"'));
INSERT INTO payouts (request) VALUES (pg_temp.req_with('{amount}', '0'));

--
-- SQL NULL instead of a request.
--
-- moneroo_validate is STRICT: a NULL request returns NULL and raises nothing.
SELECT moneroo_validate(NULL) IS NULL AS validate_null_is_null;
-- moneroo_transfer refuses it with 22023, INSERT with the NOT NULL constraint.
SELECT pg_temp.try_transfer(NULL) AS transfer_null;
SELECT pg_temp.try_insert(NULL) AS insert_null;

--
-- The request is not a JSON object.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('array',              '[]'::jsonb),
    ('array of a request', jsonb_build_array(pg_temp.req())),
    ('string',             '"{\"amount\": 1000}"'),
    ('number',             '1000'),
    ('true',               'true'),
    ('JSON null',          'null'),
    ('empty object',       '{}')
) AS t(label, r);

--
-- A required field is missing (or JSON null, which counts as missing).
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('amount',              pg_temp.req_without('{amount}')),
    ('currency',            pg_temp.req_without('{currency}')),
    ('description',         pg_temp.req_without('{description}')),
    ('method',              pg_temp.req_without('{method}')),
    ('customer',            pg_temp.req_without('{customer}')),
    ('customer.email',      pg_temp.req_without('{customer,email}')),
    ('customer.first_name', pg_temp.req_without('{customer,first_name}')),
    ('customer.last_name',  pg_temp.req_without('{customer,last_name}')),
    ('recipient',           pg_temp.req_without('{recipient}')),
    ('recipient.msisdn',    pg_temp.req_without('{recipient,msisdn}')),
    ('recipient.account_number (demo)', pg_temp.demo() #- '{recipient,account_number}'),
    ('amount: null',        pg_temp.req_with('{amount}', 'null')),
    ('customer: null',      pg_temp.req_with('{customer}', 'null')),
    ('customer.email: null', pg_temp.req_with('{customer,email}', 'null')),
    ('recipient.msisdn: null', pg_temp.req_with('{recipient,msisdn}', 'null'))
) AS t(label, r);

--
-- Unknown keys: refused rather than silently dropped.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('top level: callback_url', pg_temp.req_with('{callback_url}', '"https://example.com/cb"')),
    ('top level: misspelt amout', pg_temp.req_without('{amount}') || '{"amout": 1000}'),
    ('top level: legacy msisdn', pg_temp.req_with('{msisdn}', '"22951345020"')),
    ('customer: middle_name',    pg_temp.req_with('{customer,middle_name}', '"Q"')),
    ('customer: misspelt emial', pg_temp.req_with('{customer,emial}', '"john@example.com"')),
    ('recipient: account_number on mtn_bj',
        pg_temp.req_with('{recipient}', '{"account_number": "22951345020"}')),
    ('recipient: msisdn and name', pg_temp.req_with('{recipient,name}', '"John"')),
    ('recipient: msisdn on moneroo_payout_demo',
        jsonb_set(pg_temp.demo(), '{recipient}', '{"msisdn": "4149518161"}'))
) AS t(label, r);

--
-- amount: a positive JSON integer of at most 15 digits, in the main unit.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('float 10.5',          pg_temp.req_with('{amount}', '10.5')),
    ('1000.0',              pg_temp.req_with('{amount}', '1000.0')),
    ('0',                   pg_temp.req_with('{amount}', '0')),
    ('-0',                  pg_temp.req_with('{amount}', '-0')),
    ('negative -1000',      pg_temp.req_with('{amount}', '-1000')),
    ('1e-2',                pg_temp.req_with('{amount}', '1e-2')),
    ('string "1000"',       pg_temp.req_with('{amount}', '"1000"')),
    ('boolean true',        pg_temp.req_with('{amount}', 'true')),
    ('array [1000]',        pg_temp.req_with('{amount}', '[1000]')),
    ('object',              pg_temp.req_with('{amount}', '{"value": 1000}')),
    ('16 digits',           pg_temp.req_with('{amount}', '1234567890123456')),
    ('20 digits',           pg_temp.req_with('{amount}', '99999999999999999999')),
    ('1e15 (16 digits)',    pg_temp.req_with('{amount}', '1e15')),
    ('1e100000',            pg_temp.req_with('{amount}', '1e100000')),
    ('1 (accepted)',        pg_temp.req_with('{amount}', '1')),
    ('1e3 (accepted: integral)', pg_temp.req_with('{amount}', '1e3')),
    ('15 digits (accepted)', pg_temp.req_with('{amount}', '999999999999999'))
) AS t(label, r);

--
-- currency: three capital letters, the method's currency.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('lowercase xof',       pg_temp.req_with('{currency}', '"xof"')),
    ('2 letters',           pg_temp.req_with('{currency}', '"XO"')),
    ('4 letters',           pg_temp.req_with('{currency}', '"XOFF"')),
    ('with a space',        pg_temp.req_with('{currency}', '" XOF"')),
    ('number 952',          pg_temp.req_with('{currency}', '952')),
    ('empty string',        pg_temp.req_with('{currency}', '""')),
    ('GHS for mtn_bj (XOF)', pg_temp.req_with('{currency}', '"GHS"')),
    ('XOF for moneroo_payout_demo (USD)', jsonb_set(pg_temp.demo(), '{currency}', '"XOF"'))
) AS t(label, r);

--
-- description: 1 to 155 characters, not blank, no control characters.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('empty',               pg_temp.req_with('{description}', '""')),
    ('blank',               pg_temp.req_with('{description}', '"   "')),
    ('156 characters',      pg_temp.req_with('{description}', to_jsonb(repeat('d', 156)))),
    ('155 characters (accepted)', pg_temp.req_with('{description}', to_jsonb(repeat('d', 155)))),
    ('156 x é',             pg_temp.req_with('{description}', to_jsonb(repeat('é', 156)))),
    ('155 x é (accepted: characters, not bytes)',
        pg_temp.req_with('{description}', to_jsonb(repeat('é', 155)))),
    ('newline',             pg_temp.req_with('{description}', '"Order\nrefund"')),
    ('tab only',            pg_temp.req_with('{description}', '"\t"')),
    ('BEL \u0007',          pg_temp.req_with('{description}', '"Order refund\u0007"')),
    ('DEL \u007f',          pg_temp.req_with('{description}', '"Order refund\u007f"')),
    ('number',              pg_temp.req_with('{description}', '42')),
    ('array',               pg_temp.req_with('{description}', '["Order refund"]')),
    ('leading and trailing spaces (accepted)', pg_temp.req_with('{description}', '" Order refund "'))
) AS t(label, r);

--
-- method: a code of moneroo_payout_methods, exactly.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('unknown mtn_xx',      pg_temp.req_with('{method}', '"mtn_xx"')),
    ('wrong case MTN_BJ',   pg_temp.req_with('{method}', '"MTN_BJ"')),
    ('with a space',        pg_temp.req_with('{method}', '" mtn_bj"')),
    ('empty string',        pg_temp.req_with('{method}', '""')),
    ('payment-only orange_bf', pg_temp.req_with('{method}', '"orange_bf"')),
    ('SQL in the code',     pg_temp.req_with('{method}', '"mtn_bj'' OR ''1''=''1"')),
    ('number',              pg_temp.req_with('{method}', '42')),
    ('array',               pg_temp.req_with('{method}', '["mtn_bj"]')),
    ('moov_bj (accepted)',  pg_temp.req_with('{method}', '"moov_bj"'))
) AS t(label, r);

--
-- customer: an object.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('string',              pg_temp.req_with('{customer}', '"john@example.com"')),
    ('array',               pg_temp.req_with('{customer}', '[{"email": "john@example.com"}]')),
    ('empty object',        pg_temp.req_with('{customer}', '{}')),
    ('email a number',      pg_temp.req_with('{customer,email}', '42')),
    ('first_name a number', pg_temp.req_with('{customer,first_name}', '42')),
    ('last_name an object', pg_temp.req_with('{customer,last_name}', '{"family": "Doe"}'))
) AS t(label, r);

--
-- customer.email: a plausible address of at most 254 characters.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('no @',                pg_temp.req_with('{customer,email}', '"john.example.com"')),
    ('two @',               pg_temp.req_with('{customer,email}', '"john@@example.com"')),
    ('@ twice apart',       pg_temp.req_with('{customer,email}', '"jo@hn@example.com"')),
    ('no dot in domain',    pg_temp.req_with('{customer,email}', '"john@example"')),
    ('space inside',        pg_temp.req_with('{customer,email}', '"john doe@example.com"')),
    ('leading space',       pg_temp.req_with('{customer,email}', '" john@example.com"')),
    ('empty local part',    pg_temp.req_with('{customer,email}', '"@example.com"')),
    ('empty domain',        pg_temp.req_with('{customer,email}', '"john@"')),
    ('one-letter TLD',      pg_temp.req_with('{customer,email}', '"john@example.c"')),
    ('domain ends with dot', pg_temp.req_with('{customer,email}', '"john@example.com."')),
    ('double dot in domain', pg_temp.req_with('{customer,email}', '"john@example..com"')),
    ('local part 65 chars', pg_temp.req_with('{customer,email}',
                                to_jsonb(repeat('j', 65) || '@example.com'))),
    ('255 characters',      pg_temp.req_with('{customer,email}',
                                to_jsonb(repeat('j', 64) || '@' || repeat('e', 186) || '.com'))),
    ('empty string',        pg_temp.req_with('{customer,email}', '""')),
    ('tag and subdomains (accepted)', pg_temp.req_with('{customer,email}',
                                '"john.doe+payroll@mail.example.co.uk"')),
    ('capitals (accepted)', pg_temp.req_with('{customer,email}', '"JOHN@EXAMPLE.COM"'))
) AS t(label, r);

--
-- customer.first_name / last_name: 1 to 100 characters, not blank.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('first_name empty',    pg_temp.req_with('{customer,first_name}', '""')),
    ('first_name blank',    pg_temp.req_with('{customer,first_name}', '"  "')),
    ('first_name 101 chars', pg_temp.req_with('{customer,first_name}', to_jsonb(repeat('n', 101)))),
    ('first_name 100 chars (accepted)',
        pg_temp.req_with('{customer,first_name}', to_jsonb(repeat('n', 100)))),
    ('first_name 100 x é (accepted)',
        pg_temp.req_with('{customer,first_name}', to_jsonb(repeat('é', 100)))),
    ('first_name 101 x é',  pg_temp.req_with('{customer,first_name}', to_jsonb(repeat('é', 101)))),
    ('first_name with newline', pg_temp.req_with('{customer,first_name}', '"John\nDoe"')),
    ('last_name empty',     pg_temp.req_with('{customer,last_name}', '""')),
    ('last_name blank',     pg_temp.req_with('{customer,last_name}', '" "')),
    ('last_name 101 chars', pg_temp.req_with('{customer,last_name}', to_jsonb(repeat('n', 101)))),
    ('last_name 100 chars (accepted)',
        pg_temp.req_with('{customer,last_name}', to_jsonb(repeat('n', 100))))
) AS t(label, r);

--
-- customer.address (200), city, state, zip (100 each): optional strings.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('address 201 chars',   pg_temp.req_with('{customer,address}', to_jsonb(repeat('a', 201)))),
    ('address 200 chars (accepted)', pg_temp.req_with('{customer,address}', to_jsonb(repeat('a', 200)))),
    ('address blank',       pg_temp.req_with('{customer,address}', '" "')),
    ('city 101 chars',      pg_temp.req_with('{customer,city}', to_jsonb(repeat('c', 101)))),
    ('city 100 chars (accepted)', pg_temp.req_with('{customer,city}', to_jsonb(repeat('c', 100)))),
    ('state 101 chars',     pg_temp.req_with('{customer,state}', to_jsonb(repeat('s', 101)))),
    ('state 100 chars (accepted)', pg_temp.req_with('{customer,state}', to_jsonb(repeat('s', 100)))),
    ('zip 101 chars',       pg_temp.req_with('{customer,zip}', to_jsonb(repeat('9', 101)))),
    ('zip 100 chars (accepted)', pg_temp.req_with('{customer,zip}', to_jsonb(repeat('9', 100)))),
    ('zip a number',        pg_temp.req_with('{customer,zip}', '12345')),
    ('city an array',       pg_temp.req_with('{customer,city}', '["Cotonou"]')),
    ('address null (accepted: absent)', pg_temp.req_with('{customer,address}', 'null'))
) AS t(label, r);

--
-- customer.country: ISO 3166-1 alpha-2, in capitals.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('lowercase bj',        pg_temp.req_with('{customer,country}', '"bj"')),
    ('3 letters BEN',       pg_temp.req_with('{customer,country}', '"BEN"')),
    ('one letter',          pg_temp.req_with('{customer,country}', '"B"')),
    ('digit B1',            pg_temp.req_with('{customer,country}', '"B1"')),
    ('number 229',          pg_temp.req_with('{customer,country}', '229')),
    ('empty string',        pg_temp.req_with('{customer,country}', '""')),
    ('BJ (accepted)',       pg_temp.req_with('{customer,country}', '"BJ"')),
    -- only the form is checked: XX is no assigned country, yet accepted
    ('XX (not an assigned code)', pg_temp.req_with('{customer,country}', '"XX"'))
) AS t(label, r);

--
-- customer.phone: E.164, 7 to 15 digits, an integer or a string of digits.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('float',               pg_temp.req_with('{customer,phone}', '22951345020.5')),
    ('with +',              pg_temp.req_with('{customer,phone}', '"+22951345020"')),
    ('with spaces',         pg_temp.req_with('{customer,phone}', '"229 51 34 50 20"')),
    ('with dashes',         pg_temp.req_with('{customer,phone}', '"229-51-34-50-20"')),
    ('negative',            pg_temp.req_with('{customer,phone}', '-22951345020')),
    ('empty string',        pg_temp.req_with('{customer,phone}', '""')),
    ('boolean',             pg_temp.req_with('{customer,phone}', 'true')),
    ('too short: 6 digits', pg_temp.req_with('{customer,phone}', '"229513"')),
    ('too long: 16 digits', pg_temp.req_with('{customer,phone}', '"2295134502012345"')),
    ('leading 0 (13 digits)', pg_temp.req_with('{customer,phone}', '"0022951345020"')),
    ('string of digits (accepted)', pg_temp.req_with('{customer,phone}', '"22951345020"')),
    ('integer (accepted)',  pg_temp.req_with('{customer,phone}', '22951345020')),
    ('15 digits (accepted)', pg_temp.req_with('{customer,phone}', '229513450201234')),
    ('7 digits (accepted)', pg_temp.req_with('{customer,phone}', '2295134')),
    ('null (accepted: absent)', pg_temp.req_with('{customer,phone}', 'null'))
) AS t(label, r);

--
-- metadata: an object of at most 10 string values; payout_reference is reserved.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('array',               pg_temp.req_with('{metadata}', '["a", "b"]')),
    ('empty array',         pg_temp.req_with('{metadata}', '[]')),
    ('string',              pg_temp.req_with('{metadata}', '"order 123"')),
    ('number value',        pg_temp.req_with('{metadata}', '{"order_id": 123}')),
    ('object value',        pg_temp.req_with('{metadata}', '{"order": {"id": "123"}}')),
    ('null value',          pg_temp.req_with('{metadata}', '{"order_id": null}')),
    ('boolean value',       pg_temp.req_with('{metadata}', '{"paid": true}')),
    ('11 entries',          pg_temp.req_with('{metadata}',
        (SELECT jsonb_object_agg('k' || i, 'v' || i) FROM generate_series(1, 11) i))),
    ('payout_reference',    pg_temp.req_with('{metadata}',
        '{"payout_reference": "0b8e4f8e-7a8e-4d5e-9a43-1b7f1d1a9c01"}')),
    ('empty key',           pg_temp.req_with('{metadata}', '{"": "x"}')),
    ('key of 65 chars',     pg_temp.req_with('{metadata}', jsonb_build_object(repeat('k', 65), 'x'))),
    ('value of 501 chars',  pg_temp.req_with('{metadata}', jsonb_build_object('note', repeat('v', 501)))),
    ('value of 500 chars (accepted)',
        pg_temp.req_with('{metadata}', jsonb_build_object('note', repeat('v', 500)))),
    ('10 entries (accepted)', pg_temp.req_with('{metadata}',
        (SELECT jsonb_object_agg('k' || i, 'v' || i) FROM generate_series(1, 10) i))),
    ('key of 64 chars (accepted)',
        pg_temp.req_with('{metadata}', jsonb_build_object(repeat('k', 64), 'x'))),
    ('empty object (accepted)', pg_temp.req_with('{metadata}', '{}')),
    ('null (accepted: absent)', pg_temp.req_with('{metadata}', 'null')),
    ('documented example (accepted)',
        pg_temp.req_with('{metadata}', '{"payout_request": "123", "customer_id": "123"}'))
) AS t(label, r);

-- A value nested 1000 levels deep.
SELECT pg_temp.try(pg_temp.req_with('{metadata}',
           jsonb_build_object('deep', (repeat('[', 1000) || repeat(']', 1000))::jsonb)))
       AS deeply_nested_value;
SELECT pg_temp.try(pg_temp.req_with('{metadata}',
           jsonb_build_object('deep', (repeat('{"a":', 1000) || '"x"' || repeat('}', 1000))::jsonb)))
       AS deeply_nested_object;

--
-- recipient: an object holding the method's field (msisdn for mtn_bj):
-- digits only, 7 to 15 of them, starting with the method's dial code.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('not an object: string', pg_temp.req_with('{recipient}', '"22951345020"')),
    ('not an object: number', pg_temp.req_with('{recipient}', '22951345020')),
    ('not an object: array', pg_temp.req_with('{recipient}', '["22951345020"]')),
    ('empty object',        pg_temp.req_with('{recipient}', '{}')),
    ('msisdn with letters', pg_temp.req_with('{recipient,msisdn}', '"22951ABC020"')),
    ('msisdn with +',       pg_temp.req_with('{recipient,msisdn}', '"+22951345020"')),
    ('msisdn with spaces',  pg_temp.req_with('{recipient,msisdn}', '"229 51 34 50 20"')),
    ('msisdn float',        pg_temp.req_with('{recipient,msisdn}', '22951345020.5')),
    ('msisdn negative',     pg_temp.req_with('{recipient,msisdn}', '-22951345020')),
    ('msisdn empty',        pg_temp.req_with('{recipient,msisdn}', '""')),
    ('msisdn boolean',      pg_temp.req_with('{recipient,msisdn}', 'true')),
    ('msisdn an object',    pg_temp.req_with('{recipient,msisdn}', '{"number": "22951345020"}')),
    ('msisdn too short: 6 digits', pg_temp.req_with('{recipient,msisdn}', '"229513"')),
    ('msisdn too long: 16 digits', pg_temp.req_with('{recipient,msisdn}', '"2295134502012345"')),
    ('msisdn with dial code 225 (CI) for mtn_bj', pg_temp.req_with('{recipient,msisdn}', '"2250701020304"')),
    ('msisdn national format 0151345020', pg_temp.req_with('{recipient,msisdn}', '"0151345020"')),
    ('msisdn string (accepted)', pg_temp.req_with('{recipient,msisdn}', '"22951345020"')),
    ('msisdn integer (accepted)', pg_temp.req_with('{recipient,msisdn}', '22951345020')),
    ('msisdn 13 digits, 2024 plan (accepted)', pg_temp.req_with('{recipient,msisdn}', '"2290151345020"')),
    ('moov_ci with 225 (accepted)', pg_temp.req_with('{recipient,msisdn}', '"2250701020304"')
                                     || '{"method": "moov_ci"}')
) AS t(label, r);

--
-- The sandbox method moneroo_payout_demo: account_number, exempt from the
-- dial-code check, so the documented test numbers pass.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('4149518161 string (accepted)',  jsonb_set(pg_temp.demo(), '{recipient,account_number}', '"4149518161"')),
    ('4149518162 integer (accepted)', jsonb_set(pg_temp.demo(), '{recipient,account_number}', '4149518162')),
    ('4149518163 string (accepted)',  jsonb_set(pg_temp.demo(), '{recipient,account_number}', '"4149518163"')),
    ('account_number with letters',   jsonb_set(pg_temp.demo(), '{recipient,account_number}', '"41495X8161"')),
    ('account_number too short',      jsonb_set(pg_temp.demo(), '{recipient,account_number}', '"414951"')),
    ('account_number 16 digits',      jsonb_set(pg_temp.demo(), '{recipient,account_number}', '"4149518161000000"')),
    ('msisdn instead of account_number', jsonb_set(pg_temp.demo(), '{recipient}', '{"msisdn": "4149518161"}'))
) AS t(label, r);

--
-- Oversized input: refused with the length, not echoed back whole.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('description of 10000 chars', pg_temp.req_with('{description}', to_jsonb(repeat('d', 10000)))),
    ('first_name of 10000 chars',  pg_temp.req_with('{customer,first_name}', to_jsonb(repeat('n', 10000)))),
    ('email of 10000 chars',       pg_temp.req_with('{customer,email}',
                                       to_jsonb(repeat('j', 5000) || '@' || repeat('e', 4995) || '.com'))),
    ('address of 1000000 chars',   pg_temp.req_with('{customer,address}', to_jsonb(repeat('a', 1000000)))),
    ('metadata value of 10000 chars', pg_temp.req_with('{metadata}', jsonb_build_object('note', repeat('v', 10000)))),
    ('metadata with 1000 entries', pg_temp.req_with('{metadata}',
        (SELECT jsonb_object_agg('k' || i, 'v') FROM generate_series(1, 1000) i))),
    ('msisdn of 10000 digits',     pg_temp.req_with('{recipient,msisdn}', to_jsonb('229' || repeat('5', 9997))))
) AS t(label, r);
-- Messages that quote the offending value: lengths only.
SELECT label, length(pg_temp.try(r)) AS message_length, left(pg_temp.try(r), 60) AS message_start
FROM (VALUES
    ('unknown key of 10000 chars', pg_temp.req_with(ARRAY[repeat('k', 10000)], '1')),
    ('method of 10000 chars',      pg_temp.req_with('{method}', to_jsonb(repeat('m', 10000))))
) AS t(label, r);

--
-- Unicode text is counted in characters and accepted.
--
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('description with accents, CJK, emoji',
        pg_temp.req_with('{description}', '"Salaire de mai — café ☕ 日本語 🙂"')),
    ('155 emoji (accepted)',  pg_temp.req_with('{description}', to_jsonb(repeat('🙂', 155)))),
    ('156 emoji',             pg_temp.req_with('{description}', to_jsonb(repeat('🙂', 156)))),
    ('names',                 pg_temp.req_with('{customer}',
        '{"email": "thi@example.vn", "first_name": "Thị Minh", "last_name": "Nguyễn"}')),
    ('city and metadata',     pg_temp.req_with('{customer,city}', '"Cotonou – Akpakpa"')
                              || '{"metadata": {"réf": "n°42 — «payé»"}}')
) AS t(label, r);

--
-- A request with every optional field filled in.
--
SELECT pg_temp.try('{
    "amount": 250000,
    "currency": "XOF",
    "description": "Salary for May 2026, employee #4411",
    "method": "mtn_bj",
    "customer": {
        "email": "afi.houngbedji@example.bj",
        "first_name": "Afi",
        "last_name": "Houngbédji",
        "phone": 2290151345020,
        "address": "Lot 12, rue 1024, Cadjèhoun",
        "city": "Cotonou",
        "state": "Littoral",
        "country": "BJ",
        "zip": "01 BP 1234"
    },
    "metadata": {"employee_id": "4411", "period": "2026-05", "batch": "payroll-2026-05"},
    "recipient": {"msisdn": 2290151345020}
}') AS every_field;

--
-- moneroo_transfer() validates with the same code before sending anything.
--
SELECT label, pg_temp.try_transfer(r) AS result FROM (VALUES
    ('not an object',       '[]'::jsonb),
    ('missing amount',      pg_temp.req_without('{amount}')),
    ('amount 0',            pg_temp.req_with('{amount}', '0')),
    ('unknown method',      pg_temp.req_with('{method}', '"mtn_xx"')),
    ('wrong dial code',     pg_temp.req_with('{recipient,msisdn}', '"2250701020304"'))
) AS t(label, r);

--
-- Every problem at once (1.2): the first in the message, naming its field as
-- before; every one in the detail, a line each, "field path: sentence", so
-- that a caller fixes a request in one go.  A field with a problem is not
-- checked further, and the recipient is checked only against a known method
-- (the method says which recipient field it takes).
--
SELECT moneroo_validate('{"amount": 12.5, "currency": "USD"}');
SELECT moneroo_validate('{"amount": "100", "currency": "usd", "description": "",
    "method": "mtn_bj", "callback_url": "https://shop.example/cb",
    "customer": {"email": "john.example.com", "first_name": "John", "last_name": " ",
                 "country": "ZZ", "phone": "+229 51", "middle_name": "Q"},
    "recipient": {"msisdn": "22751345020"},
    "metadata": {"order": 1042, "payout_reference": "mine"}}');
-- An unknown method: the recipient cannot be judged, its other fields are.
SELECT moneroo_validate(pg_temp.req() || '{"method": "mtn_xx", "description": 7,
    "customer": {"email": "a@b"}, "recipient": {"msisdn": "1"}}');
-- A recipient that is not an object is refused whatever the method.
SELECT moneroo_validate(pg_temp.req() || '{"method": "mtn_xx", "recipient": "22951345020"}');
-- max_amount (moneroo_limits) is one more problem in the list, with its figures.
INSERT INTO moneroo_limits (currency, max_amount) VALUES ('XOF', 1000);
SELECT moneroo_validate(pg_temp.req() || '{"amount": 5000, "description": ""}');
DELETE FROM moneroo_limits WHERE currency = 'XOF';
-- A request of 30 unknown keys: the detail lists the first 20 problems and
-- counts the rest, so a message stays readable.
SELECT moneroo_validate(pg_temp.req() || (SELECT jsonb_object_agg('extra_' || lpad(i::text, 2, '0'), i)
                                          FROM generate_series(1, 30) AS i));
-- INSERT, UPDATE and moneroo_transfer raise the same list.
SELECT pg_temp.try_insert('{"amount": 12.5, "currency": "USD"}') AS insert_every_problem;
SELECT pg_temp.try_transfer('{"amount": 12.5, "currency": "USD"}') AS transfer_every_problem;

--
-- INSERT and UPDATE of payouts go through the same validator.
--
SELECT count(*) AS rows_before FROM payouts \gset
-- The same SQLSTATE and message as moneroo_validate, and no row left behind.
SELECT label, pg_temp.try_insert(r) = pg_temp.try(r) AS same_as_validate, pg_temp.try_insert(r) AS insert
FROM (VALUES
    ('not an object',       '"a string"'::jsonb),
    ('missing customer',    pg_temp.req_without('{customer}')),
    ('unknown key',         pg_temp.req_with('{callback_url}', '"https://example.com/cb"')),
    ('amount 10.5',         pg_temp.req_with('{amount}', '10.5')),
    ('amount "1000"',       pg_temp.req_with('{amount}', '"1000"')),
    ('currency mismatch',   pg_temp.req_with('{currency}', '"GHS"')),
    ('description 156 chars', pg_temp.req_with('{description}', to_jsonb(repeat('d', 156)))),
    ('unknown method',      pg_temp.req_with('{method}', '"mtn_xx"')),
    ('implausible email',   pg_temp.req_with('{customer,email}', '"john@example"')),
    ('metadata payout_reference', pg_temp.req_with('{metadata}', '{"payout_reference": "x"}')),
    ('msisdn wrong dial code', pg_temp.req_with('{recipient,msisdn}', '"2250701020304"'))
) AS t(label, r);
SELECT count(*) - :rows_before AS rows_added FROM payouts;
-- A multi-row INSERT with one bad request inserts nothing.
INSERT INTO payouts (request) VALUES (pg_temp.req()), (pg_temp.req_with('{amount}', '-5'));
SELECT count(*) - :rows_before AS rows_added FROM payouts;
-- A valid INSERT gives a pending row with the typed columns filled in.
INSERT INTO payouts (request) VALUES (pg_temp.req_with('{amount}', '1e3'))
    RETURNING id AS pending_id \gset
SELECT status, amount, currency, method, attempts, moneroo_id, request->'amount' AS request_amount
FROM payouts WHERE id = :pending_id;
SELECT count(*) - :rows_before AS rows_added FROM payouts;
-- UPDATE of a pending row's request: validated like an INSERT.
SELECT label, pg_temp.try_update(:pending_id, r) AS result FROM (VALUES
    ('amount 0',            pg_temp.req_with('{amount}', '0')),
    ('not an object',       '[]'::jsonb),
    ('missing recipient',   pg_temp.req_without('{recipient}')),
    ('msisdn with +',       pg_temp.req_with('{recipient,msisdn}', '"+22951345020"')),
    ('SQL NULL',            NULL)
) AS t(label, r);
SELECT status, amount, method FROM payouts WHERE id = :pending_id;
-- A valid new request is accepted while the payout is pending.
SELECT pg_temp.try_update(:pending_id, jsonb_set(pg_temp.req_with('{amount}', '2500'), '{method}', '"moov_bj"'))
    AS valid_update;
SELECT status, amount, method FROM payouts WHERE id = :pending_id;
-- jsonb_set on the stored request is checked too.
UPDATE payouts SET request = jsonb_set(request, '{currency}', '"EUR"') WHERE id = :pending_id;
SELECT count(*) - :rows_before AS rows_added FROM payouts;

--
-- Users can extend moneroo_payout_methods; the validator reads it.
--
INSERT INTO moneroo_payout_methods (code, name, currency, country, recipient_field, dial_code)
VALUES ('wave_gm', 'Wave Gambia', 'GMD', 'GM', 'msisdn', '220'),
       ('regress_bank_us', 'Regression test bank', 'USD', 'US', 'account_number', NULL);
SELECT label, pg_temp.try(r) AS result FROM (VALUES
    ('wave_gm, GMD, 220 number (accepted)',
        pg_temp.req() || '{"method": "wave_gm", "currency": "GMD", "recipient": {"msisdn": "2207012345"}}'),
    ('wave_gm with XOF',
        pg_temp.req() || '{"method": "wave_gm", "currency": "XOF", "recipient": {"msisdn": "2207012345"}}'),
    ('wave_gm with a Benin number',
        pg_temp.req() || '{"method": "wave_gm", "currency": "GMD", "recipient": {"msisdn": "22951345020"}}'),
    ('regress_bank_us, account_number without dial code (accepted)',
        pg_temp.req() || '{"method": "regress_bank_us", "currency": "USD", "recipient": {"account_number": "12345678"}}'),
    ('regress_bank_us with msisdn',
        pg_temp.req() || '{"method": "regress_bank_us", "currency": "USD", "recipient": {"msisdn": "12345678"}}')
) AS t(label, r);
SELECT pg_temp.try_insert(pg_temp.req() || '{"method": "wave_gm", "currency": "GMD", "recipient": {"msisdn": "2207012345"}}')
    AS insert_wave_gm;
-- The table's own checks keep method rows well-formed.
INSERT INTO moneroo_payout_methods VALUES ('Wave GM', 'x', 'GMD', 'GM', 'msisdn', '220');
INSERT INTO moneroo_payout_methods VALUES ('wave_gm2', 'x', 'gmd', 'GM', 'msisdn', '220');
INSERT INTO moneroo_payout_methods VALUES ('wave_gm3', 'x', 'GMD', 'GMB', 'msisdn', '220');
INSERT INTO moneroo_payout_methods VALUES ('wave_gm4', 'x', 'GMD', 'GM', 'phone', '220');
INSERT INTO moneroo_payout_methods VALUES ('wave_gm5', 'x', 'GMD', 'GM', 'msisdn', '+220');

ROLLBACK;

-- Nothing is left behind.
SELECT count(*) AS extra_methods FROM moneroo_payout_methods WHERE code IN ('wave_gm', 'regress_bank_us');
SELECT count(*) AS methods FROM moneroo_payout_methods;
