#!/usr/bin/env python3
"""Keeps the SETTINGS section of man/memsync.conf.5 equal to `memsync config --man`, which prints
it from the settings table (src/core/config.c), so the page cannot drift from the program.

usage: scripts/man-settings.py MEMSYNC_BINARY           rewrite the section in place
       scripts/man-settings.py --check MEMSYNC_BINARY   exit 1 (with a diff) when it differs
"""
import difflib
import os
import subprocess
import sys

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "man", "memsync.conf.5")
BEGIN = '.\\" BEGIN SETTINGS'
END = '.\\" END SETTINGS'


def main():
    args = sys.argv[1:]
    check = args[:1] == ["--check"]
    if check:
        args = args[1:]
    if len(args) != 1:
        sys.exit(__doc__)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEMSYNC_")}  # defaults only, whatever the caller set
    gen = subprocess.run([args[0], "config", "--man"], check=True, capture_output=True,
                         text=True, env=env).stdout
    with open(PAGE) as f:
        lines = f.read().split("\n")
    b = next(i for i, line in enumerate(lines) if line.startswith(BEGIN))
    e = next(i for i, line in enumerate(lines) if line.startswith(END))
    have = "\n".join(lines[b + 1:e]) + "\n" if e > b + 1 else ""
    if have == gen:
        return 0
    if check:
        sys.stdout.writelines(difflib.unified_diff(
            have.splitlines(True), gen.splitlines(True), "man/memsync.conf.5",
            "memsync config --man"))
        print("man/memsync.conf.5 is out of date: run scripts/man-settings.py BUILD/memsync")
        return 1
    lines[b + 1:e] = gen.rstrip("\n").split("\n")
    with open(PAGE, "w") as f:
        f.write("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
