# shellcheck shell=bash
# test/lib/recipes.sh: what the recipe scripts (test/recipes/9*_recipe_*.sh)
# share: the README's code blocks, a folder of their own owned by the
# server's OS user, and programs they run in the background as that user
# (needs cluster.sh's functions).
#
#   readme_block SECTION LANG [N]  the Nth (default 1st) ```LANG block of the
#                                  README.md section whose heading (or bold
#                                  paragraph title) starts with SECTION ("## Webhooks",
#                                  "**The payroll as a pg_cron job**"): the test runs the
#                                  README's own text, so the two cannot drift
#   readme_role ROLE               the SQL of README.md's Security section that
#                                  creates ROLE: its paragraph from CREATE ROLE ROLE
#   recipe_dir NAME                makes $WORK/NAME, owned by PG_OS_USER, mode 700;
#                                  prints its path
#   daemon_start DIR NAME CMD...   runs CMD as PG_OS_USER in DIR, in the
#                                  background, output to DIR/NAME.log, pid in
#                                  DIR/NAME.pid
#   daemon_stop DIR NAME           TERM, then KILL, the pid in DIR/NAME.pid
#   wait_port PORT [SECONDS]       until something listens on 127.0.0.1:PORT
#   sign BODY SECRET               X-Moneroo-Signature of BODY: lowercase hex HMAC-SHA256
#   mock_sent_twice                how many payouts the mock created beyond one per reference
#   webhook_stack NAME             sets WEBHOOK_SECRET (a random one, not exported)
#                                  and restarts the server with it, for webhooks
#                                  answered now (see below); NAME marks the lines
#   quiet_stack                    before a restart: no rate limit at the mock, and
#                                  earlier scripts' verifications an hour away

#
# Sourcing it also sources cluster.sh (unless test/run.sh exported its
# functions), tap.sh and server.sh, and calls cluster_env.

RECIPES_LIB=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=test/lib/script.sh
. "$RECIPES_LIB/script.sh"

README=${REPO:-$(cd "$RECIPES_LIB/../.." && pwd)}/README.md

readme_block() {
    local section=$1 lang=$2 n=${3:-1}
    awk -v section="$section" -v lang="$lang" -v n="$n" '
        # a heading ("## Webhooks") runs to the next heading of its level or
        # higher; a bold paragraph title ("**The payroll ...**") to the next
        # bold title or heading
        !in_section && index($0, section) == 1 {
            in_section = 1; level = (section ~ /^#/) ? index(section, " ") : 0; next
        }
        in_section && !in_block && /^#+ / && (level == 0 || index($0, " ") <= level) { exit }
        in_section && !in_block && level == 0 && /^\*\*/ { exit }
        in_section && !in_block && $0 == "```" lang { in_block = 1; count++; next }
        in_section && in_block && /^```/ { in_block = 0; if (count == n) exit; next }
        in_section && in_block && count == n { print }
    ' "$README"
}

readme_role() {
    readme_block "## Security" sql | sed -n "/^CREATE ROLE $1[ ;]/,/^\$/p"
}

recipe_dir() {
    local d=$WORK/$1
    as_pg mkdir -p "$d" && as_pg chmod 700 "$d" && printf '%s' "$d"
}

daemon_start() {
    local dir=$1 name=$2
    shift 2
    # the shell writes its own pid, then becomes CMD: the pid is CMD's
    as_pg sh -c 'cd "$1" && echo $$ >"$2.pid" && shift 2 && exec "$@"' sh "$dir" "$name" "$@" \
        </dev/null >>"$dir/$name.log" 2>&1 &
    local _
    for _ in $(seq 1 50); do [ -s "$dir/$name.pid" ] && return 0; sleep 0.1; done
    return 1
}

daemon_stop() {
    local pid _
    pid=$(cat "$1/$2.pid" 2>/dev/null) || return 0
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

wait_port() {
    local deadline=$((SECONDS + ${2:-20}))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

sign() {
    printf '%s' "$1" | openssl dgst -sha256 -hmac "$2" -r | cut -d' ' -f1
}

# moneroo.webhook_secret is restart-only (test/run.sh restores postgresql.conf
# after each script).  rate_limit 0, at the server and the mock: a webhook
# that finds the rate limiter closed leaves the verify to the worker, and the
# tests want it now; a long verify_min_interval: the worker itself must not
# settle payouts before their webhooks do.
webhook_stack() {
    WEBHOOK_SECRET="whsec_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    cluster_conf_append "" "# ---- $1 ----" \
        "moneroo.webhook_secret = '$WEBHOOK_SECRET'" "moneroo.rate_limit = 0" \
        "moneroo.verify_min_interval = '10min'" || bail "cannot append to postgresql.conf"
    quiet_stack
    cluster_restart >&2 || bail "the server does not restart with moneroo.webhook_secret set"
    wait_worker 20 >/dev/null || bail "the worker does not start"
}

# quiet_stack: before a restart, leave this script's journal and rate limit to
# it.  The sent payouts of earlier scripts would all be verified at once by the
# restarted worker: past the mock's 120 a minute that is a 429 and a 60 s
# pause of every request, and in any case requests in this script's journal.
quiet_stack() {
    mock_ctl POST /__mock/config '{"rate_limit": 0}' >/dev/null || bail "cannot configure the mock"
    cluster_psql -q -c "SET session_replication_role = replica" \
        -c "UPDATE payouts SET next_attempt_at = now() + interval '1 hour' WHERE status = 'sent'" >&2 ||
        bail "cannot postpone earlier scripts' verifications"
}

mock_sent_twice() {
    mock_ctl GET /__mock/payouts | python3 -c '
import json, sys
refs = [p["reference"] for p in json.load(sys.stdin)]
print(len(refs) - len(set(refs)))'
}
