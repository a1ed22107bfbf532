#!/usr/bin/python3
"""Instructions per API list request, under callgrind: a count that the machine's load does not
move, for comparing two builds where bench_api.py's requests per second are too noisy.

Starts `memsync serve` under `valgrind --tool=callgrind` on a database bench_api.py filled (its
--keep DIR), both caches off (every request reads and renders each row of its page), sends no
request, stops it; then again with N list requests (first pages of one client sorted by check-in,
one OS sorted by name, one compliance state, the clients list), one at a time. Prints the
instructions of each run and (total - start-up) / N. Not a test: it prints numbers.

With --derived, the requests are lists with the filters of the insight figures instead
(stale_days, os_support, serial, encrypted, compliance: every row tested), which builds before
those filters answer as unfiltered lists: measure them with the newer build only.

Usage: bench/bench_api_callgrind.py --keep DIR [--requests 100] [--bin BIN] [--compare BIN]
                                    [--derived]
A newer build migrates the database; run the older one first when comparing. Needs valgrind
(scripts/deps.sh bench).
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402

HW = "/api/v1/assets/hardware?page_size=200"


def urls(clients):
    u = [HW + "&filter[client.id]=eq:%d&sort=-last_check_in_at" % c for c in clients[:10]]
    u += [HW + "&filter[operating_system.name]=eq:%s&sort=%%2Bname" % o
          for o in ("Windows", "macOS", "iOS", "iPadOS", "Android")]
    u += [HW + "&filter[compliance_state]=eq:compliant",
          HW + "&filter[compliance_state]=eq:noncompliant",
          HW + "&sort=-last_check_in_at", "/api/v1/clients?page_size=200"]
    return u


def derived_urls(clients):
    u = [HW + "&filter[client.id]=eq:%d&stale_days=30" % c for c in clients[:5]]
    u += [HW + "&filter[client.id]=eq:%d&os_support=past" % c for c in clients[:5]]
    u += [HW + "&serial=shared", HW + "&encrypted=false", HW + "&compliance=not_compliant"]
    return u


def run(binary, ms, key, paths, n, tmp):
    url_file = os.path.join(tmp, "serve.url")
    if os.path.exists(url_file):
        os.unlink(url_file)
    out = os.path.join(tmp, "cg.%d.out" % n)
    env = dict(ms.env)
    env.update({"MEMSYNC_API_CACHE_MB": "0", "MEMSYNC_API_ROW_CACHE_MB": "0"})
    p = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, binary,
                          "serve", "--listen", "127.0.0.1:0", "--url-file", url_file],
                         cwd=ms.dir, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not os.path.exists(url_file):
        if p.poll() is not None or time.time() > deadline:
            sys.exit("serve did not start under valgrind")
        time.sleep(0.2)
    time.sleep(1)
    with open(url_file) as f:
        base = f.read().strip()
    for i in range(n):
        r = urllib.request.Request(base + paths[i % len(paths)], headers={"x-api-key": key})
        with urllib.request.urlopen(r, timeout=600) as resp:
            resp.read()
    p.terminate()
    p.wait()
    total = 0
    for f in glob.glob(out + "*"):
        with open(f) as fh:
            for line in fh:
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
                    break
        os.unlink(f)
    return total


def measure(binary, work, n, derived=False):
    ms = harness.Memsync(None, workdir=work)
    env = dict(os.environ)
    env.update(ms.env)

    def cli(*args):
        return subprocess.run([binary] + list(args), cwd=ms.dir, env=env, capture_output=True,
                              text=True, check=True).stdout

    key = cli("apikey", "create", "--name", "callgrind-bench-%d" % os.getpid(), "--scope",
              "read").strip()
    clients = [c["id"] for c in json.loads(cli("clients", "--format", "json"))]
    with tempfile.TemporaryDirectory() as tmp:
        pick = derived_urls if derived else urls
        idle = run(binary, ms, key, pick(clients), 0, tmp)
        busy = run(binary, ms, key, pick(clients), n, tmp)
    print("%s: start-up %d, with %d requests %d: %d instructions per request" %
          (binary, idle, n, busy, (busy - idle) // n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", required=True, help="a work directory bench_api.py filled")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--bin", default=os.environ.get("MEMSYNC_BIN") or
                    os.path.join(HERE, "..", "build", "memsync"))
    ap.add_argument("--compare", metavar="BIN", help="an older build, measured first")
    ap.add_argument("--derived", action="store_true",
                    help="lists with the insight figures' filters (newer builds only)")
    a = ap.parse_args()
    if a.compare:
        measure(a.compare, a.keep, a.requests)
    measure(a.bin, a.keep, a.requests, a.derived)


if __name__ == "__main__":
    main()
