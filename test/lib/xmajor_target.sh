#!/usr/bin/env bash
# test/lib/xmajor_target.sh DIR SRC_PORT MOCK_URL: the new major's side of
# test/packaging/66_cross_major_restore.sh, run inside that major's Debian
# root (test/lib/pgroot.sh run N ...) from a copy of the checkout, PG_MAJOR=N.
#
# Installs the checkout's build for N, makes a cluster of N (moneroo
# preloaded, its worker serving moneroo_test, its API the host's mock at
# MOCK_URL: one mock, one journal for both majors), then, as a user
# upgrading does:
#   1. N's pg_dumpall reads the old server (127.0.0.1:SRC_PORT, over loopback)
#      into DIR/all.sql; writes DIR/port and DIR/dumped (or DIR/failed);
#   2. waits for DIR/go (the caller has stopped the old server), restores
#      all.sql with moneroo.restoring on, starts the worker (the server is
#      started only after the restore), writes DIR/restored;
#   3. waits for DIR/done, then stops (the server also ends with the root's
#      PID namespace).
# DIR is a folder of the root's /tmp that the caller reads from the host.
set -uo pipefail
DIR=$1 SRC_PORT=$2 MOCK=$3
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PG_MAJOR WORK=$DIR/work
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
SUDO=()
# shellcheck source=test/lib/cluster.sh
. "$REPO/test/lib/cluster.sh"
# shellcheck source=test/lib/build.sh
. "$REPO/test/lib/build.sh"

failed() { echo "$*" >"$DIR/failed"; echo "xmajor_target: $*" >&2; exit 1; }
wait_file() { local i; for ((i = 0; i < 1200; i++)); do [ -e "$DIR/$1" ] && return 0; sleep 0.5; done; return 1; }

{ cd "$REPO" && build_extension >"$DIR/build.log" 2>&1; } || failed "the build for PostgreSQL $PG_MAJOR failed"
mkdir -p "$WORK" && chmod 755 "$DIR" && chown "$PG_OS_USER:" "$WORK"
PGPORT=$(free_port "$SRC_PORT") || failed "no free port"
MOCK_PORT=${MOCK##*:}   # cluster_init writes moneroo.api_url from it: the host's mock
cluster_init || failed "initdb failed"
cluster_env
# 1. the new major's pg_dumpall reads the old server
as_pg "$PGBIN/pg_dumpall" -h 127.0.0.1 -p "$SRC_PORT" -U postgres -f "$WORK/all.sql" \
    2>"$DIR/dump.err" || failed "pg_dumpall of 127.0.0.1:$SRC_PORT failed: $(head -c 300 "$DIR/dump.err")"
cp "$WORK/all.sql" "$DIR/all.sql"
echo "$PGPORT" >"$DIR/port"
touch "$DIR/dumped"
# 2. the restore, the old server stopped
wait_file go || failed "no go"
# the worker starts with the server: keep it from a database half restored
cluster_conf_append "moneroo.database = 'postgres'"
cluster_start || failed "the server does not start"
PGOPTIONS='-c moneroo.restoring=on' as_pg "$PGBIN/psql" -X -q -h "$PGHOST" -p "$PGPORT" -U postgres \
    -d postgres -v ON_ERROR_STOP=0 -f "$WORK/all.sql" >"$DIR/restore.log" 2>&1
# the old cluster is stopped for good: the operator's word that the restored
# database is the one that pays now (a restore pays nothing until adopted)
as_pg "$PGBIN/psql" -X -q -At -h "$PGHOST" -p "$PGPORT" -U postgres -d "$PGDATABASE" \
    -c "SELECT moneroo_adopt_database()" >"$DIR/adopt.log" 2>&1 ||
    failed "moneroo_adopt_database() failed: $(head -c 300 "$DIR/adopt.log")"
cluster_conf_append "moneroo.database = '$PGDATABASE'"
cluster_restart || failed "the server does not restart after the restore"
touch "$DIR/restored"
# 3. until the caller has checked
wait_file "done"
cluster_stop
