#!/usr/bin/env python3
"""The first /api/v1/assets/products after `memsync serve` starts (the account's products built,
device counts made distinct from the installs list) on an inventory synced from the simulator.
Prints milliseconds per run and the inventory's size.

    MEMSYNC_BIN=build/memsync python3 bench/bench_products_installs.py [--tenants 20]
        [--devices 400] [--apps 25] [--runs 3] [--other BIN]

--other serves every other run with another build (a before), on the same database.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
import test_api  # noqa: E402
from test_api import Serve, apikey, req  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", default="20")
    ap.add_argument("--devices", default="400")
    ap.add_argument("--apps", default="25")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--other", help="another memsync binary, run in turn with MEMSYNC_BIN")
    a = ap.parse_args()
    sim = harness.Sim("--tenants", a.tenants, "--devices", a.devices, "--apps-per-device", a.apps,
                      "--seed", "5")
    ms = harness.Memsync(sim)
    ms.add_integration("--no-sync")
    ms.run("sync", check=0)
    key = apikey(ms, "read")

    bins = [("this", test_api.BIN)] + ([("other", a.other)] if a.other else [])
    for _ in range(a.runs):
        for label, binpath in bins:
            test_api.BIN = binpath
            srv = Serve(ms)
            t = time.time()
            st, text, _ = req("GET", srv.url + "/api/v1/assets/products?page_size=5", None,
                              {"x-api-key": key})
            ms_taken = (time.time() - t) * 1000
            srv.stop()
            top = json.loads(text)["data"][0]
            print("%s %d %.0f ms (top: %s, %d devices)" % (label, st, ms_taken, top["name"],
                                                           top["device_count"]), flush=True)
    print("devices %s titles %s installs %s" % (
        ms.sql("SELECT count(*) FROM hardware_asset")[0][0],
        ms.sql("SELECT count(*) FROM software_title")[0][0],
        ms.sql("SELECT count(*) FROM software_install")[0][0]))
    sim.stop()


if __name__ == "__main__":
    main()
