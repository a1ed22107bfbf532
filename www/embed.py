#!/usr/bin/env python3
"""Turns www/app.css and www/app.js into C string literals (app_css.inc, app_js.inc) that
src/serve/ui.c compiles into the binary. Run after editing either file."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
for src, dst in (("app.css", "app_css.inc"), ("app.js", "app_js.inc")):
    with open(os.path.join(HERE, src), encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = ["/* Generated from %s by www/embed.py; edit that file, then run python3 www/embed.py. */" % src]
    out += [json.dumps(line + "\n", ensure_ascii=False) for line in lines]
    with open(os.path.join(HERE, dst), "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
