#!/usr/bin/env bash
# test/all.sh: every test (README's test command, what .ci/run runs): test/run.sh on every supported major:
# PostgreSQL 15 on this Debian 12 host, 17 and 18 each in a Debian root of its
# own (test/lib/pgroot.sh).  Ends with a summary per major and ONE line
# "N passed, N failed" summing them; exit status 0 only when all passed.
#
#   bash test/all.sh                     # 15, 17 and 18
#   CI_MAJORS="17 18" bash test/all.sh   # only these
#   CI_JOBS=2                        # suites run at once (default 2: a 2-core machine)
#   CI_LOGS=DIR                      # where each major's log goes (default: a mktemp dir, kept)
#
# Why this order (measured on the 2-core CI machine; README "Testing"): a
# suite alone takes 15-17 minutes, a root 5 minutes to build, so one after the
# other would not fit in 45 minutes.  The roots are built in the background
# while 15 runs; 17 starts as soon as its root exists and 18 as soon as a slot
# frees.  Concurrent suites cannot collide: each has its own install (the host
# or its root), its own /tmp, and every port comes from free_port (a random
# free port on 127.0.0.1, test/lib/cluster.sh); nothing listens on a fixed port.
# Host runs take the machine-wide lock that guards the host's one PostgreSQL 15
# install (free on a CI machine where nothing else runs).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
HOST_MAJOR=15
export DEBIAN_FRONTEND=noninteractive
read -r -a MAJORS <<<"${CI_MAJORS:-15 17 18}"
JOBS=${CI_JOBS:-2}
LOGS=${CI_LOGS:-$(mktemp -d /tmp/moneroo-ci.XXXXXX)}
mkdir -p "$LOGS"
T0=$SECONDS
say() { printf '[%4ds] %s\n' $((SECONDS - T0)) "$*"; }

# 0. what builds the roots, before anything runs (a fresh Debian 12 machine has
# no mmdebstrap; the host suite installs its own packages later, while the
# roots build, without touching the roots)
if ! command -v mmdebstrap >/dev/null 2>&1; then
    say "installing mmdebstrap"
    { timeout 900 apt-get update -q && timeout 900 apt-get install -y -q --no-install-recommends mmdebstrap; } \
        </dev/null >"$LOGS/mmdebstrap-install.log" 2>&1 || { tail -n 20 "$LOGS/mmdebstrap-install.log"; say "could not install mmdebstrap"; }
fi

# 1. the roots, in the background (a root that exists is reused at once)
for m in "${MAJORS[@]}"; do
    [ "$m" = "$HOST_MAJOR" ] && continue
    ( bash test/lib/pgroot.sh build "$m" >"$LOGS/root-$m.log" 2>&1; echo $? >"$LOGS/root-$m.rc" ) &
done

ready() {   # ready MAJOR: its root exists (or it runs on the host); 2 = its root failed
    [ "$1" = "$HOST_MAJOR" ] && return 0
    [ -f "$LOGS/root-$1.rc" ] || return 1
    [ "$(cat "$LOGS/root-$1.rc")" = 0 ] && return 0
    return 2
}
start() {   # start MAJOR: its suite in the background; its log and exit status in $LOGS
    local m=$1 cmd
    if [ "$m" = "$HOST_MAJOR" ]; then
        cmd=(flock /var/tmp/moneroo-pg15.lock bash test/run.sh)
    else
        cmd=(bash test/run.sh --pg "$m")
    fi
    say "PostgreSQL $m: ${cmd[*]} (log: $LOGS/suite-$m.log)"
    ( s=$SECONDS; "${cmd[@]}" >"$LOGS/suite-$m.log" 2>&1; rc=$?
      echo "$rc $((SECONDS - s))" >"$LOGS/suite-$m.rc" ) &
}

# 2. the suites: at most $JOBS at once, each as soon as its root is ready
pending=("${MAJORS[@]}"); running=()
while [ ${#pending[@]} -gt 0 ] || [ ${#running[@]} -gt 0 ]; do
    still=()
    for m in "${running[@]}"; do
        if [ -f "$LOGS/suite-$m.rc" ]; then
            read -r rc secs <"$LOGS/suite-$m.rc"
            say "PostgreSQL $m: done in $((secs / 60))m$((secs % 60))s ($(tail -n 1 "$LOGS/suite-$m.log"))"
        else
            still+=("$m")
        fi
    done
    running=("${still[@]}"); still=()
    for m in "${pending[@]}"; do
        ready "$m"; r=$?
        if [ "$r" = 2 ]; then
            say "PostgreSQL $m: its root could not be built (log: $LOGS/root-$m.log)"
            tail -n 20 "$LOGS/root-$m.log"
            echo "0 passed, 1 failed" >"$LOGS/suite-$m.log"; echo "1 0" >"$LOGS/suite-$m.rc"
        elif [ "$r" = 0 ] && [ ${#running[@]} -lt "$JOBS" ]; then
            start "$m"; running+=("$m")
        else
            still+=("$m")
        fi
    done
    pending=("${still[@]}")
    [ ${#pending[@]} -gt 0 ] || [ ${#running[@]} -gt 0 ] && sleep 5
done
wait

# 3. the cross-major restore (15 -> each root's major), once every suite is done:
# it installs into the roots and stops the host's 15 for a while
others=(); have_host=0
for m in "${MAJORS[@]}"; do
    if [ "$m" = "$HOST_MAJOR" ]; then have_host=1; elif ready "$m"; then others+=("$m"); fi
done
CROSS=0
if [ "$have_host" = 1 ] && [ ${#others[@]} -gt 0 ]; then
    CROSS=1
    say "cross-major restore 15 -> ${others[*]} (log: $LOGS/suite-cross.log)"
    s=$SECONDS
    CROSS_MAJORS="${others[*]}" flock /var/tmp/moneroo-pg15.lock bash test/run.sh --only 66_cross_major_restore \
        >"$LOGS/suite-cross.log" 2>&1
    echo "$? $((SECONDS - s))" >"$LOGS/suite-cross.rc"
    say "cross-major restore: done ($(tail -n 1 "$LOGS/suite-cross.log"))"
fi

# 4. each major's log, then the summaries and the one total line
for m in "${MAJORS[@]}"; do
    printf '\n######## PostgreSQL %s\n' "$m"
    cat "$LOGS/suite-$m.log"
done
if [ "$CROSS" = 1 ]; then
    printf '\n######## cross-major restore\n'; cat "$LOGS/suite-cross.log"; MAJORS+=(cross)
fi
printf '\n######## all majors  [%dm%ds; logs in %s]\n' $(((SECONDS - T0) / 60)) $(((SECONDS - T0) % 60)) "$LOGS"
pass=0; fail=0
for m in "${MAJORS[@]}"; do
    read -r rc secs <"$LOGS/suite-$m.rc"
    last=$(tail -n 1 "$LOGS/suite-$m.log")
    if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        p=${BASH_REMATCH[1]}; f=${BASH_REMATCH[2]}
    else
        p=0; f=1; last="no summary line (exit status $rc)"
    fi
    [ "$rc" = 0 ] || [ "$f" -gt 0 ] || f=1   # a failed run never counts as green
    pass=$((pass + p)); fail=$((fail + f))
    label="PostgreSQL $m"; [ "$m" = cross ] && label="cross-major restore 15 -> ${others[*]}"
    printf '%s: %s  (%dm%ds)\n' "$label" "$last" $((secs / 60)) $((secs % 60))
    # its suites, failures and the tests it could not run, by name
    sed -n '/^==== summary/,$p' "$LOGS/suite-$m.log" | sed '1d;$d'
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
