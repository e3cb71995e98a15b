#!/usr/bin/env bash
# Proves: src/ is in layers: no include runs up, no module circle, no file over 600 lines, no version test outside compat [fast, <1 s].
# test/build/01_layers.sh: src/ is in layers, and the layers are a house anyone can see.
# Fast; needs python3, no server.  Reads the order of the layers from README.md's
# source layout (its bold rows, top to bottom), the one home of that order, and checks:
#   - every .c but src/moneroo.c lives in a layer's folder, and every folder is a layer;
#   - no #include runs from a layer up to one below it in the table;
#   - no circle: no module includes, through others, a module that includes it;
#   - no .c file is over 600 lines (a file that grows past one job is split);
#   - no PG_VERSION_NUM test outside src/compat/compat.h, the one home of the
#     differences between PostgreSQL majors.
# TAP on stdout.
set -uo pipefail
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
exec python3 - "$REPO" <<'PY'
import collections, glob, os, re, sys

repo = sys.argv[1]
src = os.path.join(repo, "src")
readme = open(os.path.join(repo, "README.md"), encoding="utf-8").read()
table = readme[readme.index("Source layout (`src/`)"):readme.index("Code style:")]
order = re.findall(r"^\| \*\*`([a-z_]+)/`\*\*", table, re.M)
compat = ["compat"]          # the compatibility header sits below every layer
layers = compat + order
results = []

def check(ok, name, why=""):
    results.append((ok, name, why))

files = sorted(glob.glob(os.path.join(src, "**", "*.[ch]"), recursive=True))
rel = {f: os.path.relpath(f, src) for f in files}
misplaced = [r for r in rel.values()
             if r != "moneroo.c" and (r.count("/") != 1 or r.split("/")[0] not in layers)]
check(bool(order) and not misplaced,
      "every source file but moneroo.c is in a layer's folder (%s)" % ", ".join(order),
      "misplaced: " + ", ".join(misplaced) if misplaced else "README.md lists no layer")

include = re.compile(r'^#include "([a-z_]+)/([a-z_]+)\.h"', re.M)
upward, graph = [], collections.defaultdict(set)
for f, r in rel.items():
    here = r.split("/")[0] if "/" in r else None
    module = os.path.splitext(os.path.basename(r))[0]
    for layer, name in include.findall(open(f, encoding="utf-8").read()):
        if layer not in layers:
            continue
        if here in layers and layers.index(layer) > layers.index(here):
            upward.append("%s includes %s/%s.h" % (r, layer, name))
        if name != module:
            graph[module].add(name)
check(not upward, "no #include runs from a layer up to a layer below it", "; ".join(upward))

# a circle: a strongly connected set of two or more modules (Tarjan)
index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in sorted(graph[v]):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        part = []
        while True:
            w = stack.pop(); on.discard(w); part.append(w)
            if w == v:
                break
        if len(part) > 1:
            circles.append(sorted(part))
sys.setrecursionlimit(10000)
for v in sorted(list(graph)):
    if v not in index:
        visit(v)
check(not circles, "the modules' includes form no circle",
      "; ".join(" <-> ".join(c) for c in circles))

long_files = ["%s (%d lines)" % (r, n) for f, r in rel.items() if r.endswith(".c")
              for n in [sum(1 for _ in open(f, encoding="utf-8"))] if n > 600]
check(not long_files, "no .c file is over 600 lines", ", ".join(long_files))

versioned = [r for f, r in rel.items() if not r.startswith("compat/")
             and "PG_VERSION_NUM" in open(f, encoding="utf-8").read()]
check(not versioned, "no PG_VERSION_NUM test outside compat/compat.h", ", ".join(versioned))

print("1..%d" % len(results))
for i, (ok, name, why) in enumerate(results, 1):
    print("%sok %d - %s" % ("" if ok else "not ", i, name))
    if not ok and why:
        print("# " + why)
PY
