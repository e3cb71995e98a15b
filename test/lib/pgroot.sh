#!/usr/bin/env bash
# test/lib/pgroot.sh: a throwaway Debian root holding another PostgreSQL
# major, to build and test moneroo against it on this Debian 12 machine.
#
#   bash test/lib/pgroot.sh build N       build the root for major N (or reuse
#                                         it) and print its directory
#   bash test/lib/pgroot.sh run N CMD...  run CMD as root inside it
#   bash test/lib/pgroot.sh test N ARG... copy this checkout into the root and
#                                         run test/run.sh ARG... there against N
#                                         (what `test/run.sh --pg N` hands off to)
#
# Sourced, it defines the same as functions: pgroot_build N, pgroot_run N
# CMD..., pgroot_test N ARG....
#
# Majors and releases: 17 from trixie, 18 from sid, 15 from bookworm (the
# host's own; a root of it only to compare).  The root holds test/lib/build.sh's
# MONEROO_PACKAGES for that major (PG_MAJOR=N) plus what a minimal root lacks
# and the suite uses.  It lives in /var/tmp/moneroo-roots/pgN-RELEASE-HASH,
# HASH covering the release, the mirror and the package list: an unchanged
# list reuses the root, a changed one builds a new root (and removes the old
# ones of that major).  A root is built in a temporary directory and renamed
# only once mmdebstrap succeeded, so a half-built root is never used.
#
# Entering a root: each command runs in its own mount and PID namespaces
# (unshare), where /proc, /sys and /dev (bound from the host, for /dev/shm
# and /dev/null) are mounted.  The mounts are private to the
# namespace and vanish with it, however the command ends (even killed), and
# every process started inside (a server, the mock) ends with it: nothing
# leaks into the host's mount table or process list.  Loopback is the host's.
# The root's /tmp is a plain folder: what KEEP=1 keeps of a run is there.
#
# As root; needs mmdebstrap and the Debian mirror this machine's apt uses.
# shellcheck disable=SC2317,SC2016  # single-quoted scripts expand inside the root
set -euo pipefail

PGROOT_DIR=${PGROOT_DIR:-/var/tmp/moneroo-roots}
PGROOT_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# What the suite runs that the host has and a minimal root does not: ps
# (test/lib/replication.sh), ss and ip, a locale-less UTC time zone database.
PGROOT_EXTRA_PACKAGES=(procps iproute2 tzdata)

# pgroot_release N: the Debian release whose PostgreSQL is major N.
pgroot_release() {
    case $1 in
        15) echo bookworm ;;
        17) echo trixie ;;
        18) echo sid ;;
        *) echo "pgroot: no Debian release known for PostgreSQL $1 (15, 17 or 18)" >&2; return 1 ;;
    esac
}

# pgroot_mirror: the first Debian URI this machine's apt uses.
pgroot_mirror() {
    local uri
    uri=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $3 ~ /\/debian\/?$/ { print $3; exit }' /etc/apt/sources.list 2>/dev/null || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

# pgroot_packages N: the packages of major N's root, one a line, sorted.
pgroot_packages() {
    (
        # shellcheck disable=SC2034  # read by build.sh
        PG_MAJOR=$1
        # shellcheck source=test/lib/build.sh
        . "$PGROOT_REPO/test/lib/build.sh"
        printf '%s\n' "${MONEROO_PACKAGES[@]}" "${PGROOT_EXTRA_PACKAGES[@]}"
    ) | sort -u
}

# pgroot_path N: the root's directory for the current package list (which
# may not exist yet).
pgroot_path() {
    local release hash
    release=$(pgroot_release "$1") || return 1
    hash=$({ echo "$release"; pgroot_mirror; pgroot_packages "$1"; } | sha256sum | cut -c1-12)
    echo "$PGROOT_DIR/pg$1-$release-$hash"
}

# pgroot_mounted DIR: true when something is mounted at or under DIR (then it
# must not be removed: rm would go through a bound /dev), or when a process
# runs chrooted in it.  The second test is the one that sees a run of another
# checkout: its mounts live in its own mount namespace, where mountinfo shows
# them relative to the chroot (/proc, /dev), never under DIR; but its
# processes' /proc/PID/root is DIR.  (Checkouts with different package lists
# build different roots of one major and each removes the others' when done.)
pgroot_mounted() {
    local r
    awk -v d="$1" '$2 == d || index($2, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo /proc/*/mountinfo 2>/dev/null &&
        return 0
    for r in /proc/[0-9]*/root; do
        case $(readlink "$r" 2>/dev/null) in "$1" | "$1"/*) return 0 ;; esac
    done
    return 1
}

# pgroot_build N: build major N's root unless it exists; print its directory.
pgroot_build() {
    local major=$1 release root mirror tmp old rc=0
    release=$(pgroot_release "$major") || return 1
    root=$(pgroot_path "$major")
    mkdir -p "$PGROOT_DIR"
    # One build per major at a time; a second caller waits and then reuses it.
    exec {lockfd}>"$PGROOT_DIR/pg$major.lock"
    flock "$lockfd"
    if [ ! -d "$root" ]; then
        mirror=$(pgroot_mirror)
        tmp=$(mktemp -d "$PGROOT_DIR/.building-pg$major-XXXXXX")
        echo "pgroot: building $root from $release ($mirror); log: $tmp.log" >&2
        # Check-Valid-Until/Check-Date: sid's Release file may be past its
        # Valid-Until on a snapshot mirror.
        timeout 1800 mmdebstrap --variant=apt --mode=root --format=directory \
            --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Check-Date "false"' \
            --include="$(pgroot_packages "$major" | paste -sd, -)" \
            --customize-hook='printf "127.0.0.1 localhost\n::1 localhost ip6-localhost\n" > "$1/etc/hosts"' \
            "$release" "$tmp" "deb $mirror $release main" >"$tmp.log" 2>&1 || rc=$?
        if [ "$rc" != 0 ]; then
            tail -n 30 "$tmp.log" >&2
            echo "pgroot: mmdebstrap failed ($rc) for PostgreSQL $major; the whole log: $tmp.log" >&2
            pgroot_mounted "$tmp" || rm -rf --one-file-system "$tmp"
            flock -u "$lockfd"
            return 1
        fi
        mv "$tmp" "$root"
        rm -f "$tmp.log"
        echo "pgroot: built $root" >&2
    fi
    # Roots of this major for an older package list.
    for old in "$PGROOT_DIR/pg$major-"*; do
        if [ ! -d "$old" ] || [ "$old" = "$root" ]; then continue; fi
        if pgroot_mounted "$old"; then echo "pgroot: $old is in use, kept" >&2; continue; fi
        rm -rf --one-file-system "$old"
    done
    flock -u "$lockfd"
    echo "$root"
}

# pgroot_run N CMD...: run CMD as root inside major N's root (built first if
# needed), with /proc, /sys and /dev, in private namespaces.
pgroot_run() {
    local major=$1 root
    shift
    root=$(pgroot_build "$major") || return 1
    # The mounts are made inside the new mount namespace (private propagation,
    # unshare's default), so they are gone when it ends: no trap to forget.
    unshare --mount --pid --fork --kill-child -- /bin/sh -ec '
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount -t sysfs sysfs "$root/sys"
        mount --rbind /dev "$root/dev"
        exec chroot "$root" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
    ' pgroot "$root" "$@"
}

# pgroot_copy ROOT DIR: this checkout as it is (uncommitted changes
# included), without build outputs and kept-stack state of the host's
# PostgreSQL 15, into DIR (made afresh) inside ROOT.
pgroot_copy() {
    rm -rf --one-file-system "${1:?}$2"
    mkdir -p "$1$2"
    tar -C "$PGROOT_REPO" --exclude=.git --exclude='*.o' --exclude='*.bc' --exclude='*.so' \
        --exclude=.test-stack.env -cf - . | tar -C "$1$2" -xf -
}

# pgroot_test N ARG...: copy this checkout to /build/moneroo in major N's
# root and run its test/run.sh ARG... there with PG_MAJOR=N.  The root has
# every package, so run.sh's package step finds nothing to install.
pgroot_test() {
    local major=$1 root a
    shift
    # Everything started in the root ends with the run (its PID namespace).
    for a in "$@"; do
        case $a in
            --keep|--up|--stop)
                echo "test/run.sh: $a keeps a stack on the host's PostgreSQL; with --pg the stack ends with the run" >&2
                return 2 ;;
        esac
    done
    root=$(pgroot_build "$major") || return 1
    pgroot_copy "$root" /build/moneroo || return 1
    echo "pgroot: running test/run.sh $* on PostgreSQL $major in $root" >&2
    pgroot_run "$major" env PG_MAJOR="$major" ${VERBOSE:+VERBOSE="$VERBOSE"} \
        ${TEST_ONLY:+TEST_ONLY="$TEST_ONLY"} ${KEEP:+KEEP="$KEEP"} \
        bash /build/moneroo/test/run.sh "$@"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    cmd=${1:-}; major=${2:-}
    if [ -z "$cmd" ] || [ -z "$major" ]; then
        awk 'NR > 1 && /^#/ && !/^# shellcheck/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
        exit 2
    fi
    shift 2
    case $cmd in
        build) pgroot_build "$major" ;;
        run) [ $# -gt 0 ] || { echo "pgroot: run $major needs a command" >&2; exit 2; }
             pgroot_run "$major" "$@" ;;
        test) pgroot_test "$major" "$@" ;;
        *) echo "pgroot: unknown command '$cmd' (build, run or test)" >&2; exit 2 ;;
    esac
fi
