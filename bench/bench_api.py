#!/usr/bin/python3
"""API benchmark: `memsync serve` over a large inventory (default 1,000,000 hardware assets:
100 tenants x 10,000 devices synced from `memsync sim`), measured with wrk.

Prints one table row per endpoint: requests/s, mean and p99 latency, errors; then the time and
peak memory of streaming the whole hardware CSV export. Not a test: it prints numbers.

Usage: bench/bench_api.py [--tenants 100] [--devices 10000] [--duration 10] [--connections 16]
                          [--threads 2] [--keep DIR]
Needs wrk (scripts/deps.sh bench). Build first (scripts/build.sh).
"""
import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
from test_api import Serve, apikey  # noqa: E402


def rss_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def wrk(url, key, duration, connections, threads):
    p = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration,
                        "--timeout", "30s", "--latency", "-H", "x-api-key: " + key, url],
                       capture_output=True, text=True)
    out = p.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        sys.stderr.write(out + p.stderr)
        return 0.0, float("nan"), float("nan"), 0
    rps = float(m.group(1))

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
    return rps, mean, p99, int(errs.group(1)) if errs else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=100)
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", help="reuse/keep the work directory (skips the sync when filled)")
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: scripts/deps.sh bench")

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
    srv = Serve(ms)
    key = apikey(ms, "read")

    def get(path):
        r = urllib.request.Request(srv.url + path, headers={"x-api-key": key})
        with urllib.request.urlopen(r, timeout=600) as resp:
            return json.loads(resp.read())

    first = get("/api/v1/assets/hardware?page_size=1")
    total = first["total_count"]
    ids = get("/api/v1/assets/hardware?page_size=1&sort=-id")["data"][0]["id"]
    # A cursor from the last pages, the way a client walking the whole inventory gets it.
    cursor = base64.urlsafe_b64encode(b"k:%d" % (ids - 1000)).decode().rstrip("=")
    clients = get("/api/v1/clients?page_size=200")["data"]
    cid = clients[len(clients) // 2]["id"]
    serial = first["data"][0]["serial_number"] or "ABC"
    endpoints = [
        ("healthz", "/healthz"),
        ("hardware, first page (50)", "/api/v1/assets/hardware"),
        ("hardware, deep keyset page", "/api/v1/assets/hardware?cursor=" + cursor),
        ("hardware, one client", "/api/v1/assets/hardware?filter[client.id]=eq:%d" % cid),
        ("hardware, OS in (2 values)",
         "/api/v1/assets/hardware?filter[operating_system.name]=in:macOS,iOS"),
        ("hardware detail", "/api/v1/assets/hardware/%d" % (ids // 2)),
        ("clients (all)", "/api/v1/clients?page_size=200"),
        ("hardware, sort -last_check_in_at", "/api/v1/assets/hardware?sort=-last_check_in_at"),
        ("hardware, sort +name", "/api/v1/assets/hardware?sort=%2Bname"),
    ]
    # Free-text search reads every row: timed one request at a time, not under load.
    scans = [
        ("hardware, search serial (substring)", "/api/v1/assets/hardware?search=" + serial[:6]),
        ("hardware, like on model", "/api/v1/assets/hardware?filter[model]=like:latitude"),
    ]
    print("%d hardware assets, %d clients; wrk -t%d -c%d -d%ds; serve has 4 threads" %
          (total, len(clients), a.threads, a.connections, a.duration))
    print("| endpoint | req/s | mean ms | p99 ms | non-2xx |")
    print("|---|---:|---:|---:|---:|")
    for name, path in endpoints:
        rps, mean, p99, errs = wrk(srv.url + path, key, a.duration, a.connections, a.threads)
        print("| %s | %.0f | %.1f | %.1f | %d |" % (name, rps, mean, p99, errs), flush=True)
    for name, path in scans:
        times = []
        for _ in range(3):
            t0 = time.monotonic()
            get(path)
            times.append((time.monotonic() - t0) * 1000)
        print("| %s (sequential) | %.1f | %.0f | %.0f | 0 |" %
              (name, 1000 / (sum(times) / len(times)), sum(times) / len(times), max(times)),
              flush=True)
    before = rss_kib(srv.proc.pid, "VmRSS")
    t0 = time.monotonic()
    n = 0
    size = 0
    r = urllib.request.Request(srv.url + "/api/v1/assets/hardware.csv", headers={"x-api-key": key})
    with urllib.request.urlopen(r, timeout=3600) as resp:
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            size += len(chunk)
            n += chunk.count(b"\n")
    dt = time.monotonic() - t0
    print("CSV export: %d rows, %.0f MB in %.1f s (%.0f rows/s); serve RSS %d MiB before, "
          "peak %d MiB" % (n - 1, size / 1e6, dt, (n - 1) / dt, before // 1024,
                           rss_kib(srv.proc.pid, "VmHWM") // 1024))
    srv.stop()
    if not a.keep:
        ms.cleanup()


if __name__ == "__main__":
    main()
