#!/usr/bin/env bash
# Proves: every change of state is one NOTIFY on moneroo_payouts at commit, none for a rollback [fast, ~10 s].
# test/outcomes/62_outcomes_notify.sh: every change of a payout's state is a
# NOTIFY on moneroo_payouts, heard at commit, never for a rollback (1.3).
#
# pgTAP cannot listen across transactions, so a psycopg listener does:
#   - a payout queued and sent: one notification per event of payout_events,
#     in order, each with event_id, payout_id, reference, status,
#     previous_status, batch and idempotency_key, and never the request;
#   - an INSERT rolled back, and an UPDATE of a payout's batch rolled back:
#     nothing heard;
#   - the longest batch and idempotency key the table allows, of characters
#     that JSON escapes six times over: the payload stays under 8000 bytes;
#   - nothing is heard before the changing transaction commits.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.
set -uo pipefail

if ! declare -F cluster_psql >/dev/null; then
    # shellcheck source=test/lib/cluster.sh
    . "${CLUSTER_LIB:-$(dirname "$0")/../lib/cluster.sh}"
fi
cluster_env

"$(cluster_python)" - "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=postgres" <<'PY'
import json, select, sys, time
import psycopg

dsn = sys.argv[1]
n = 0
def ok(cond, name, *diag):
    global n
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, name))
    if not cond:
        for d in diag:
            print("# " + str(d).replace("\n", "\n# "))
print("1..12")

listener = psycopg.connect(dsn, autocommit=True)
listener.execute("LISTEN moneroo_payouts")
heard = []
listener.add_notify_handler(lambda note: heard.append(note))

def listen(seconds, until=None):
    """Collects notifications for up to seconds, or until until(heard) holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until and until(heard)):
        select.select([listener], [], [], 0.1)
        listener.execute("SELECT 1")     # delivers what arrived to the handler

writer = psycopg.connect(dsn, autocommit=True)
REQUEST = """jsonb_build_object('amount', 7, 'currency', 'USD', 'description', 'notify ' || %s,
    'method', 'moneroo_payout_demo',
    'customer', jsonb_build_object('email', 'n@example.com', 'first_name', 'No', 'last_name', 'Tify'),
    'recipient', jsonb_build_object('account_number', '4149518161'))"""

# ---- rolled back: nothing
with writer.transaction(force_rollback=True):
    writer.execute("INSERT INTO payouts (request) VALUES (" + REQUEST + ")", ["rolled back"])
listen(1.5)
# (earlier tests' payouts may still settle: only a payout that does not exist counts)
def ghosts():
    ids = [json.loads(h.payload)["payout_id"] for h in heard]
    known = {r[0] for r in writer.execute("SELECT id FROM payouts WHERE id = ANY(%s)", [ids])}
    return [i for i in ids if i not in known]
ok(ghosts() == [], "a rolled-back INSERT is never heard", [h.payload for h in heard])

# ---- heard at commit, not before
key = "\x01" * 255
batch = "\x02" * 255
writer.execute("BEGIN")
payout, reference = writer.execute(
    "INSERT INTO payouts (request, batch, idempotency_key) VALUES (" + REQUEST + ", %s, %s) "
    "RETURNING id, reference::text", ["heard", batch, key]).fetchone()
listen(1)
ok(all(json.loads(h.payload)["payout_id"] != payout for h in heard),
   "nothing is heard before the transaction commits")
writer.execute("COMMIT")
final = lambda h: any(json.loads(x.payload).get("payout_id") == payout and
                      json.loads(x.payload).get("status") == "success" for x in h)
listen(20, final)
mine = [json.loads(h.payload) for h in heard if json.loads(h.payload).get("payout_id") == payout]
events = writer.execute("SELECT id, status, previous_status FROM payout_events WHERE payout_id = %s ORDER BY id",
                        [payout]).fetchall()
ok(final(heard), "the payout's success is heard", [h.payload for h in heard])
ok([m["event_id"] for m in mine] == [e[0] for e in events],
   "one notification per event, in order, naming the event", mine, events)
ok([(m["status"], m["previous_status"]) for m in mine] == [(e[1], e[2]) for e in events],
   "with its status and previous status", mine)
ok([m["status"] for m in mine] == ["pending", "sending", "sent", "success"],
   "pending, sending, sent, success", mine)
ok(all(m["reference"] == reference and m["payout_id"] == payout for m in mine),
   "each names the payout and its reference")
ok(all(m["batch"] == batch and m["idempotency_key"] == key for m in mine),
   "and its batch and idempotency key")
ok(all(set(m) >= {"event_id", "payout_id", "reference", "status", "previous_status", "batch",
                  "idempotency_key"} and "request" not in m for m in mine),
   "every documented key, and never the request", mine[:1])
longest = max(len(h.payload.encode()) for h in heard)
ok(longest < 8000, "the longest payload, with a 255-byte batch and key escaped as \\u0001, is %d bytes < 8000" % longest)
ok(all(h.channel == "moneroo_payouts" for h in heard), "on the channel moneroo_payouts")

# ---- a payout queued and cancelled, rolled back: nothing
heard.clear()
with writer.transaction(force_rollback=True):
    gone = writer.execute("INSERT INTO payouts (request) VALUES (" + REQUEST + ") RETURNING id",
                          ["rolled back too"]).fetchone()[0]
    writer.execute("SELECT moneroo_cancel(%s)", [gone])
listen(1.5)
ok(ghosts() == [], "changes rolled back are never heard", [h.payload for h in heard])
PY
