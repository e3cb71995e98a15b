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
# goes to test/run.sh, e.g. --only regress isolation pgtap 10_crash.
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
build_server() {
    local tarball tree
    tarball=$(ls "$CASSERT_DIR"/src/postgresql-"$PG_MAJOR"_*.orig.tar.bz2 2>/dev/null | tail -1)
    [ -n "$tarball" ] || { fetch_source; tarball=$(ls "$CASSERT_DIR"/src/postgresql-"$PG_MAJOR"_*.orig.tar.bz2 | tail -1); }
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
    cp /usr/share/postgresql/"$PG_MAJOR"/extension/pgtap* "$PREFIX/share/extension/" \
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
# is not touched, so no shared lock.  Packages are those of the host run.
exec env PG_CONFIG="$PREFIX/bin/pg_config" bash "$REPO/test/run.sh" "$@"
