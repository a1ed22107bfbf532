#!/usr/bin/python3
"""Fetches the same API pages from two running `memsync serve` (two builds on one database) and
checks the answers are byte for byte the same: status, Content-Type and body. For a change to
how pages are rendered. Not a test: needs a prepared database and URLs.

Usage: bench/compare_pages.py --urls URLS.json --key API_KEY BASE_URL OTHER_URL
URLS.json is what bench/bench_api.py --save-urls writes (group -> paths); every group is
fetched. Exit status 1 when any page differs.
"""
import argparse
import json
import sys
import urllib.error
import urllib.request


def fetch(base, path, key):
    r = urllib.request.Request(base + path, headers={"x-api-key": key})
    try:
        with urllib.request.urlopen(r, timeout=600) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--urls", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("base")
    ap.add_argument("other")
    a = ap.parse_args()
    with open(a.urls) as f:
        groups = json.load(f)
    seen = set()
    pages = same = 0
    size = 0
    for name, paths in groups.items():
        for p in paths:
            if p in seen:
                continue
            seen.add(p)
            x = fetch(a.base, p, a.key)
            y = fetch(a.other, p, a.key)
            pages += 1
            size += len(x[2])
            if x == y:
                same += 1
                continue
            at = next((i for i in range(min(len(x[2]), len(y[2]))) if x[2][i] != y[2][i]),
                      min(len(x[2]), len(y[2])))
            print("DIFFERS (%s) %s: status %s/%s, %d/%d bytes, first difference at %d: %r / %r" %
                  (name, p, x[0], y[0], len(x[2]), len(y[2]), at, x[2][at:at + 60],
                   y[2][at:at + 60]))
    print("%d pages, %d identical, %.1f MB compared" % (pages, same, size / 1e6))
    sys.exit(0 if same == pages else 1)


if __name__ == "__main__":
    main()
