#!/usr/bin/env bash
# Proves: the key file's path stays with superusers and the server log [fast, ~10 s].
# test/security/56_key_file_path.sh: where the key file is stays with
# superusers and the server log (1.3).
#
# An error about moneroo.secret_key_file (missing, unreadable, readable by
# others) used to name the file in its message, shown to any role that may
# call moneroo_transfer.  With the setting naming a missing file in a
# folder whose name is distinctive:
#   1. a role granted EXECUTE on moneroo_transfer gets F0000 that says the
#      key file failed, and nothing of its path (message, detail, hint);
#   2. a superuser gets the path in the detail;
#   3. the server log has it;
#   4. a key file readable by others: the same, and the mode is still said.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.  Leaves the settings and the roles as it found them.
set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib/recipes.sh"

tap_plan 5

ROLE=t56_app
SECRET_DIR=$WORK/t56-where-the-key-lives-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
REQ='{"amount": 100, "currency": "USD", "description": "t56", "method": "moneroo_payout_demo",
      "customer": {"email": "t56@example.com", "first_name": "Key", "last_name": "Path"},
      "recipient": {"account_number": "4149518161"}}'

# as ROLE QUERY: QUERY's error as psql shows it at VERBOSITY verbose (every field, one line)
as() {
    cluster_psql -U "$1" -At -c '\set VERBOSITY verbose' -c "$2" 2>&1 | tr '\n' ' '
}
cleanup() {
    set +e
    sql -q -c 'ALTER SYSTEM RESET moneroo.secret_key_file' -c 'SELECT pg_reload_conf()' >/dev/null 2>&1
    sql -q -c "REVOKE ALL ON FUNCTION moneroo_transfer(jsonb) FROM $ROLE" \
        -c "REVOKE ALL ON SCHEMA public FROM $ROLE" -c "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1
    rm -rf "$SECRET_DIR"
}
trap cleanup EXIT

wait_server 30 || bail "the server does not answer"
as_pg mkdir -p "$SECRET_DIR" && as_pg chmod 700 "$SECRET_DIR" || bail "cannot make $SECRET_DIR"
sql -q -c "DROP ROLE IF EXISTS $ROLE" -c "CREATE ROLE $ROLE LOGIN" -c "GRANT USAGE ON SCHEMA public TO $ROLE" \
    -c "GRANT EXECUTE ON FUNCTION moneroo_transfer(jsonb) TO $ROLE" || bail "cannot create $ROLE"
# set_key_file PATH: the setting, reloaded, and seen by a new session
set_key_file() {
    sql -q -c "ALTER SYSTEM SET moneroo.secret_key_file = '$1'" -c 'SELECT pg_reload_conf()' >/dev/null
    for _ in $(seq 1 50); do [ "$(sql1 'SHOW moneroo.secret_key_file')" = "$1" ] && return 0; sleep 0.1; done
    return 1
}

# ---------------------------------------------------------------- a missing file
set_key_file "$SECRET_DIR/missing.key" || bail "moneroo.secret_key_file is not reloaded"
mark=$(as_pg stat -c %s "$SERVER_LOG")
out=$(as "$ROLE" "SELECT moneroo_transfer('$REQ')")
if [[ $out == *"ERROR:  F0000: could not read moneroo.secret_key_file"* ]] && [[ $out != *"$SECRET_DIR"* ]] &&
   [[ $out != *missing.key* ]]; then
    pass "a role that may call moneroo_transfer is told the key file failed (F0000), not where it is"
else
    fail "a role that may call moneroo_transfer is told the key file failed (F0000), not where it is" "$out"
fi
out=$(as postgres "SELECT moneroo_transfer('$REQ')")
if [[ $out == *"DETAIL:  The file is \"$SECRET_DIR/missing.key\"."* ]]; then
    pass "a superuser is told where it is"
else
    fail "a superuser is told where it is" "$out"
fi
if as_pg tail -c +$((mark + 1)) "$SERVER_LOG" | grep -q "The file is \"$SECRET_DIR/missing.key\"."; then
    pass "the server log says where it is, for the role's error too"
else
    fail "the server log says where it is, for the role's error too"
fi

# ---------------------------------------------------------------- a file others may read
as_pg sh -c "printf 'sk_test_t56' >'$SECRET_DIR/open.key' && chmod 644 '$SECRET_DIR/open.key'"
set_key_file "$SECRET_DIR/open.key" || bail "moneroo.secret_key_file is not reloaded"
out=$(as "$ROLE" "SELECT moneroo_transfer('$REQ')")
if [[ $out == *"is accessible to other users: it has mode 0644"* ]] && [[ $out != *"$SECRET_DIR"* ]]; then
    pass "a key file readable by others: the role is told its mode, not its path"
else
    fail "a key file readable by others: the role is told its mode, not its path" "$out"
fi
out=$(as postgres "SELECT moneroo_transfer('$REQ')")
if [[ $out == *"DETAIL:  The file is \"$SECRET_DIR/open.key\"."* ]]; then
    pass "... and a superuser its path too"
else
    fail "... and a superuser its path too" "$out"
fi
