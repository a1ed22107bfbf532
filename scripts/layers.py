#!/usr/bin/env python3
"""Usage: scripts/layers.py [SRC-DIR]. Checks memsync's include graph against its layers (docs/ARCHITECTURE.md "Layers").

A file in src/<layer>/ may include headers of its own folder and of the layers below it, never of
a layer above or beside it; and no two files include each other, directly or through others (an
import circle). A header named *_int.h is a module's inside (store_int.h, sqlite_int.h): only
files in its own folder and that folder's subfolders may include it; so is a header that includes
one (reconcile.h). Tests, fuzzers and benchmarks may include anything. Exit 1 with each offending
include named.
"""
import os
import re
import sys

# Lowest first. A layer may use every layer listed before it, except where DEPS narrows it.
ORDER = ["core", "ms", "store", "sync", "view", "serve", "sim", "cli"]
# The simulator stands beside the product: it may use core alone, so it never shares a belief
# with the client code it tests.
DEPS = {"sim": {"core"}}
# Known circles, to be removed; each names the files of one circle. None is left: keep it so.
ALLOWED_CYCLES = []

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "src")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def inside(layer, sub, hlayer, hsub):
    """Whether a file in src/<layer>/<sub> is within the folder src/<hlayer>/<hsub>."""
    if layer != hlayer:
        return False
    return hsub == "" or sub == hsub or sub.startswith(hsub + os.sep)


def main():
    where = {}  # header or source name -> layer
    folder = {}  # header or source name -> its folder, relative to its layer ("" or "sqlite")
    files = []
    for layer in ORDER:
        d = os.path.join(ROOT, layer)
        if not os.path.isdir(d):
            print("src/%s: layer folder missing" % layer)
            return 1
        for sub, _, names in sorted(os.walk(d)):  # a layer may have subfolders (store/sqlite)
            for name in sorted(names):
                if name.endswith((".c", ".h", ".inc")):
                    rel = os.path.relpath(os.path.join(sub, name), d)
                    if name in where:
                        print("%s is in both src/%s and src/%s" % (name, where[name], layer))
                        return 1
                    where[name] = layer
                    folder[name] = os.path.dirname(rel)
                    files.append((layer, rel))
    for d in os.listdir(ROOT):
        if d not in ORDER and os.path.isdir(os.path.join(ROOT, d)):
            print("src/%s: a folder that is not a layer (add it to ORDER in this script)" % d)
            return 1
        if os.path.isfile(os.path.join(ROOT, d)) and d != "CMakeLists.txt":
            print("src/%s: a file outside every layer" % d)
            return 1

    texts = {}
    for layer, rel in files:
        with open(os.path.join(ROOT, layer, rel), encoding="utf-8") as f:
            texts[(layer, rel)] = f.read()
    # Internal headers: *_int.h, and until nothing changes, every header including one.
    internal = {n for n in where if n.endswith("_int.h")}
    grew = True
    while grew:
        grew = False
        for (layer, rel), text in texts.items():
            name = os.path.basename(rel)
            if name.endswith(".h") and name not in internal and any(
                    os.path.basename(i) in internal for i in INCLUDE.findall(text)):
                internal.add(name)
                grew = True

    bad = 0
    graph = {}
    for layer, rel in files:
        name = os.path.basename(rel)
        text = texts[(layer, rel)]
        allowed = DEPS.get(layer, set(ORDER[:ORDER.index(layer)])) | {layer}
        graph[name] = []
        for inc in INCLUDE.findall(text):
            base = os.path.basename(inc)
            if inc.startswith(("../../www/", "../../../www/")):
                continue  # generated assets (www/embed.py)
            if base not in where:
                print("src/%s/%s includes %s, which no layer holds" % (layer, rel, inc))
                bad += 1
                continue
            if where[base] not in allowed:
                print("src/%s/%s includes %s from src/%s: %s may use only %s" %
                      (layer, rel, base, where[base], layer, ", ".join(sorted(allowed))))
                bad += 1
            elif base in internal and not inside(layer, os.path.dirname(rel),
                                                         where[base], folder[base]):
                print("src/%s/%s includes %s: an internal header, for src/%s only" %
                      (layer, rel, base, os.path.join(where[base], folder[base]).rstrip("/")))
                bad += 1
            graph[name].append(base)

    # Circles between modules: a module is its .c, .h and _int.h together.
    def mod(n):
        m = n.rsplit(".", 1)[0]
        return m[:-4] if m.endswith("_int") else m
    mg = {}
    for n, incs in graph.items():
        mg.setdefault(mod(n), set()).update(mod(i) for i in incs if mod(i) != mod(n))
    seen, stack, cycles = {}, [], []

    def visit(m):
        seen[m] = 1
        stack.append(m)
        for d in sorted(mg.get(m, ())):
            if seen.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in seen:
                visit(d)
        stack.pop()
        seen[m] = 2
    for m in sorted(mg):
        if m not in seen:
            visit(m)
    for c in cycles:
        if sorted(set(c)) in [sorted(a) for a in ALLOWED_CYCLES]:
            continue
        print("import circle: %s" % " -> ".join(c))
        bad += 1
    print("%d passed, %d failed" % (1 if not bad else 0, 1 if bad else 0))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
