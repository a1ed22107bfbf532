#!/usr/bin/python3
"""Merges the OpenAPI fragments src/serve/openapi/*.json into src/serve/openapi_doc.inc, the C
string that src/serve/openapi.c serves at /openapi.json (after adding each list route's paging,
sort and filter parameters from the store's field tables).

base.json holds the document's frame and shared components; every other fragment holds the
"paths" of one area and the "components" they use. A route's schema is added to its area's
fragment (or a new fragment), then this script is run. A path and method, or a component name,
defined twice is an error. With --check it writes nothing and exits 1 when the .inc is stale
(the lint.openapi test); tests/unit/test_openapi.c checks the document against the router.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src", "serve", "openapi")
DST = os.path.join(ROOT, "src", "serve", "openapi_doc.inc")


def merge():
    with open(os.path.join(SRC, "base.json"), encoding="utf-8") as f:
        doc = json.load(f)
    for name in sorted(os.listdir(SRC)):
        if not name.endswith(".json") or name == "base.json":
            continue
        with open(os.path.join(SRC, name), encoding="utf-8") as f:
            frag = json.load(f)
        extra = set(frag) - {"paths", "components"}
        if extra:
            raise SystemExit("%s: only paths and components belong in a fragment, not %s"
                             % (name, sorted(extra)))
        for path, item in frag.get("paths", {}).items():
            dst = doc["paths"].setdefault(path, {})
            for method, op in item.items():
                if method in dst:
                    raise SystemExit("%s: %s %s is defined twice" % (name, method, path))
                dst[method] = op
        for kind, entries in frag.get("components", {}).items():
            dst = doc["components"].setdefault(kind, {})
            for key, value in entries.items():
                if key in dst:
                    raise SystemExit("%s: components/%s/%s is defined twice" % (name, kind, key))
                dst[key] = value
    return doc


def generate():
    text = json.dumps(merge(), indent=1, ensure_ascii=False, sort_keys=False)
    out = ["/* Generated from the fragments in src/serve/openapi/ by scripts/gen-openapi.py; edit those, then "
           "run it. */"]
    out += [json.dumps(line + "\n", ensure_ascii=False) for line in text.split("\n")]
    return "\n".join(out) + "\n"


def main(argv):
    check = argv[1:] == ["--check"]
    if argv[1:] and not check:
        print("usage: gen-openapi.py [--check]", file=sys.stderr)
        return 2
    text = generate()
    if check:
        try:
            with open(DST, encoding="utf-8", newline="") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            print("src/serve/openapi_doc.inc is not what scripts/gen-openapi.py generates: run it")
            return 1
        return 0
    with open(DST, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
