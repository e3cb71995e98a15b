#!/usr/bin/env bash
# Proves: README.md names every setting, SQL object and src/ file [fast, ~1 s].
# test/packaging/70_readme_coverage.sh: README.md documents every setting and
# every SQL object of the extension.
#
# The names come from the running server, not from a list kept by hand:
#   - settings: pg_settings WHERE name LIKE 'moneroo.%' (as superuser), plus
#     the secret settings that pg_settings hides even from a superuser
#     (moneroo.secret_key, moneroo.webhook_secret, moneroo.secret_key_file)
#     when the server defines them;
#   - SQL objects: the functions, tables and views that belong to the
#     extension (pg_depend, deptype 'e') in the test database.
# One TAP assertion per name: README.md must contain it as a whole word.
# And the source map: one row of README's `src/` table for every src/*.c, and
# no row for a file that is not there.
#
# Run by test/run.sh (bash, TAP on stdout); needs the variables and cluster.sh
# functions it exports.  Changes nothing.
set -uo pipefail

# shellcheck source=test/lib/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/script.sh"

README=${REPO:-$(cd "$(dirname "$0")/../.." && pwd)}/README.md

if [ ! -r "$README" ]; then
    echo "1..1"
    echo "not ok 1 - README.md exists and is readable ($README)"
    exit 0
fi

# kind<TAB>name, sorted: settings, then the extension's members.
if ! names=$(cluster_psql -At -F $'\t' 2>&1 <<'SQL'
SELECT kind, name FROM (
    SELECT 'setting' AS kind, name FROM pg_settings WHERE name LIKE 'moneroo.%'
    UNION
    SELECT 'setting', n
    FROM unnest(ARRAY['moneroo.secret_key', 'moneroo.webhook_secret', 'moneroo.secret_key_file']) AS n
    WHERE current_setting(n, true) IS NOT NULL
    UNION
    SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' ELSE 'table' END, c.relname
    FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
    WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'moneroo')
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    UNION
    SELECT 'function', p.proname
    FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
    WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'moneroo')
) AS s
ORDER BY kind = 'setting' DESC, kind, name
SQL
); then
    echo "Bail out! cannot list the extension's settings and objects: $names"
    exit 1
fi
count=$(printf '%s\n' "$names" | grep -c .)
if [ "$count" -lt 10 ]; then
    echo "Bail out! only $count settings and objects found (is the extension installed and preloaded?)"
    exit 1
fi

SRC_DIR=$(dirname "$README")/src
# the table rows' first cells: `| `a.c`, `b.c` | job |` gives a.c and b.c
mapped=$(sed -n '/^Source layout (`src\/`)/,/^Code style/p' "$README" |
    awk -F'|' '/^\| `/ { print $2 }' | grep -o '[a-z_/]*\.c' | sort -u)
sources=$(cd "$SRC_DIR" && ls -- *.c */*.c | sort)
stale=$(comm -23 <(printf '%s\n' "$mapped") <(printf '%s\n' "$sources") | grep -c .)

echo "1..$((count + $(printf '%s\n' "$sources" | grep -c .) + 1))"
T=0
while read -r file; do
    T=$((T + 1))
    if grep -qxF -- "$file" <<<"$mapped"; then
        echo "ok $T - README.md's source map has a row for src/$file"
    else
        echo "not ok $T - README.md's source map has a row for src/$file"
    fi
done <<<"$sources"
T=$((T + 1))
if [ "$stale" -eq 0 ]; then
    echo "ok $T - README.md's source map names no file that src/ lacks"
else
    echo "not ok $T - README.md's source map names no file that src/ lacks"
    comm -23 <(printf '%s\n' "$mapped") <(printf '%s\n' "$sources") | sed 's/^/#   stale: /'
fi

while IFS=$'\t' read -r kind name; do
    [ -n "$name" ] || continue
    T=$((T + 1))
    if grep -qwF -- "$name" "$README"; then
        echo "ok $T - README.md documents the $kind $name"
    else
        echo "not ok $T - README.md documents the $kind $name"
        echo "#   '$name' does not occur in README.md"
    fi
done <<<"$names"
