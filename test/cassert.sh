#!/usr/bin/env bash
# test/cassert.sh: the suite against an assert-enabled PostgreSQL (issue 25).
# By hand, not in .ci/run: the server's build takes ~15 minutes once, then the suite.
#
#   bash test/cassert.sh [--build-only] [test/run.sh options...]
#
# Debian's servers are built without assertions.  This builds PostgreSQL 15
# from Debian 12's source package (apt's deb-src, through a private apt
# configuration: the machine's own sources are left alone) with
# --enable-cassert --enable-debug, installs it under $CASSERT_DIR/pg15 (kept:
# the next run reuses it), adds what the suite loads into the server beside
# moneroo (pgTAP's SQL files, contrib's pgcrypto), and runs test/run.sh
# against it (PG_CONFIG=$CASSERT_DIR/pg15/bin/pg_config); every other argument
# goes to test/run.sh, e.g. --only regress isolation pgtap 10_crash (without
# any: the whole suite less the three tests that run Debian's own server).
#
# Why 15: it is the source package this machine's mirror serves (Debian 13's
# postgresql-17 source is not there).  Why the upstream tarball alone, without
# Debian's patches: they change paths and packaging, not the code the Asserts
# check, and a plain --prefix layout is what PG_CONFIG reads.
#
# Knobs: CASSERT_DIR (/var/tmp/moneroo-cassert), JOBS (2).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CASSERT_DIR=${CASSERT_DIR:-/var/tmp/moneroo-cassert}
JOBS=${JOBS:-2}
PG_MAJOR=15
PREFIX=$CASSERT_DIR/pg$PG_MAJOR
BUILD_ONLY=0
if [ "${1:-}" = --build-only ]; then BUILD_ONLY=1; shift; fi

say() { printf '%s\n' "$*"; }
die() { printf 'test/cassert.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run it as root (it builds a server and runs test/run.sh)"

# ---------------------------------------------------------------- the source
# A private apt configuration with deb-src for bookworm only: no change to
# /etc/apt, no lock taken on the machine's package lists.
fetch_source() {
    local apt=$CASSERT_DIR/apt
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$CASSERT_DIR/src"
    echo 'deb-src http://deb.debian.org/debian bookworm main' >"$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
                -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
                -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    apt-get -q "${opts[@]}" update >/dev/null || die "apt-get update (deb-src bookworm) failed"
    (cd "$CASSERT_DIR/src" && apt-get -q "${opts[@]}" source --download-only "postgresql-$PG_MAJOR") \
        || die "apt-get source postgresql-$PG_MAJOR failed"
}

# ---------------------------------------------------------------- the server
orig_tarball() {
    local t=("$CASSERT_DIR"/src/postgresql-"$PG_MAJOR"_*.orig.tar.bz2)
    [ -e "${t[-1]}" ] && echo "${t[-1]}"
}

build_server() {
    local tarball tree
    tarball=$(orig_tarball) || { fetch_source; tarball=$(orig_tarball); } \
        || die "no postgresql-$PG_MAJOR source in $CASSERT_DIR/src"
    rm -rf "$CASSERT_DIR/build"
    mkdir -p "$CASSERT_DIR/build"
    tar -xjf "$tarball" -C "$CASSERT_DIR/build"
    tree=$(ls -d "$CASSERT_DIR"/build/postgresql-*/)
    say "building $(basename "$tree") with --enable-cassert into $PREFIX (log: $CASSERT_DIR/build.log)"
    (
        cd "$tree"
        # openssl: contrib's pgcrypto (test/security/45_webhook_signed.sh) needs it
        ./configure --prefix="$PREFIX" --enable-cassert --enable-debug \
            --with-openssl --without-llvm --without-icu
        make -j"$JOBS"
        make -C contrib/pgcrypto -j"$JOBS"
        rm -rf "$PREFIX"
        make install
        make -C contrib/pgcrypto install
    ) >"$CASSERT_DIR/build.log" 2>&1 || die "the server's build failed: tail $CASSERT_DIR/build.log"
    # pgTAP is SQL only: Debian's postgresql-15-pgtap files serve any 15
    cp /usr/share/postgresql/"$PG_MAJOR"/extension/pgtap* "$("$PREFIX/bin/pg_config" --sharedir)/extension/" \
        || die "pgTAP's files not found (apt-get install postgresql-$PG_MAJOR-pgtap)"
    # the postgres user runs the tests' servers; it writes nothing here
    chmod -R a+rX "$PREFIX"
    touch "$PREFIX/.complete"
}

if [ -f "$PREFIX/.complete" ] && "$PREFIX/bin/pg_config" --configure | grep -q enable-cassert; then
    say "reusing $PREFIX ($("$PREFIX/bin/postgres" --version))"
else
    build_server
fi
[ "$BUILD_ONLY" = 0 ] || exit 0

# ---------------------------------------------------------------- the suite
# make install of the extension goes to $PREFIX: the machine's PostgreSQL 15
# is not touched, so no shared lock.  KEEP=1 keeps the servers' logs: a failed
# Assert aborts the backend (TRAP:, then the postmaster's "terminated by signal
# 6"), the allocator's checks (MEMORY_CONTEXT_CHECKING) and the resource
# owners' leak checks only warn, so all are looked for in every server log
# of the run (*.log under the work directory), whatever the tests said.
#
# Without arguments: every test but three, named here rather than skipped in
# silence, each of which runs Debian's server rather than this one:
# 92_recipe_pg_cron needs pg_cron, which Debian builds for its own server
# only; 95_package installs the Debian package into the machine's PostgreSQL
# 15; 97_patroni_failover runs README's Patroni configuration, whose bin_dir
# is Debian's.
if [ $# -eq 0 ]; then
    say "every test but 92_recipe_pg_cron, 95_package and 97_patroni_failover (Debian's server only)"
    set -- --only regress isolation pgtap build faults security campaign \
        60_upgrade 65_dump_restore 70_readme_coverage 90_demo 91_recipe_webhook_receiver 93_recipe_pgbouncer \
        94_several_databases 96_streaming_replication
fi
out=$CASSERT_DIR/run.out
rc=0
KEEP=1 PG_CONFIG="$PREFIX/bin/pg_config" bash "$REPO/test/run.sh" "$@" 2>&1 | tee "$out" || rc=$?
work=$(sed -n 's/^KEEP=1: work directory kept: //p' "$out" | tail -1)
if [ -z "$work" ] || [ ! -d "$work" ]; then die "test/run.sh kept no work directory (see $out)"; fi
say ""
say "==== assertions  (logs under $work)"
if grep -rIEn --include='*.log' \
        'TRAP: |terminated by signal 6|problem in (alloc set|generation|slab)|reference leak|refcount leak' "$work"; then
    say "FAILED: an Assert or a memory-context check fired (above); the logs stay in $work"
    exit 1
fi
say "no Assert fired, no memory-context warning in the logs of the run"
rm -rf "$work"
exit "$rc"
