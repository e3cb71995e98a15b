#!/usr/bin/env python3
"""api_garbage.py: garbage from the API side (TAP on stdout).

Moneroo (the mock) answers initialize and verify requests, and webhooks
arrive, with: truncated JSON, empty and oversized bodies, HTML, wrong types
in data, an id of 10 KB, ids with slashes, spaces, NUL or non-ASCII, invalid
UTF-8, lone surrogates, nesting 100,000 deep, numbers jsonb cannot hold,
unknown statuses, redirects, 204s.  Each must be recorded as an error or as
unknown: never a crash, never a wrong success (a row sent/success/failed is
always one the mock created, under the id the mock gave it).

Needs the environment test/run.sh gives scripts (PGHOST, PGPORT, PGDATA,
MOCK_URL, SERVER_LOG, CLUSTER_LIB).  Changes moneroo.rate_limit,
verify_min_interval, verify_max_interval (ALTER SYSTEM) and
moneroo.webhook_secret (postgresql.conf, restart) and puts them back.
"""

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True     # no __pycache__ in the checkout
import pgutil as pg  # noqa: E402

TAG = "82 garbage"
SECRET = "whsec_fuzz_garbage_secret"
BIG = 2 * 1024 * 1024
# The mock takes control requests of 1 MB at most, and escapes non-ASCII in
# the JSON it sends: 200,000 emoji (800 KB here) become 2.4 MB on the wire.
PAD = "\U0001F4B8" * 200000
ID10K = "a" * 10240
PLAUSIBLE = "abcdef123456"


def body(obj):
    return {"kind": "garbage_json", "body": obj}


INIT_CASES = [
    ("truncated JSON", body('{"success":true,"message":"Payout transaction initialized successfully","data":{"id":"')),
    ("an empty body", body("")),
    ("HTML instead of JSON", {"kind": "garbage"}),
    ("a body over 1 MB carrying a plausible id",
     body({"success": True, "data": {"id": PLAUSIBLE}, "pad": PAD})),
    ("data as an array", body({"success": True, "data": [{"id": PLAUSIBLE}]})),
    ("data as a string", body({"success": True, "data": PLAUSIBLE})),
    ("data null", body({"success": True, "message": "ok", "data": None})),
    ("no data at all", body({"success": True, "message": "Payout transaction initialized successfully"})),
    ("the id as a number", body({"success": True, "data": {"id": 123456789012}})),
    ("the id null", body({"success": True, "data": {"id": None}})),
    ("the id true", body({"success": True, "data": {"id": True}})),
    ("the id an object", body({"success": True, "data": {"id": {"id": PLAUSIBLE}}})),
    ("the id an array", body({"success": True, "data": {"id": [PLAUSIBLE]}})),
    ("an empty id", body({"success": True, "data": {"id": ""}})),
    ("an id of 10 KB", body({"success": True, "data": {"id": ID10K}})),
    ("an id of 65 characters", body({"success": True, "data": {"id": "b" * 65}})),
    ("an id with a slash and dots", body({"success": True, "data": {"id": "../../v1/payouts"}})),
    ("an id with a space", body({"success": True, "data": {"id": "abc def"}})),
    ("an id with a quote and a semicolon", body({"success": True, "data": {"id": "ab'c;DROP"}})),
    ("a non-ASCII id", body({"success": True, "data": {"id": "ïd123456"}})),
    ("an id with \\u0000", body('{"success":true,"data":{"id":"abc\\u0000def"}}')),
    ("a raw NUL byte in the body", body('{"success":true,"data":{"id":"abc\x00def"}}')),
    ("invalid UTF-8 in the body", body('{"success":true,"message":"\ud800","data":{"id":"%s"}}' % PLAUSIBLE)),
    ("a lone surrogate escape", body('{"success":true,"message":"\\ud800","data":{"id":"%s"}}' % PLAUSIBLE)),
    ("nesting 100,000 deep", body('{"success":true,"data":{"id":"%s"},"x":%s%s}'
                                  % (PLAUSIBLE, "[" * 100000, "]" * 100000))),
    ("a top-level array", body('[{"success":true,"data":{"id":"%s"}}]' % PLAUSIBLE)),
    ("a top-level string", body('"%s"' % PLAUSIBLE)),
    ("200 with data null", {"kind": "status_after_create", "status": 200}),
    ("204 No Content", {"kind": "status_after_create", "status": 204}),
    ("302 Found", {"kind": "status_after_create", "status": 302}),
    ("HTTP 599", {"kind": "status_after_create", "status": 599}),
    ("201 with an unknown status field", body({"success": True, "data": {"id": None, "status": "weird"}})),
]

VERIFY_CASES = [
    ("status SUCCESS in capitals", {"kind": "verify_status", "value": "SUCCESS"}),
    ("status completed", {"kind": "verify_status", "value": "completed"}),
    ("status paid", {"kind": "verify_status", "value": "paid"}),
    ("an empty status", {"kind": "verify_status", "value": ""}),
    ("status 'success ' with a trailing space", {"kind": "verify_status", "value": "success "}),
    ("a numeric status", {"kind": "verify_status", "value": 42}),
    ("a null status", lambda mid: {"kind": "garbage_json", "route": "verify",
                                   "body": {"message": "ok", "data": {"id": mid, "status": None}}}),
    ("its own id but no status", lambda mid: {"kind": "garbage_json", "route": "verify",
                                              "body": {"message": "ok", "data": {"id": mid}}}),
    ("its own id inside an array", lambda mid: {"kind": "garbage_json", "route": "verify",
                                            "body": {"data": {"id": [mid], "status": "success"}}}),
    ("an object as status", lambda mid: {"kind": "garbage_json", "route": "verify",
                                         "body": {"data": {"id": mid, "status": {"status": "success"}}}}),
    ("a boolean status", {"kind": "verify_status", "value": True}),
    ("truncated JSON", {"kind": "garbage_json", "route": "verify",
                        "body": '{"message":"Payout transaction fetched successfully!","data":{"id":"'}),
    ("another payout's id with status success",
     {"kind": "garbage_json", "route": "verify",
      "body": {"message": "ok", "data": {"id": "zzzzzzzzzzzz", "status": "success"}}}),
    ("no id, status success", {"kind": "garbage_json", "route": "verify",
                               "body": {"message": "ok", "data": {"status": "success"}}}),
    ("an id of 10 KB, status success", {"kind": "garbage_json", "route": "verify",
                                        "body": {"data": {"id": ID10K, "status": "success"}}}),
    ("data as an array", {"kind": "garbage_json", "route": "verify",
                          "body": {"data": [{"status": "success"}]}}),
    ("a body over 1 MB", {"kind": "garbage_json", "route": "verify",
                          "body": {"data": {"status": "success", "pad": PAD}}}),
    ("HTML", {"kind": "garbage", "route": "verify"}),
    ("HTTP 500", {"kind": "status", "status": 500, "route": "verify"}),
]

REQUEST = {"amount": 100, "currency": "USD", "method": "moneroo_payout_demo",
           "customer": {"email": "garbage@example.com", "first_name": "Garbage", "last_name": "Test"},
           "recipient": {"account_number": "4149518161"}}


def request(name):
    r = dict(REQUEST)
    r["description"] = f"{TAG}: {name}"[:155]
    return json.dumps(r)


def lit(s):
    return "'" + s.replace("'", "''") + "'"


def insert(name):
    return int(pg.scalar(f"INSERT INTO payouts (request) VALUES ({lit(request(name))}::jsonb) RETURNING id"))


def row(pid):
    r = pg.rows(f"SELECT id, reference::text, status, moneroo_id, moneroo_status, last_error, "
                f"length(last_error) AS error_len FROM payouts WHERE id = {pid}")
    return r[0] if r else None


def wait_row(pid, done, seconds):
    deadline = time.time() + seconds
    r = row(pid)
    while time.time() < deadline and not done(r):
        time.sleep(0.1)
        r = row(pid)
    return r


def wait_rows(ids, status, seconds):
    """The rows (id, status, moneroo_id) of ids, once all are in status or seconds have passed."""
    deadline = time.time() + seconds
    while True:
        rs = pg.rows(f"SELECT id, status, moneroo_id FROM payouts WHERE id IN ({','.join(map(str, ids))})")
        if all(r["status"] == status for r in rs) or time.time() >= deadline:
            return rs
        time.sleep(0.2)


def at_mock():
    return {p["reference"]: p for p in pg.mock_payouts() if p.get("reference")}


def sign(text):
    return hmac.new(SECRET.encode(), text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def webhook(text, signature):
    """(sqlstate or '00000', message, status of the returned row)."""
    sql = (r"\set VERBOSITY verbose" "\n"
           f"SELECT status FROM moneroo_webhook({lit(text) if text is not None else 'NULL'}, {lit(signature)});\n")
    try:
        out = pg.psql(None, stdin=sql, timeout=60)
        return "00000", "", out.strip()
    except pg.SqlError as e:
        msg = str(e)
        m = re.search(r"ERROR:\s+([0-9A-Z]{5}): ([^\n]*)", msg)
        return (m.group(1), m.group(2)[:300], None) if m else ("?????", msg[:300], None)


def conf_line_present():
    try:
        with open(os.path.join(os.environ["PGDATA"], "postgresql.conf")) as f:
            return f"moneroo.webhook_secret = '{SECRET}'" in f.read()
    except OSError:
        return False


def main():
    tap = pg.Tap()
    log = pg.LogWatch()
    conf = os.path.join(os.environ["PGDATA"], "postgresql.conf")
    conf_backup = None
    if not pg.wait_server(30):
        pg.fatal("the server does not answer")
    try:
        # ---------------------------------------------------------------- set-up
        if not conf_line_present():
            with open(conf) as f:
                conf_backup = f.read()
            pg.cluster("cluster_conf_append", f"moneroo.webhook_secret = '{SECRET}'")
            rc, out = pg.cluster("cluster_restart")
            if rc != 0 or not pg.wait_server(30):
                pg.fatal(f"the server does not restart with a webhook secret: {out[-500:]}")
        pg.psql("ALTER SYSTEM SET moneroo.rate_limit = 0")
        pg.psql("ALTER SYSTEM SET moneroo.verify_min_interval = '200ms'")
        pg.psql("ALTER SYSTEM SET moneroo.verify_max_interval = '1s'")
        pg.psql("SELECT pg_reload_conf()")
        pg.mock("POST", "/__mock/reset", {})
        pg.mock("POST", "/__mock/config", {"rate_limit": 0})
        start_id = int(pg.scalar("SELECT coalesce(max(id), 0) FROM payouts"))
        pm_before = pg.postmaster_pid()
        worker = pg.wait_worker(30)
        tap.ok(worker is not None, "the worker runs")
        time.sleep(0.5)     # the reload reaches the worker

        # ---------------------------------------------------------------- initialize
        tap.diag("initialize answered with garbage after Moneroo created the payout: unknown, never sent")
        for name, fault in INIT_CASES:
            pg.mock("DELETE", "/__mock/faults")
            pg.mock("POST", "/__mock/faults", fault)
            pid = insert(name)
            r = wait_row(pid, lambda r: r and r["status"] not in ("pending", "sending"), 20)
            pg.mock("DELETE", "/__mock/faults")
            ok = r and r["status"] == "unknown" and r["moneroo_id"] is None \
                and r["last_error"] and r["error_len"] <= 1500
            tap.ok(ok, f"initialize answered with {name}: the payout is unknown, without a moneroo_id, "
                       f"with a bounded last_error",
                   f"row: {str(r)[:600]}")

        tap.diag("moneroo_transfer with garbage answers: WARNING and an unknown row, no ERROR")
        init_case = dict(INIT_CASES)
        for name in ("truncated JSON", "an id of 10 KB"):
            fault = init_case[name]
            pg.mock("POST", "/__mock/faults", fault)
            p = subprocess.run(pg.psql_args(extra=["-At", "-c",
                               f"SELECT status, moneroo_id IS NULL FROM moneroo_transfer({lit(request('transfer ' + name))}::jsonb)"]),
                               capture_output=True, text=True, timeout=60)
            pg.mock("DELETE", "/__mock/faults")
            tap.ok(p.returncode == 0 and p.stdout.strip() == "unknown|t" and "WARNING" in p.stderr,
                   f"moneroo_transfer answered with {name}: returns the row unknown with a WARNING",
                   f"exit {p.returncode}, stdout {p.stdout.strip()!r}, stderr {p.stderr.strip()[:500]!r}")

        # ---------------------------------------------------------------- verify
        tap.diag("verify answered with garbage: the payout stays sent, then settles once answers are sane")
        pg.mock("POST", "/__mock/config", {"pending_after": 1000, "final_after": 2000})
        ids = [insert(f"verify {name}") for name, _ in VERIFY_CASES]
        rs = wait_rows(ids, "sent", 30)
        mids = {r["id"]: r["moneroo_id"] for r in rs}
        tap.ok(all(r["status"] == "sent" for r in rs), f"the {len(ids)} payouts for the verify cases are sent",
               str([r for r in rs if r["status"] != "sent"])[:500])
        seq = pg.mock_seq()
        for (name, fault), pid in zip(VERIFY_CASES, ids):
            if mids.get(pid):
                f = fault(mids[pid]) if callable(fault) else fault
                pg.mock("POST", "/__mock/faults", dict(f, id=mids[pid], count=-1))
        # every payout gets at least two garbage answers
        deadline = time.time() + 30
        while time.time() < deadline:
            hits = {}
            for e in pg.mock_journal(seq):
                if e.get("fault") and e.get("method") == "GET":
                    parts = e["path"].split("/")
                    if len(parts) > 3:
                        hits[parts[3]] = hits.get(parts[3], 0) + 1
            if all(hits.get(m, 0) >= 2 for m in mids.values() if m):
                break
            time.sleep(0.3)
        rs = {r["id"]: r for r in pg.rows(f"SELECT id, status, moneroo_status, last_error, "
                                          f"length(last_error) AS error_len, verifications "
                                          f"FROM payouts WHERE id IN ({','.join(map(str, ids))})")}
        for (name, fault), pid in zip(VERIFY_CASES, ids):
            r = rs.get(pid, {})
            m = mids.get(pid)
            tap.ok(r.get("status") == "sent" and r.get("moneroo_status") in ("initiated", "pending")
                   and r.get("last_error") and r.get("error_len", 0) <= 1500 and hits.get(m, 0) >= 2,
                   f"verify answered with {name}: the payout stays sent, the error recorded",
                   f"row: {str(r)[:500]}, garbage answers seen: {hits.get(m, 0)}")
        pg.mock("DELETE", "/__mock/faults")
        pg.mock("POST", "/__mock/config", {"pending_after": 0, "final_after": 0})
        rs = wait_rows(ids, "success", 30)
        tap.ok(all(r["status"] == "success" for r in rs),
               "once Moneroo answers sanely again, every one of them settles as success",
               str([r for r in rs if r["status"] != "success"])[:500])

        # moneroo_verify() in a backend, with garbage
        pg.mock("POST", "/__mock/config", {"pending_after": 1000, "final_after": 2000})
        verify_case = dict(VERIFY_CASES)
        for name in ("status SUCCESS in capitals", "truncated JSON", "an id of 10 KB, status success"):
            fault = verify_case[name]
            pid = insert(f"moneroo_verify {name}")
            r = wait_row(pid, lambda r: r and r["status"] == "sent", 20)
            pg.mock("POST", "/__mock/faults", dict(fault, id=(r or {}).get("moneroo_id") or "x", count=-1))
            p = subprocess.run(pg.psql_args(extra=["-At", "-c", f"SELECT status FROM moneroo_verify({pid})"]),
                               capture_output=True, text=True, timeout=60)
            pg.mock("DELETE", "/__mock/faults")
            after = row(pid)
            tap.ok(after and after["status"] == "sent" and (p.returncode == 0 and p.stdout.strip() == "sent"
                                                            or "ERROR" in p.stderr),
                   f"moneroo_verify() answered with {name}: the row stays sent (an error or the row)",
                   f"exit {p.returncode} {p.stdout.strip()!r} {p.stderr.strip()[:300]!r}", f"row {after}")
        pg.mock("POST", "/__mock/config", {"pending_after": 0, "final_after": 0})

        # ---------------------------------------------------------------- webhooks
        tap.diag("webhooks with garbage bodies (correctly signed unless said otherwise)")
        pg.mock("POST", "/__mock/config", {"pending_after": 1000, "final_after": 2000})
        wid = insert("webhook target")
        wr = wait_row(wid, lambda r: r and r["status"] == "sent", 20) or {}
        mid = wr.get("moneroo_id") or "none"
        event = lambda extra="": '{"event":"payout.success","data":{"id":"%s","status":"success"}%s}' % (mid, extra)
        cases = [
            ("truncated JSON", '{"event":"payout.success","data":{"id":"', None, {"22023"}),
            ("a JSON array", "[]", None, {"22023"}),
            ("a payment event", '{"event":"payment.success","data":{"id":"%s"}}' % mid, None, {"22023"}),
            ("data.id of 10 KB", '{"event":"payout.success","data":{"id":"%s"}}' % ID10K, None, {"22023"}),
            ("data.id a number", '{"event":"payout.success","data":{"id":12345}}', None, {"22023"}),
            ("data an array", '{"event":"payout.success","data":[]}', None, {"22023"}),
            ("nesting 100,000 deep", '{"event":"payout.success","data":{"id":"%s"},"x":%s%s}'
             % (mid, "[" * 100000, "]" * 100000), None, {"22023"}),
            ("\\u0000 in the body", '{"event":"payout.success","data":{"id":"abc\\u0000"}}', None, {"22023"}),
            ("an id no payout carries", '{"event":"payout.success","data":{"id":"nosuchpayout1"}}', None, {"P0002"}),
            ("a bad signature", event(), "0" * 64, {"28000"}),
            ("an uppercase signature", event(), sign(event()).upper(), {"28000"}),
            ("success claimed while Moneroo says initiated", event(), None, {"00000"}),
            ("a body of 2 MB", event(',"pad":"%s"' % ("x" * BIG)), None, {"00000"}),
            ("a number jsonb cannot hold", event(',"n":1e200000'), None, {"00000", "22023"}),
        ]
        for name, text, signature, want in cases:
            state, msg, status = webhook(text, signature if signature is not None else sign(text))
            after = row(wid)
            tap.ok(state in want and after and after["status"] == "sent",
                   f"webhook with {name}: {' or '.join(sorted(want))}, the payout stays sent",
                   f"got {state} {msg!r}, returned status {status!r}", f"row {after}")
        state, msg, status = webhook(None, sign(""))
        tap.ok(state == "22023", "webhook with a NULL body: 22023", f"got {state} {msg!r}")
        pg.mock("POST", "/__mock/config", {"pending_after": 0, "final_after": 0})

        # ---------------------------------------------------------------- numbers jsonb cannot hold
        # Last: when such an answer cannot be recorded the worker holds it and
        # takes no new work, so the server is restarted afterwards if needed.
        tap.diag("answers carrying a number jsonb cannot hold (1e200000)")
        pg.mock("POST", "/__mock/config", {"pending_after": 1000, "final_after": 2000})
        vid = insert("verify with 1e200000")
        vr = wait_row(vid, lambda r: r and r["status"] == "sent", 20) or {}
        seq = pg.mock_seq()
        pg.mock("POST", "/__mock/faults", {"kind": "garbage_json", "route": "verify", "count": -1,
                                          "id": vr.get("moneroo_id") or "x",
                                          "body": '{"data":{"id":"%s","status":"success"},"n":1e200000}'
                                          % vr.get("moneroo_id")})
        deadline = time.time() + 15
        while time.time() < deadline and not any(e.get("fault") for e in pg.mock_journal(seq)):
            time.sleep(0.2)
        after_id = insert("queued after the 1e200000 verify answer")
        r2 = wait_row(after_id, lambda r: r and r["status"] not in ("pending", "sending"), 10)
        tap.ok(r2 and r2["status"] in ("sent", "success", "failed"),
               "after a verify answer holding 1e200000 the worker keeps serving the queue "
               "(the next payout is sent)", f"next payout: {r2}", f"the verified one: {row(vid)}",
               *[l for l in log.lines() if "numeric" in l][-3:])
        tap.ok((row(vid) or {}).get("status") == "sent",
               "the payout whose verify answer held 1e200000 stays sent (not settled on an unreadable answer)",
               f"row {row(vid)}")
        pg.mock("DELETE", "/__mock/faults")
        pg.mock("POST", "/__mock/config", {"pending_after": 0, "final_after": 0})
        unblock(tap, [after_id])

        pg.mock("POST", "/__mock/faults", body('{"success":true,"data":{"id":"%s"},"n":1e200000}' % PLAUSIBLE))
        iid = insert("initialize with 1e200000")
        r = wait_row(iid, lambda r: r and r["status"] not in ("pending", "sending"), 15)
        pg.mock("DELETE", "/__mock/faults")
        tap.ok(r and r["status"] == "unknown" and r["moneroo_id"] is None,
               "initialize answered 201 with a body holding 1e200000: the payout is recorded unknown",
               f"row: {r}", *[l for l in log.lines() if "numeric" in l][-3:])
        after_id = insert("queued after the 1e200000 initialize answer")
        r2 = wait_row(after_id, lambda r: r and r["status"] not in ("pending", "sending"), 10)
        tap.ok(r2 and r2["status"] in ("sent", "success", "failed"),
               "after it the worker keeps serving the queue (the next payout is sent)", f"next payout: {r2}")
        unblock(tap, [iid, after_id])

        # ---------------------------------------------------------------- invariants
        rows_ = pg.rows(f"SELECT id, reference::text AS reference, status, moneroo_id FROM payouts "
                        f"WHERE id > {start_id}")
        mock_by_ref = at_mock()
        stuck = [r for r in rows_ if r["status"] in ("pending", "sending")]
        tap.ok(not stuck, "no payout of this script is left pending or sending", str(stuck)[:500])
        wrong = [r for r in rows_ if r["status"] in ("sent", "success", "failed")
                 and (mock_by_ref.get(r["reference"]) or {}).get("id") != r["moneroo_id"]]
        tap.ok(not wrong, "never a wrong success: every sent/success/failed payout is one Moneroo created, "
                          "under the id Moneroo gave it", str(wrong)[:800])
        lost = [ref for ref in mock_by_ref if ref not in {r["reference"] for r in rows_}]
        tap.ok(not lost, "every payout Moneroo created is on record", str(lost)[:500])
        dup = pg.mock_stats().get("duplicate_references")
        tap.ok(not dup, "no payout was created twice", str(dup)[:300])
        crashes = log.crashes()
        tap.ok(not crashes and pg.wait_server(20) and pg.worker_pid(),
               "no server process crashed, and the worker runs", *crashes[:10])
        tap.diag(f"postmaster pid before {pm_before}, after {pg.postmaster_pid()} (restarted only when "
                 "a stuck worker had to be cleared)")
    finally:
        pg.mock("DELETE", "/__mock/faults")
        pg.mock("POST", "/__mock/config", {"pending_after": 0.3, "final_after": 0.8, "rate_limit": 120})
        for s in ("moneroo.rate_limit", "moneroo.verify_min_interval", "moneroo.verify_max_interval"):
            pg.try_scalar(f"ALTER SYSTEM RESET {s}")
        pg.try_scalar("SELECT pg_reload_conf()")
        if conf_backup is not None:
            with open(conf, "w") as f:      # the file keeps its owner
                f.write(conf_backup)
            pg.cluster("cluster_restart")
            pg.wait_server(30)
    return tap.done()


def unblock(tap, ids):
    """If the worker is stuck on a result it cannot record, restart the server
    (a fast stop) so that the following tests start clean."""
    stuck = pg.scalar(f"SELECT count(*) FROM payouts WHERE id IN ({','.join(map(str, ids))}) "
                      f"AND status IN ('pending', 'sending')")
    if stuck != "0":
        tap.diag("the worker is stuck: restarting the server to clear it")
        pg.cluster("cluster_restart")
        pg.wait_server(30)
        pg.wait_worker(30)
        deadline = time.time() + 20
        while time.time() < deadline and pg.scalar(
                f"SELECT count(*) FROM payouts WHERE id IN ({','.join(map(str, ids))}) "
                f"AND status IN ('pending', 'sending')") != "0":
            time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
