#!/usr/bin/python3
"""Scale-out benchmark: one MSP synced on SQLite, on PostgreSQL directly, and by 1, 2 or 4
`memsync worker` processes sharing a PostgreSQL database.

The MSP is msp-reference's shape scaled up (Zipf-like tenant sizes: a few with thousands of
devices, many with a few dozen); the simulator runs with Microsoft's throttling on and added
latency. For each way of syncing it prints wall time, the lower bound a perfect client needs for
the same workload (bench_sync.py's model), requests, 429s, the peak RSS of each memsync process,
the rows PostgreSQL wrote (pg_stat_database) and whether every tenant's active devices in the
database are exactly the simulator's.

Usage: bench/bench_scale.py [--tenants 2000] [--devices 200000 | --per-tenant N] [--apps 10] [--latency-ms 30]
           [--modes sqlite,pg,w1,w2,w4] [--runs 1] [--compare OTHER_BINARY] [--pg-url URL]
Without --pg-url it starts a throw-away cluster (scripts/pg-test-cluster.sh). With --compare,
each run of this build is followed by the same run of the other binary (interleaved, for a
shared machine). Build first (scripts/build.sh). Not a test: it prints numbers.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from bench_sync import lower_bound  # noqa: E402


def zipf_sizes(tenants, devices):
    """msp-reference's sizes (src/sim/sim_control.c) for any number of tenants and devices."""
    h = sum(1.0 / (i + 1) for i in range(tenants))
    sizes = [max(1, int(devices / h / (i + 1))) for i in range(tenants)]
    sizes[0] += devices - sum(sizes)
    return [sizes[(i * 37) % tenants] if tenants % 37 else sizes[i] for i in range(tenants)]


def timed(cmd, cwd, env):
    """Starts cmd under /usr/bin/time; returns (process, file with its time line)."""
    tf = tempfile.NamedTemporaryFile(prefix="memsync-time-", delete=False)
    tf.close()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tf.name] + cmd, cwd=cwd,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p, tf.name


def finish(p, tfname, timeout):
    out, err = p.communicate(timeout=timeout)
    with open(tfname) as f:
        fields = f.read().split()[-4:]
    os.unlink(tfname)
    rss = int(fields[3]) / 1024.0 if len(fields) == 4 else 0.0
    return p.returncode, rss, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def pg_rows(url):
    """Rows inserted, updated and deleted in url's database so far."""
    p = subprocess.run(["psql", "-At", url, "-c",
                        "SELECT pg_stat_clear_snapshot(); SELECT tup_inserted + tup_updated + "
                        "tup_deleted FROM pg_stat_database WHERE datname = current_database()"],
                       capture_output=True, check=True)
    return int(p.stdout.decode().split()[-1])


def new_memsync(sim, binary, pg_url):
    saved = os.environ.pop("MEMSYNC_TEST_PG_URL", None)
    try:
        if pg_url:
            os.environ["MEMSYNC_TEST_PG_URL"] = pg_url
        ms = harness.Memsync(sim)
    finally:
        os.environ.pop("MEMSYNC_TEST_PG_URL", None)
        if saved is not None:
            os.environ["MEMSYNC_TEST_PG_URL"] = saved
    main_bin = harness.BIN
    harness.BIN = binary
    try:
        ms.add_integration("--no-sync")
    finally:
        harness.BIN = main_bin
    return ms


def run_mode(sim, binary, mode, pg_url, truth, timeout):
    ms = new_memsync(sim, binary, pg_url if mode != "sqlite" else None)
    res = {"mode": mode, "binary": binary, "rss": [], "exit": 0}
    try:
        rows0 = pg_rows(ms.db) if mode != "sqlite" else 0
        sim.control({"op": "reset_stats"})
        t0 = time.monotonic()
        if mode in ("sqlite", "pg"):
            p, tf = timed([binary, "sync", "--full"], ms.dir, ms.env)
            procs = [(p, tf)]
        else:
            code, out, err = ms.run("sync", "--queue", "--full")
            if code != 0:
                res["exit"] = code
                res["err"] = err[-2000:]
                return res
            procs = [timed([binary, "worker", "--once", "--poll-seconds", "1"], ms.dir, ms.env)
                     for _ in range(int(mode[1:]))]
        errs = []
        for p, tf in procs:
            code, rss, out, err = finish(p, tf, timeout)
            res["rss"].append(rss)
            res["exit"] = res["exit"] or code
            errs.append(err)
        res["wall"] = time.monotonic() - t0
        st = sim.stats()
        res["requests"], res["throttled"] = st["total"], st["throttled"]
        res["rows"] = pg_rows(ms.db) - rows0 if mode != "sqlite" else None
        if res["exit"] != 0:
            res["err"] = "\n".join(e[-1500:] for e in errs)
        got = {(r[0], r[1]) for r in ms.sql(
            "SELECT tenant_id, intune_device_id FROM hardware_asset WHERE retired_at IS NULL")}
        res["exact"] = got == truth
        res["missing"] = len(truth - got)
        res["extra"] = len(got - truth)
        return res
    finally:
        if ms.db.startswith("postgresql://"):
            name = ms.db.split("/")[3].split("?")[0]
            subprocess.run(["psql", "-q", pg_url, "-c", "DROP DATABASE IF EXISTS " + name],
                           capture_output=True)
        ms.cleanup()


def sim_truth(sim):
    """(tenant, intune id) of every device, read with throttling off and no latency."""
    sim.control([{"op": "set_latency", "ms": 0}, {"op": "set_throttle", "enabled": False}])
    want = set()
    for t in sim.world()["tenants"]:
        for d in sim.graph_all(t["id"], "/v1.0/deviceManagement/managedDevices?$select=id"):
            want.add((t["id"], d["id"]))
    return want


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=2000)
    ap.add_argument("--devices", type=int, default=200000)
    ap.add_argument("--per-tenant", type=int,
                    help="every tenant this many devices (instead of --devices in Zipf sizes)")
    ap.add_argument("--apps", type=int, default=10)
    ap.add_argument("--latency-ms", type=int, default=30)
    ap.add_argument("--modes", default="sqlite,pg,w1,w2,w4")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--compare", help="another memsync binary, run after each run of this one")
    ap.add_argument("--pg-url")
    ap.add_argument("--export-min", type=int, default=2000,
                    help="tenants this big read apps by report export (the engine's default)")
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--no-warmup", action="store_true", help="skip the unmeasured first sync")
    args = ap.parse_args()

    sizes = ([args.per_tenant] * args.tenants if args.per_tenant else
             zipf_sizes(args.tenants, args.devices))
    sdir = tempfile.mkdtemp(prefix="memsync-scale-")
    scen = os.path.join(sdir, "scenario.json")
    with open(scen, "w") as f:
        json.dump({"seed": 42, "apps_per_device": args.apps,
                   "tenants": [{"devices": n} for n in sizes]}, f)
    cluster = None
    pg_url = args.pg_url
    if pg_url is None and any(m != "sqlite" for m in args.modes.split(",")):
        cluster = os.path.join(sdir, "pg")
        subprocess.run([os.path.join(ROOT, "scripts", "pg-test-cluster.sh"), "start", cluster],
                       check=True)
        with open(os.path.join(cluster, "url")) as f:
            pg_url = f.read().strip()
    sim = harness.Sim("--scenario", scen, "--latency-ms", str(args.latency_ms))
    try:
        truth = sim_truth(sim)
        if not args.no_warmup:
            # The simulator builds each tenant's apps on first use: one unmeasured sync first,
            # so that the first measured run does not pay for it.
            ms = new_memsync(sim, harness.BIN, None)
            ms.run("sync", "--full")
            ms.cleanup()
        sim.control([{"op": "set_latency", "ms": args.latency_ms},
                     {"op": "set_throttle", "enabled": True}])
        lb, reqs = lower_bound(sizes, args.apps > 0, args.latency_ms / 1000.0, args.export_min)
        print("MSP: %d tenants, %d devices (largest %d), %d apps per device, %d ms latency, "
              "throttling on" % (args.tenants, sum(sizes), max(sizes), args.apps,
                                 args.latency_ms))
        print("lower bound of a full sync: %.1f s (%d requests)" % (lb, reqs))
        bins = [harness.BIN] + ([os.path.abspath(args.compare)] if args.compare else [])
        rows = []
        for _ in range(args.runs):
            for mode in args.modes.split(","):
                for b in bins:
                    r = run_mode(sim, b, mode, pg_url, truth, args.timeout)
                    rows.append(r)
                    print("  %-6s %-40s exit %d wall %.1f s" % (
                        mode, b[-40:], r["exit"], r.get("wall", 0)), flush=True)
                    if r["exit"] != 0:
                        print(r.get("err", ""))
        hdr = "%-6s %-8s %8s %7s %9s %6s %-17s %10s %-6s" % (
            "mode", "binary", "wall s", "x LB", "requests", "429s", "peak RSS MiB", "PG rows",
            "exact")
        print()
        print(hdr)
        print("-" * len(hdr))
        for r in rows:
            print("%-6s %-8s %8.1f %7.2f %9d %6d %-17s %10s %-6s" % (
                r["mode"], "this" if r["binary"] == harness.BIN else "compare",
                r.get("wall", 0), r.get("wall", 0) / lb if lb else 0, r.get("requests", 0),
                r.get("throttled", 0), "/".join("%.0f" % x for x in r["rss"]),
                "-" if r.get("rows") is None else str(r["rows"]),
                "yes" if r.get("exact") else "NO (-%d +%d)" % (r.get("missing", 0),
                                                              r.get("extra", 0))))
    finally:
        sim.stop()
        if cluster:
            subprocess.run([os.path.join(ROOT, "scripts", "pg-test-cluster.sh"), "stop",
                            cluster])


if __name__ == "__main__":
    main()
