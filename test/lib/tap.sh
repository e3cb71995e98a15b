# test/lib/tap.sh: the TAP vocabulary of the test scripts (test/*/NN_*.sh).
#
#   tap_plan N                  prints the plan "1..N" and starts counting
#   pass DESC                   ok N - DESC
#   fail DESC [DIAG...]         not ok N - DESC, each DIAG as a "#" line
#   ok STATUS DESC [DIAG...]    passes when STATUS (a shell status) is 0
#   is GOT WANT DESC [DIAG...]  passes when GOT equals WANT, shows both otherwise
#   diag TEXT                   a "#" comment line
#   bail REASON                 "Bail out!" and exit 1
#   skip_rest REASON            fails every assertion not run yet (the plan stays exact)
# T is the number of assertions so far, FAILS how many of them failed.

tap_plan() { PLAN=$1; T=0; FAILS=0; printf '1..%d\n' "$PLAN"; }
pass() { T=$((T + 1)); printf 'ok %d - %s\n' "$T" "$1"; }
fail() {
    T=$((T + 1)); FAILS=$((FAILS + 1)); printf 'not ok %d - %s\n' "$T" "$1"
    shift
    local line
    for line in "$@"; do [ -n "$line" ] && printf '#   %s\n' "$line"; done
    return 0
}
ok() { local c=$1; shift; if [ "$c" -eq 0 ]; then pass "$1"; else fail "$@"; fi; }
is() {
    local got=$1 want=$2 desc=$3; shift 3
    if [ "$got" == "$want" ]; then pass "$desc"; else fail "$desc" "got:  '$got'" "want: '$want'" "$@"; fi
}
diag() { printf '# %s\n' "$*"; }
bail() { printf 'Bail out! %s\n' "$*"; exit 1; }
skip_rest() { while [ "$T" -lt "$PLAN" ]; do fail "not run: $1"; done; }
