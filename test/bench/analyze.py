#!/usr/bin/env python3
"""test/bench/analyze.py: the arithmetic of test/bench/run.sh (stdlib only).

  analyze.py latency COMMITS JOURNAL
      COMMITS: "reference commit_sent_us commit_returned_us" (bench_driver commits)
      JOURNAL: bench_mock's /__mock/journal (tab separated)
      -> n= missing= p50_ms= p99_ms= max_ms= p50_after_return_ms= p99_after_return_ms=
  analyze.py transfer DRIVER_OUT PLAIN_OUT [JOURNAL]
      DRIVER_OUT: "transfer|select1 start_us end_us reference" (bench_driver transfer)
      PLAIN_OUT:  "start_us end_us status" (plain_client -o)
      -> transfer_p50_us= plain_p50_us= overhead_us= ...
         and, with bench_mock's journal, where the time goes (second line)
  analyze.py pacing JOURNAL_JSON COMMIT_US
      JOURNAL_JSON: the python mock's /__mock/journal
      -> creates= rps= first_interval_s= min_gap_ms= max_in_60s= rate_limited=
  analyze.py databases COMMITS JOURNAL
      COMMITS: "reference commit_sent_us commit_returned_us" of database B's payouts
      JOURNAL: bench_mock's /__mock/journal (tab separated), database A's backlog and B's
      -> n= missing= p50_ms= p90_ms= max_ms= slot_ms= others= ratio_p50= ratio_max=
         (slot_ms: the median gap between initializes arriving at the mock while B's
         trials ran, the rate slot as measured; others: the initializes of other
         payouts, A's backlog, that arrived meanwhile)
  analyze.py json FILE KEY...       one value per KEY from a JSON object (a.b for nesting)
  analyze.py median NUMBER...       the median
  analyze.py explain FILE           Execution Time medians per label from a run of
                                    "-- label" / EXPLAIN ANALYZE blocks
"""
import json
import math
import sys


def pct(values, q):
    """Nearest-rank percentile."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(1, math.ceil(q * len(v)))
    return v[k - 1]


def median(values):
    v = sorted(values)
    n = len(v)
    if n == 0:
        return float("nan")
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def initialize_arrivals(journal_path):
    """bench_mock's journal: reference -> arrival_us of its first initialize."""
    arrivals = {}
    for line in open(journal_path):
        f = line.rstrip("\n").split("\t")
        if len(f) >= 8 and f[5] == "i":
            arrivals.setdefault(f[7], int(f[2]))
    return arrivals


def latency(commits_path, journal_path):
    arrivals = initialize_arrivals(journal_path)
    sent, returned, missing = [], [], 0
    for line in open(commits_path):
        ref, t_sent, t_ret = line.split()
        if ref not in arrivals:
            missing += 1
            continue
        sent.append((arrivals[ref] - int(t_sent)) / 1000.0)
        returned.append((arrivals[ref] - int(t_ret)) / 1000.0)
    print("n=%d missing=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f min_ms=%.3f "
          "p50_after_return_ms=%.3f p99_after_return_ms=%.3f"
          % (len(sent), missing, pct(sent, 0.5), pct(sent, 0.99), max(sent), min(sent),
             pct(returned, 0.5), pct(returned, 0.99)))


def transfer(driver_path, plain_path, journal_path=None):
    t, s1, calls = [], [], []
    for line in open(driver_path):
        kind, a, b, ref = line.split()
        (t if kind == "transfer" else s1).append(int(b) - int(a))
        if kind == "transfer":
            calls.append((int(a), int(b), ref))
    plain = []
    for line in open(plain_path):
        a, b, _ = line.split()
        plain.append(int(b) - int(a))
    print("n=%d transfer_p50_us=%.0f transfer_p99_us=%.0f plain_p50_us=%.0f plain_p99_us=%.0f "
          "select1_p50_us=%.0f overhead_us=%.0f overhead_beyond_select1_us=%.0f"
          % (len(t), median(t), pct(t, 0.99), median(plain), pct(plain, 0.99), median(s1),
             median(t) - median(plain), median(t) - median(plain) - median(s1)))
    if journal_path:
        seen = {}
        for line in open(journal_path):
            f = line.rstrip("\n").split("\t")
            if len(f) >= 8 and f[5] == "i":
                seen[f[7]] = (int(f[2]), int(f[3]))
        before = [seen[r][0] - a for a, b, r in calls if r in seen]
        mock = [seen[r][1] - seen[r][0] for a, b, r in calls if r in seen]
        after = [b - seen[r][1] for a, b, r in calls if r in seen]
        print("phases: call_to_arrival_p50_us=%.0f mock_p50_us=%.0f answer_to_return_p50_us=%.0f "
              "call_to_arrival_p99_us=%.0f answer_to_return_p99_us=%.0f"
              % (median(before), median(mock), median(after), pct(before, 0.99), pct(after, 0.99)))


def pacing(journal_path, commit_us):
    entries = json.load(open(journal_path))
    creates = sorted(e["time"] for e in entries
                     if e["path"] == "/v1/payouts/initialize" and e.get("status") != 429)
    all_times = sorted(e["time"] for e in entries)
    limited = sum(1 for e in entries if e.get("status") == 429)
    commit = int(commit_us) / 1e6
    gaps = [b - a for a, b in zip(creates, creates[1:])]
    best, start = 0, 0
    for end, t in enumerate(all_times):
        while all_times[start] <= t - 60:
            start += 1
        best = max(best, end - start + 1)
    span = creates[-1] - creates[0] if len(creates) > 1 else float("nan")
    print("creates=%d requests=%d rate_limited=%d rps=%.4f mean_gap_ms=%.1f min_gap_ms=%.1f "
          "max_gap_ms=%.1f first_after_commit_ms=%.1f drain_s=%.2f max_in_60s=%d"
          % (len(creates), len(all_times), limited, (len(creates) - 1) / span,
             1000 * span / max(1, len(gaps)), 1000 * min(gaps), 1000 * max(gaps),
             1000 * (creates[0] - commit), creates[-1] - commit, best))


def buffers(line):
    """Shared buffers touched (hit + read) on an EXPLAIN "Buffers:" line."""
    total = 0
    for key in ("hit=", "read="):
        if key in line:
            total += int(line.split(key)[1].split()[0])
    return total


def explain(path):
    """Per label: the statement's Execution Time, its buffers, and the time and
    buffers of its scan for due rows (the CTE "due" of the claim and lease
    statements), which is what the partial indexes keep small."""
    times, bufs, scan_t, scan_b = {}, {}, {}, {}
    label, top_buffers, in_cte = None, False, False
    for line in open(path):
        line = line.rstrip("\n")
        s = line.strip()
        if s.startswith("-- label "):
            label, top_buffers, in_cte = s[len("-- label "):], True, False
        elif label is None:
            continue
        elif s.startswith("Buffers:") and top_buffers:
            bufs.setdefault(label, []).append(buffers(s))
            top_buffers = False
        elif s == "CTE due":
            in_cte = True
        elif in_cte and "actual time=" in s and label not in scan_t.get("_seen", set()):
            t = float(s.split("actual time=")[1].split("..")[1].split()[0])
            scan_t.setdefault(label, []).append(t)
            scan_t.setdefault("_seen", set()).add(label)
        elif in_cte and s.startswith("Buffers:") and label in scan_t.get("_seen", set()):
            scan_b.setdefault(label, []).append(buffers(s))
            in_cte = False
            scan_t["_seen"].discard(label)
        elif "Execution Time:" in s:
            times.setdefault(label, []).append(float(s.split(":")[1].split()[0]))
            scan_t.get("_seen", set()).discard(label)
            in_cte = False
    for label, v in times.items():
        print("%s median_ms=%.3f min_ms=%.3f max_ms=%.3f n=%d buffers=%d"
              % (label, median(v), min(v), max(v), len(v), median(bufs.get(label, [0]))))
        if label in scan_t:
            print("%s [scan for due rows] median_ms=%.3f min_ms=%.3f max_ms=%.3f n=%d buffers=%d"
                  % (label, median(scan_t[label]), min(scan_t[label]), max(scan_t[label]),
                     len(scan_t[label]), median(scan_b.get(label, [0]))))


def payroll(journal_path, payouts_path, commit_us):
    """The payroll figures from the mock's journal and the payouts' rows
    (moneroo_id, completed_at in us): when the last initialize of these
    payouts arrived and when the last became final, in s from the commit;
    their requests (initialize + verify) per payout."""
    entries = json.load(open(journal_path))
    rows = [line.split("|") for line in open(payouts_path).read().split("\n") if line]
    ids = {r[0] for r in rows}
    t0 = int(commit_us) / 1e6
    inits = [e for e in entries if e.get("path") == "/v1/payouts/initialize" and e.get("created_id") in ids]
    verifies = [e for e in entries if e.get("path", "").endswith("/verify")
                and e["path"].split("/")[3] in ids]
    sent_s = max(e["time"] for e in inits) - t0 if inits else float("nan")
    final_s = max(int(r[1]) for r in rows) / 1e6 - t0
    print("n=%d sent_s=%.2f final_s=%.2f initializes=%d verifies=%d per_payout=%.2f"
          % (len(rows), sent_s, final_s, len(inits), len(verifies), (len(inits) + len(verifies)) / len(rows)))


def databases(commits_path, journal_path):
    arrivals = initialize_arrivals(journal_path)
    trials = [line.split() for line in open(commits_path) if line.strip()]
    mine = {ref for ref, _, _ in trials}
    waits = [(arrivals[ref] - int(sent)) / 1000.0 for ref, sent, _ in trials if ref in arrivals]
    first = min(int(sent) for _, sent, _ in trials)
    last = max([arrivals[ref] for ref in mine if ref in arrivals] or [first])
    span = sorted(t for t in arrivals.values() if first <= t <= last)
    gaps = [(b - a) / 1000.0 for a, b in zip(span, span[1:])]
    others = sum(1 for ref, t in arrivals.items() if ref not in mine and first <= t <= last)
    slot = median(gaps)
    print("n=%d missing=%d p50_ms=%.1f p90_ms=%.1f max_ms=%.1f slot_ms=%.1f others=%d "
          "ratio_p50=%.2f ratio_max=%.2f"
          % (len(waits), len(trials) - len(waits), median(waits), pct(waits, 0.9), max(waits or [0]),
             slot, others, median(waits) / slot, max(waits or [0]) / slot))


def main(argv):
    cmd = argv[1]
    if cmd == "latency":
        latency(argv[2], argv[3])
    elif cmd == "transfer":
        transfer(argv[2], argv[3], argv[4] if len(argv) > 4 else None)
    elif cmd == "pacing":
        pacing(argv[2], argv[3])
    elif cmd == "json":
        obj = json.load(open(argv[2]))
        for key in argv[3:]:
            v = obj
            for part in key.split("."):
                v = v[part]
            print(v)
    elif cmd == "median":
        print("%.3f" % median([float(x) for x in argv[2:]]))
    elif cmd == "explain":
        explain(argv[2])
    elif cmd == "databases":
        databases(argv[2], argv[3])
    elif cmd == "payroll":
        payroll(argv[2], argv[3], argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
