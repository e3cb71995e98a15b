#!/usr/bin/env python3
"""fault_campaign.py: kill, crash and starve the worker mid-drain (TAP on stdout).

    fault_campaign.py [--seed S] [--rounds 3] [--payouts 200] [--stops kill,immediate,fast]
                      [--api-gone 20] [--writeback 8] [--readonly 6] [--clients 16 --per-client 15]

Phases (each can be turned off with 0):
  rounds       queue PAYOUTS payouts in batches while faults are injected at
               random (latency spikes, 500s, 408, resets before and after
               create, hangs shorter and longer than the request timeout,
               garbage, verify errors), then at a random moment kill -9 the
               worker, `pg_ctl stop -m immediate` or `pg_ctl stop -m fast`,
               restart, let it drain, and check:
                 no row in sending; no reference created twice at the mock;
                 every payout the mock created is recorded with its id or is
                 unknown; every row with an id exists at the mock under it;
                 every committed batch is there whole and every row is in a
                 definite state; what the mock received is the row's request.
               Then the operator's move: unknown payouts the mock never
               created are retried (moneroo_retry) and must go out once.
  api-gone     the mock is stopped for N seconds with payouts queued, then
               started again: nothing becomes unknown, the queue resumes by
               itself, each payout is created once.
  writeback    mid-drain, a CHECK constraint makes every result UPDATE fail
               for N seconds: the worker reports, backs off, keeps the
               results, and records every one once the obstacle is gone.
  readonly     the worker's database is made read-only (ALTER DATABASE ...
               default_transaction_read_only) and the worker restarted: it
               reports and retries; payouts queued meanwhile go out, once,
               after RESET.
  concurrency  pgbench clients insert payouts while the worker drains, faults
               make some unknown, and an operator retries those the mock never
               created (and tries wrong states): nothing is claimed twice.
Needs the environment test/run.sh gives scripts.  Settings it changes
(ALTER SYSTEM, mock config) are put back at the end.
"""

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True     # no __pycache__ in the checkout
import pgutil as pg  # noqa: E402

RECIPIENTS = ["4149518161", "4149518162"]   # settle as success / failed
DEFINITE = ("sent", "success", "failed", "unknown", "rejected", "cancelled")


class Campaign:
    def __init__(self, args, tap):
        self.a = args
        self.tap = tap
        self.rng = random.Random(args.seed)
        self.run_id = f"{args.seed % 100000:05d}-{int(time.time()) % 100000:05d}"
        self.log = pg.LogWatch()
        self.stats = Counter()
        self.faults = Counter()
        self.stop_kinds = Counter()

    # ------------------------------------------------------------ helpers
    def sql(self, q, timeout=60):
        return pg.scalar(q, timeout=timeout)

    def mine(self, tag):
        return f"request ->> 'description' LIKE {lit(tag + ' #%')}"

    def counts(self, tag):
        r = pg.rows(f"SELECT count(*) FILTER (WHERE status = 'pending') AS pending, "
                    f"count(*) FILTER (WHERE status = 'sending') AS sending, "
                    f"count(*) FILTER (WHERE status IN ('sent', 'success', 'failed')) AS done, "
                    f"count(*) FILTER (WHERE status = 'unknown') AS unknown, "
                    f"count(*) FILTER (WHERE status = 'rejected') AS rejected, count(*) AS total "
                    f"FROM payouts WHERE {self.mine(tag)}")
        return r[0]

    def try_counts(self, tag):
        try:
            return self.counts(tag)
        except pg.SqlError:
            return None

    def wait_counts(self, tag, cond, seconds):
        deadline = time.time() + seconds
        c = None
        while time.time() < deadline:
            c = self.try_counts(tag)
            if c and cond(c):
                return True, c
            time.sleep(0.2)
        return False, c

    def queue_sql(self, tag, first, n):
        return (f"INSERT INTO payouts (request) SELECT jsonb_build_object("
                f"'amount', 100 + i, 'currency', 'USD', 'description', {lit(tag)} || ' #' || i, "
                f"'method', 'moneroo_payout_demo', "
                f"'customer', jsonb_build_object('email', 'campaign@example.com', 'first_name', 'Fault', "
                f"'last_name', 'Campaign'), "
                f"'recipient', jsonb_build_object('account_number', "
                f"(ARRAY['{RECIPIENTS[0]}', '{RECIPIENTS[1]}'])[1 + i % 2])) "
                f"FROM generate_series({first}, {first + n - 1}) AS i")

    def queue(self, tag, n):
        pg.psql(self.queue_sql(tag, 1, n), timeout=120)

    def settings(self):
        for q in ("ALTER SYSTEM SET moneroo.rate_limit = 0",
                  "ALTER SYSTEM SET moneroo.verify_min_interval = '200ms'",
                  "ALTER SYSTEM SET moneroo.verify_max_interval = '2s'",
                  "SELECT pg_reload_conf()"):
            pg.psql(q)
        self.mock_settings()

    def mock_settings(self):
        pg.mock("POST", "/__mock/config", {"rate_limit": 0, "latency_ms": 0, "pending_after": 0.3,
                                          "final_after": 0.8})
        if self.a.journal_limit is not None:
            pg.mock("POST", "/__mock/config", {"journal_limit": self.a.journal_limit})

    def restore(self):
        pg.try_scalar("ALTER DATABASE " + os.environ.get("PGDATABASE", "moneroo_test")
                      + " RESET default_transaction_read_only", db="postgres")
        pg.try_scalar("ALTER TABLE payouts DROP CONSTRAINT IF EXISTS fuzz_writeback_obstacle")
        for s in ("moneroo.rate_limit", "moneroo.verify_min_interval", "moneroo.verify_max_interval"):
            pg.try_scalar(f"ALTER SYSTEM RESET {s}")
        pg.try_scalar("SELECT pg_reload_conf()")
        if not pg.mock_up():
            pg.cluster("mock_start")
        try:
            pg.mock("DELETE", "/__mock/faults")
            pg.mock("POST", "/__mock/config", {"rate_limit": 120, "latency_ms": 0})
        except Exception:
            pass

    def unexpected_crashes(self, lines=None):
        keys = ("terminated by signal", "terminated by exception", "AddressSanitizer", "TRAP:", "PANIC:")
        return [l for l in (lines if lines is not None else self.log.lines())
                if any(k in l for k in keys) and "signal 9: Killed" not in l]

    # ------------------------------------------------------------ invariants
    def expect_all_sent(self, name, tag, n, seconds, claim):
        """After an obstacle went away: all n payouts of tag sent within seconds (claim
        says so, its {} the time it took), then the round invariants, no unknown allowed."""
        start = time.time()
        drained, c = self.wait_counts(tag, lambda c: c["done"] == n, seconds)
        self.tap.ok(drained, f"{name}: " + claim.format(f"{time.time() - start:.1f}s"), f"counts: {c}")
        self.check(name, tag, expect_n=n, allow_unknown=False)

    def check(self, name, tag, expect_n=None, allow_unknown=True, batches=None):
        """The round invariants; returns the rows."""
        t = self.tap
        sending = self.sql("SELECT count(*) FROM payouts WHERE status = 'sending'")
        t.is_(sending, "0", f"{name}: no payout is left in sending (anywhere in the table)")

        rows = pg.rows(f"SELECT id, reference::text AS reference, status, moneroo_id, attempts, last_error, "
                       f"request FROM payouts WHERE {self.mine(tag)}", timeout=120)
        by_ref = {r["reference"]: r for r in rows}
        created = [p for p in pg.mock_payouts() if p.get("reference") in by_ref
                   or (isinstance(p.get("body"), dict)
                       and str(p["body"].get("description", "")).startswith(tag + " #"))]
        refs = Counter(p.get("reference") for p in created)
        dups = [r for r, n in refs.items() if n > 1]
        dup_stats = pg.mock_stats().get("duplicate_references") or []
        t.ok(not dups and not dup_stats, f"{name}: no reference was created twice at the mock",
             f"this round: {dups[:5]}", f"since the mock started: {dup_stats[:5]}")

        bad = []
        for p in created:
            r = by_ref.get(p.get("reference"))
            if r is None:
                bad.append(f"{p.get('reference')} (mock id {p['id']}): no row")
            elif not (r["status"] == "unknown"
                      or (r["status"] in ("sent", "success", "failed") and r["moneroo_id"] == p["id"])):
                bad.append(f"row {r['id']} {r['status']} {r['moneroo_id']} vs mock id {p['id']}")
        t.ok(not bad, f"{name}: every payout the mock created ({len(created)}) is recorded with its id "
                      "or is unknown", *bad[:10])

        mock_ids = {p["id"]: p.get("reference") for p in created}
        bad = [f"row {r['id']} {r['status']} {r['moneroo_id']}" for r in rows
               if (r["moneroo_id"] is not None or r["status"] in ("sent", "success", "failed"))
               and mock_ids.get(r["moneroo_id"]) != r["reference"]]
        bad += [f"row {r['id']} rejected but created" for r in rows
                if r["status"] == "rejected" and r["reference"] in refs]
        t.ok(not bad, f"{name}: every row with a moneroo_id exists at the mock under it, "
                      "and no rejected payout was created", *bad[:10])

        states = Counter(r["status"] for r in rows)
        problems = [f"{n} {s}" for s, n in states.items() if s not in DEFINITE]
        if expect_n is not None and len(rows) != expect_n:
            problems.append(f"{len(rows)} rows, {expect_n} queued")
        if batches is not None:
            per_batch = Counter(int(r["request"]["description"].split("#")[1]) // batches["size"]
                                for r in rows)
            for b in range(batches["count"]):
                got = per_batch.get(b, 0)
                if got not in (0, batches["size"]) or (b in batches["committed"] and got != batches["size"]):
                    problems.append(f"batch {b}: {got} rows of {batches['size']}"
                                    f"{' (its COMMIT was acknowledged)' if b in batches['committed'] else ''}")
        problems += [f"row {r['id']} unknown without last_error" for r in rows
                     if r["status"] == "unknown" and not (r["last_error"] or "").strip()]
        if not allow_unknown and states.get("unknown"):
            problems.append(f"{states['unknown']} unknown")
        t.ok(not problems, f"{name}: every row of the queue is accounted for, in a definite state "
                           f"({', '.join(f'{n} {s}' for s, n in sorted(states.items()))})", *problems[:10])

        # payout_events: each row's history is one unbroken chain from its
        # INSERT to the state it is in, whatever crashed or failed meanwhile
        # (rows and histories read in one statement: one snapshot)
        histories = pg.rows("SELECT p.id, p.status, (SELECT coalesce(json_agg(json_build_array("
                            "e.previous_status, e.status) ORDER BY e.id), '[]') FROM payout_events e "
                            f"WHERE e.payout_id = p.id) AS chain FROM payouts p WHERE {self.mine(tag)}",
                            timeout=120)
        bad = []
        for h in histories:
            chain = h["chain"]
            if not chain or chain[0][0] is not None or chain[-1][1] != h["status"]:
                bad.append(f"row {h['id']} {h['status']}: history {chain[:8]}")
            elif any(b[0] != a[1] for a, b in zip(chain, chain[1:])):
                bad.append(f"row {h['id']}: broken history {chain[:8]}")
        t.ok(not bad, f"{name}: every payout's history in payout_events runs unbroken from its INSERT "
                      "to its state", *bad[:10])

        bad = []
        for p in created:
            r = by_ref.get(p.get("reference"))
            body = p.get("body")
            if r is None or not isinstance(body, dict):
                continue
            sent = json.loads(json.dumps(body))
            md = sent.get("metadata") or {}
            if md.get("payout_reference") != r["reference"]:
                bad.append(f"row {r['id']}: metadata.payout_reference {md.get('payout_reference')}")
            md.pop("payout_reference", None)
            if not md and "metadata" not in r["request"]:
                sent.pop("metadata", None)
            if sent != r["request"]:
                bad.append(f"row {r['id']}: sent {json.dumps(sent)[:200]} recorded {json.dumps(r['request'])[:200]}")
        t.ok(not bad, f"{name}: what the mock received is each row's request plus its payout_reference",
             *bad[:5])
        return rows, created

    def operator_retries(self, name, tag, rows, created):
        """Retry the unknown payouts the mock never created; they must go out once."""
        refs = {p.get("reference") for p in created}
        todo = [r for r in rows if r["status"] == "unknown" and r["reference"] not in refs]
        if not todo:
            self.tap.diag(f"{name}: no unknown payout to retry (every unknown one reached the mock)")
            return
        errors = []
        for r in todo:
            try:
                st = self.sql(f"SELECT status FROM moneroo_retry({r['id']})")
                if st != "pending":
                    errors.append(f"moneroo_retry({r['id']}) returned {st}")
            except pg.SqlError as e:
                errors.append(f"moneroo_retry({r['id']}): {e}")
        self.stats["retried by the operator"] += len(todo)
        ids = ",".join(str(r["id"]) for r in todo)
        ok, c = False, None
        deadline = time.time() + 60
        while time.time() < deadline:
            c = pg.rows(f"SELECT status, count(*) AS n FROM payouts WHERE id IN ({ids}) GROUP BY 1")
            if all(x["status"] in ("sent", "success", "failed") for x in c):
                ok = True
                break
            time.sleep(0.2)
        refs_now = Counter(p.get("reference") for p in pg.mock_payouts())
        twice = [r["id"] for r in todo if refs_now.get(r["reference"], 0) != 1]
        self.tap.ok(ok and not errors and not twice,
                    f"{name}: the {len(todo)} unknown payouts the mock never created, retried by the "
                    "operator, are sent, each created exactly once",
                    f"states: {c}", *errors[:5], f"not created exactly once: {twice[:10]}")

    # ------------------------------------------------------------ the fault injector
    FAULTS = [
        (8, {"kind": "status", "status": 500}),
        (3, {"kind": "status", "status": 503}),
        (2, {"kind": "status", "status": 408}),
        (6, {"kind": "status_after_create", "status": 500}),
        (2, {"kind": "status_after_create", "status": 502}),
        (6, {"kind": "reset_before"}),
        (6, {"kind": "reset_after"}),
        (5, "hang_short"),
        (4, "hang_long"),
        (3, "hang_before_create"),
        (3, {"kind": "garbage"}),
        (1, {"kind": "status", "status": 422}),
        (4, {"kind": "status", "status": 500, "route": "verify"}),
        (2, {"kind": "verify_status", "value": "weird", "route": "verify"}),
        (5, "latency"),
    ]

    def injector(self, stop, rate):
        """Queue a random fault every 1/rate s on average until stop is set."""
        weights = [w for w, _ in self.FAULTS]
        rng = random.Random(self.rng.random())
        while not stop.is_set():
            stop.wait(rng.expovariate(rate))
            if stop.is_set():
                break
            f = rng.choices([f for _, f in self.FAULTS], weights)[0]
            try:
                if f == "latency":
                    ms = rng.choice([300, 800, 1500, 2500])
                    pg.mock("POST", "/__mock/config", {"latency_ms": ms}, timeout=5)
                    stop.wait(rng.uniform(0.2, 1.0))
                    pg.mock("POST", "/__mock/config", {"latency_ms": self.a.base_latency}, timeout=5)
                    self.faults[f"latency spike {ms} ms"] += 1
                    continue
                if f == "hang_short":
                    f = {"kind": "hang", "seconds": round(rng.uniform(0.2, 1.5), 2)}
                elif f == "hang_long":
                    f = {"kind": "hang", "seconds": round(rng.uniform(2.5, 4), 2)}
                elif f == "hang_before_create":
                    f = {"kind": "hang_before_create", "seconds": round(rng.uniform(0.5, 3), 2)}
                pg.mock("POST", "/__mock/faults", f, timeout=5)
            except Exception:
                pass        # the mock is busy or restarting: skip this one

    def count_faults(self, seq):
        try:
            for e in pg.mock_journal(seq):
                if e.get("fault"):
                    route = "verify" if "/verify" in e.get("path", "") else "initialize"
                    self.faults[f"{e['fault']} ({route})"] += 1
        except Exception as e:
            self.tap.diag(f"could not read the journal: {e}")

    # ------------------------------------------------------------ phase: stop rounds
    def stop_round(self, n, kind):
        a, t = self.a, self.tap
        tag = f"85 campaign {self.run_id} round {n} {kind}"
        name = f"round {n} ({kind})"
        size = max(1, a.payouts // 10)
        nb = math.ceil(a.payouts / size)
        batches = {"size": size, "count": nb, "committed": set()}
        seq = pg.mock_seq()
        stop = threading.Event()
        inj = threading.Thread(target=self.injector, args=(stop, a.fault_rate), daemon=True)

        def inserter():
            for b in range(nb):
                try:
                    pg.psql(self.queue_sql(tag, b * size, size), timeout=60)
                    batches["committed"].add(b)
                except pg.SqlError:
                    return

        ins = threading.Thread(target=inserter, daemon=True)
        # every answer takes base_latency ms: the drain lasts long enough to be
        # caught in the middle, with up to max_concurrency requests in flight
        pg.mock("POST", "/__mock/config", {"latency_ms": a.base_latency})
        inj.start()
        ins.start()
        f = self.rng.uniform(0, 0.95)
        if f < 0.1:
            time.sleep(self.rng.uniform(0.05, 1.0))
            moment = "while queueing"
        else:
            target = int(f * a.payouts)
            self.wait_counts(tag, lambda c: c["done"] + c["unknown"] + c["rejected"] >= target, 60)
            moment = f"after {target} finished"
        at = self.try_counts(tag)
        worker = pg.worker_pid()
        rc, out = 0, ""
        t0 = time.time()
        if kind == "kill":
            if worker:
                try:
                    os.kill(worker, signal.SIGKILL)
                except OSError as e:
                    rc, out = 1, str(e)
            else:
                rc, out = 1, "no worker to kill"
        else:
            rc, out = pg.pg_ctl("stop", "-m", kind, "-w", "-t", "60")
        stop_secs = time.time() - t0
        self.stop_kinds[kind] += 1
        stop.set()
        inj.join(10)
        ins.join(60)
        t.diag(f"{name}: stopped {moment} in {stop_secs:.1f}s; at the stop: {at}")
        t.ok(rc == 0, f"{name}: {'kill -9 of the worker' if kind == 'kill' else 'pg_ctl stop -m ' + kind} "
                      f"at a random moment ({moment})", out[-500:])
        if kind != "kill":
            rc, out = pg.cluster("cluster_start")
        try:
            pg.mock("DELETE", "/__mock/faults")
            pg.mock("POST", "/__mock/config", {"latency_ms": 0})
        except Exception:
            pass
        up = pg.wait_server(60) and pg.wait_worker(60, None if kind != "kill" else worker)
        t.ok(bool(up), f"{name}: the server answers again and a worker runs", out[-500:])
        drained, c = self.wait_counts(tag, lambda c: c["pending"] == 0 and c["sending"] == 0, a.drain_timeout)
        t.ok(drained, f"{name}: the queue drains by itself after the restart", f"counts: {c}")
        self.count_faults(seq)
        rows, created = self.check(name, tag, batches=batches)
        self.stats["payouts queued"] += len(rows)
        self.stats.update(f"payouts {r['status']} after the stop" for r in rows)
        self.operator_retries(name, tag, rows, created)

    # ------------------------------------------------------------ phase: API gone
    def api_gone(self):
        a, t = self.a, self.tap
        tag = f"85 campaign {self.run_id} api gone"
        name = f"API gone for {a.api_gone}s"
        n = a.gone_payouts
        self.wait_idle()
        rc, out = pg.cluster("mock_stop")
        t.ok(not pg.mock_up(), f"{name}: the mock is stopped", out)
        t0 = time.time()
        self.queue(tag, n)
        bad_seen, samples = 0, 0
        last_error = ""
        while time.time() - t0 < a.api_gone:
            c = self.try_counts(tag)
            if c:
                samples += 1
                bad_seen = max(bad_seen, c["unknown"] + c["rejected"] + c["done"])
            time.sleep(1)
        st = pg.rows("SELECT worker_running, last_error, pending FROM moneroo_status")
        last_error = (st[0]["last_error"] or "") if st else ""
        c = self.try_counts(tag)
        t.ok(bad_seen == 0 and c and c["total"] == n,
             f"{name}: while it is gone no payout is lost, sent, unknown or rejected "
             f"({samples} samples; now {c})")
        t.ok(st and st[0]["worker_running"] and last_error,
             f"{name}: moneroo_status shows the worker running and the connection error",
             f"moneroo_status: {st}")
        rc, out = pg.cluster("mock_start")
        t.ok(rc == 0 and pg.mock_up(2), f"{name}: the mock is back", out[-300:])
        self.mock_settings()
        self.expect_all_sent(name, tag, n, 60,
                             "the queue resumes by itself and every payout is sent ({} after the API came back)")

    # ------------------------------------------------------------ phase: write-back failures
    def writeback(self):
        a, t = self.a, self.tap
        tag = f"85 campaign {self.run_id} write-back"
        name = f"write-back refused for {a.writeback}s"
        n = a.wb_payouts
        self.wait_idle()
        worker = pg.wait_worker(30)
        pg.mock("POST", "/__mock/config", {"latency_ms": 150})
        self.queue(tag, n)
        self.wait_counts(tag, lambda c: c["done"] >= n // 10, 60)
        log = pg.LogWatch()
        added = False
        for _ in range(10):
            try:
                pg.psql("SET lock_timeout = '3s'; ALTER TABLE payouts ADD CONSTRAINT fuzz_writeback_obstacle "
                        "CHECK (status NOT IN ('sent', 'success', 'failed')) NOT VALID")
                added = True
                break
            except pg.SqlError as e:
                last = str(e)
        t0 = time.time()
        seq = pg.mock_seq()
        at = self.try_counts(tag)
        t.ok(added, f"{name}: mid-drain, a CHECK constraint makes every result UPDATE fail ({at})")
        time.sleep(a.writeback)
        during = self.try_counts(tag)
        st = pg.rows("SELECT worker_pid, last_error FROM moneroo_status")
        lines = log.lines()
        batch_failures = [l for l in lines if "could not record results from Moneroo" in l]
        t.ok(st and st[0]["worker_pid"] == worker and "fuzz_writeback_obstacle" in (st[0]["last_error"] or "")
             and any("fuzz_writeback_obstacle" in l for l in batch_failures),
             f"{name}: the worker reports it (server log and moneroo_status.last_error) and keeps running",
             f"moneroo_status: {st}", *batch_failures[:3])
        bound = math.ceil(math.log2(max(a.writeback, 1) / 0.5)) + 4
        t.ok(0 < len(batch_failures) <= bound,
             f"{name}: the worker backs off ({len(batch_failures)} attempts to record in {a.writeback}s, "
             f"at most {bound})", *batch_failures[-5:])
        t.ok(during and during["total"] == n and during["unknown"] == 0 and during["sending"] > 0,
             f"{name}: meanwhile nothing is lost and the finished requests wait in sending ({during})")
        inits = [e for e in pg.mock_journal(seq)
                 if e.get("path") == "/v1/payouts/initialize" and e.get("time", 0) > t0 + 2]
        t.diag(f"{name}: initialize requests after the first 2 s of the obstacle: {len(inits)}")
        pg.psql("SET lock_timeout = '10s'; ALTER TABLE payouts DROP CONSTRAINT fuzz_writeback_obstacle")
        pg.mock("POST", "/__mock/config", {"latency_ms": 0})
        self.expect_all_sent(name, tag, n, 120, "once it is removed every result is recorded ({} later), none unknown")

    # ------------------------------------------------------------ phase: read-only database
    def readonly(self):
        a, t = self.a, self.tap
        db = os.environ.get("PGDATABASE", "moneroo_test")
        tag = f"85 campaign {self.run_id} read-only"
        name = f"read-only database for {a.readonly}s"
        n = a.ro_payouts
        self.wait_idle()
        seq = pg.mock_seq()
        log = pg.LogWatch()
        pg.psql(f"ALTER DATABASE {db} SET default_transaction_read_only = on", db="postgres")
        worker = pg.worker_pid()
        pg.psql(f"SELECT pg_terminate_backend({worker})" if worker else "SELECT 1")
        time.sleep(0.5)
        pg.psql(None, stdin=f"SET default_transaction_read_only = off;\n{self.queue_sql(tag, 1, n)};\n")
        time.sleep(a.readonly)
        c = self.try_counts(tag)
        inits = [e for e in pg.mock_journal(seq) if e.get("path") == "/v1/payouts/initialize"]
        lines = [l for l in log.lines() if "read-only" in l]
        t.ok(c and c["pending"] == n and not inits,
             f"{name}: with the worker's database read-only nothing is claimed or sent ({c})",
             f"initialize requests: {len(inits)}")
        t.ok(bool(lines), f"{name}: the worker reports it in the server log and tries again later",
             *log.lines()[-5:])
        t.diag(f"{name}: {len(lines)} log lines about the read-only database, e.g. {lines[:1]}")
        pg.psql(f"ALTER DATABASE {db} RESET default_transaction_read_only", db="postgres")
        self.expect_all_sent(name, tag, n, 60, "after RESET the worker comes back and sends them all ({} later)")

    # ------------------------------------------------------------ phase: concurrency
    def concurrency(self):
        a, t = self.a, self.tap
        tag = f"85 campaign {self.run_id} concurrency"
        name = f"{a.clients} pgbench clients x {a.per_client}"
        n = a.clients * a.per_client
        self.wait_idle()
        seq = pg.mock_seq()
        script = tempfile.NamedTemporaryFile("w", suffix=".pgbench", delete=False)
        script.write("\\set n random(1, 1000000000)\n"
                     "INSERT INTO payouts (request) VALUES (jsonb_build_object('amount', 1 + :n % 100000, "
                     f"'currency', 'USD', 'description', {lit(tag)} || ' #' || :client_id || '-' || :n, "
                     "'method', 'moneroo_payout_demo', 'customer', jsonb_build_object('email', "
                     "'concurrency@example.com', 'first_name', 'Con', 'last_name', 'Current'), "
                     "'recipient', jsonb_build_object('account_number', CASE WHEN :n % 2 = 0 "
                     f"THEN '{RECIPIENTS[0]}' ELSE '{RECIPIENTS[1]}' END)));\n")
        script.close()
        stop = threading.Event()
        pg.mock("POST", "/__mock/config", {"latency_ms": a.base_latency})
        retried = Counter()
        wrong = []
        edits = Counter()
        rng = random.Random(self.rng.random())

        def injector():
            kinds = [{"kind": "reset_before"}, {"kind": "status", "status": 500},
                     {"kind": "status_after_create", "status": 500}, {"kind": "hang", "seconds": 3}]
            while not stop.wait(rng.uniform(0.05, 0.3)):
                try:
                    pg.mock("POST", "/__mock/faults", rng.choice(kinds), timeout=5)
                except Exception:
                    pass

        def operator():
            while not stop.is_set():
                try:
                    # unknown rows first, then the mock: a row is unknown only once its
                    # request is over, so a payout missing at the mock was never created
                    unknown = pg.rows(f"SELECT id, reference::text AS reference FROM payouts "
                                      f"WHERE status = 'unknown' AND {self.mine_prefix(tag)}")
                    at_mock = {p.get("reference") for p in pg.mock_payouts()} if unknown else set()
                    for r in unknown:
                        if r["reference"] not in at_mock:
                            try:
                                st = self.sql(f"SELECT status FROM moneroo_retry({r['id']})")
                                retried[r["id"]] += 1
                                if st != "pending":
                                    wrong.append(f"moneroo_retry({r['id']}) of an unknown payout returned {st}")
                            except pg.SqlError as e:
                                wrong.append(f"moneroo_retry({r['id']}) of an unknown payout: {e}")
                    # wrong states: refused with 55000
                    other = pg.rows(f"SELECT id, status FROM payouts WHERE status IN ('sent', 'success', "
                                    f"'failed', 'rejected') AND "
                                    f"{self.mine_prefix(tag)} ORDER BY random() LIMIT 2")
                    for r in other:
                        p = subprocess.run(pg.psql_args(extra=["-At", "-v", "VERBOSITY=verbose", "-c",
                                                               f"SELECT status FROM moneroo_retry({r['id']})"]),
                                           capture_output=True, text=True, timeout=30)
                        if p.returncode == 0:
                            wrong.append(f"moneroo_retry({r['id']}) of a {r['status']} payout: {p.stdout.strip()}")
                        elif "55000" not in p.stderr:
                            wrong.append(f"moneroo_retry({r['id']}) of a {r['status']} payout: {p.stderr.strip()[:200]}")
                    # an application edits a pending payout's request
                    try:
                        out = self.sql(f"UPDATE payouts SET request = jsonb_set(request, '{{amount}}', "
                                       f"to_jsonb((request ->> 'amount')::int + 1)) WHERE id = (SELECT id FROM payouts "
                                       f"WHERE status = 'pending' AND {self.mine_prefix(tag)} LIMIT 1) RETURNING id")
                        edits["edited while pending"] += 1 if out else 0
                    except pg.SqlError as e:
                        edits["refused (no longer pending)" if "55000" in str(e) or "cannot change" in str(e)
                              else f"error: {str(e)[:80]}"] += 1
                except Exception as e:
                    wrong.append(f"operator: {e}")
                stop.wait(0.3)

        threads = [threading.Thread(target=injector, daemon=True), threading.Thread(target=operator, daemon=True)]
        for th in threads:
            th.start()
        t0 = time.time()
        p = subprocess.run([f"{pg.PGBIN}/pgbench", "-n", "-c", str(a.clients), "-j", str(min(a.clients, 4)),
                            "-t", str(a.per_client), "-f", script.name, "-h", os.environ["PGHOST"],
                            "-p", str(os.environ["PGPORT"]), "-U", "postgres",
                            os.environ.get("PGDATABASE", "moneroo_test")],
                           capture_output=True, text=True, timeout=600)
        secs = time.time() - t0
        os.unlink(script.name)
        t.ok(p.returncode == 0, f"{name}: pgbench inserts {n} payouts in {secs:.1f}s while the worker drains",
             p.stderr[-800:])
        threads[0].join(0)
        # let the drain finish and the operator retry what was never created
        deadline = time.time() + a.drain_timeout
        while time.time() < deadline:
            c = pg.rows(f"SELECT count(*) FILTER (WHERE status IN ('pending', 'sending')) AS busy "
                        f"FROM payouts WHERE {self.mine_prefix(tag)}")[0]
            at_mock = {x.get("reference") for x in pg.mock_payouts()}
            orphans = [r for r in pg.rows(f"SELECT reference::text AS reference FROM payouts "
                                          f"WHERE status = 'unknown' AND {self.mine_prefix(tag)}")
                       if r["reference"] not in at_mock]
            if c["busy"] == 0 and not orphans and time.time() - t0 > 2:
                break
            if time.time() - t0 > secs + 1:
                pg.mock("DELETE", "/__mock/faults")
            time.sleep(0.5)
        stop.set()
        for th in threads:
            th.join(30)
        pg.mock("DELETE", "/__mock/faults")
        pg.mock("POST", "/__mock/config", {"latency_ms": 0})
        self.count_faults(seq)
        rows = pg.rows(f"SELECT id, reference::text AS reference, status, moneroo_id, attempts "
                       f"FROM payouts WHERE {self.mine_prefix(tag)}")
        t.is_(len(rows), n, f"{name}: every inserted payout is in the table")
        twice = [f"row {r['id']}: {r['attempts']} claims, {retried.get(r['id'], 0)} retries"
                 for r in rows if r["attempts"] != 1 + retried.get(r["id"], 0)]
        t.ok(not twice, f"{name}: nothing was claimed twice (each row's attempts = 1 + the operator's "
                        f"retries; {sum(retried.values())} retries)", *twice[:10])
        t.ok(not wrong, f"{name}: the operator's retries of wrong states are refused with 55000",
             *wrong[:10])
        t.diag(f"{name}: request edits by the application: {dict(edits)}")
        self.stats["retried by the operator"] += sum(retried.values())
        self.check(name, tag)

    # ------------------------------------------------------------ phase: outages (1.2)
    OUTAGES = [
        ("503 after creating, initialize only",
         {"kind": "status_after_create", "status": 503, "route": "initialize", "count": -1}),
        ("503 on every route",
         {"kind": "status", "status": 503, "route": "any", "count": -1}),
        ("hangs past the request timeout, after creating, every route",
         {"kind": "hang", "seconds": 5, "route": "any", "count": -1}),
    ]

    def outage(self):
        """Moneroo fails for a random while, again and again, during one drain: the
        circuit breaker must keep each outage's unknown payouts within
        max_concurrency + 2, and the queue must drain once Moneroo answers."""
        a, t = self.a, self.tap
        tag = f"85 campaign {self.run_id} outage"
        n, conc = a.outage_payouts, 8
        for q in ("ALTER SYSTEM SET moneroo.breaker_threshold = 3",
                  f"ALTER SYSTEM SET moneroo.max_concurrency = {conc}", "SELECT pg_reload_conf()"):
            pg.psql(q)
        self.wait_idle()
        pg.mock("POST", "/__mock/config", {"latency_ms": 100})
        self.queue(tag, n)
        report = []
        for i in range(a.outages):
            label, fault = self.rng.choice(self.OUTAGES)
            length = self.rng.uniform(5, 40)
            before = self.counts(tag)
            if before["pending"] == 0:
                t.diag(f"outage {i + 1}: the queue is drained already; no more outages")
                break
            t0 = time.time()
            pg.mock("POST", "/__mock/faults", fault)
            opened = False
            while time.time() < t0 + length:
                opened = opened or self.sql("SELECT pause_reason IS NOT NULL FROM moneroo_status") == "t"
                time.sleep(0.5)
            pg.mock("DELETE", "/__mock/faults")
            time.sleep(2 * a.request_timeout + 1)    # requests hanging at the end finish
            after = self.counts(tag)
            unknown = after["unknown"] - before["unknown"]
            report.append(f"{label}, {length:.0f}s: {unknown} unknown")
            # one trial payout per probe that found verifies working while initializes
            # failed: the first probe comes 30 s into an outage
            bound = conc + 2 + (1 if fault["route"] == "initialize" and length > 30 else 0)
            t.ok(opened and unknown <= bound,
                 f"outage {i + 1} ({label}, {length:.0f} s): the breaker opened and "
                 f"{unknown} payouts became unknown (at most {bound})",
                 f"before: {before}", f"after: {after}")
            # the next outage meets the full width again (16 good sends ramp 1, 2, 4, 8)
            resumed, c = self.wait_counts(tag, lambda c: c["done"] >= after["done"] + 16
                                          or c["pending"] == 0, 700)
            t.ok(resumed, f"outage {i + 1}: once Moneroo answers, the breaker closes and sending resumes",
                 f"counts: {c}")
        drained, c = self.wait_counts(tag, lambda c: c["pending"] == 0 and c["sending"] == 0,
                                      a.drain_timeout + 600)
        t.ok(drained and c["total"] == n and c["rejected"] == 0,
             f"outages: after them every payout of the queue was sent or is unknown ({c})")
        rows, created = self.check("outages", tag, expect_n=n)
        # an operator settles every unknown payout: resolved with the id Moneroo
        # gave it, or cancelled when Moneroo never created it
        ids = {p.get("reference"): p["id"] for p in created}
        unknown = [r for r in rows if r["status"] == "unknown"]
        bad = []
        for r in unknown:
            mid = ids.get(r["reference"])
            q = (f"SELECT (moneroo_resolve({r['id']}, {lit(mid)})).status" if mid
                 else f"SELECT (moneroo_cancel({r['id']})).status")
            got = pg.try_scalar(q)
            if got not in (("sent", "success", "failed") if mid else ("cancelled",)):
                bad.append(f"row {r['id']} ({'resolve ' + mid if mid else 'cancel'}): {got}")
        left = self.sql(f"SELECT count(*) FROM payouts WHERE {self.mine(tag)} AND status = 'unknown'")
        t.ok(not bad and left == "0",
             f"outages: the operator settles all {len(unknown)} unknown payouts "
             f"({sum(1 for r in unknown if ids.get(r['reference']))} resolved with Moneroo's id, "
             f"the others cancelled), none is left unknown", *bad[:10])
        t.diag("outages: " + "; ".join(report))
        self.stats["unknown in outages"] += sum(int(r.rsplit(": ", 1)[1].split()[0]) for r in report)
        pg.mock("POST", "/__mock/config", {"latency_ms": 0})
        for q in ("ALTER SYSTEM RESET moneroo.breaker_threshold",
                  "ALTER SYSTEM RESET moneroo.max_concurrency", "SELECT pg_reload_conf()"):
            pg.psql(q)

    def mine_prefix(self, tag):
        return f"request ->> 'description' LIKE {lit(tag + ' #%')}"

    def wait_idle(self, seconds=120):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if pg.try_scalar("SELECT count(*) FROM payouts WHERE status IN ('pending', 'sending')") == "0":
                return True
            time.sleep(0.3)
        self.tap.diag("the queue did not go idle before the next phase")
        return False


def lit(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--payouts", type=int, default=200, help="payouts per round")
    ap.add_argument("--stops", default="kill,immediate,fast",
                    help="stop kinds, used in turn (order shuffled by the seed)")
    ap.add_argument("--fault-rate", type=float, default=10.0, help="faults queued per second")
    ap.add_argument("--base-latency", type=float, default=60,
                    help="ms every mock answer takes during rounds (the drain's pace)")
    ap.add_argument("--drain-timeout", type=int, default=120)
    ap.add_argument("--api-gone", type=float, default=20)
    ap.add_argument("--gone-payouts", type=int, default=40)
    ap.add_argument("--writeback", type=float, default=8)
    ap.add_argument("--wb-payouts", type=int, default=200)
    ap.add_argument("--readonly", type=float, default=6)
    ap.add_argument("--ro-payouts", type=int, default=30)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--per-client", type=int, default=15)
    ap.add_argument("--journal-limit", type=int, default=None)
    ap.add_argument("--outages", type=int, default=0, help="outages of Moneroo during one drain")
    ap.add_argument("--outage-payouts", type=int, default=1000)
    ap.add_argument("--request-timeout", type=float, default=2, help="moneroo.request_timeout of the cluster, s")
    ap.add_argument("--phases", default="rounds,api-gone,writeback,readonly,concurrency,outage")
    a = ap.parse_args()
    if a.seed is None:
        a.seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(1, 2 ** 31))
    tap = pg.Tap()
    c = Campaign(a, tap)
    tap.diag(f"fault campaign seed {a.seed} (FAULT_SEED={a.seed} repeats its choices; timing differs)")
    if not pg.wait_server(60):
        pg.fatal("the server does not answer")
    phases = a.phases.split(",")
    t_start = time.time()
    pm_start = pg.postmaster_pid()
    try:
        c.settings()
        time.sleep(0.3)
        if "rounds" in phases and a.rounds > 0:
            kinds = [k for k in a.stops.split(",") if k]
            order = [kinds[i % len(kinds)] for i in range(a.rounds)]
            c.rng.shuffle(order)
            for n, kind in enumerate(order, 1):
                c.stop_round(n, kind)
        if "api-gone" in phases and a.api_gone > 0:
            c.api_gone()
        if "writeback" in phases and a.writeback > 0:
            c.writeback()
        if "readonly" in phases and a.readonly > 0:
            c.readonly()
        if "concurrency" in phases and a.clients > 0 and a.per_client > 0:
            c.concurrency()
        if "outage" in phases and a.outages > 0:
            c.outage()
        crashes = c.unexpected_crashes()
        tap.ok(not crashes, "no server process died of anything but the campaign's own kill -9", *crashes[:10])
        dups = pg.mock_stats().get("duplicate_references") or []
        tap.ok(not dups, "over the whole campaign no reference was created twice at the mock", str(dups[:5]))
    finally:
        c.restore()
    tap.diag(f"campaign done in {time.time() - t_start:.0f}s (postmaster {pm_start} -> {pg.postmaster_pid()})")
    tap.diag("stops: " + ", ".join(f"{k} x{v}" for k, v in sorted(c.stop_kinds.items())))
    tap.diag(f"faults injected ({sum(c.faults.values())}): "
             + ", ".join(f"{k} x{v}" for k, v in sorted(c.faults.items())))
    tap.diag("payouts: " + ", ".join(f"{k}: {v}" for k, v in sorted(c.stats.items())))
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
