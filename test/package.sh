#!/usr/bin/env bash
# test/package.sh [OUTDIR]: build the Debian package postgresql-15-moneroo.
#
#   bash test/package.sh              # into a new folder under /tmp, printed at the end
#   bash test/package.sh ~/debs       # into ~/debs (made if need be)
#   make deb [DEB_OUTDIR=~/debs]      # the same
#
# As root (or a user with sudo) on Debian 12: installs what the build needs
# when something is missing (test/lib/build.sh's MONEROO_DEB_PACKAGES, checked
# against debian/control's Build-Depends), copies the checkout's files (those
# git tracks or would track: no objects, no .test-stack.env) into a temporary
# folder, builds there with dpkg-buildpackage (debian/rules: pg_buildext, dh
# --with pgxs_loop), and copies postgresql-15-moneroo_<version>_<arch>.deb
# into OUTDIR.  The checkout is only read: every build artefact (debian/.debhelper,
# debian/postgresql-15-moneroo/, objects) stays in the temporary folder,
# which is removed afterwards (KEEP=1 keeps it).  The last line printed is the
# path of the .deb.
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
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PACKAGE=postgresql-15-moneroo
export DEBIAN_FRONTEND=noninteractive

die() { printf 'test/package.sh: %s\n' "$*" >&2; exit 1; }

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
