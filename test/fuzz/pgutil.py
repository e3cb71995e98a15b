"""pgutil.py: what the campaign scripts share: psql, the mock, the cluster, TAP.

Everything comes from the environment test/run.sh (or test/campaign.sh) sets:
PGHOST PGPORT PGDATABASE PGBIN MOCK_URL SERVER_LOG CLUSTER_LIB.
Only the Python standard library is used.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")


class SqlError(Exception):
    def __init__(self, message, returncode=None):
        super().__init__(message)
        self.returncode = returncode


def psql_args(db=None, extra=()):
    return [f"{PGBIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", os.environ["PGHOST"],
            "-p", str(os.environ["PGPORT"]), "-U", "postgres",
            "-d", db or os.environ.get("PGDATABASE", "moneroo_test"), *extra]


def psql(sql, db=None, timeout=120, stdin=None, args=()):
    """Run sql (a string, via -c; or a script on stdin when sql is None);
    return stdout.  Raises SqlError with psql's stderr."""
    cmd = psql_args(db, ["-At", *args] + (["-c", sql] if sql is not None else []))
    try:
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SqlError(f"psql timed out after {timeout}s: {(sql or '')[:200]}")
    if p.returncode != 0:
        raise SqlError(p.stderr.strip() or f"psql exited {p.returncode}", p.returncode)
    return p.stdout


def scalar(sql, db=None, timeout=120):
    return psql(sql, db, timeout).strip()


def rows(sql, db=None, timeout=120):
    """The rows of a query as a list of dicts (through json_agg)."""
    out = scalar(f"SELECT coalesce(json_agg(t), '[]') FROM ({sql}) t", db, timeout)
    return json.loads(out)


def try_scalar(sql, db=None, timeout=30):
    try:
        return scalar(sql, db, timeout)
    except SqlError:
        return None


def wait_server(seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if try_scalar("SELECT 1", timeout=10) == "1":
            return True
        time.sleep(0.2)
    return False


def worker_pid():
    out = try_scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'moneroo worker'")
    return int(out.splitlines()[0]) if out else None


def wait_worker(seconds=30, not_pid=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        pid = worker_pid()
        if pid and pid != not_pid:
            return pid
        time.sleep(0.2)
    return None


def postmaster_pid():
    try:
        with open(os.path.join(os.environ["PGDATA"], "postmaster.pid")) as f:
            return int(f.readline())
    except (OSError, ValueError, KeyError):
        return None


# ---------------------------------------------------------------- cluster

def cluster(*command, timeout=120):
    """Run a test/lib/cluster.sh function (cluster_start, cluster_stop fast, ...)."""
    lib = os.environ.get("CLUSTER_LIB") or os.path.join(os.environ["WORK"], "test/lib/cluster.sh")
    p = subprocess.run(["bash", "-c", '. "$0" && cluster_env && "$@"', lib, *command],
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).strip()


def pg_ctl(*args, timeout=90):
    lib = os.environ.get("CLUSTER_LIB") or os.path.join(os.environ["WORK"], "test/lib/cluster.sh")
    p = subprocess.run(["bash", "-c", '. "$0" && cluster_env && as_pg "$PGBIN/pg_ctl" -D "$PGDATA" "$@"',
                        lib, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).strip()


# ---------------------------------------------------------------- the mock

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def mock(method, path, body=None, timeout=30):
    url = os.environ["MOCK_URL"].rstrip("/") + path
    data = None
    if body is not None:
        try:        # raw UTF-8 keeps control requests small (the mock takes 1 MB at most)
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:      # lone surrogates: escaped
            data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with _opener.open(req, timeout=timeout) as r:
            raw = r.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"mock {method} {path}: HTTP {e.code}: {e.read()[:300]!r}")
    return json.loads(raw) if raw else None


def mock_rows(doc):
    if isinstance(doc, list):
        return doc
    for k in ("journal", "entries", "payouts", "items", "data"):
        if isinstance(doc, dict) and isinstance(doc.get(k), list):
            return doc[k]
    raise RuntimeError(f"cannot read a list from {str(doc)[:200]}")


def mock_journal(since=0):
    return mock_rows(mock("GET", f"/__mock/journal?since={since}"))


def mock_payouts():
    return mock_rows(mock("GET", "/__mock/payouts"))


def mock_stats():
    return mock("GET", "/__mock/stats")


def mock_seq():
    """The sequence number of the latest request the mock journaled."""
    return mock_stats()["requests"]


def mock_up(seconds=1.0):
    try:
        mock("GET", "/__mock/health", timeout=seconds)
        return True
    except Exception:
        return False


# ---------------------------------------------------------------- server log

class LogWatch:
    """Lines the server log gained since this object was made."""

    def __init__(self):
        self.path = os.environ.get("SERVER_LOG")
        try:
            self.offset = os.path.getsize(self.path)
        except (OSError, TypeError):
            self.offset = 0

    def lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                return f.read().decode("utf-8", "replace").splitlines()
        except (OSError, TypeError):
            return []

    def crashes(self):
        """Lines saying a server process died of a signal or the server
        restarted after a crash (what a segfault or an abort leaves)."""
        keys = ("terminated by signal", "was terminated by exception",
                "terminating any other active server processes", "AddressSanitizer",
                "TRAP:", "PANIC:")
        return [l for l in self.lines() if any(k in l for k in keys)]


# ---------------------------------------------------------------- TAP

class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, *diag):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {desc}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.n} - {desc}", flush=True)
            for d in diag:
                for line in str(d).splitlines() or [""]:
                    print(f"#   {line}", flush=True)
        return bool(cond)

    def is_(self, got, want, desc, *diag):
        return self.ok(got == want, desc, f"got:  {got!r}", f"want: {want!r}", *diag)

    def diag(self, *msg):
        for m in msg:
            for line in str(m).splitlines():
                print(f"# {line}", flush=True)

    def done(self):
        print(f"1..{self.n}", flush=True)
        return 0


def fatal(msg):
    print(f"Bail out! {msg}", flush=True)
    sys.exit(1)
