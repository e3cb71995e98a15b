#!/usr/bin/env bash
# Proves: garbage from the API is recorded as an error or unknown, never a success [fast, ~10 s].
# 82_api_garbage.sh: garbage from the API side (TAP): truncated JSON,
# oversized bodies, wrong types in data, a 10 KB id, unknown statuses,
# invalid UTF-8, deep nesting, numbers jsonb cannot hold, on initialize,
# verify and webhooks.  Recorded as errors or unknown: never a crash, never
# a wrong success.  See test/fuzz/README.md.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=/usr/bin/python3; [ -x "$py" ] || py=$(command -v python3)
exec "$py" "$here/fuzz/api_garbage.py"
