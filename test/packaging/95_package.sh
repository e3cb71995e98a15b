#!/usr/bin/env bash
# Proves: the Debian package installs, sends a payout, and removes cleanly [fast, ~40 s; needs root].
# test/packaging/95_package.sh: the Debian package, installed on the test stack.
#
# Builds postgresql-$PG_MAJOR-moneroo (the major the suite runs on) with test/package.sh, installs it with apt-get
# (the local .deb; its dependencies from the Debian mirror, already there),
# and checks:
#   - the build leaves the checkout as it was, and makes
#     postgresql-N-moneroo_<default_version>_<arch>.deb, version
#     default_version (moneroo.control);
#   - its Depends names postgresql-N and the package of the libcurl that its
#     moneroo.so links (per ldd);
#   - dpkg -L lists moneroo.so, moneroo.control and every moneroo--*.sql
#     of the checkout (no other) where pg_config says, and the installed files
#     are the package's, byte for byte (and dpkg --verify agrees);
#   - the server, restarted, maps the packaged moneroo.so (same inode) and
#     its worker runs; CREATE EXTENSION moneroo in a fresh database installs
#     default_version from the packaged scripts, and moneroo_validate accepts
#     a good request and refuses a bad one (22023); in the worker's database
#     a sandbox payout goes to the mock with the User-Agent of default_version;
#   - apt-get remove takes every file of the package away.
# Then it installs the checkout's build again (test/lib/build.sh's
# build_extension, as test/run.sh did) and restarts the server, so that what
# runs after it finds the stack as before; an EXIT trap does that too when the
# script stops half-way.
#
# Run by test/run.sh (bash, TAP on stdout) as root; needs the variables and
# cluster.sh functions it exports.  Installs into the system's PostgreSQL
# directories: on a shared machine, under the lock every checkout uses
# (flock /tmp/moneroo-system-install.lock bash test/run.sh ...).
set -uo pipefail

# shellcheck source=test/lib/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"
# build_extension, to put the checkout's build back
# shellcheck source=test/lib/build.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/build.sh"

PACKAGE=postgresql-$PG_MAJOR-moneroo
PG_CONFIG=$PGBIN/pg_config
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
EXTDIR=$("$PG_CONFIG" --sharedir)/extension
VERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$REPO/moneroo.control")
TESTDB=t95_package
# apt-get and dpkg wait for another apt (another engineer's, unattended
# upgrades) instead of failing at once
APT=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300)
if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo -n); fi

T95=$(mktemp -d /tmp/moneroo-95.XXXXXX) || bail "cannot make a temporary folder"
# apt-get install ./file.deb reads the file as its download user (_apt)
chmod 755 "$T95"

# restore: the package removed (when it is still installed), the checkout's
# build installed again, the server restarted on it.  Once.
RESTORED=""
restore() {
    [ -z "$RESTORED" ] || return "$RESTORED"
    RESTORED=1
    cluster_psql -d postgres -q -c "DROP DATABASE IF EXISTS $TESTDB WITH (FORCE)" >/dev/null 2>&1
    if dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -q 'ok installed'; then
        "${SUDO[@]}" "${APT[@]}" remove "$PACKAGE" </dev/null >&2 || return 1
    fi
    (cd "$REPO" && build_extension) >&2 || return 1
    cluster_restart >&2 && wait_server 30 || return 1
    RESTORED=0
}
# shellcheck disable=SC2317  # (run by the EXIT trap)
on_exit() {
    local rc=$?
    restore || echo "# restoring the checkout's build failed: the stack may still run without moneroo" >&2
    rm -rf "$T95"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

tap_plan 22
[ -n "$VERSION" ] || bail "cannot read default_version from $REPO/moneroo.control"

# ---------------------------------------------------------------- build
touch "$T95/before-build"
sleep 1   # find -newer compares modification times, to the second on some filesystems
bash "$REPO/test/package.sh" --pg "$PG_MAJOR" "$T95/out" >"$T95/build.log" 2>&1
rc=$?
DEB=$T95/out/${PACKAGE}_${VERSION}_$(dpkg --print-architecture).deb
if [ "$rc" -eq 0 ] && [ -f "$DEB" ] && [ "$(tail -n 1 "$T95/build.log")" = "$DEB" ]; then
    pass "test/package.sh builds $(basename "$DEB") and says where it is"
else
    fail "test/package.sh builds $(basename "$DEB") and says where it is" "exit status $rc; last lines:" \
        "$(tail -n 15 "$T95/build.log")"
    skip_rest "no package"
    exit 1
fi
is "$(find "$REPO" -path "$REPO/.git" -prune -o -newer "$T95/before-build" -print | head -n 5)" "" \
    "the build leaves the checkout alone (nothing in it is new or changed)"
is "$(dpkg-deb -f "$DEB" Package) $(dpkg-deb -f "$DEB" Version)" "$PACKAGE $VERSION" \
    "the package is $PACKAGE, version $VERSION (default_version in moneroo.control)"

DEPENDS=$(dpkg-deb -f "$DEB" Depends)
# depends_on PACKAGE: whether Depends names PACKAGE (alone or with a version)
depends_on() { [[ ", $DEPENDS," =~ ,\ "$1"( \(|,) ]]; }
depends_on "postgresql-$PG_MAJOR"
ok $? "its Depends names postgresql-$PG_MAJOR" "Depends: $DEPENDS"
dpkg-deb -x "$DEB" "$T95/x"
curl_so=$(ldd "$T95/x$PKGLIBDIR/moneroo.so" | awk '$1 ~ /^libcurl/ { print $3 }')
curl_pkg=$(dpkg -S "$(realpath "$curl_so" 2>/dev/null)" 2>/dev/null | head -n 1 | cut -d: -f1)
if [ -n "$curl_pkg" ] && depends_on "$curl_pkg"; then
    pass "its Depends names $curl_pkg, whose $curl_so its moneroo.so links"
else
    fail "its Depends names the libcurl package its moneroo.so links" "ldd: '$curl_so', package: '$curl_pkg'" \
        "Depends: $DEPENDS"
fi

# ---------------------------------------------------------------- install
"${SUDO[@]}" "${APT[@]}" install "$DEB" </dev/null >"$T95/install.log" 2>&1
rc=$?
is "$rc $(dpkg-query -W -f='${Status} ${Version}' "$PACKAGE" 2>/dev/null)" "0 install ok installed $VERSION" \
    "apt-get install ./$(basename "$DEB") installs it" "$(tail -n 10 "$T95/install.log")"

dpkg -L "$PACKAGE" 2>/dev/null | LC_ALL=C sort >"$T95/files"
grep -qx "$PKGLIBDIR/moneroo.so" "$T95/files"
ok $? "dpkg -L lists $PKGLIBDIR/moneroo.so"
grep -qx "$EXTDIR/moneroo.control" "$T95/files"
ok $? "dpkg -L lists $EXTDIR/moneroo.control"
# sql_scripts DIR: the moneroo--*.sql in DIR, sorted, on one line
sql_scripts() { (cd "$1" 2>/dev/null && ls -1 moneroo--*.sql 2>/dev/null | LC_ALL=C sort | tr '\n' ' '); }
CHECKOUT_SCRIPTS=$(sql_scripts "$REPO")
is "$(grep "^$EXTDIR/moneroo--.*\.sql$" "$T95/files" | xargs -r -n 1 basename | LC_ALL=C sort | tr '\n' ' ')" \
    "$CHECKOUT_SCRIPTS" \
    "dpkg -L lists every moneroo--*.sql of the checkout in $EXTDIR, and no other"

differ=""
n_files=0
while IFS= read -r f; do
    [ -f "$T95/x$f" ] || continue
    n_files=$((n_files + 1))
    cmp -s "$T95/x$f" "$f" || differ+="$f "
done <"$T95/files"
if [ -z "$differ" ] && [ "$n_files" -gt 4 ]; then
    pass "the $n_files installed files are the package's, byte for byte"
else
    fail "the installed files are the package's, byte for byte" "files: $n_files; differ: ${differ:-none}"
fi
is "$("${SUDO[@]}" dpkg --verify "$PACKAGE" 2>&1)" "" "dpkg --verify $PACKAGE finds nothing changed"

# ---------------------------------------------------------------- use
cluster_restart >&2 && wait_server 30
ok $? "the server restarts with the packaged library preloaded"
# The postmaster loaded shared_preload_libraries; dpkg wrote a new file, so
# the inode tells the packaged library from the one make install had put there.
pm_inode=$("${SUDO[@]}" awk -v so="$PKGLIBDIR/moneroo.so" '$6 == so { print $5; exit }' \
           "/proc/$(cluster_pid)/maps" 2>/dev/null)
is "$pm_inode" "$(stat -c %i "$PKGLIBDIR/moneroo.so")" \
    "the postmaster maps the packaged moneroo.so (inode of the installed file)"
worker=$(wait_worker 30)
ok $? "the moneroo worker runs (pid ${worker:-none})"

cluster_psql -d postgres -q -c "DROP DATABASE IF EXISTS $TESTDB" -c "CREATE DATABASE $TESTDB" >&2
is "$(PGDATABASE=$TESTDB sql1 "CREATE EXTENSION moneroo; SELECT extversion FROM pg_extension WHERE extname = 'moneroo'")" \
    "$VERSION" "CREATE EXTENSION moneroo in a fresh database installs $VERSION from the packaged scripts"
REQ='{"amount": 500, "currency": "USD", "description": "script 95_package",
      "method": "moneroo_payout_demo",
      "customer": {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"},
      "recipient": {"account_number": "4149518161"}}'
is "$(PGDATABASE=$TESTDB sql_or_state "SELECT 'accepted' FROM moneroo_validate('$REQ')")" "accepted" \
    "there, moneroo_validate accepts a sandbox request"
is "$(PGDATABASE=$TESTDB sql_or_state "SELECT moneroo_validate(jsonb_set('$REQ', '{amount}', '0'))")" \
    'ERROR 22023: invalid "amount" in payout request' "... and refuses one with amount 0 (22023)"

# In the worker's database: the packaged library's worker sends it to the mock.
mid=$(sql1 "SELECT moneroo_id FROM moneroo_transfer('$REQ')")
ua=$(sql1 "SELECT j #>> '{headers,user-agent}' FROM mock.journal() j
           WHERE j ->> 'method' = 'POST' AND j ->> 'created_id' = '$mid'")
if [[ $mid != ERROR:* ]] && [ -n "$mid" ] && [[ $ua == "moneroo-postgresql/$VERSION "* ]]; then
    pass "moneroo_transfer sends a sandbox payout through the packaged library (User-Agent $ua)"
else
    fail "moneroo_transfer sends a sandbox payout through the packaged library" "moneroo_id: '$mid'" \
        "User-Agent of its POST: '$ua'"
fi

# ---------------------------------------------------------------- remove
"${SUDO[@]}" "${APT[@]}" remove "$PACKAGE" </dev/null >"$T95/remove.log" 2>&1
rc=$?
# A package without conffiles leaves no trace: dpkg-query then knows it no more.
status=$(dpkg-query -W -f='${db:Status-Status}' "$PACKAGE" 2>/dev/null)
is "$rc ${status:-not-installed}" "0 not-installed" \
    "apt-get remove $PACKAGE removes it" "$(tail -n 10 "$T95/remove.log")"
left=""
while IFS= read -r f; do
    [ -f "$T95/x$f" ] && [ -e "$f" ] && left+="$f "
done <"$T95/files"
is "$left" "" "... and every file it had installed is gone"

# ---------------------------------------------------------------- restore
restore
ok $? "the checkout's build is installed again (make install) and the server restarted"
if cmp -s "$REPO/moneroo.so" "$PKGLIBDIR/moneroo.so" && [ -f "$EXTDIR/moneroo.control" ] &&
   [ "$(sql_scripts "$EXTDIR")" = "$CHECKOUT_SCRIPTS" ] &&
   [ "$(sql1 "SELECT extversion FROM pg_extension WHERE extname = 'moneroo'")" = "$VERSION" ] &&
   wait_worker 30 >/dev/null; then
    pass "... it is the checkout's moneroo.so, with its scripts, and the worker serves $PGDATABASE again"
else
    fail "... it is the checkout's moneroo.so, with its scripts, and the worker serves $PGDATABASE again"
fi
exit 0
