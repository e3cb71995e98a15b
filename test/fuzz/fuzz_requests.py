#!/usr/bin/env python3
"""fuzz_requests.py: the bad-input campaign against moneroo's request validation.

    python3 test/fuzz/fuzz_requests.py [--count 10000] [--seed S]      # TAP on stdout
    python3 test/fuzz/fuzz_requests.py --seed S --count N --show I     # one item and its verdict
    python3 test/fuzz/fuzz_requests.py --seed S --count N --replay I   # ... run through the server

Generates COUNT requests (request_gen.py: valid ones, valid ones mutated field
by field, random JSON, huge and deeply nested documents, unicode, escapes next
to NUL), asks the oracle (payout_model.py, a model of the contract) what each
deserves, and runs them all, in ONE transaction that is rolled back, through
  - the jsonb input function and moneroo_validate(jsonb)    (every item)
  - INSERT INTO payouts                                      (a sample)
  - UPDATE payouts SET request                               (a sample)
  - moneroo_transfer(jsonb)                                  (a sample of refused ones)
then checks: every invalid request refused with 22023 naming an offending
field, every valid one accepted, INSERT/UPDATE/moneroo_transfer refuse exactly
like moneroo_validate, nothing stored, nothing sent, the server never crashed.
It needs PGHOST, PGPORT, PGDATABASE, MOCK_URL, SERVER_LOG (test/run.sh sets
them); the database must have the moneroo extension.  Disagreements are listed
with the command that replays them.
"""

import argparse
import csv
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True     # no __pycache__ in the checkout

import payout_model as model  # noqa: E402
import request_gen as gen  # noqa: E402
import pgutil as pg  # noqa: E402

DEFAULT_SEED = 20261125
CUSTOM_METHOD = {"code": "fuzz_custom", "currency": "EUR", "country": "FR",
                 "recipient_field": "msisdn", "dial_code": "33"}
PARSE_STATES = {"22P02", "22P05", "54001", "22003", "22023"}
# (a refusal by a limit of moneroo_limits says which after a colon)
FIELD_RE = [re.compile(r'^(?:invalid|missing) "(.*)" in payout request(?:: [^"]*)?$', re.S),
            re.compile(r'^unknown key "(.*)" in payout request$', re.S)]


def big_stack(fn, *args):
    """Run fn in a thread with room for 100,000 levels of JSON nesting."""
    result = {}

    def target():
        try:
            result["v"] = fn(*args)
        except BaseException as e:      # re-raised in the caller
            result["e"] = e

    sys.setrecursionlimit(1_000_000)
    old = threading.stack_size(1 << 29)
    try:
        t = threading.Thread(target=target)
        t.start()
        t.join()
    finally:
        threading.stack_size(old)
    if "e" in result:
        raise result["e"]
    return result["v"]


# moneroo_limits of the campaign (inserted in its transaction, rolled back):
# requests above max_amount must be refused, naming "amount"
MAX_AMOUNTS = {"XOF": 250000}


def load_methods():
    ms = pg.rows("SELECT code, currency, country, recipient_field, dial_code "
                 "FROM moneroo_payout_methods ORDER BY code")
    return sorted(ms + [CUSTOM_METHOD], key=lambda m: m["code"])


def generate(seed, count, methods):
    items = []
    for i in range(count):
        kind, text = gen.item(seed, i, methods, count)
        items.append((i, kind, text))
    return items


def judge(items, methods):
    by_code = {m["code"]: m for m in methods}
    out = {}
    for i, kind, text in items:
        state, doc, why = model.parse_verdict(text)
        if text is None:
            v = model.Verdict()
            v.invalid("(null)", "SQL NULL")
        elif doc is not None or state == "ok":
            v = model.verdict(doc, by_code, MAX_AMOUNTS)
        else:
            v = None
        out[i] = (state, why, v)
    return out


def copy_escape(text):
    if text is None:
        return "\\N"
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            .replace("\t", "\\t"))


SQL = r"""
\set ON_ERROR_STOP 1
SET client_encoding = 'UTF8';
SET client_min_messages = warning;
BEGIN;
CREATE TEMP TABLE fz_in (i int PRIMARY KEY, doc text);
\copy fz_in FROM '@INFILE@'
CREATE TEMP TABLE fz_out (i int, stage text, state text, message text, detail text);
INSERT INTO moneroo_payout_methods (code, name, currency, country, recipient_field, dial_code)
VALUES ('fuzz_custom', 'Fuzz campaign method (rolled back)', 'EUR', 'FR', 'msisdn', '33');
INSERT INTO moneroo_limits (currency, max_amount) VALUES ('XOF', 250000);

CREATE FUNCTION pg_temp.fz_validate(lo int, hi int) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE r record; d jsonb; s text; m text; dt text;
BEGIN
    FOR r IN SELECT i, doc FROM fz_in WHERE i >= lo AND i < hi ORDER BY i LOOP
        d := NULL;
        IF r.doc IS NOT NULL THEN
            BEGIN
                d := r.doc::jsonb;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
                INSERT INTO fz_out VALUES (r.i, 'parse', s, m, NULL);
                CONTINUE;
            END;
        END IF;
        BEGIN
            PERFORM moneroo_validate(d);
            INSERT INTO fz_out VALUES (r.i, 'validate', '00000', NULL, NULL);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, dt = PG_EXCEPTION_DETAIL;
            INSERT INTO fz_out VALUES (r.i, 'validate', s, m, dt);
        END;
    END LOOP;
END $f$;

-- a sample: half accepted by moneroo_validate, half refused (and SQL NULL)
CREATE FUNCTION pg_temp.fz_sample(n int, salt int, refused_only boolean) RETURNS SETOF int
LANGUAGE sql AS $f$
    (SELECT i FROM fz_out WHERE stage = 'validate' AND state = '00000' AND NOT refused_only
     ORDER BY hashint4(i + salt) LIMIT n / 2)
    UNION ALL
    (SELECT i FROM fz_out WHERE stage = 'validate' AND state <> '00000'
     ORDER BY hashint4(i + salt) LIMIT n - (CASE WHEN refused_only THEN 0 ELSE n / 2 END))
$f$;

CREATE FUNCTION pg_temp.fz_insert(n int, salt int) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE r record; pid bigint; st text; same boolean; s text; m text; dt text;
BEGIN
    FOR r IN SELECT i, doc FROM fz_in WHERE i IN (SELECT pg_temp.fz_sample(n, salt, false)) ORDER BY i LOOP
        BEGIN
            INSERT INTO payouts (request) VALUES (r.doc::jsonb)
            RETURNING id, status, request = r.doc::jsonb INTO pid, st, same;
            INSERT INTO fz_out VALUES (r.i, 'insert', '00000',
                st || CASE WHEN same THEN '' ELSE ' (request changed)' END, pid::text);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, dt = PG_EXCEPTION_DETAIL;
            INSERT INTO fz_out VALUES (r.i, 'insert', s, m, dt);
        END;
    END LOOP;
END $f$;

CREATE FUNCTION pg_temp.fz_update(n int, salt int) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE r record; base bigint; same boolean; s text; m text; dt text;
BEGIN
    INSERT INTO payouts (request) VALUES ('{"amount": 1, "currency": "USD", "description": "fuzz base row (rolled back)",
        "method": "moneroo_payout_demo", "customer": {"email": "fuzz@example.com", "first_name": "Fuzz",
        "last_name": "Base"}, "recipient": {"account_number": "4149518161"}}') RETURNING id INTO base;
    FOR r IN SELECT i, doc FROM fz_in WHERE i IN (SELECT pg_temp.fz_sample(n, salt, false)) ORDER BY i LOOP
        BEGIN
            UPDATE payouts SET request = r.doc::jsonb WHERE id = base RETURNING request = r.doc::jsonb INTO same;
            INSERT INTO fz_out VALUES (r.i, 'update', '00000', CASE WHEN same THEN 'updated' ELSE 'changed' END, NULL);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, dt = PG_EXCEPTION_DETAIL;
            INSERT INTO fz_out VALUES (r.i, 'update', s, m, dt);
        END;
    END LOOP;
END $f$;

CREATE FUNCTION pg_temp.fz_transfer(n int, salt int) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE r record; s text; m text; dt text;
BEGIN
    FOR r IN SELECT i, doc FROM fz_in WHERE i IN (SELECT pg_temp.fz_sample(n, salt, true)) ORDER BY i LOOP
        BEGIN
            PERFORM moneroo_transfer(r.doc::jsonb);
            INSERT INTO fz_out VALUES (r.i, 'transfer', '00000', 'SENT', NULL);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, dt = PG_EXCEPTION_DETAIL;
            INSERT INTO fz_out VALUES (r.i, 'transfer', s, m, dt);
        END;
    END LOOP;
END $f$;
"""


def run_sql(items, workdir, seed, samples, timeout):
    infile = os.path.join(workdir, "requests.copy")
    outfile = os.path.join(workdir, "results.csv")
    with open(infile, "w", encoding="utf-8", errors="strict") as f:
        for i, kind, text in items:
            f.write(f"{i}\t{copy_escape(text)}\n")
    script = [SQL.replace("@INFILE@", infile)]
    step = 500
    for lo in range(0, len(items), step):
        script.append(f"SELECT pg_temp.fz_validate({lo}, {lo + step});")
    salt = seed % 100000
    script.append(f"SELECT pg_temp.fz_insert({samples[0]}, {salt});")
    script.append(f"SELECT pg_temp.fz_update({samples[1]}, {salt + 1});")
    script.append(f"SELECT pg_temp.fz_transfer({samples[2]}, {salt + 2});")
    script.append(f"\\copy fz_out TO '{outfile}' WITH (FORMAT csv)")
    script.append("ROLLBACK;")
    sql_path = os.path.join(workdir, "run.sql")
    with open(sql_path, "w", encoding="utf-8") as f:
        f.write("\n".join(script) + "\n")
    t0 = time.time()
    import subprocess
    cmd = pg.psql_args(extra=["-At", "-f", sql_path])
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        rc, err = p.returncode, p.stderr
    except subprocess.TimeoutExpired:
        rc, err = 124, f"psql timed out after {timeout}s"
    secs = time.time() - t0
    results = defaultdict(dict)
    if os.path.exists(outfile):
        with open(outfile, encoding="utf-8", newline="") as f:
            for i, stage, state, message, detail in csv.reader(f):
                results[int(i)][stage] = (state, message, detail)
    return rc, err, secs, results


def maximal_requests():
    """Valid requests as large as the rules allow, in characters that grow the
    most when written as JSON (4-byte UTF-8, or \\u escapes)."""
    def base(text, key, value):
        return {"amount": 999999999999999, "currency": "USD", "description": text(155),
                "method": "moneroo_payout_demo",
                "customer": {"email": "a" * 64 + "@" + "b" * 60 + ".com", "first_name": text(100),
                             "last_name": text(100), "phone": "1" * 15, "address": text(200),
                             "city": text(100), "state": text(100), "country": "BJ", "zip": text(100)},
                "metadata": {key(i): value(500) for i in range(10)},
                "recipient": {"account_number": "4" * 15}}
    return [
        ("every text at its limit in 4-byte characters",
         base(lambda n: "\U0001F4B8" * n, lambda i: "\U0001F4B8" * 63 + chr(65 + i), lambda n: "\U0001F4B8" * n)),
        ("metadata keys and values of control characters, texts of quotes",
         base(lambda n: '"' * n, lambda i: "\x02" * 63 + chr(65 + i), lambda n: "\x01" * n)),
        ("texts of backslashes, metadata of quotes",
         base(lambda n: "\\" * n, lambda i: "\\" * 63 + chr(65 + i), lambda n: '"' * n)),
    ]


def field_of(message):
    if message is None:
        return None
    if message.startswith("payout request must be a JSON object"):
        return "(root)"
    if message.startswith("payout request must not be null"):
        return "(null)"
    for r in FIELD_RE:
        m = r.match(message)
        if m:
            return m.group(1)
    return None


def names_a_field(message, fields):
    f = field_of(message)
    if f is None:
        return False
    if f in fields:
        return True
    if f.endswith("..."):
        return any(x.startswith(f[:-3]) for x in fields)
    return False


def detail_fields(detail):
    """The field paths of a refusal's detail: one problem per line, "path: sentence"
    (paths echo the request's keys, so only plain ones are read; the last line may
    count the problems left out)."""
    paths = []
    for line in (detail or "").split("\n"):
        path, sep, _ = line.partition(": ")
        if sep and re.fullmatch(r"[A-Za-z0-9_.]+", path):
            paths.append(path)
    return paths


def blames_only_offending_fields(detail, fields):
    return all(names_a_field(f'invalid "{p}" in payout request', fields) for p in detail_fields(detail))


def short(text, n=160):
    if text is None:
        return "SQL NULL"
    t = text if len(text) <= n else text[:n] + f"... ({len(text)} chars)"
    return t.encode("unicode_escape").decode("ascii")


def compare(items, judged, results):
    """Sort every item into buckets; returns (buckets, stats)."""
    bad = defaultdict(list)      # category -> [(i, explanation)]
    stats = Counter()
    kinds = {i: k for i, k, _ in items}
    texts = {i: t for i, _, t in items}
    for i, kind, text in items:
        pstate, pwhy, v = judged[i]
        res = results.get(i, {})
        stats[f"kind {kind}"] += 1
        if "parse" in res:
            state = res["parse"][0]
            stats["refused by the jsonb input function"] += 1
            if pstate == "ok":
                bad["jsonb refused JSON the model reads"].append((i, f"{state}: {res['parse'][1]}"))
            if state not in PARSE_STATES:
                bad["unexpected SQLSTATE from the jsonb input function"].append((i, f"{state}: {res['parse'][1]}"))
            continue
        if "validate" not in res:
            bad["no result (the session died?)"].append((i, ""))
            continue
        if pstate == "fail":
            bad["jsonb accepted text that is not JSON jsonb can hold"].append((i, pwhy))
            continue
        state, message, detail = res["validate"]
        if v is None:
            stats["parsed by jsonb, too deep for the model"] += 1
            if state not in ("00000", "22023"):
                bad["moneroo_validate raised an error other than 22023"].append((i, f"{state}: {message}"))
            continue
        stats[f"model {v.kind}"] += 1
        if v.kind == "valid":
            if state != "00000":
                bad["valid request refused"].append((i, f"{state}: {message} | {detail}"))
        elif v.kind == "invalid":
            if state == "00000":
                hard = [n for n in v.notes if "(either)" not in n]
                if all("is not an ISO 3166-1 alpha-2 code" in n for n in hard):
                    bad["unassigned country code accepted"].append((i, "; ".join(v.notes)))
                else:
                    bad["invalid request accepted"].append((i, "; ".join(v.notes)))
            elif state != "22023":
                bad["invalid request refused with a SQLSTATE other than 22023"].append((i, f"{state}: {message}"))
            elif not names_a_field(message, v.fields):
                bad["refusal does not name an offending field"].append(
                    (i, f"{message} | model: {'; '.join(v.notes)}"))
            elif not blames_only_offending_fields(detail, v.fields):
                bad["refusal lists a sound field"].append(
                    (i, f"{detail} | model: {'; '.join(v.notes)}"))
        else:
            outcome = "accepted" if state == "00000" else "refused"
            for note in sorted({n.split("(either) ", 1)[1] for n in v.notes if "(either) " in n}):
                stats[f"either, {note}: {outcome}"] += 1
            if state not in ("00000", "22023"):
                bad["moneroo_validate raised an error other than 22023"].append((i, f"{state}: {message}"))
            elif state == "22023" and not names_a_field(message, v.fields):
                bad["refusal does not name an offending field"].append(
                    (i, f"{message} | model: {'; '.join(v.notes)}"))
        # the samples: the same answer as moneroo_validate
        for stage in ("insert", "update", "transfer"):
            if stage not in res:
                continue
            stats[f"{stage} sample"] += 1
            s2, m2, d2 = res[stage]
            if text is None and stage == "insert":
                if s2 not in ("23502", "22023"):
                    bad[f"{stage} differs from moneroo_validate"].append((i, f"{s2}: {m2}"))
                continue
            if state == "00000":
                if stage == "insert" and (s2, m2) != ("00000", "pending"):
                    bad["insert differs from moneroo_validate"].append((i, f"{s2}: {m2}"))
                elif stage == "update" and (s2, m2) != ("00000", "updated"):
                    bad["update differs from moneroo_validate"].append((i, f"{s2}: {m2}"))
            elif (s2, m2) != (state, message):
                bad[f"{stage} differs from moneroo_validate"].append(
                    (i, f"{stage}: {s2}: {m2} / moneroo_validate: {state}: {message}"))
    return bad, stats, kinds, texts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=int(os.environ.get("FUZZ_COUNT", 10000)))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--insert-sample", type=int, default=1000)
    ap.add_argument("--update-sample", type=int, default=300)
    ap.add_argument("--transfer-sample", type=int, default=300)
    ap.add_argument("--timeout", type=int, default=900, help="seconds for the SQL run")
    ap.add_argument("--show", type=int, action="append", help="print item I and the model's verdict")
    ap.add_argument("--replay", type=int, action="append", help="run item I through the server")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--examples", type=int, default=8, help="disagreements listed per category")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int(os.environ.get("FUZZ_SEED") or DEFAULT_SEED)
    if seed < 0:
        seed = random.SystemRandom().randrange(1, 2 ** 31)

    methods = load_methods()
    if a.show or a.replay:
        return show(seed, a.count, methods, a.show or [], a.replay or [])

    tap = pg.Tap()
    replay = f"python3 test/fuzz/fuzz_requests.py --seed {seed} --count {a.count}"
    tap.diag(f"seed {seed}, {a.count} requests; replay one with: {replay} --show I (or --replay I)")
    t0 = time.time()
    items = big_stack(generate, seed, a.count, methods)
    judged = big_stack(judge, items, methods)
    tap.diag(f"generated and judged in {time.time() - t0:.1f}s "
             f"({sum(len(t or '') for _, _, t in items) / 1e6:.1f} MB of JSON text)")

    log = pg.LogWatch()
    pm_before, worker_before = pg.postmaster_pid(), pg.worker_pid()
    before = pg.rows("SELECT (SELECT coalesce(max(id), 0) FROM payouts) AS max_id, "
                     "(SELECT count(*) FROM payouts) AS n, "
                     "(SELECT count(*) FROM moneroo_payout_methods) AS methods")[0]
    seq_before = pg.mock_seq()
    creates_before = pg.mock_stats()["creates"]

    workdir = tempfile.mkdtemp(prefix="moneroo-fuzz.")
    try:
        rc, err, secs, results = run_sql(items, workdir, seed,
                                         (a.insert_sample, a.update_sample, a.transfer_sample), a.timeout)
        tap.ok(rc == 0, f"the {a.count} requests ran through jsonb, moneroo_validate and the samples "
               f"in one session without an error escaping ({secs:.1f}s)", err[-2000:])
        bad, stats, kinds, texts = compare(items, judged, results)
        for k in sorted(stats):
            tap.diag(f"  {k}: {stats[k]}")

        def check(category, desc):
            found = bad.pop(category, [])
            lines = []
            for i, why in found[:a.examples]:
                lines.append(f"item {i} ({kinds[i]}): {short(texts[i])}")
                lines.append(f"    -> {why[:400]}")
            if len(found) > a.examples:
                lines.append(f"... and {len(found) - a.examples} more")
            if found:
                lines.append(f"replay: {replay} --replay {found[0][0]}")
            tap.ok(not found, f"{desc} ({len(found)} exceptions)", *lines)

        check("jsonb accepted text that is not JSON jsonb can hold",
              "text that is not JSON (or holds \\u0000 or a lone surrogate) is refused by jsonb input")
        check("jsonb refused JSON the model reads", "JSON the model reads is read by jsonb input too")
        check("unexpected SQLSTATE from the jsonb input function",
              "jsonb input refuses bad text with 22P02/22P05/54001/22003")
        check("no result (the session died?)", "every request got an answer")
        check("invalid request accepted",
              "every request the contract says is invalid is refused by moneroo_validate")
        check("unassigned country code accepted",
              "a customer.country that is not an ISO 3166-1 alpha-2 code (QQ, UK, EU, XX) is refused")
        check("invalid request refused with a SQLSTATE other than 22023",
              "every invalid request is refused with SQLSTATE 22023")
        check("valid request refused", "every valid request is accepted by moneroo_validate")
        check("moneroo_validate raised an error other than 22023",
              "moneroo_validate raises nothing but 22023, whatever the input")
        check("refusal does not name an offending field",
              "each refusal's message names an offending field")
        check("refusal lists a sound field",
              "each problem a refusal lists in its detail (one per line, by field path) is an offending field")
        check("insert differs from moneroo_validate",
              f"INSERT (sample of {a.insert_sample}) stores valid requests as pending, unchanged, "
              "and refuses invalid ones exactly like moneroo_validate")
        check("update differs from moneroo_validate",
              f"UPDATE of a pending row's request (sample of {a.update_sample}) accepts and refuses "
              "exactly like moneroo_validate")
        check("transfer differs from moneroo_validate",
              f"moneroo_transfer (sample of {a.transfer_sample} refused requests) refuses exactly like "
              "moneroo_validate")
        for category in list(bad):
            check(category, category)

        after = pg.rows("SELECT (SELECT coalesce(max(id), 0) FROM payouts) AS max_id, "
                        "(SELECT count(*) FROM payouts) AS n, "
                        "(SELECT count(*) FROM moneroo_payout_methods) AS methods")[0]
        stored = pg.scalar(f"SELECT count(*) FROM payouts WHERE id > {before['max_id']}")
        tap.ok(stored == "0" and after["n"] == before["n"] and after["methods"] == before["methods"],
               "nothing was stored: after the ROLLBACK payouts and moneroo_payout_methods are as before",
               f"before {before}, after {after}, new rows {stored}")
        time.sleep(0.5)
        journal = pg.mock_journal(seq_before)
        inits = [e for e in journal if e.get("path") == "/v1/payouts/initialize"]
        tap.ok(not inits and pg.mock_stats()["creates"] == creates_before,
               "nothing was sent: Moneroo received no initialize request during the campaign",
               f"{len(inits)} initialize requests, e.g. {str(inits[:1])[:300]}")
        crashes = log.crashes()
        tap.ok(pg.postmaster_pid() == pm_before and not crashes and pg.wait_server(10),
               "the server never crashed (same postmaster, no process died of a signal)",
               *crashes[:10])
        tap.ok(pg.worker_pid() == worker_before,
               "the worker kept running through the campaign",
               f"before {worker_before}, after {pg.worker_pid()}")

        # The only payouts this script sends: valid requests as large as the
        # rules allow must go out like any other (3 payouts to the mock).
        by_code = {m["code"]: m for m in methods}
        for name, req in maximal_requests():
            v = model.verdict(model.parse(json.dumps(req)), by_code, MAX_AMOUNTS)
            text = json.dumps(req).replace("'", "''")
            try:
                out = pg.scalar(f"SELECT octet_length(r::text) || ' ' || status FROM "
                                f"(SELECT '{text}'::jsonb AS r) q, moneroo_transfer(r)", timeout=60)
                err = ""
            except pg.SqlError as e:
                out, err = "", str(e)
            tap.ok(v.kind == "valid" and out.endswith(" sent"),
                   f"a valid request at every limit ({name}) is sent by moneroo_transfer",
                   f"model: {v.kind}", f"got: {out or err[:400]}")
    finally:
        if a.keep:
            tap.diag(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return tap.done()


def show(seed, count, methods, show_ids, replay_ids):
    by_code = {m["code"]: m for m in methods}
    for i in sorted(set(show_ids) | set(replay_ids)):
        kind, text = big_stack(gen.item, seed, i, methods, count)
        state, doc, why = big_stack(model.parse_verdict, text)
        print(f"item {i} ({kind}), {len(text or '')} characters:")
        print("  " + short(text, 2000))
        print(f"  model: jsonb input {state} {why}")
        if doc is not None or (state == "ok" and text is not None):
            print(f"  model: {model.verdict(doc, by_code)}")
        if i in replay_ids:
            sql = ("BEGIN; INSERT INTO moneroo_payout_methods (code, name, currency, country, recipient_field, "
                   "dial_code) VALUES ('fuzz_custom', 'x', 'EUR', 'FR', 'msisdn', '33'); "
                   "SELECT moneroo_validate(%s); ROLLBACK;")
            lit = "NULL" if text is None else "$fz$" + text + "$fz$"
            try:
                pg.psql(None, stdin=(sql % lit), args=("-v", "VERBOSITY=verbose"))
                print("  server: accepted")
            except pg.SqlError as e:
                print("  server: " + str(e)[:2000].replace("\n", "\n          "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
