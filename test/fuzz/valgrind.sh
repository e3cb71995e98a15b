#!/usr/bin/env bash
# test/fuzz/valgrind.sh: moneroo's C code under valgrind (memcheck), one
# documented configuration; not part of test/run.sh.
#
#   bash test/fuzz/valgrind.sh          # as root; about 10-20 minutes
#
# Without touching the server library directory that other checkouts on the
# machine share:
#   1. builds moneroo.so with -g -O0 in a copy of the sources ($WORK/build);
#   2. makes a private PostgreSQL 15 tree ($WORK/pgtree): a copy of the bin
#      directory (PostgreSQL finds $libdir and its share directory relative to
#      its own binary), lib/ and share/ as symbolic links to the system ones
#      except moneroo.so (the -g build) and moneroo's control and SQL files
#      (this checkout's); bin/postgres is a wrapper that, once initdb is done,
#      starts the real binary under
#        valgrind --tool=memcheck --leak-check=no --num-callers=40
#                 --error-limit=no --suppressions=test/fuzz/valgrind.supp
#                 --log-file=$WORK/valgrind/vg.%p
#      so the postmaster and every backend and worker it forks run under
#      memcheck;
#   3. starts the mock and a cluster from that tree (request_timeout 10s:
#      everything is 20-50 times slower) and runs through it the bad-input
#      campaign (2,000 requests), the API-garbage cases and a short fault
#      campaign (3 stop rounds of a 100-payout drain, write-back refused);
#   4. reports every memcheck error whose stack goes through moneroo.so (the
#      others are PostgreSQL's own, e.g. uninitialised padding it writes to
#      WAL and stats files on purpose, and are only counted).
# AddressSanitizer was tried first: libasan.so.8 (gcc 12) and clang 14's
# runtime both deadlock when preloaded into Debian's PostgreSQL binaries
# (libgnutls' constructor calls bindtextdomain before the ASan runtime is
# initialised; its lazy initialisation re-enters gettext's lock), so even
# `postgres -V` hangs.  valgrind needs no rebuild of the server.
# KEEP=1 keeps the work directory.  Timing-dependent TAP failures are
# expected under valgrind and do not count; the exit status is 0 when no
# memcheck error goes through moneroo.so and no server process died of a
# signal.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
unset WORK PGDATA PGHOST PGPORT PGUSER MOCK_PORT MOCK_URL SERVER_LOG MOCK_LOG MOCK_SCRIPT \
    CLUSTER_EXTRA_CONF CLUSTER_LIB PGOPTIONS PGSERVICE || true
SYS_BIN=/usr/lib/postgresql/15/bin
PG_CONFIG=$SYS_BIN/pg_config
if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo -n); fi
export PGDATABASE=moneroo_test
PY=/usr/bin/python3; [ -x "$PY" ] || PY=$(command -v python3)

# shellcheck source=test/lib/build.sh
. "$REPO/test/lib/build.sh"
# shellcheck source=test/lib/cluster.sh
. "$REPO/test/lib/cluster.sh"
MONEROO_PACKAGES+=(valgrind)
install_packages >/dev/null
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

work_create "$REPO" moneroo-valgrind
trap stack_down EXIT
echo "== building moneroo.so with -g -O0 in $WORK/build"
mkdir -p "$WORK/build"
cp -R Makefile moneroo.control META.json src sql "$WORK/build/"
rm -f "$WORK"/build/src/*.o "$WORK"/build/src/*.bc "$WORK"/build/*.so
make -C "$WORK/build" -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" with_llvm=no COPT='-g -O0' \
    >"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log"; exit 1; }

echo "== private PostgreSQL tree in $WORK/pgtree"
T=$WORK/pgtree
B=$T/usr/lib/postgresql/15/bin
mkdir -p "$B" "$T/usr/lib/postgresql/15/lib" "$T/usr/share/postgresql/15/extension" "$WORK/valgrind"
cp -a "$SYS_BIN"/. "$B/"
mv "$B/postgres" "$B/postgres.real"
rm -f "$B/postmaster"
cp "$REPO/test/fuzz/valgrind.supp" "$WORK/valgrind.supp"
cat >"$B/postgres" <<WRAP
#!/bin/sh
# under memcheck once $WORK/valgrind.on exists (initdb runs without it)
if [ -e "$WORK/valgrind.on" ]; then
    exec valgrind --tool=memcheck --leak-check=no --num-callers=40 --error-limit=no \\
        --suppressions="$WORK/valgrind.supp" --log-file="$WORK/valgrind/vg.%p" \\
        "\$(dirname "\$0")/postgres.real" "\$@"
fi
exec "\$(dirname "\$0")/postgres.real" "\$@"
WRAP
chmod 755 "$B/postgres"
ln -s postgres "$B/postmaster"
for f in "$("$PG_CONFIG" --pkglibdir)"/*; do
    [ "$(basename "$f")" = moneroo.so ] || ln -s "$f" "$T/usr/lib/postgresql/15/lib/"
done
cp "$WORK/build/moneroo.so" "$T/usr/lib/postgresql/15/lib/moneroo.so"
for f in "$("$PG_CONFIG" --sharedir)"/*; do
    [ "$(basename "$f")" = extension ] || ln -s "$f" "$T/usr/share/postgresql/15/"
done
for f in "$("$PG_CONFIG" --sharedir)"/extension/*; do
    case $(basename "$f") in moneroo*) ;; *) ln -s "$f" "$T/usr/share/postgresql/15/extension/" ;; esac
done
cp moneroo.control moneroo--*.sql "$T/usr/share/postgresql/15/extension/"
chown "${PG_OS_USER:-postgres}:" "$WORK/valgrind"   # the tree stays root's, world-readable
export PGBIN=$B

echo "== cluster and mock (the server under valgrind)"
PGPORT=$(free_port); MOCK_PORT=$(free_port "$PGPORT"); export PGPORT MOCK_PORT
cluster_env
mock_start
cluster_init "moneroo.request_timeout = '10s'" "max_worker_processes = 16"
touch "$WORK/valgrind.on"
export PG_START_TIMEOUT=600
cluster_start
cluster_psql -d postgres -c "CREATE DATABASE $PGDATABASE"
cluster_psql -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION moneroo"
cluster_psql -f "$WORK/test/lib/helpers.sql" >/dev/null
cluster_restart
export CLUSTER_LIB="$WORK/test/lib/cluster.sh" PGDATA PGHOST PGPORT MOCK_PORT MOCK_URL SERVER_LOG MOCK_LOG PGBIN PG_START_TIMEOUT
pid=$(cluster_pid)
grep -q valgrind "/proc/$pid/cmdline" 2>/dev/null || tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q memcheck ||
    head -c 300 "/proc/$pid/cmdline" | tr '\0' ' '
echo "   postmaster $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-120)..."

run() {
    local name=$1
    shift
    echo "== $name"
    mock_ctl POST /__mock/reset '{}' >/dev/null 2>&1 || true
    set +e
    timeout 3600 "$@" >"$WORK/$name.tap" 2>"$WORK/$name.err"
    echo "   exit $?: $(grep -c '^ok' "$WORK/$name.tap") passed, $(grep -c '^not ok' "$WORK/$name.tap") failed" \
         "(timing-dependent failures are expected under valgrind)"
    grep '^not ok' "$WORK/$name.tap" | head -n 10 | sed 's/^/   /'
    set -e
    cluster_is_running || cluster_start
    mock_is_running || mock_start
}
run fuzz "$PY" "$WORK/test/fuzz/fuzz_requests.py" --count 2000 --insert-sample 300 --update-sample 100 \
    --transfer-sample 100 --timeout 3000
run garbage "$PY" "$WORK/test/fuzz/api_garbage.py"
run faults "$PY" "$WORK/test/fuzz/fault_campaign.py" --seed 4 --rounds 3 --payouts 100 \
    --phases rounds,writeback --writeback 10 --wb-payouts 100 --drain-timeout 300
cluster_stop fast || true

echo "== findings"
"$PY" - "$WORK/valgrind" <<'PY'
import glob, re, sys
errors, ours, procs = 0, [], 0
for path in sorted(glob.glob(sys.argv[1] + "/vg.*")):
    text = open(path, errors="replace").read()
    procs += 1
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    errors += int(m.group(1)) if m else 0
    # one block per error: from a "==PID== <headline>" to the next blank "==PID== " line
    for block in re.split(r"\n==\d+== \n", text):
        if ("moneroo.so" in block or "/src/" in block and ".c:" in block) and "ERROR SUMMARY" not in block \
                and re.search(r"(Invalid|uninitialised|Mismatched|overlap|Syscall param|free)", block):
            ours.append(f"---- {path}\n{block.strip()}")
print(f"valgrind logs: {procs} processes, {errors} errors in all "
      f"(PostgreSQL's own included), {len(ours)} through moneroo.so")
for b in ours[:20]:
    print(b)
sys.exit(1 if ours else 0)
PY
status=$?
signals=$(grep -E 'terminated by signal' "$SERVER_LOG" | grep -v 'signal 9: Killed' || true)
[ -z "$signals" ] || { printf '%s\n' "$signals"; status=1; }
if [ "$status" -eq 0 ]; then echo "valgrind: no findings in moneroo.so"; else echo "valgrind: findings above; KEEP=1 keeps $WORK"; fi
exit "$status"
