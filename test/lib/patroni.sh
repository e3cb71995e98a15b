# shellcheck shell=bash
# test/lib/patroni.sh: one etcd and two PostgreSQL members under Patroni
# (Debian 12's patroni 3.0.2 and etcd-server 3.4.23), on loopback ports, in
# REPL_DIR (test/lib/replication.sh), from README.md's tested configuration
# (test/lib/patroni_config.py), for test/ha/97_patroni_failover.sh and
# test/campaign.sh ha.  Needs recipes.sh (readme_block, daemon_start) and
# replication.sh.
#
#   patroni_up MODE [--set dcs.parameters.K=V ...]
#                          MODE sync: README's file as it is; async: with README's
#                          asynchronous variant merged in.  Starts a mock (M), etcd, then
#                          members pg1 and pg2 (pg2 after pg1 leads), makes $PGDATABASE
#                          with moneroo on the leader; waits until pg2 streams and the
#                          worker runs.  The members' psql: `on pgN sql ...` (TCP, password)
#   patroni_down           stops both Patronis (and their PostgreSQL), then etcd
#   patroni_role NAME      primary, replica or down (Patroni's REST API)
#   patroni_leader         the member whose REST API says primary, or nothing
#   patroni_wait_leader NOT [SECONDS]   until a member other than NOT is primary; prints it
#   patroni_wait_streaming LEADER [SYNC_STATE] [SECONDS]  until the other member streams
#   patroni_other NAME     the other member's name
#   patroni_kill_postmaster NAME   kill -9 of NAME's postmaster; prints its pid

PATRONI_SECTION="### High availability with Patroni (1.2)"

patroni_other() { if [ "$1" = pg1 ]; then echo pg2; else echo pg1; fi; }

patroni_role() {
    local port code
    port=$(cat "$REPL_DIR/$1/rest.port" 2>/dev/null) || { echo down; return; }
    code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/primary")
    case $code in
        200) echo primary ;;
        503) if [ "$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/replica")" = 200 ]; then
                 echo replica
             else
                 echo starting
             fi ;;
        *) echo down ;;
    esac
}

patroni_leader() {
    local m
    for m in pg1 pg2; do [ "$(patroni_role "$m")" = primary ] && { echo "$m"; return 0; }; done
    return 1
}

patroni_wait_leader() {
    local deadline=$((SECONDS + ${2:-60})) m
    while :; do
        m=$(patroni_leader) && [ "$m" != "$1" ] &&
            [ "$(on "$m" cluster_psql -At -d postgres -c "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ] &&
            { echo "$m"; return 0; }
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# A synchronous standby counts once Patroni's /sync key names it too (its
# REST API's /sync answers 200): PostgreSQL calls it sync a moment before,
# and until then Patroni would not fail over to it, but restart the
# crashed primary in place.
patroni_is_sync_standby() {
    local port
    port=$(cat "$REPL_DIR/$1/rest.port" 2>/dev/null) || return 1
    [ "$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/sync")" = 200 ]
}

patroni_wait_streaming() {
    local deadline=$((SECONDS + ${3:-120})) other
    other=$(patroni_other "$1")
    while :; do
        [ "$(on "$1" cluster_psql -At -d postgres -c "SELECT count(*) FROM pg_stat_replication WHERE application_name = '$other'
                             AND state = 'streaming' AND sync_state LIKE '${2:-%}'" 2>/dev/null)" = 1 ] &&
            { [ "${2:-}" != sync ] || patroni_is_sync_standby "$other"; } && return 0
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

patroni_kill_postmaster() {
    local pid
    pid=$(head -n 1 "$REPL_DIR/$1/data/postmaster.pid" 2>/dev/null)
    case $pid in '' | *[!0-9]*) return 1 ;; esac
    kill -KILL "$pid" && echo "$pid"
}

# patroni_member NAME MODE SETS...: NAME's configuration and folder.
patroni_member() {
    local name=$1 mode=$2 base overlay=()
    shift 2
    repl_node_dir "$name" || return 1
    repl_port >"$REPL_DIR/$name/port" && repl_port >"$REPL_DIR/$name/rest.port" || return 1
    echo M >"$REPL_DIR/$name/mock"
    echo 127.0.0.1 >"$REPL_DIR/$name/host"
    base=$REPL_DIR/readme-patroni.yml
    readme_block "$PATRONI_SECTION" yaml 1 >"$base"
    if [ "$mode" = async ]; then
        readme_block "$PATRONI_SECTION" yaml 2 >"$REPL_DIR/readme-patroni-async.yml"
        overlay=("$REPL_DIR/readme-patroni-async.yml")
    fi
    "$(cluster_python)" "$REPL_LIB/patroni_config.py" "$base" "${overlay[@]}" --name "$name" \
        --dir "$REPL_DIR" --rest-port "$(cat "$REPL_DIR/$name/rest.port")" \
        --pg-port "$(cat "$REPL_DIR/$name/port")" --etcd-port "$(cat "$REPL_DIR/etcd/port")" \
        --api-url "$(repl_mock_url M)" --bin-dir "$PGBIN" "$@" >"$REPL_DIR/$name.yml" || return 1
    chown "${PG_OS_USER:-postgres}:" "$REPL_DIR/$name.yml"
    # psql's password for `on NAME` (only there: Patroni's own tools must not inherit it)
    "$(cluster_python)" -c '
import sys, yaml
print(yaml.safe_load(open(sys.argv[1]))["postgresql"]["authentication"]["superuser"]["password"])' \
        "$REPL_DIR/$name.yml" >"$REPL_DIR/$name/password" && chmod 600 "$REPL_DIR/$name/password"
}

patroni_up() {
    local mode=$1 m
    shift
    repl_mock M || { echo "patroni_up: the mock does not start" >&2; return 1; }
    # the key, as README says: owned by the server's OS user, mode 600
    printf '%s\n' "$MONEROO_TEST_KEY" >"$REPL_DIR/secret_key"
    chown "${PG_OS_USER:-postgres}:" "$REPL_DIR/secret_key" && chmod 600 "$REPL_DIR/secret_key"
    repl_node_dir etcd && repl_port >"$REPL_DIR/etcd/port" && repl_port >"$REPL_DIR/etcd/peer.port" || return 1
    local ep pp
    ep=$(cat "$REPL_DIR/etcd/port"); pp=$(cat "$REPL_DIR/etcd/peer.port")
    daemon_start "$REPL_DIR/etcd" etcd etcd --name etcd1 --data-dir "$REPL_DIR/etcd/data" \
        --listen-client-urls "http://127.0.0.1:$ep" --advertise-client-urls "http://127.0.0.1:$ep" \
        --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
        --initial-cluster "etcd1=http://127.0.0.1:$pp" --initial-cluster-state new ||
        { echo "patroni_up: etcd does not start" >&2; return 1; }
    wait_port "$ep" 30 || { echo "patroni_up: etcd does not listen on $ep" >&2; tail -n 20 "$REPL_DIR/etcd/etcd.log" >&2; return 1; }
    for m in pg1 pg2; do patroni_member "$m" "$mode" "$@" || return 1; done
    daemon_start "$REPL_DIR" patroni-pg1 patroni "$REPL_DIR/pg1.yml" || return 1
    patroni_wait_leader none 90 >/dev/null ||
        { echo "patroni_up: pg1 does not lead" >&2; tail -n 30 "$REPL_DIR/patroni-pg1.log" >&2; return 1; }
    daemon_start "$REPL_DIR" patroni-pg2 patroni "$REPL_DIR/pg2.yml" || return 1
    local leader
    leader=$(patroni_leader) || return 1
    on "$leader" cluster_psql -d postgres -c "CREATE DATABASE $PGDATABASE" &&
        on "$leader" cluster_psql -c "CREATE EXTENSION moneroo" || return 1
    patroni_wait_streaming "$leader" "$([ "$mode" = sync ] && echo sync)" 120 ||
        { echo "patroni_up: pg2 does not stream from $leader" >&2; tail -n 30 "$REPL_DIR/patroni-pg2.log" >&2; return 1; }
    on "$leader" wait_worker 60 >/dev/null ||
        { echo "patroni_up: no worker on $leader" >&2; tail -n 30 "$REPL_DIR/$leader/server.log" >&2; return 1; }
}

patroni_down() {
    [ -n "${REPL_DIR:-}" ] && [ -d "$REPL_DIR" ] || return 0
    local m
    for m in pg1 pg2; do [ -f "$REPL_DIR/patroni-$m.pid" ] && daemon_stop "$REPL_DIR" "patroni-$m"; done
    [ -f "$REPL_DIR/etcd/etcd.pid" ] && daemon_stop "$REPL_DIR/etcd" etcd
    return 0
}
