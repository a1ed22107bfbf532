#!/usr/bin/env python3
"""Turns www/app.css and www/app.js into C string literals (app_css.inc, app_js.inc) that
src/serve/ui.c compiles into the binary, and docs/SETUP.md into the HTML of the UI's help page
(setup_html.inc, src/serve/ui_help.c; www/mdhtml.py). Run after editing any of them.

With --check it writes nothing and exits 1 when an .inc file differs from what it would
generate (the lint.embed test), so an edit to app.css or app.js cannot ship without its .inc."""
import json
import os
import sys

import mdhtml

HERE = os.path.dirname(os.path.abspath(__file__))


def generate(src):
    with open(os.path.join(HERE, src), encoding="utf-8") as f:
        text = f.read()
    if src.endswith(".md"):  # a document of docs/, as the HTML of the UI's help page
        text = mdhtml.convert(text) + "\n"
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = ["/* Generated from %s by www/embed.py; edit that file, then run python3 www/embed.py. */" % src]
    out += [json.dumps(line + "\n", ensure_ascii=False) for line in lines]
    return "\n".join(out) + "\n"


def main(argv):
    check = argv[1:] == ["--check"]
    if argv[1:] and not check:
        print("usage: embed.py [--check]", file=sys.stderr)
        return 2
    stale = []
    for src, dst in (("app.css", "app_css.inc"), ("app.js", "app_js.inc"),
                     ("../docs/SETUP.md", "setup_html.inc")):
        text = generate(src)
        path = os.path.join(HERE, dst)
        if check:
            try:
                with open(path, encoding="utf-8", newline="") as f:
                    current = f.read()
            except FileNotFoundError:
                current = None
            if current != text:
                stale.append(dst)
            continue
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    for dst in stale:
        print("www/%s is not what www/embed.py generates: run python3 www/embed.py" % dst)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
