#!/usr/bin/python3
"""API benchmark: `memsync serve` over a large inventory (default 1,000,000 hardware assets:
500 tenants (clients) x 2,000 devices synced from `memsync sim`), measured with wrk.

Each list row rotates (wrk Lua script, bench/rotate.lua) over many URLs fetched beforehand:
different clients, filters, sorts and the `cursor` pages the API returned for them, page_size
200, so the numbers are not those of one hot row set. Prints one table row per group:
requests/s, mean and p99 latency, errors; then free-text search timed one request at a time
and under load, and the time and peak memory of streaming the whole hardware CSV export.
Not a test: it prints numbers.

Three servers run on the same database: "off" with both caches off (api_cache_mb=0 and
api_row_cache_mb=0: every request reads and writes each row of its page), "rows" with only the
row cache (api_row_cache_mb, default 128 MiB: every request renders its page, from rows rendered
before; primed with one request per URL, whose time is printed, before wrk starts), and "warm"
with the answer cache on too (--cache-mb, primed the same way: whole pages). --cache picks which
are measured.

Usage: bench/bench_api.py [--tenants 500] [--devices 2000] [--duration 10] [--connections 16]
                          [--threads 2] [--keep DIR] [--only GROUP,...]
                          [--cache off,rows,on] [--cache-mb 256] [--save-urls FILE]
Needs wrk (scripts/deps.sh bench). Build first (scripts/build.sh). --bin (or MEMSYNC_BIN) picks
the binary, build/memsync by default.
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
import test_api  # noqa: E402
from test_api import Serve, apikey  # noqa: E402

PAGE = 200


def rss_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def wrk(base, paths, key, a, pid):
    """Runs wrk over paths (rotated); returns req/s, mean ms, p99 ms, non-2xx, server CPU ms
    per request."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(paths) + "\n")
        lst = f.name
    c0 = cpu_s(pid)
    p = subprocess.run(["wrk", "-t%d" % a.threads, "-c%d" % a.connections, "-d%ds" % a.duration,
                        "--timeout", "30s", "--latency", "-H", "x-api-key: " + key,
                        "-s", os.path.join(HERE, "rotate.lua"), base, "--", lst],
                       capture_output=True, text=True)
    c1 = cpu_s(pid)
    os.unlink(lst)
    out = p.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        sys.stderr.write(out + p.stderr)
        return 0.0, float("nan"), float("nan"), 0, float("nan")
    rps = float(m.group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))

    def ms(s):
        m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
        if m is None:  # no request finished ("-nan")
            return float("nan")
        v, unit = m.groups()
        return float(v) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]

    mean = ms(re.search(r"Latency\s+(\S+)", out).group(1))
    p99 = ms(re.search(r"99%\s+(\S+)", out).group(1))
    # Requests still running when wrk stops would hold the server's threads for the next row.
    time.sleep(2)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (rps, mean, p99, int(errs.group(1)) if errs else 0,
            (c1 - c0) * 1000 / total if total else float("nan"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=500)
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", help="reuse/keep the work directory (skips the sync when filled)")
    ap.add_argument("--only", help="comma list of group names to run (default: all)")
    ap.add_argument("--cache", default="off,rows,on",
                    help="comma list of the servers measured: off (no cache), rows (row cache "
                    "only), on (answer cache); 'both' is off,on")
    ap.add_argument("--cache-mb", type=int, default=256,
                    help="api_cache_mb of the cached server (the mixed row's 331 pages are "
                    "about 80 MB)")
    ap.add_argument("--save-urls", help="write the prepared URLs of every group to this file "
                    "(JSON: group -> paths), for profiling or comparing builds")
    ap.add_argument("--bin", default=os.environ.get("MEMSYNC_BIN") or
                    os.path.join(HERE, "..", "build", "memsync"))
    a = ap.parse_args()
    modes = {"both": "off,on", "all": "off,rows,on"}.get(a.cache, a.cache).split(",")
    if not modes or any(m not in ("off", "rows", "on") for m in modes):
        sys.exit("--cache: a comma list of off, rows, on")
    harness.BIN = test_api.BIN = os.path.abspath(a.bin)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: scripts/deps.sh bench")
    random.seed(1)

    work = a.keep or None
    if work is not None and os.path.exists(os.path.join(work, "memsync.db")):
        ms = harness.Memsync(None, workdir=work)
    else:
        sim = harness.Sim("--tenants", str(a.tenants), "--devices", str(a.devices),
                          "--apps-per-device", "0", "--no-throttle", "--seed", "1")
        ms = harness.Memsync(sim, workdir=work)
        os.makedirs(ms.dir, exist_ok=True)
        t0 = time.monotonic()
        ms.add_integration("--name", "bench", check=0)
        print("sync of %d devices: %.1f s" % (a.tenants * a.devices, time.monotonic() - t0))
        # The simulator's world is large; it is not needed (nor its CPU) while measuring.
        sim.stop()
    # Any command applies pending migrations; serve must not spend its start-up timeout on them.
    t0 = time.monotonic()
    ms.run("clients", check=0, timeout=3600)
    print("open (migrations): %.1f s" % (time.monotonic() - t0))
    # wrk sends far more than a key's rate limit allows: these measure answers, not refusals.
    nolimit = {"MEMSYNC_API_RATE_PER_MINUTE": "0"}
    bare = Serve(ms, name="serve-bare", env=dict(nolimit, MEMSYNC_API_CACHE_MB="0",
                                                 MEMSYNC_API_ROW_CACHE_MB="0"))
    srv = Serve(ms, name="serve-nocache", env=dict(nolimit, MEMSYNC_API_CACHE_MB="0"))
    warm = Serve(ms, name="serve-cache", env=dict(nolimit, MEMSYNC_API_CACHE_MB=str(a.cache_mb)))
    key = apikey(ms, "read")
    if not ms.db.startswith("postgresql://"):
        # serve's scheduler feeds the search index between syncs; measure once it is current.
        t0 = time.monotonic()
        left0 = ms.sql("select count(*) from hardware_asset where search_indexed is null")[0][0]
        left = left0
        while left > 0:
            time.sleep(1)
            left = ms.sql("select count(*) from hardware_asset where search_indexed is null")[0][0]
        if left0:
            dt = time.monotonic() - t0
            print("search index: %d assets added by serve in %.1f s (%.0f us each)" %
                  (left0, dt, dt * 1e6 / left0))

    def get(path):
        r = urllib.request.Request(bare.url + path, headers={"x-api-key": key})
        with urllib.request.urlopen(r, timeout=600) as resp:
            return json.loads(resp.read())

    hw = "/api/v1/assets/hardware?page_size=%d" % PAGE
    q = urllib.parse.quote

    def pages(path, n):
        """path and the next n-1 pages the API links from it."""
        out = [path]
        for _ in range(n - 1):
            cur = get(out[-1])["next_cursor"]
            if cur is None:
                break
            out.append(path + "&cursor=" + cur)
        return out

    total = get(hw.replace("=%d" % PAGE, "=1"))["total_count"]
    resp = get("/api/v1/clients?page_size=200")
    clients = resp["data"]
    while resp["next_cursor"] is not None:
        resp = get("/api/v1/clients?page_size=200&cursor=" + resp["next_cursor"])
        clients += resp["data"]
    cids = [c["id"] for c in clients]
    maxid = get(hw + "&sort=-id")["data"][0]["id"]
    oses = ["Windows", "macOS", "iOS", "iPadOS", "Android"]
    pick = random.Random(2)

    t0 = time.monotonic()
    groups = []
    urls = []
    searches = []
    if a.only != "csv":
        for cid in pick.sample(cids, 40):
            urls += pages(hw + "&filter[client.id]=eq:%d&sort=-last_check_in_at" % cid, 3)
        groups.append(("client", "one client, sort -last_check_in_at (3 pages)", urls))
        urls = []
        for cid in pick.sample(cids, 40):
            urls += pages(hw + "&filter[client.id]=eq:%d&sort=%s" % (cid, q("+name")), 3)
        groups.append(("client_name", "one client, sort +name (3 pages)", urls))
        urls = []
        for i in range(10):
            two = pick.sample(oses, 2)
            urls += pages(hw + "&filter[operating_system.name]=in:%s&sort=-last_check_in_at" %
                          ",".join(two), 3)
        groups.append(("os_in", "OS in (2 values), sort -last_check_in_at (3 pages)", urls))
        urls = []
        for os_ in oses:
            urls += pages(hw + "&filter[operating_system.name]=eq:%s&sort=%s" % (os_, q("+name")), 3)
        groups.append(("os_name", "OS eq, sort +name (3 pages)", urls))
        urls = []
        for state in ("compliant", "noncompliant"):
            # Keyset pages (default order) deep into the list: start from cursors near ids across
            # the table, the way a client walking the inventory gets them.
            urls += pages(hw + "&filter[compliance_state]=eq:%s" % state, 3)
            for _ in range(20):
                first = get(hw + "&filter[compliance_state]=eq:%s&filter[id]=gt:%d" %
                            (state, pick.randrange(maxid)))
                if first["next_cursor"] is not None:
                    urls.append(hw + "&filter[compliance_state]=eq:%s&cursor=%s" %
                                (state, first["next_cursor"]))
        groups.append(("compliance", "compliance eq, id order (keyset pages)", urls))
        mixed = [u for _, _, g in groups for u in g]
        groups.append(("mixed", "all list rows above, rotated together", mixed))
        groups.append(("detail", "hardware detail (200 ids)",
                       ["/api/v1/assets/hardware/%d" % pick.randrange(1, maxid) for _ in range(200)]))
        searches = []
        for d in pick.sample(get(hw + "&filter[id]=gt:%d" % pick.randrange(maxid))["data"], 10):
            searches.append((d.get("serial_number") or "X")[:6])
            searches.append((d.get("name") or "X")[3:8])
        searches += ["latitude", "jürgen", "thinkpad t14"]
        groups.append(("search", "search= (%d texts), first page" % len(searches),
                       [hw + "&search=" + q(s) for s in searches]))
    print("URLs prepared in %.1f s" % (time.monotonic() - t0))
    if a.save_urls:
        with open(a.save_urls, "w") as f:
            json.dump({name: paths for name, _, paths in groups}, f, indent=1)
    if a.only:
        wanted = a.only.split(",")
        groups = [g for g in groups if g[0] in wanted]

    print("%d hardware assets, %d clients; wrk -t%d -c%d -d%ds, page_size=%d; load %s; cached "
          "server api_cache_mb=%d" % (total, len(clients), a.threads, a.connections, a.duration,
                                      PAGE, os.getloadavg()[0], a.cache_mb))
    # Sequential search timings first (cold: no count cached yet).
    if not a.only or "search" in a.only:
        times = []
        for s in searches[:6]:
            t0 = time.monotonic()
            get(hw + "&search=" + q(s))
            times.append((time.monotonic() - t0) * 1000)
        slow = searches[times.index(max(times))]
        print("search, one at a time (cold): mean %.1f ms, max %.1f ms (%r)" %
              (sum(times) / len(times), max(times), slow))
    print("| rows | URLs | cache | req/s | mean ms | p99 ms | non-2xx | server CPU ms/req |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    primed = []
    for name, desc, paths in groups:
        runs = []
        if "off" in modes or name == "detail":
            runs.append(("off", bare))
        if "rows" in modes and name != "detail":  # the detail reads one row, in full
            runs.append(("rows", srv))
        if "on" in modes and name != "detail":  # nor is it an answer the cache keeps
            runs.append(("warm", warm))
        for label, s in runs:
            if label != "off":
                t0 = time.monotonic()
                for p in paths:  # one miss per URL (page or rows), then wrk measures
                    r = urllib.request.Request(s.url + p, headers={"x-api-key": key})
                    with urllib.request.urlopen(r, timeout=600) as resp:
                        resp.read()
                primed.append("%s %s: %d pages one at a time in %.2f s (%.1f ms each)" %
                              (name, label, len(paths), time.monotonic() - t0,
                               (time.monotonic() - t0) * 1000 / len(paths)))
            rps, mean, p99, errs, cpu = wrk(s.url, paths, key, a, s.proc.pid)
            print("| %s | %d | %s | %.0f | %.1f | %.1f | %d | %.2f |" %
                  (desc, len(paths), label, rps, mean, p99, errs, cpu), flush=True)
    for line in primed:
        print("primed, " + line)
    st, _, text, _ = test_api.api(srv, "GET", "/metrics", key)
    m = dict(re.findall(r"^(memsync_api_row_cache_\w+) (\d+)$", text, re.M))
    if m and "rows" in modes:
        print("row cache: %s MB of %s MB used, %s rows, %s hits, %s misses, %s evictions" %
              (int(m["memsync_api_row_cache_bytes"]) // 1000000,
               int(m["memsync_api_row_cache_max_bytes"]) // 1000000,
               m["memsync_api_row_cache_entries"], m["memsync_api_row_cache_hits_total"],
               m["memsync_api_row_cache_misses_total"],
               m["memsync_api_row_cache_evictions_total"]))
    st, _, text, _ = test_api.api(warm, "GET", "/metrics", key)
    m = dict(re.findall(r"^(memsync_api_cache_\w+) (\d+)$", text, re.M))
    if m and "on" in modes:
        print("cached server: %s MB of %s MB used, %s entries, %s hits, %s misses, %s evictions" %
              (int(m["memsync_api_cache_bytes"]) // 1000000,
               int(m["memsync_api_cache_max_bytes"]) // 1000000, m["memsync_api_cache_entries"],
               m["memsync_api_cache_hits_total"], m["memsync_api_cache_misses_total"],
               m["memsync_api_cache_evictions_total"]))
    if not a.only or "csv" in a.only:
        # Anonymous memory (heap): SQLite's memory-mapped database file is shared file pages,
        # which VmRSS counts once per connection that touched them.
        import threading
        before = rss_kib(bare.proc.pid, "RssAnon")
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.wait(0.05):
                peak[0] = max(peak[0], rss_kib(bare.proc.pid, "RssAnon"))

        th = threading.Thread(target=sample)
        th.start()
        t0 = time.monotonic()
        n = 0
        size = 0
        r = urllib.request.Request(bare.url + "/api/v1/assets/hardware.csv",
                                   headers={"x-api-key": key})
        with urllib.request.urlopen(r, timeout=3600) as resp:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                size += len(chunk)
                n += chunk.count(b"\n")
        dt = time.monotonic() - t0
        done.set()
        th.join()
        print("CSV export: %d lines, %.0f MB in %.1f s (%.0f lines/s); serve anonymous RSS "
              "%d MiB before, peak %d MiB during the export (VmRSS %d MiB, incl. the mapped "
              "database)" % (n - 1, size / 1e6, dt, (n - 1) / dt, before // 1024, peak[0] // 1024,
                             rss_kib(bare.proc.pid, "VmRSS") // 1024))
    bare.stop()
    srv.stop()
    warm.stop()
    if not a.keep:
        ms.cleanup()


if __name__ == "__main__":
    main()
