# shellcheck shell=bash
# test/lib/script.sh: the start of every test script (test/FOLDER/NN_*.sh):
# cluster.sh's functions (unless test/run.sh exported them, with the
# variables they read), their environment (cluster_env), the TAP vocabulary
# (tap.sh) and the server helpers (server.sh).  Source it first:
#   . "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"

SCRIPT_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if ! declare -F cluster_psql >/dev/null; then
    # shellcheck source=test/lib/cluster.sh
    . "${CLUSTER_LIB:-$SCRIPT_LIB/cluster.sh}"
fi
cluster_env
# shellcheck source=test/lib/tap.sh
. "$SCRIPT_LIB/tap.sh"
# shellcheck source=test/lib/server.sh
. "$SCRIPT_LIB/server.sh"
