#!/usr/bin/env bash
# Proves: HTTPS to Moneroo checks certificate and host; api_url is vetted [fast, ~15 s; needs root].
# test/security/50_tls.sh: HTTPS to Moneroo, with certificate and host checks
# always on, and the moneroo.api_url check (README, Settings and Security).
#
# A throwaway CA signs two server certificates: one for localhost/127.0.0.1
# and one for "wronghost.example".  Two more mocks serve HTTPS with them.
#   - https://localhost with moneroo.ca_bundle = the CA: a payout goes
#     through (moneroo_transfer returns 'sent'; the mock got the request);
#   - the certificate of another host name, or no ca_bundle (the system CAs
#     do not know the test CA): the connection is never established, so
#     moneroo_transfer fails with 08001, leaves a 'rejected' row, and
#     nothing reached the mock; a queued payout goes back to 'pending'
#     (provably never sent), never to 'unknown';
#   - moneroo.api_url: plain http is accepted only to loopback; ALTER SYSTEM
#     refuses anything else, and a bad value written to postgresql.conf does
#     not take effect at reload.
# Settings are restored (ALTER SYSTEM RESET) and the extra mocks stopped on
# exit; test/run.sh restores postgresql.conf.
set -uo pipefail

# shellcheck source=test/lib/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"
# shellcheck source=test/lib/tls.sh
. "$(dirname "$0")/../lib/tls.sh"

PLAN=37

# ---------------------------------------------------------------- TAP
tap_plan "$PLAN"

# ---------------------------------------------------------------- SQL
sql1() { sql_or_state "$1"; }
# run1 STATEMENT: "ok", or "ERROR <sqlstate>: <message>".
run1() { local out; out=$(sql1 "$1"); printf '%s' "${out:-ok}"; }
REQ='{"amount": 500, "currency": "USD", "description": "script 50_tls", "method": "moneroo_payout_demo",
      "customer": {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"},
      "recipient": {"account_number": "4149518161"}}'
max_id() { sql1 'SELECT coalesce(max(id), 0) FROM payouts'; }

# ---------------------------------------------------------------- the TLS mocks
TLS=$WORK/t50-tls
PIDS=()
# shellcheck disable=SC2317  # runs from the EXIT trap
cleanup() {
    local pid
    cluster_psql -qAt -c 'ALTER SYSTEM RESET moneroo.api_url' -c 'ALTER SYSTEM RESET moneroo.ca_bundle' \
        -c 'SELECT pg_reload_conf()' >/dev/null 2>&1
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
}
trap cleanup EXIT

tls_make_ca "$TLS" || bail "openssl could not make a CA"
tls_make_server_cert "$TLS" good 'DNS:localhost,IP:127.0.0.1' || bail "openssl could not make a certificate"
tls_make_server_cert "$TLS" wrong 'DNS:wronghost.example' || bail "openssl could not make a certificate"
chown -R "$PG_OS_USER:" "$TLS" 2>/dev/null
chmod 600 "$TLS"/*.key

# ctl PORT METHOD PATH: the control API of a TLS mock (not what is tested: -k)
ctl() { curl -fsS -k --noproxy '*' --max-time 10 -X "$2" "https://127.0.0.1:$1$3"; }
journal_count() { ctl "$1" GET /__mock/journal | "$(cluster_python)" -c 'import json,sys; d=json.load(sys.stdin); d=d.get("journal", d) if isinstance(d, dict) else d; print(len(d))'; }
creates() { ctl "$1" GET /__mock/stats | "$(cluster_python)" -c 'import json,sys; print(json.load(sys.stdin)["creates"])'; }

# start_mock VAR NAME: start a mock serving HTTPS with NAME.pem; its port goes to VAR.
start_mock() {
    local __var=$1 name=$2 port
    port=$(free_port "$PGPORT" "$MOCK_PORT") || return 1
    "$(cluster_python)" -u "$MOCK_SCRIPT" --host 127.0.0.1 --port "$port" \
        --secret-key "$MONEROO_TEST_KEY" --tls-cert "$TLS/$name.pem" --tls-key "$TLS/$name.key" \
        </dev/null >>"$WORK/t50-mock-$name.log" 2>&1 &
    PIDS+=($!)
    local deadline=$((SECONDS + 20))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if curl -fsS -k --noproxy '*' -o /dev/null --max-time 2 "https://127.0.0.1:$port/__mock/health" 2>/dev/null; then
            printf -v "$__var" '%s' "$port"
            return 0
        fi
        sleep 0.1
    done
    return 1
}
start_mock GOOD good || bail "the HTTPS mock (good certificate) did not start"
start_mock WRONG wrong || bail "the HTTPS mock (wronghost certificate) did not start"

# The certificates are what they should be (checked with curl, independently).
curl -fsS --noproxy '*' --max-time 5 --cacert "$TLS/ca.pem" -o /dev/null "https://localhost:$GOOD/__mock/health"
ok $? "(setup) curl trusts https://localhost:$GOOD with the test CA"
curl -fsS --noproxy '*' --max-time 5 --cacert "$TLS/ca.pem" -o /dev/null "https://localhost:$WRONG/__mock/health" 2>/dev/null
ok $((! $?)) "(setup) curl refuses https://localhost:$WRONG (a certificate for wronghost.example)"

# ---------------------------------------------------------------- HTTPS with the CA
is "$(run1 "ALTER SYSTEM SET moneroo.api_url = 'https://localhost:$GOOD'")" "ok" \
    "ALTER SYSTEM SET moneroo.api_url to an https URL is accepted"
is "$(run1 "ALTER SYSTEM SET moneroo.ca_bundle = '$TLS/ca.pem'")" "ok" \
    "ALTER SYSTEM SET moneroo.ca_bundle to the test CA is accepted"
reload
is "$(sql1 'SHOW moneroo.api_url')" "https://localhost:$GOOD" "after a reload moneroo.api_url is the HTTPS mock"

before=$(max_id)
out=$(sql1 "SELECT status || ' ' || (moneroo_id IS NOT NULL) FROM moneroo_transfer('$REQ')")
is "$out" "sent true" "over HTTPS with moneroo.ca_bundle, moneroo_transfer returns the payout sent, with Moneroo's id"
is "$(creates "$GOOD")" 1 "the HTTPS mock created the payout"
is "$(sql1 "SELECT count(*) FROM payouts WHERE id > $before")" 1 "one payouts row was recorded"
out=$(sql1 "SELECT (moneroo_verify(id)).status IN ('sent', 'success') FROM payouts WHERE id > $before")
is "$out" "t" "moneroo_verify works over HTTPS too"

# ---------------------------------------------------------------- the wrong host name
is "$(run1 "ALTER SYSTEM SET moneroo.api_url = 'https://localhost:$WRONG'")" "ok" \
    "(setup) moneroo.api_url now points at a server whose certificate is for wronghost.example"
reload
before=$(max_id)
out=$(sql1 "SELECT status FROM moneroo_transfer('$REQ')")
is "${out%%:*}" "ERROR 08001" "a certificate for another host name: moneroo_transfer fails with 08001 (never connected)" "$out"
is "$(sql1 "SELECT string_agg(status, ',') FROM payouts WHERE id > $before")" "rejected" \
    "... and leaves one row, rejected (nothing will send it later)"
out=$(sql1 "SELECT last_error FROM payouts WHERE id > $before")
ok "$([[ $out == 'not sent'* ]]; echo $?)" "... whose last_error says it was not sent" "last_error: $out"
is "$(journal_count "$WRONG")" 0 "... and no HTTP request reached the server with the wrong certificate"
is "$(creates "$WRONG")" 0 "... which created nothing"

# A queued payout meets the same server: never connected, so back to pending.
out=$(sql1 "INSERT INTO payouts (request) VALUES ('$REQ') RETURNING id")
queued=${out%% *}
deadline=$((SECONDS + 10))
while [ "$SECONDS" -lt "$deadline" ]; do
    st=$(sql1 "SELECT status || ' ' || attempts FROM payouts WHERE id = $queued")
    [ "$st" = "pending 1" ] && break
    sleep 0.1
done
is "$st" "pending 1" "a queued payout that meets the wrong certificate goes back to pending after one attempt (never unknown)"
out=$(sql1 "SELECT last_error FROM payouts WHERE id = $queued")
ok "$([[ -n $out ]]; echo $?)" "... and its last_error says why" "last_error: '$out'"
is "$(journal_count "$WRONG")" 0 "... and still nothing reached the server with the wrong certificate"
sql1 "DELETE FROM payouts WHERE id = $queued AND status = 'pending'" >/dev/null

# ---------------------------------------------------------------- no CA bundle
is "$(run1 "ALTER SYSTEM SET moneroo.api_url = 'https://localhost:$GOOD'")" "ok" \
    "(setup) moneroo.api_url points at the good HTTPS mock again"
is "$(run1 'ALTER SYSTEM RESET moneroo.ca_bundle')" "ok" "(setup) moneroo.ca_bundle reset: the system CAs only"
reload
creates_before=$(creates "$GOOD")
journal_before=$(journal_count "$GOOD")
before=$(max_id)
out=$(sql1 "SELECT status FROM moneroo_transfer('$REQ')")
is "${out%%:*}" "ERROR 08001" "without the test CA, moneroo_transfer fails with 08001 (never connected)" "$out"
is "$(sql1 "SELECT string_agg(status, ',') FROM payouts WHERE id > $before")" "rejected" "... and leaves one row, rejected"
is "$(journal_count "$GOOD")" "$journal_before" "... and no HTTP request reached the mock"
is "$(creates "$GOOD")" "$creates_before" "... which created nothing"

# ---------------------------------------------------------------- moneroo.api_url's check
is "$(run1 'ALTER SYSTEM RESET moneroo.api_url')" "ok" "(setup) moneroo.api_url reset to postgresql.conf's (the plain mock)"
reload
is "$(sql1 'SHOW moneroo.api_url')" "$MOCK_URL" "(setup) moneroo.api_url is the plain http mock on 127.0.0.1"

for url in 'http://example.com' 'http://127.0.0.1.example.com' 'http://localhost.example.com:8080' 'ftp://127.0.0.1:21'; do
    out=$(run1 "ALTER SYSTEM SET moneroo.api_url = '$url'")
    is "${out%%:*}" "ERROR 22023" "ALTER SYSTEM SET moneroo.api_url = '$url' is refused (22023)" "$out"
done
auto=$(cat "$PGDATA/postgresql.auto.conf" 2>/dev/null)
ok "$([[ $auto != *example.com* && $auto != *ftp:* ]]; echo $?)" "none of the refused URLs reached postgresql.auto.conf"

for url in "http://127.0.0.1:$MOCK_PORT" "http://localhost:$MOCK_PORT" "http://[::1]:$MOCK_PORT"; do
    is "$(run1 "ALTER SYSTEM SET moneroo.api_url = '$url'")" "ok" \
        "ALTER SYSTEM SET moneroo.api_url = '$url' (plain http to loopback) is accepted"
done
reload
is "$(sql1 'SHOW moneroo.api_url')" "http://[::1]:$MOCK_PORT" "... and takes effect at reload"
sql1 'ALTER SYSTEM RESET moneroo.api_url' >/dev/null
reload

# The same check guards postgresql.conf: a bad value there does not take effect.
cluster_conf_append "moneroo.api_url = 'http://example.com'"
reload
is "$(sql1 'SHOW moneroo.api_url')" "$MOCK_URL" \
    "moneroo.api_url = 'http://example.com' written to postgresql.conf does not take effect at reload"
before=$(max_id)
out=$(sql1 "SELECT status FROM moneroo_transfer('$REQ')")
is "$out" "sent" "... and payouts still go to the configured API"

exit 0
