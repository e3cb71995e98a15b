#!/usr/bin/env bash
# test/package.sh [--pg N] [OUTDIR]: build the Debian package postgresql-N-moneroo
# (N: PG_MAJOR, 15 by default: this Debian 12 host's).
#
#   bash test/package.sh              # into a new folder under /tmp, printed at the end
#   bash test/package.sh ~/debs       # into ~/debs (made if need be)
#   bash test/package.sh --pg 17      # postgresql-17-moneroo, built in the trixie root
#   make deb [DEB_OUTDIR=~/debs]      # the same as the first two
#
# As root (or a user with sudo) on Debian 12: installs what the build needs
# when something is missing (test/lib/build.sh's MONEROO_DEB_PACKAGES, checked
# against debian/control's Build-Depends), copies the checkout's files (those
# git tracks or would track: no objects, no .test-stack.env) into a temporary
# folder, builds there with dpkg-buildpackage (debian/rules: pg_buildext, dh
# --with pgxs_loop), and copies postgresql-N-moneroo_<version>_<arch>.deb
# into OUTDIR.  The checkout is only read: every build artefact (debian/.debhelper,
# debian/postgresql-N-moneroo/, objects) stays in the temporary folder,
# which is removed afterwards (KEEP=1 keeps it).  The last line printed is the
# path of the .deb.
#
# One debian/ for every major: debian/pgversions lists 15 to 18 and
# pg_buildext builds those this Debian release supports (bookworm 15, trixie
# 17, sid 18); the committed debian/control is bookworm's, and the build copy's
# is made again from debian/control.in with `pg_buildext updatecontrol` for
# the release it builds on.  When major N has no server development files
# here (17 and 18 on Debian 12), the build runs in N's Debian root
# (test/lib/pgroot.sh) and the .deb is copied out of it.  Installing and using
# it: test/packaging/95_package.sh, which the suite runs on each major
# (bash test/run.sh --pg N --only 95_package).
#
# The version is default_version in moneroo.control: the build stops when
# META.json or debian/changelog's newest entry says another one (the
# Makefile's check-version), and this script when the .deb does.  The package
# is native (debian/source/format "3.0 (native)"): debian/ lives in the
# upstream repository and the package is built from a checkout, with no
# upstream tarball to keep beside it, so the Debian version is the upstream
# version, 1.2, with no "-1" revision.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive

die() { printf 'test/package.sh: %s\n' "$*" >&2; exit 1; }

PG_MAJOR=${PG_MAJOR:-15}
if [ "${1:-}" = --pg ]; then
    [[ ${2:-} =~ ^[0-9]+$ ]] || die "--pg needs a major (15, 17 or 18)"
    PG_MAJOR=$2; shift 2
fi
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
PACKAGE=postgresql-$PG_MAJOR-moneroo

if [ "$(id -u)" = 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    die "must run as root or as a user with sudo (it installs the build dependencies)"
fi

OUTDIR=${1:-}
if [ -z "$OUTDIR" ]; then
    OUTDIR=$(mktemp -d /tmp/moneroo-deb.XXXXXX) || die "cannot make an output folder"
    # apt's download user (_apt) reads the .deb in `apt-get install ./file.deb`
    chmod 755 "$OUTDIR"
fi
mkdir -p "$OUTDIR" || die "cannot make $OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)

# A major this Debian release does not ship (postgresql-common's
# supported-versions; before postgresql-common is installed, the host's 15):
# build in that major's root, copy the .deb out.
if [ -x /usr/share/postgresql-common/supported-versions ]; then
    here=$(/usr/share/postgresql-common/supported-versions)
else
    here=15
fi
if ! grep -qx "$PG_MAJOR" <<<"$here"; then
    # shellcheck source=test/lib/pgroot.sh
    . "$REPO/test/lib/pgroot.sh"
    root=$(pgroot_build "$PG_MAJOR") || die "no Debian root for PostgreSQL $PG_MAJOR"
    pgroot_copy "$root" /build/moneroo-package || die "cannot copy the checkout into $root"
    rm -rf "$root/build/debs"
    pgroot_run "$PG_MAJOR" env PG_MAJOR="$PG_MAJOR" ${KEEP:+KEEP="$KEEP"} \
        bash /build/moneroo-package/test/package.sh /build/debs | tee "$OUTDIR/build.log" ||
        die "the build in $root failed (see above)"
    deb=$(tail -n 1 "$OUTDIR/build.log")
    rm -f "$OUTDIR/build.log"
    cp "$root$deb" "$OUTDIR/" || die "cannot copy $root$deb into $OUTDIR"
    echo "$OUTDIR/$(basename "$deb")"
    exit 0
fi

# shellcheck source=test/lib/build.sh
. "$REPO/test/lib/build.sh"
install_packages "${MONEROO_DEB_PACKAGES[@]}" || die "could not install the packages the build needs"

BUILD=$(mktemp -d /tmp/moneroo-pkg.XXXXXX) || die "cannot make a build folder"
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "KEEP=1: build folder kept: $BUILD" >&2
    else
        rm -rf "$BUILD"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM   # (the EXIT trap then runs: bash runs none for a signal it does not trap)
trap 'exit 130' INT

# The files of the checkout as they are now (changes not yet committed
# included), without what .gitignore names: the objects and the library of
# a `make` in the checkout must not end up in the package.  Without git (an
# unpacked archive), everything but the version control and its ignores.
SRC=$BUILD/moneroo
mkdir "$SRC" || die "cannot make $SRC"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard --deduplicate |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -) | tar -C "$SRC" -xf - || die "cannot copy the checkout into $SRC"
else
    tar -C "$REPO" --exclude-vcs --exclude-vcs-ignores -cf - . | tar -C "$SRC" -xf - ||
        die "cannot copy $REPO into $SRC"
fi
cd "$SRC" || die "cannot enter $SRC"
# debian/control for this release's PostgreSQL (pg_buildext checkcontrol
# stops the build otherwise; see debian/rules)
pg_buildext updatecontrol >/dev/null || die "pg_buildext updatecontrol failed"
grep -qx "Package: $PACKAGE" debian/control ||
    die "this Debian release does not build $PACKAGE (debian/pgversions: $(paste -sd' ' debian/pgversions);" \
        "supported here: $(/usr/share/postgresql-common/supported-versions | paste -sd' ')) "

# Before the build, so that a disagreement is the first thing said.
make -s check-version PG_CONFIG="$PG_CONFIG" || die "the versions disagree (see above)"
dpkg-checkbuilddeps || die "debian/control's Build-Depends are not all installed:" \
    "MONEROO_DEB_PACKAGES in test/lib/build.sh misses some"
VERSION=$(dpkg-parsechangelog -S Version) || die "cannot read debian/changelog"
ARCH=$(dpkg --print-architecture) || die "cannot tell the architecture"
DEB=${PACKAGE}_${VERSION}_${ARCH}.deb

echo "building $DEB in $SRC"
# -b: binary packages only (no source package: this is built from a checkout);
# unsigned; the .debs land in the parent folder, $BUILD.
dpkg-buildpackage -b -us -uc -Jauto || die "dpkg-buildpackage failed (see above)"

[ -f "$BUILD/$DEB" ] || die "dpkg-buildpackage made no $DEB (made: $(cd "$BUILD" && echo *.deb))"
got=$(dpkg-deb -f "$BUILD/$DEB" Version)
[ "$got" = "$VERSION" ] || die "$DEB says it is version '$got', not '$VERSION'"
cp "$BUILD/$DEB" "$OUTDIR/" || die "cannot copy $DEB into $OUTDIR"
echo "$OUTDIR/$DEB"
