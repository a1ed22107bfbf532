#!/usr/bin/env python3
"""Cost of a shallow and a deep page of a sorted hardware list, one request at a time.

Runs `memsync serve` (answer cache off) on an existing database (bench_api.py --keep DIR builds
one; pass a copy: an API key is added to it), walks each sorted list's next_cursor to page
--deep, then fetches page 1 and page --deep --repeat times each, interleaved, and prints the
median and minimum wall time per request and the server's CPU time per request (utime + stime
from /proc, over all repeats).

    bench/bench_deep_page.py --dir /tmp/keyset-bench --deep 500
    MEMSYNC_BIN=/tmp/base/memsync bench/bench_deep_page.py --dir /tmp/keyset-bench --positional

--positional builds the deep page's cursor as the positional cursor older builds answered
("o:OFFSET"), instead of walking (a base build's cursors are positional anyway; walking 500
pages of OFFSET costs minutes).
"""
import argparse
import base64
import os
import statistics
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
from harness import Memsync  # noqa: E402
from test_api import Serve, apikey, get_json  # noqa: E402


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="directory holding memsync.db (a copy)")
    ap.add_argument("--db", help="a database URL instead of DIR/memsync.db (PostgreSQL)")
    ap.add_argument("--deep", type=int, default=500, help="page number of the deep page")
    ap.add_argument("--page-size", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--positional", action="store_true")
    ap.add_argument("--sorts", default="+name,-last_check_in_at,-name,+last_check_in_at")
    ap.add_argument("--bin", default=os.environ.get("MEMSYNC_BIN") or
                    os.path.join(HERE, "..", "build", "memsync"))
    a = ap.parse_args()
    harness.BIN = a.bin
    import test_api
    test_api.BIN = a.bin
    ms = Memsync(workdir=a.dir)
    if a.db:
        ms.db = ms.env["MEMSYNC_DB"] = a.db
    srv = Serve(ms, name="serve-deep", env={"MEMSYNC_API_CACHE_MB": "0"})
    key = apikey(ms, "read")
    hz = os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/loadavg") as f:
            print("bin %s, load average %s" % (a.bin, " ".join(f.read().split()[:3])))
        for sort in a.sorts.split(","):
            s = urllib.parse.quote(sort, safe="-")
            base = "/api/v1/assets/hardware?page_size=%d&sort=%s" % (a.page_size, s)
            first = get_json(srv, base, key)
            if a.positional:
                raw = ("o:%d" % ((a.deep - 1) * a.page_size)).encode()
                cur = base64.urlsafe_b64encode(raw).decode().rstrip("=")
            else:
                t0 = time.time()
                cur = first["next_cursor"]
                for _ in range(a.deep - 2):
                    cur = get_json(srv, base + "&cursor=" + urllib.parse.quote(cur),
                                   key)["next_cursor"]
                print("  %s: walked to page %d in %.1f s" % (sort, a.deep, time.time() - t0))
            deep = base + "&cursor=" + urllib.parse.quote(cur)
            res = {}
            for name, url in (("page 1", base), ("page %d" % a.deep, deep)):
                get_json(srv, url, key)  # warm: the count is cached after the first
            walls = {"page 1": [], "page %d" % a.deep: []}
            cpu = {k: 0 for k in walls}
            for _ in range(a.repeat):
                for name, url in (("page 1", base), ("page %d" % a.deep, deep)):
                    c0 = cpu_ticks(srv.proc.pid)
                    t0 = time.perf_counter()
                    js = get_json(srv, url, key)
                    walls[name].append(time.perf_counter() - t0)
                    cpu[name] += cpu_ticks(srv.proc.pid) - c0
                    res[name] = js["data"][0]["id"] if js["data"] else None
            for name in walls:
                w = walls[name]
                print("  sort=%-18s %-9s wall median %8.1f ms  min %8.1f ms  server CPU %8.1f "
                      "ms/req" % (sort, name, statistics.median(w) * 1000, min(w) * 1000,
                                  cpu[name] * 1000.0 / hz / a.repeat))
        with open("/proc/loadavg") as f:
            print("load average at the end %s" % " ".join(f.read().split()[:3]))
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
