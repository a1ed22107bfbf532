#!/usr/bin/python3
"""Sync benchmark: a full and an incremental sync of a reference MSP on `memsync sim`.

Prints a table: wall time, requests, 429s received, peak RSS, CPU time, CPU per device and per
install, and the ratio of wall time to a lower bound computed from the same workload (each
tenant's request chain x latency, and Intune's per-tenant and global throttling limits).

Usage: bench/bench_sync.py [--scenario msp-reference] [--latency-ms 30] [--no-throttle]
                           [--tenants N --devices M --apps K] [--parallel P]
Build first (scripts/build.sh). Not a test: it prints numbers, it asserts nothing.
"""
import argparse
import json
import math
import statistics
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402

INTUNE_LIMIT, INTUNE_WINDOW = 2000, 20.0
GLOBAL_LIMIT, GLOBAL_WINDOW = 130000, 10.0


def run_measured(cmd, cwd, env):
    """Runs cmd under /usr/bin/time; returns (exit code, wall s, cpu s, peak RSS MiB, stdout,
    stderr). A small `time` parent matters: ru_maxrss survives exec, so a child forked from
    this (large) Python process would report Python's RSS."""
    tf = tempfile.NamedTemporaryFile(prefix="memsync-time-", delete=False)
    tf.close()
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tf.name] + cmd, cwd=cwd,
                       env=env, capture_output=True)
    wall = time.monotonic() - t0
    with open(tf.name) as f:
        fields = f.read().split()[-4:]
    os.unlink(tf.name)
    cpu = float(fields[1]) + float(fields[2])
    run_measured.user_sys = (float(fields[1]), float(fields[2]))
    return (p.returncode, wall, cpu, int(fields[3]) / 1024.0, p.stdout.decode(),
            p.stderr.decode())


def lower_bound(sizes, apps, latency_s, export_min=None):
    """Seconds a perfect client needs: per tenant, its dependent chain of round trips (token,
    organization, device pages, then the app requests) and Intune's 2000 per 20 s; across
    tenants, the global 130,000 per 10 s. Apps are read per device (one Intune request each,
    batched 20 per call) or, for tenants of at least export_min devices, from one report export
    (create, two polls - the simulator finishes a job on its second poll -, download)."""
    worst = 0.0
    total = 0
    for n in sizes:
        pages = max(1, math.ceil(n / 1000))
        if not apps:
            app_reqs, app_chain = 0, 0
        elif export_min is not None and n >= export_min:
            app_reqs, app_chain = 3, 4
        else:
            app_reqs, app_chain = n, 1
        intune = pages + app_reqs
        chain = (2 + pages + app_chain) * latency_s
        throttle = math.floor(max(intune - 1, 0) / INTUNE_LIMIT) * INTUNE_WINDOW
        worst = max(worst, chain + throttle)
        total += intune + 2
    glob = math.floor(max(total - 1, 0) / GLOBAL_LIMIT) * GLOBAL_WINDOW
    return max(worst, glob), total


def cpu_table(sim, devices, installs, args):
    """CPU per device and per install at 0 ms latency without throttling, each on a fresh
    database: a devices-only full sync, then a full sync with software; --cpu-runs times each,
    interleaved (and with --compare, each run of this build followed by the same run of the
    other, which the simulator of this build serves too). The median is the number to quote on
    a shared machine; the minimum is the least disturbed run."""
    sim.control([{"op": "set_latency", "ms": 0}, {"op": "set_throttle", "enabled": False}])
    bins = [harness.BIN] + ([os.path.abspath(args.compare)] if args.compare else [])
    res = {(b, k): [] for b in bins for k in ("devices", "software")}
    for _ in range(max(args.cpu_runs, 1)):
        for kind, extra in (("devices", ["--no-software"]), ("software", [])):
            for b in bins:
                ms = harness.Memsync(sim)
                main_bin = harness.BIN
                try:
                    # Each build creates its own database: their schema versions may differ.
                    harness.BIN = b
                    ms.add_integration("--no-sync")
                    harness.BIN = main_bin
                    code, wall, cpu, rss, out, err = run_measured(
                        [b, "sync", "--full"] + extra, ms.dir, ms.env)
                    if code != 0:
                        print("%s sync exit %d:\n%s" % (kind, code, err[-2000:]))
                    if kind == "software" and installs is None:
                        installs = sum(s["device_count"] for s in ms.json(
                            "assets", "software", "--format", "json"))
                    res[(b, kind)].append((cpu, wall, rss) + run_measured.user_sys)
                finally:
                    harness.BIN = main_bin
                    ms.cleanup()
    for b in bins:
        print()
        print("CPU at 0 ms latency, no throttling (fresh database each, %d run(s) each), %s:" %
              (len(res[(b, "devices")]), b))
        hdr = "%-14s %8s %8s %8s %8s %9s %12s" % ("", "CPU s", "user s", "sys s", "wall s",
                                                    "RSS MiB", "per unit")
        print(hdr)
        print("-" * len(hdr))
        dcpu = [r[0] for r in res[(b, "devices")]]
        scpu = [r[0] for r in res[(b, "software")]]
        dmed = statistics.median(dcpu)
        for kind in ("devices", "software"):
            for i, (cpu, wall, rss, user, sys_) in enumerate(res[(b, kind)]):
                if kind == "devices":
                    unit = "%.1f us/dev" % (cpu * 1e6 / max(devices, 1))
                else:
                    unit = "%.2f us/inst" % ((cpu - dmed) * 1e6 / max(installs, 1))
                print("%-14s %8.2f %8.2f %8.2f %8.2f %9.1f %12s" % (
                    "%s #%d" % (kind, i + 1), cpu, user, sys_, wall, rss, unit))
        print("  per device : median %.1f us, min %.1f us" % (
            dmed * 1e6 / max(devices, 1), min(dcpu) * 1e6 / max(devices, 1)))
        print("  per install (beyond the devices' median): median %.2f us, min %.2f us" % (
            (statistics.median(scpu) - dmed) * 1e6 / max(installs, 1),
            (min(scpu) - dmed) * 1e6 / max(installs, 1)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="msp-reference")
    ap.add_argument("--tenants", type=int)
    ap.add_argument("--devices", type=int)
    ap.add_argument("--apps", type=int, default=50)
    ap.add_argument("--latency-ms", type=int, default=30)
    ap.add_argument("--no-throttle", action="store_true")
    ap.add_argument("--parallel", type=int, default=0)
    ap.add_argument("--skip-cpu", action="store_true", help="skip the 0 ms CPU table")
    ap.add_argument("--cpu-runs", type=int, default=3, help="runs of each CPU measurement")
    ap.add_argument("--compare", metavar="BIN",
                    help="another memsync build measured in the CPU table, run for run")
    ap.add_argument("--cpu-only", action="store_true",
                    help="only the 0 ms CPU table (no full and incremental sync rows)")
    ap.add_argument("--app-strategy", default="auto", choices=["auto", "per-device", "export"])
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "memsync"))
    args = ap.parse_args()
    harness.BIN = os.path.abspath(args.bin)

    sim_args = ["--latency-ms", str(args.latency_ms)]
    if args.tenants:
        sim_args += ["--tenants", str(args.tenants), "--devices", str(args.devices or 100),
                     "--apps-per-device", str(args.apps)]
    else:
        sim_args += ["--scenario", args.scenario]
    if args.no_throttle:
        sim_args.append("--no-throttle")
    sim = harness.Sim(*sim_args)
    ms = harness.Memsync(sim)
    try:
        world = sim.world()["tenants"]
        sizes = [t["devices"] for t in world]
        apps = args.apps
        if args.cpu_only:
            print("workload: %d tenants, %d devices (largest %d)" % (
                len(sizes), sum(sizes), max(sizes)))
            cpu_table(sim, sum(sizes), None, args)
            return
        ms.add_integration("--no-sync")
        rows = []
        for kind in ("full", "incremental"):
            sim.control({"op": "reset_stats"})
            cmd = [harness.BIN, "sync", "--" + kind, "--app-strategy", args.app_strategy]
            if args.parallel:
                cmd += ["--parallel", str(args.parallel)]
            code, wall, cpu, rss, out, err = run_measured(cmd, ms.dir, ms.env)
            stats = sim.stats()
            rows.append({"kind": kind, "exit": code, "wall": wall, "cpu": cpu,
                         "rss_mib": rss, "requests": stats["total"],
                         "throttled": stats["throttled"], "out": out.strip(), "err": err[-2000:]})
        installs = sum(s["device_count"] for s in ms.json("assets", "software", "--format", "json"))
        devices = sum(sizes)
        export_min = {"auto": 2000, "export": 1, "per-device": None}[args.app_strategy]
        lb, lb_reqs = lower_bound(sizes, apps, args.latency_ms / 1000.0, export_min)
        print("workload: %d tenants, %d devices (largest %d), %d installs, latency %d ms, "
              "throttling %s" % (len(sizes), devices, max(sizes), installs, args.latency_ms,
                                 "off" if args.no_throttle else "Microsoft's limits"))
        print("app strategy: %s; lower bound for a full sync with it: %.1f s (%d requests)" % (
            args.app_strategy, lb, lb_reqs))
        print()
        hdr = "%-12s %5s %9s %9s %7s %9s %9s %10s" % (
            "sync", "exit", "wall s", "requests", "429s", "RSS MiB", "CPU s", "ratio LB")
        print(hdr)
        print("-" * len(hdr))
        for r in rows:
            full = r["kind"] == "full"
            print("%-12s %5d %9.2f %9d %7d %9.1f %9.2f %10s" % (
                r["kind"], r["exit"], r["wall"], r["requests"], r["throttled"], r["rss_mib"],
                r["cpu"], "%.2f" % (r["wall"] / lb) if full and lb > 0 else "-"))
        print()
        print("incremental / full requests: %.1f %%" % (
            100.0 * rows[1]["requests"] / max(rows[0]["requests"], 1)))
        if not args.skip_cpu:
            cpu_table(sim, devices, installs, args)
        for r in rows:
            if r["exit"] != 0:
                print("%s sync exit %d:\n%s" % (r["kind"], r["exit"], r["err"]))
    finally:
        sim.stop()
        ms.cleanup()


if __name__ == "__main__":
    main()
