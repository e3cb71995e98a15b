#!/usr/bin/env python3
"""test/lib/ha_check.py: after a failover, what the new primary has on record
against what Moneroo (one or more mocks) created.

    ha_check.py --rows FILE --tag TAG --queued N --mock URL [--mock URL...] [--details]

FILE holds the payouts of the new primary whose description starts with
"TAG #", one per line: id|reference|status|moneroo_id (psql -At).  Each mock's
/__mock/payouts and /__mock/journal are read (every create and every POST of
an initialize is there).  Prints one line of key=value figures:

    queued       N, as given
    on_record    rows of the tag at the new primary (missing = queued - on_record)
    pending sending done unknown other   rows by status (done: sent, success, failed)
    created      payouts the mocks created for the tag, all mocks together
    doubles      creates beyond one per reference (a payout paid twice)
    posted_twice references POSTed more than once
    unrecorded   references created at a mock whose row is missing, or is neither
                 unknown nor sent/success/failed with one of the created ids
    phantom      rows with a moneroo_id that no mock created for that reference
    unknown_uncreated  unknown rows that no mock created (claimed, never sent)

--details adds one "# ..." line per double, unrecorded or phantom payout (the first 10).
"""
import argparse
import collections
import json
import sys
import urllib.request

DONE = ("sent", "success", "failed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--queued", type=int, required=True)
    ap.add_argument("--mock", action="append", default=[])
    ap.add_argument("--details", action="store_true")
    a = ap.parse_args()
    prefix = a.tag + " #"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(url):
        with opener.open(url, timeout=60) as r:
            return json.load(r)

    created = collections.defaultdict(list)      # reference -> [(mock, id)]
    posts = collections.Counter()                 # reference -> initialize POSTs
    for m in a.mock:
        for p in get(m + "/__mock/payouts"):
            if str((p.get("body") or {}).get("description", "")).startswith(prefix):
                created[p["reference"]].append((m, p["id"]))
        for e in get(m + "/__mock/journal"):
            body = e.get("body") if isinstance(e.get("body"), dict) else {}
            if (e.get("method") == "POST" and e.get("path") == "/v1/payouts/initialize"
                    and str(body.get("description", "")).startswith(prefix)):
                ref = e.get("reference") or (body.get("metadata") or {}).get("payout_reference")
                posts[ref] += 1

    rows = {}
    with open(a.rows) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            pid, ref, status, mid = line.split("|")
            rows[ref] = (pid, status, mid)

    by = collections.Counter()
    for _, status, _ in rows.values():
        by[status if status in ("pending", "sending", "unknown") else
           "done" if status in DONE else "other"] += 1
    details = []
    doubles = 0
    for ref, c in created.items():
        if len(c) > 1:
            doubles += len(c) - 1
            details.append("double: %s created %d times: %s" % (ref, len(c), ", ".join(
                "%s at %s" % (i, m) for m, i in c)))
    unrecorded = 0
    for ref, c in created.items():
        row = rows.get(ref)
        ids = {i for _, i in c}
        if row is None or not (row[1] == "unknown" or (row[1] in DONE and row[2] in ids)):
            unrecorded += 1
            details.append("unrecorded: %s created as %s, on record as %s" % (
                ref, ", ".join(sorted(ids)), "nothing" if row is None else "%s %s %s" % row))
    phantom = 0
    unknown_uncreated = 0
    for ref, (pid, status, mid) in rows.items():
        ids = {i for _, i in created.get(ref, [])}
        if mid and mid not in ids:
            phantom += 1
            details.append("phantom: payout %s %s has moneroo_id %s, not created for it" % (pid, status, mid))
        if status == "unknown" and not ids:
            unknown_uncreated += 1

    figures = [("queued", a.queued), ("on_record", len(rows)), ("pending", by["pending"]),
               ("sending", by["sending"]), ("done", by["done"]), ("unknown", by["unknown"]),
               ("other", by["other"]), ("created", sum(len(c) for c in created.values())),
               ("doubles", doubles), ("posted_twice", sum(1 for n in posts.values() if n > 1)),
               ("unrecorded", unrecorded), ("phantom", phantom),
               ("unknown_uncreated", unknown_uncreated)]
    print(" ".join("%s=%d" % kv for kv in figures))
    if a.details:
        for d in details[:10]:
            print("# " + d)
        if len(details) > 10:
            print("# ... and %d more" % (len(details) - 10))
    return 0


if __name__ == "__main__":
    sys.exit(main())
