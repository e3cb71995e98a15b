#!/usr/bin/env bash
# Proves: the secret key never reaches the log, and rotates through its file [fast, ~20 s; needs root].
# test/security/55_secret_key.sh: the secret key never lands in the server log,
# even at log_min_messages = debug5, and rotates through moneroo.secret_key_file.
#
# The server is restarted with log_min_messages = debug5 (and, unlike the
# harness's own starts, without the test key in its environment: PostgreSQL
# dumps its environment at debug3, which is the harness's doing, not the
# extension's).  Then, at debug5:
#   A. the key of postgresql.conf: payouts both ways (moneroo_transfer and the
#      queue, settled by verification), and failing calls (401, 422, a failed
#      verification, a webhook without its secret);
#   B. moneroo.secret_key_file, against a second mock that records whichever
#      key it is given: the file's key is used by moneroo_transfer and by the
#      queue; a new key written over it (in place, even within the same
#      second, or by rename) is used from the next request on, without a
#      restart; a file that others may read (chmod 644) is refused with a
#      clear error (F0000) and nothing is sent, and a payout queued meanwhile
#      leaves once the file is fixed; a missing file is refused too (F0000);
#   C. back to the key of postgresql.conf.
# Finally the whole server log (the whole test run so far) is searched for
# every key used: none may appear.
#
# Run by test/run.sh (bash, TAP on stdout).  test/run.sh restores
# postgresql.conf afterwards; ALTER SYSTEM settings are reset here.
set -uo pipefail

# shellcheck source=test/lib/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"

PLAN=40

# ---------------------------------------------------------------- TAP
tap_plan "$PLAN"

# ---------------------------------------------------------------- SQL
sql1() { sql_or_state "$1"; }
# sql_err QUERY: the whole error report (message, detail, hint) of a failing QUERY.
sql_err() { cluster_psql -At -c '\set VERBOSITY verbose' -c "$1" 2>&1 >/dev/null | tr '\n' ' '; }
req() {
    printf '{"amount": 500, "currency": "USD", "description": "script 55_secret_key", "method": "moneroo_payout_demo", "customer": {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"}, "recipient": {"account_number": "%s"}}' "$1"
}
# transfer: moneroo_transfer of a sandbox payout: "sent <reference>" or the error.
transfer() { sql1 "SELECT status || ' ' || reference FROM moneroo_transfer('$(req 4149518161)')"; }

# ---------------------------------------------------------------- keys
# Distinctive and random, never in any process's environment or arguments:
# they reach python only through its stdin-free environment below, and the
# server only through the key file.
rand() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
KEY_A=$MONEROO_TEST_KEY
KEY_B="pvk_sandbox_t55B$(rand)"
KEY_C="pvk_sandbox_t55C$(rand)"
KEY_D="pvk_sandbox_t55D$(rand)"
KEY_E="pvk_sandbox_t55E$(rand)"

# auth_of BASE_URL REFERENCE: which key the POSTs of payout REFERENCE
# carried (A..E, "none" or "other"), one per POST, comma separated.
auth_of() {
    curl -fsS --noproxy '*' --max-time 10 "$1/__mock/journal" |
        T55_REF=$2 T55_A=$KEY_A T55_B=$KEY_B T55_C=$KEY_C T55_D=$KEY_D T55_E=$KEY_E \
        "$(cluster_python)" -c '
import json, os, sys
doc = json.load(sys.stdin)
rows = doc.get("journal", doc) if isinstance(doc, dict) else doc
keys = {"Bearer " + os.environ["T55_" + k]: k for k in "ABCDE"}
out = []
for e in rows:
    body = e.get("body") if isinstance(e.get("body"), dict) else {}
    ref = (body.get("metadata") or {}).get("payout_reference")
    if e.get("method") == "POST" and ref == os.environ["T55_REF"]:
        auth = (e.get("headers") or {}).get("authorization")
        out.append(keys.get(auth, "none" if auth is None else "other"))
print(",".join(out))'
}
journal_len() {
    curl -fsS --noproxy '*' --max-time 10 "$1/__mock/journal" |
        "$(cluster_python)" -c 'import json,sys; d=json.load(sys.stdin); print(len(d.get("journal", d) if isinstance(d, dict) else d))'
}

# ---------------------------------------------------------------- the second mock
MOCK2_PID=''
KEYDIR=$WORK/t55-keys
KEYFILE=$KEYDIR/moneroo.key
# shellcheck disable=SC2317  # runs from the EXIT trap
cleanup() {
    cluster_psql -qAt -c 'ALTER SYSTEM RESET moneroo.secret_key_file' -c 'ALTER SYSTEM RESET moneroo.api_url' \
        -c 'SELECT pg_reload_conf()' >/dev/null 2>&1
    if [ -n "$MOCK2_PID" ]; then
        kill -TERM "$MOCK2_PID" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$MOCK2_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$MOCK2_PID" 2>/dev/null
        wait "$MOCK2_PID" 2>/dev/null
    fi
    rm -rf "$KEYDIR"
}
trap cleanup EXIT

# write_key KEY: the key file holds KEY, written in place (same inode), mode 600.
write_key() { printf '%s\n' "$1" | as_pg sh -c "umask 077; cat > '$KEYFILE'"; }

# ---------------------------------------------------------------- restart at debug5
cluster_conf_append "" "# ---- 55_secret_key.sh ----" "log_min_messages = debug5" \
    "moneroo.rate_limit = 0" "moneroo.verify_min_interval = '200ms'" || bail "cannot append to postgresql.conf"
cluster_stop >&2
(cd "$WORK" && runuser -u "$PG_OS_USER" -- env -u MONEROO_TEST_KEY \
    "$PGBIN/pg_ctl" start -D "$PGDATA" -l "$SERVER_LOG" -w -t 60 -s) >&2 ||
    bail "the server does not start at log_min_messages = debug5"
wait_sql "(SELECT worker_running FROM moneroo_worker_info())" 10 >/dev/null || bail "the worker does not start"
{ mock_ctl POST /__mock/reset '{}' && mock_ctl POST /__mock/config '{"rate_limit": 0}'; } >/dev/null ||
    bail "cannot reset the mock"
is "$(sql1 'SHOW log_min_messages')" "debug5" "the server runs at log_min_messages = debug5"

# ---------------------------------------------------------------- A. the key of postgresql.conf
out=$(transfer)
is "${out%% *}" "sent" "moneroo_transfer sends a payout with the key of postgresql.conf"
is "$(auth_of "$MOCK_URL" "${out#* }")" "A" "... which Moneroo received as the Bearer token"

ids=$(sql1 "INSERT INTO payouts (request) VALUES ('$(req 4149518161)'), ('$(req 4149518162)') RETURNING id" | tr '\n' ',')
ids=${ids%,}
ok "$(wait_sql "(SELECT string_agg(status, ',' ORDER BY id) FROM payouts WHERE id IN ($ids)) = 'success,failed'" 15 >/dev/null; echo $?)" \
    "two queued payouts are sent and settled by verification (success, failed)"

mock_ctl POST /__mock/faults '{"kind": "status", "status": 401}' >/dev/null
out=$(transfer)
is "${out%%:*}" "ERROR 28000" "a payout Moneroo refuses with 401 fails with 28000" "$out"
# Since 1.2 a refused key pauses every request; a reload says it may work again.
reload
mock_ctl POST /__mock/faults '{"kind": "status", "status": 422}' >/dev/null
out=$(transfer)
is "${out%%:*}" "ERROR 22023" "a payout Moneroo refuses with 422 fails with 22023" "$out"
sent_id=$(sql1 "SELECT max(id) FROM payouts WHERE status = 'success'")
sent_mid=$(sql1 "SELECT moneroo_id FROM payouts WHERE id = $sent_id")
mock_ctl POST /__mock/faults "{\"kind\": \"status\", \"status\": 500, \"route\": \"verify\", \"id\": \"$sent_mid\"}" >/dev/null
out=$(sql1 "SELECT status FROM moneroo_verify($sent_id)")
is "${out%% *}" "ERROR" "a verification Moneroo answers with 500 fails" "$out"
out=$(sql1 "SELECT status FROM moneroo_webhook('{\"event\": \"payout.success\", \"data\": {\"id\": \"x\"}}', 'x')")
is "${out%%:*}" "ERROR F0000" "a webhook without moneroo.webhook_secret fails with F0000" "$out"

# ---------------------------------------------------------------- B. moneroo.secret_key_file
MOCK2_PORT=$(free_port "$PGPORT" "$MOCK_PORT") || bail "no free port"
MOCK2_URL="http://127.0.0.1:$MOCK2_PORT"
# no --secret-key: it takes any key, and its journal says which one came
"$(cluster_python)" -u "$MOCK_SCRIPT" --host 127.0.0.1 --port "$MOCK2_PORT" --rate-limit 0 \
    </dev/null >>"$WORK/t55-mock.log" 2>&1 &
MOCK2_PID=$!
for _ in $(seq 1 100); do
    curl -fsS --noproxy '*' -o /dev/null --max-time 2 "$MOCK2_URL/__mock/health" 2>/dev/null && break
    sleep 0.1
done
curl -fsS --noproxy '*' -o /dev/null --max-time 2 "$MOCK2_URL/__mock/health" || bail "the second mock did not start"

{ mkdir -p "$KEYDIR" && chown "$PG_OS_USER:" "$KEYDIR" && chmod 700 "$KEYDIR"; } || bail "cannot make $KEYDIR"
write_key "$KEY_B"
is "$(stat -c '%U %a' "$KEYFILE")" "$PG_OS_USER 600" "(setup) the key file is owned by $PG_OS_USER, mode 600"
sql1 "ALTER SYSTEM SET moneroo.secret_key_file = '$KEYFILE'" >/dev/null
sql1 "ALTER SYSTEM SET moneroo.api_url = '$MOCK2_URL'" >/dev/null
reload
is "$(sql1 'SHOW moneroo.secret_key_file')" "$KEYFILE" "moneroo.secret_key_file is set by a reload"

out=$(transfer)
is "${out%% *}" "sent" "moneroo_transfer sends a payout with moneroo.secret_key_file set"
is "$(auth_of "$MOCK2_URL" "${out#* }")" "B" "... using the file's key, not postgresql.conf's"
ref=$(sql1 "INSERT INTO payouts (request) VALUES ('$(req 4149518161)') RETURNING reference")
ok "$(wait_sql "(SELECT status FROM payouts WHERE reference = '$ref') IN ('sent', 'success')" 10 >/dev/null; echo $?)" \
    "a queued payout is sent with moneroo.secret_key_file set"
is "$(auth_of "$MOCK2_URL" "$ref")" "B" "... using the file's key too"

# Rotation in place, twice within one second: same inode, same size, same
# mtime second.  Aligned to the start of a second so that both writes and
# the call between them fit in it.
same_second=no
for _ in 1 2 3; do
    while [ "$(date +%N | cut -c1)" != 0 ]; do sleep 0.02; done
    write_key "$KEY_C"
    m1=$(stat -c %Y "$KEYFILE")
    out_c=$(transfer)
    write_key "$KEY_D"
    m2=$(stat -c %Y "$KEYFILE")
    if [ "$m1" = "$m2" ]; then same_second=yes; break; fi
done
is "$same_second" "yes" "(setup) the key file was rewritten twice within one second"
is "${out_c%% *} $(auth_of "$MOCK2_URL" "${out_c#* }")" "sent C" \
    "a new key written over the file is used by the next moneroo_transfer, without a restart"
out=$(transfer)
is "${out%% *} $(auth_of "$MOCK2_URL" "${out#* }")" "sent D" \
    "a key written over the file again within the same second is used by the next moneroo_transfer"

# Rotation by rename (what editors and deployment tools do).
printf '%s\n' "$KEY_E" | as_pg sh -c "umask 077; cat > '$KEYFILE.new' && mv '$KEYFILE.new' '$KEYFILE'"
out=$(transfer)
is "${out%% *} $(auth_of "$MOCK2_URL" "${out#* }")" "sent E" \
    "a key file replaced by rename is used by the next moneroo_transfer"

# A file others may read is refused, and nothing is sent.
chmod 644 "$KEYFILE"
n_journal=$(journal_len "$MOCK2_URL")
n_rows=$(sql1 'SELECT count(*) FROM payouts')
out=$(transfer)
is "${out%%:*}" "ERROR F0000" "with the key file world-readable (644), moneroo_transfer is refused with F0000" "$out"
report=$(sql_err "SELECT moneroo_transfer('$(req 4149518161)')")
ok "$([[ $report == *"$KEYFILE"* && $report == *0644* && $report == *chmod* ]]; echo $?)" \
    "... with an error naming the file, its mode and the fix (chmod)" "$report"
is "$(sql1 'SELECT count(*) FROM payouts')" "$n_rows" "... and no payouts row is left behind"
ref=$(sql1 "INSERT INTO payouts (request) VALUES ('$(req 4149518161)') RETURNING reference")
sleep 1.5
is "$(journal_len "$MOCK2_URL")" "$n_journal" "... and nothing reaches Moneroo, from moneroo_transfer or from the queue"
out=$(sql1 "SELECT status FROM payouts WHERE reference = '$ref'")
ok "$([[ $out == pending || $out == sending ]]; echo $?)" "the payout queued meanwhile waits (pending or sending, not unknown)" "status: $out"
chmod 600 "$KEYFILE"
ok "$(wait_sql "(SELECT status FROM payouts WHERE reference = '$ref') IN ('sent', 'success')" 15 >/dev/null; echo $?)" \
    "once the file is mode 600 again, the queued payout is sent" \
    "status: $(sql1 "SELECT status || ' ' || coalesce(last_error, '') FROM payouts WHERE reference = '$ref'")"
is "$(auth_of "$MOCK2_URL" "$ref")" "E" "... once, with the file's key"
out=$(transfer)
is "${out%% *}" "sent" "... and moneroo_transfer works again"

# A missing key file.
sql1 "ALTER SYSTEM SET moneroo.secret_key_file = '$KEYDIR/missing.key'" >/dev/null
reload
n_journal=$(journal_len "$MOCK2_URL")
out=$(transfer)
is "${out%%:*}" "ERROR F0000" "with moneroo.secret_key_file naming a missing file, moneroo_transfer is refused with F0000 (README: bad key file)" "$out"
is "$(journal_len "$MOCK2_URL")" "$n_journal" "... and nothing reaches Moneroo"

# A file with a key that cannot go into a header.
printf 'two words\n' | as_pg sh -c "umask 077; cat > '$KEYDIR/bad.key'"
sql1 "ALTER SYSTEM SET moneroo.secret_key_file = '$KEYDIR/bad.key'" >/dev/null
reload
out=$(transfer)
is "${out%%:*}" "ERROR F0000" "a key file whose key has a space in it is refused with F0000" "$out"
is "$(journal_len "$MOCK2_URL")" "$n_journal" "... and nothing reaches Moneroo"

# ---------------------------------------------------------------- C. back to postgresql.conf's key
sql1 'ALTER SYSTEM RESET moneroo.secret_key_file' >/dev/null
sql1 'ALTER SYSTEM RESET moneroo.api_url' >/dev/null
reload
out=$(transfer)
is "${out%% *}" "sent" "with moneroo.secret_key_file reset, moneroo_transfer works again" "$out"
is "$(auth_of "$MOCK_URL" "${out#* }")" "A" "... with the key of postgresql.conf"

# The worker's pg_stat_activity and moneroo_status, as a superuser sees them.
out=$(cluster_psql -At -c "SELECT query FROM pg_stat_activity WHERE backend_type = 'moneroo worker'" \
      -c "SELECT s::text FROM moneroo_status s" 2>&1)
leak=no
for k in "$KEY_A" "$KEY_B" "$KEY_C" "$KEY_D" "$KEY_E"; do [[ $out == *"$k"* ]] && leak=yes; done
is "$leak" "no" "neither the worker's pg_stat_activity row nor moneroo_status shows a key"

# ---------------------------------------------------------------- the server log
debug_lines=$(grep -c ' DEBUG: ' "$SERVER_LOG")
ok "$([ "$debug_lines" -gt 100 ]; echo $?)" "(setup) the server log has DEBUG lines from this run ($debug_lines)"
for k in A B C D E; do
    var=KEY_$k
    n=$(grep -c -F -- "${!var}" "$SERVER_LOG")
    is "$n" "0" "the server log (the whole run, debug5 included) never contains key $k" \
        "$(grep -n -F -- "${!var}" "$SERVER_LOG" | head -n 3 | sed "s/${!var}/<key $k>/g" | cut -c1-300)"
done
# A part of a key is a leak too (an error that cuts a long value short).
parts=no
for k in A B C D E; do
    var=KEY_$k
    chunk=${!var:12:16}
    if grep -q -F -- "$chunk" "$SERVER_LOG"; then parts="key $k"; fi
done
is "$parts" "no" "nor 16 characters from the middle of any of them"
mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1

exit 0
