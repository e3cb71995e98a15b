# shellcheck shell=bash
# test/lib/build.sh: install what moneroo needs on Debian 12, then build and
# install it.  Shared by test/run.sh (the tests) and test/demo.sh (the demo).
# Reads SUDO (an array, empty for root), PG_CONFIG and PG_MAJOR (the
# PostgreSQL major the packages are for, 15 by default); defines functions
# and the package lists only.
: "${PG_MAJOR:=15}"

# What test/package.sh needs to build the Debian package: debian/control's
# Build-Depends and build-essential (package.sh checks with
# dpkg-checkbuilddeps that this list covers them).
MONEROO_DEB_PACKAGES=(build-essential dpkg-dev debhelper postgresql-server-dev-all
                      "postgresql-server-dev-$PG_MAJOR" libcurl4-openssl-dev python3)
# What the tests need, test/packaging/95_package.sh's package build included.
MONEROO_PACKAGES=("postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" libcurl4-openssl-dev "postgresql-$PG_MAJOR-pgtap"
                  libtap-parser-sourcehandler-pgtap-perl python3 curl openssl make gcc
                  python3-flask python3-psycopg "postgresql-$PG_MAJOR-cron" pgbouncer   # the recipes: test/recipes/9*_recipe_*.sh
                  # failover: test/ha/97_patroni_failover.sh, test/campaign.sh ha; python3-etcd is
                  # Patroni's etcd client (trixie's patroni depends on python3-consul first, so
                  # without it Patroni 4 finds no DCS for etcd3)
                  patroni python3-etcd etcd-server
                  prometheus prometheus-postgres-exporter   # monitoring: test/monitoring/89_monitoring.sh
                  "${MONEROO_DEB_PACKAGES[@]}")

# install_packages [PACKAGE...]: apt-get install the PACKAGEs [MONEROO_PACKAGES]
# that are missing (all of them at once, after apt-get update), or nothing
# when every one is there.
install_packages() {
    local p missing=() wanted=("$@")
    [ $# -gt 0 ] || wanted=("${MONEROO_PACKAGES[@]}")
    for p in "${wanted[@]}"; do
        if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "all packages installed"
        return 0
    fi
    if [ "${SKIP_INSTALL:-0}" = 1 ]; then
        echo "SKIP_INSTALL=1: not installing ${missing[*]}"
        return 0
    fi
    echo "missing: ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get update -q </dev/null ||
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get update -q </dev/null ||
        { echo "apt-get update failed" >&2; return 1; }
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive timeout 1800 apt-get install -y -q \
        --no-install-recommends "${wanted[@]}" </dev/null ||
        { echo "apt-get install failed" >&2; return 1; }
}

# build_extension: make and make install from the current directory.
build_extension() {
    local o h log
    # PGXS tracks no header dependencies: rebuild objects older than a header,
    # the Makefile or moneroo.control (the version, MONEROO_VERSION) so a stale
    # object never hides a change.
    for o in src/*.o src/*/*.o; do
        [ -e "$o" ] || continue
        for h in src/*/*.h Makefile moneroo.control; do
            if [ -e "$h" ] && [ "$h" -nt "$o" ]; then rm -f "$o" "${o%.o}.bc"; break; fi
        done
    done
    if ! make -j"$(nproc 2>/dev/null || echo 2)" PG_CONFIG="$PG_CONFIG" </dev/null; then
        echo "" >&2
        echo "########  BUILD FAILED (make PG_CONFIG=$PG_CONFIG)  ########" >&2
        return 1
    fi
    log=$(mktemp)
    if ! "${SUDO[@]}" make install PG_CONFIG="$PG_CONFIG" </dev/null >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "make install failed" >&2
        return 1
    fi
    rm -f "$log"
    echo "installed into $("$PG_CONFIG" --pkglibdir) and $("$PG_CONFIG" --sharedir)/extension"
}
