-- moneroo 1.0: payouts through the Moneroo API, queued in a table and sent by
-- a background worker after commit.
\echo Use "CREATE EXTENSION moneroo" to load this file. \quit

-- The payout methods Moneroo documents (docs.moneroo.io/payouts/available-methods).
-- Users may add rows as Moneroo adds methods; the validator reads this table.
-- dial_code is the country calling code the recipient number must start with;
-- NULL exempts a method from that check (the sandbox test method, whose test
-- numbers 4149518161/2/3 carry no US dial code).
CREATE TABLE moneroo_payout_methods (
    code            text PRIMARY KEY CHECK (code ~ '^[a-z0-9_]{1,64}$'),
    name            text NOT NULL,
    currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    country         text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    recipient_field text NOT NULL CHECK (recipient_field IN ('msisdn', 'account_number')),
    dial_code       text CHECK (dial_code ~ '^[1-9][0-9]{0,3}$'),
    -- rows this script seeds; pg_dump keeps only the others, which are yours
    documented      boolean NOT NULL DEFAULT false
);

INSERT INTO moneroo_payout_methods (code, name, currency, country, recipient_field, dial_code, documented)
SELECT code, name, currency, country, recipient_field, dial_code, true FROM (VALUES
    ('airtel_cd',           'Airtel Congo',             'CDF', 'CD', 'msisdn',         '243'),
    ('airtel_mw',           'Airtel Money Malawi',      'MWK', 'MW', 'msisdn',         '265'),
    ('airtel_ng',           'Airtel Money Nigeria',     'NGN', 'NG', 'msisdn',         '234'),
    ('airtel_rw',           'Airtel Rwanda',            'RWF', 'RW', 'msisdn',         '250'),
    ('airtel_tz',           'Airtel Tanzania',          'TZS', 'TZ', 'msisdn',         '255'),
    ('airtel_ug',           'Airtel Uganda',            'UGX', 'UG', 'msisdn',         '256'),
    ('airtel_zm',           'Airtel Zambia',            'ZMW', 'ZM', 'msisdn',         '260'),
    ('djamo_ci',            'Djamo CI',                 'XOF', 'CI', 'msisdn',         '225'),
    ('djamo_sn',            'Djamo SN',                 'XOF', 'SN', 'msisdn',         '221'),
    ('e_money_sn',          'E-Money Senegal',          'XOF', 'SN', 'msisdn',         '221'),
    ('eu_mobile_cm',        'EU Mobile Money Cameroon', 'XAF', 'CM', 'msisdn',         '237'),
    ('freemoney_sn',        'Free Money Senegal',       'XOF', 'SN', 'msisdn',         '221'),
    ('halopesa_tz',         'Halopesa',                 'TZS', 'TZ', 'msisdn',         '255'),
    ('moneroo_payout_demo', 'Test Payout Method',       'USD', 'US', 'account_number', NULL),
    ('moov_bj',             'Moov Money Benin',         'XOF', 'BJ', 'msisdn',         '229'),
    ('moov_ci',             'Moov Money CI',            'XOF', 'CI', 'msisdn',         '225'),
    ('moov_tg',             'Moov Money Togo',          'XOF', 'TG', 'msisdn',         '228'),
    ('mpesa_ke',            'M-Pesa Kenya',             'KES', 'KE', 'msisdn',         '254'),
    ('mpesa_tz',            'Vodacom Tanzania',         'TZS', 'TZ', 'msisdn',         '255'),
    ('mtn_bj',              'MTN MoMo Benin',           'XOF', 'BJ', 'msisdn',         '229'),
    ('mtn_ci',              'MTN MoMo CI',              'XOF', 'CI', 'msisdn',         '225'),
    ('mtn_cm',              'MTN MoMo Cameroon',        'XAF', 'CM', 'msisdn',         '237'),
    ('mtn_gh',              'MTN MoMo Ghana',           'GHS', 'GH', 'msisdn',         '233'),
    ('mtn_ng',              'MTN Nigeria',              'NGN', 'NG', 'msisdn',         '234'),
    ('mtn_rw',              'MTN MoMo Rwanda',          'RWF', 'RW', 'msisdn',         '250'),
    ('mtn_ug',              'MTN MoMo Uganda',          'UGX', 'UG', 'msisdn',         '256'),
    ('mtn_zm',              'MTN MoMo Zambia',          'ZMW', 'ZM', 'msisdn',         '260'),
    ('orange_cd',           'Orange Congo',             'CDF', 'CD', 'msisdn',         '243'),
    ('orange_ci',           'Orange Money CI',          'XOF', 'CI', 'msisdn',         '225'),
    ('orange_cm',           'Orange Money Cameroon',    'XAF', 'CM', 'msisdn',         '237'),
    ('orange_ml',           'Orange Money Mali',        'XOF', 'ML', 'msisdn',         '223'),
    ('orange_sn',           'Orange Money Senegal',     'XOF', 'SN', 'msisdn',         '221'),
    ('tigo_gh',             'Airtel/Tigo Ghana',        'GHS', 'GH', 'msisdn',         '233'),
    ('tigo_tz',             'Tigo Tanzania',            'TZS', 'TZ', 'msisdn',         '255'),
    ('tnm_mw',              'TNM Mpamba Malawi',        'MWK', 'MW', 'msisdn',         '265'),
    ('togocel',             'Togocel Money',            'XOF', 'TG', 'msisdn',         '228'),
    ('vodacom_cd',          'Vodacom Congo',            'CDF', 'CD', 'msisdn',         '243'),
    ('vodafone_gh',         'Vodafone Ghana',           'GHS', 'GH', 'msisdn',         '233'),
    ('wave_ci',             'Wave CI',                  'XOF', 'CI', 'msisdn',         '225'),
    ('wave_sn',             'Wave Senegal',             'XOF', 'SN', 'msisdn',         '221'),
    ('zamtel_zm',           'Zamtel Kwacha',            'ZMW', 'ZM', 'msisdn',         '260'))
    AS documented_methods (code, name, currency, country, recipient_field, dial_code);

-- The queue and the ledger in one table.  LOGGED on purpose: crash recovery
-- empties unlogged tables, and a lost row is a payout nobody can account for.
CREATE TABLE payouts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference       uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    request         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'success',
                                      'failed', 'rejected', 'unknown')),
    moneroo_id      text UNIQUE,
    moneroo_status  text CHECK (moneroo_status IN ('initiated', 'pending', 'success', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    response        jsonb,
    -- 'amount'::text, not 'amount': an untyped literal takes the other
    -- operand's type, and pg_catalog has no ->>(jsonb, jsonb), so an operator
    -- of that name and those types in the extension's schema would be chosen
    -- (edited after 1.0's release, with the same result: see moneroo--1.2--1.3.sql)
    amount          bigint GENERATED ALWAYS AS ((request ->> 'amount'::text)::bigint) STORED,
    currency        text GENERATED ALWAYS AS (request ->> 'currency'::text) STORED,
    method          text GENERATED ALWAYS AS (request ->> 'method'::text) STORED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    completed_at    timestamptz,
    -- when the worker may next look at the row: a retry of a pending payout
    -- after 429 or a failed connection, or the next verification of a sent one
    next_attempt_at timestamptz,
    verifications   integer NOT NULL DEFAULT 0,
    CONSTRAINT payouts_sent_has_moneroo_id
        CHECK (status NOT IN ('sent', 'success', 'failed') OR moneroo_id IS NOT NULL)
);

COMMENT ON TABLE payouts IS 'Moneroo payouts: insert a request to queue it; the moneroo worker sends it after commit';
COMMENT ON COLUMN payouts.reference IS 'sent to Moneroo as metadata.payout_reference';
COMMENT ON COLUMN payouts.status IS 'pending, sending, sent, success, failed, rejected or unknown';

-- Partial indexes keep the worker's claim and verification scans as cheap
-- with a million settled payouts as with none.
CREATE INDEX payouts_claimable ON payouts (id) WHERE status = 'pending';
CREATE INDEX payouts_to_verify ON payouts (next_attempt_at) WHERE status = 'sent';
CREATE INDEX payouts_in_flight ON payouts (id) WHERE status = 'sending';

SELECT pg_catalog.pg_extension_config_dump('moneroo_payout_methods', 'WHERE NOT documented');
SELECT pg_catalog.pg_extension_config_dump('payouts', '');
SELECT pg_catalog.pg_extension_config_dump('payouts_id_seq', '');

-- Row guard: validates requests and keeps the state machine honest.
CREATE FUNCTION moneroo_payouts_guard() RETURNS trigger
    AS 'MODULE_PATHNAME', 'moneroo_payouts_guard' LANGUAGE C;

CREATE TRIGGER payouts_guard
    BEFORE INSERT OR UPDATE OR DELETE ON payouts
    FOR EACH ROW EXECUTE FUNCTION moneroo_payouts_guard();

-- TRUNCATE bypasses row triggers, so it gets its own refusal.
CREATE FUNCTION moneroo_payouts_refuse_truncate() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM @extschema@.payouts
               WHERE status NOT IN ('pending', 'rejected')) THEN
        RAISE EXCEPTION 'cannot truncate payouts: some payouts may have moved money'
            USING ERRCODE = '55000',
                  DETAIL = 'Payouts that reached Moneroo are the record of money sent.',
                  HINT = 'Delete pending or rejected payouts with DELETE instead.';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER payouts_refuse_truncate
    BEFORE TRUNCATE ON payouts
    FOR EACH STATEMENT EXECUTE FUNCTION moneroo_payouts_refuse_truncate();

CREATE FUNCTION moneroo_validate(request jsonb) RETURNS void
    AS 'MODULE_PATHNAME', 'moneroo_validate_sql' LANGUAGE C;
COMMENT ON FUNCTION moneroo_validate(jsonb) IS 'raise the error moneroo_transfer or INSERT would raise for this request, or nothing';

CREATE FUNCTION moneroo_transfer(request jsonb) RETURNS payouts
    AS 'MODULE_PATHNAME', 'moneroo_transfer' LANGUAGE C;
COMMENT ON FUNCTION moneroo_transfer(jsonb) IS 'send one payout now and return its recorded row';

CREATE FUNCTION moneroo_verify(id bigint) RETURNS payouts
    AS 'MODULE_PATHNAME', 'moneroo_verify' LANGUAGE C STRICT;
COMMENT ON FUNCTION moneroo_verify(bigint) IS 'ask Moneroo for the status of a payout now and record it';

CREATE FUNCTION moneroo_retry(id bigint) RETURNS payouts
    AS 'MODULE_PATHNAME', 'moneroo_retry' LANGUAGE C STRICT;
COMMENT ON FUNCTION moneroo_retry(bigint) IS 'put an unknown payout back in the queue once an operator has checked Moneroo';

REVOKE ALL ON TABLE payouts, moneroo_payout_methods FROM PUBLIC;
REVOKE ALL ON FUNCTION moneroo_validate(jsonb), moneroo_transfer(jsonb),
    moneroo_verify(bigint), moneroo_retry(bigint),
    moneroo_payouts_guard(), moneroo_payouts_refuse_truncate() FROM PUBLIC;

CREATE FUNCTION moneroo_worker_info(
    OUT worker_running boolean, OUT worker_pid integer, OUT in_flight integer,
    OUT requests_last_minute integer, OUT last_error text, OUT last_error_at timestamptz)
    AS 'MODULE_PATHNAME', 'moneroo_worker_info' LANGUAGE C STRICT;

-- The worker and the queue at a glance.
CREATE VIEW moneroo_status AS
SELECT w.worker_running,
       w.worker_pid,
       count(*) FILTER (WHERE p.status = 'pending')  AS pending,
       count(*) FILTER (WHERE p.status = 'sending')  AS sending,
       count(*) FILTER (WHERE p.status = 'sent')     AS sent,
       count(*) FILTER (WHERE p.status = 'success')  AS success,
       count(*) FILTER (WHERE p.status = 'failed')   AS failed,
       count(*) FILTER (WHERE p.status = 'rejected') AS rejected,
       count(*) FILTER (WHERE p.status = 'unknown')  AS unknown,
       min(p.created_at) FILTER (WHERE p.status = 'pending') AS oldest_pending,
       w.in_flight,
       w.requests_last_minute,
       w.last_error,
       w.last_error_at
FROM moneroo_worker_info() w
LEFT JOIN payouts p ON true
GROUP BY w.worker_running, w.worker_pid, w.in_flight, w.requests_last_minute,
         w.last_error, w.last_error_at;

REVOKE ALL ON FUNCTION moneroo_worker_info() FROM PUBLIC;
REVOKE ALL ON moneroo_status FROM PUBLIC;

CREATE FUNCTION moneroo_webhook(body text, signature text) RETURNS payouts
    AS 'MODULE_PATHNAME', 'moneroo_webhook' LANGUAGE C;
COMMENT ON FUNCTION moneroo_webhook(text, text) IS 'check a Moneroo webhook (raw body, X-Moneroo-Signature) and settle its payout by asking Moneroo';
REVOKE ALL ON FUNCTION moneroo_webhook(text, text) FROM PUBLIC;
