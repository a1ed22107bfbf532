#!/usr/bin/env python3
"""Software across clients on a large inventory: the first /api/v1/assets/products after a
change (the account's products computed from every title) and the answers after it (from
memory), on a database grown to CLIENTS clients with TITLES titles each.

A small sync against the simulator makes the schema and one account; clients and titles are
then added straight into the SQLite file (names from the simulator's catalogue, Visual C++
variants and generated vendors), and `memsync serve` answers. Prints seconds per request.

    python3 bench/bench_products.py [--clients 1000] [--titles 400] [--bin build/memsync]
"""
import argparse
import json
import os
import random
import sqlite3
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--titles", type=int, default=400)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "memsync"))
    a = ap.parse_args()
    os.environ["MEMSYNC_BIN"] = os.path.abspath(a.bin)
    import harness  # noqa: E402
    from test_api import Serve, apikey  # noqa: E402

    sim = harness.Sim("--tenants", "2", "--devices", "5", "--apps-per-device", "5", "--seed", "1")
    ms = harness.Memsync(sim)
    ms.add_integration("--no-sync")
    ms.run("sync", check=0)
    con = sqlite3.connect(ms.db)
    cols = [r[1] for r in con.execute("PRAGMA table_info(client)")]
    base = con.execute("SELECT * FROM client LIMIT 1").fetchone()
    pubs = dict(con.execute("SELECT name, publisher FROM software_title"))
    acct = base[cols.index("account_id")]
    rnd = random.Random(1)
    names = list(pubs)
    names += ["Microsoft Visual C++ 20%02d Redistributable (x%s) - %d.%d.%d" % (y, arch, y, m, b)
              for y in (8, 10, 12, 13, 15, 19) for arch in ("64", "86") for m in (0, 10, 20)
              for b in (30729, 40664)]
    names += ["Vendor %d App %d" % (i, j) for i in range(300) for j in range(10)]
    con.execute("BEGIN")
    for c in range(a.clients):
        row = list(base)
        row[cols.index("id")] = None
        row[cols.index("tenant_id")] = "bench-%d" % c
        row[cols.index("name")] = "Client %d" % c
        cid = con.execute("INSERT INTO client (%s) VALUES (%s)" % (
            ",".join(cols), ",".join("?" * len(cols))), row).lastrowid
        for n in rnd.sample(names, min(a.titles, len(names))):
            con.execute("INSERT INTO software_title (account_id, client_id, name, version, "
                        "publisher, device_count) VALUES (?, ?, ?, ?, ?, ?)",
                        (acct, cid, n, rnd.choice(["1.0", "2.1.3", "3.0.1", "10.2"]),
                         pubs.get(n, "Vendor Inc."), rnd.randint(1, 50)))
    con.commit()
    titles = con.execute("SELECT count(*) FROM software_title WHERE device_count > 0").fetchone()
    con.close()
    print("titles %d, clients %d" % (titles[0], a.clients + 2))
    srv = Serve(ms)
    key = apikey(ms, "read")

    def get(path):
        t = time.time()
        r = urllib.request.urlopen(urllib.request.Request(srv.url + path,
                                                          headers={"x-api-key": key}))
        body = json.loads(r.read())
        return time.time() - t, body

    try:
        for p in ("/api/v1/assets/products", "/api/v1/assets/products",
                  "/api/v1/assets/products?search=redistributable",
                  "/api/v1/assets/products?page_size=200&sort=name"):
            dt, js = get(p)
            print("%-52s %7.3f s  products %s" % (p, dt, js["total_count"]))
        pid = get("/api/v1/assets/products")[1]["data"][0]["id"]
        for p in ("/api/v1/assets/products/%d" % pid,
                  "/api/v1/assets/products/%d/devices?page_size=200" % pid):
            dt, _ = get(p)
            print("%-52s %7.3f s" % (p[:52], dt))
    finally:
        srv.stop()
        sim.stop()
        ms.cleanup()


if __name__ == "__main__":
    main()
