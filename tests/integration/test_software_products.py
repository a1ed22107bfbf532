"""Software across clients against the simulator: products grouped from every client's titles
(`/api/v1/assets/products`), their versions with distinct clients and devices, the devices
behind a product across clients, "where is X installed" as one search, and
`/api/v1/assets/installs` with filters as `memsync assets installs` lists them.

Standard library only; `memsync serve` and `memsync sim` on 127.0.0.1 port 0.
"""
import json
import os
import re
import sqlite3
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_api import Serve, apikey, login, req, user_add  # noqa: E402


class Products(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = harness.Sim("--tenants", "3", "--devices", "12", "--apps-per-device", "8",
                              "--seed", "5")
        cls.ms = harness.Memsync(cls.sim)
        cls.ms.add_integration("--no-sync")
        cls.ms.run("sync", check=0)
        cls.srv = Serve(cls.ms)
        cls.key = apikey(cls.ms, "read")
        cls.titles = cls.walk("/api/v1/assets/software")

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.sim.stop()
        cls.ms.cleanup()

    @classmethod
    def get(cls, path, status=200):
        st, text, _ = req("GET", cls.srv.url + path, headers={"x-api-key": cls.key})
        assert st == status, "%s -> %s %s" % (path, st, text[:300])
        return json.loads(text)

    @classmethod
    def walk(cls, path, page_size=50):
        rows, cur = [], None
        sep = "&" if "?" in path else "?"
        for _ in range(10000):
            q = "%s%spage_size=%d" % (path, sep, page_size)
            if cur:
                q += "&cursor=" + urllib.parse.quote(cur)
            js = cls.get(q)
            rows += js["data"]
            cur = js["next_cursor"]
            if not cur:
                return rows, js["total_count"]
        raise AssertionError("no last page")

    def setUp(self):
        self.titles_rows = self.titles[0]

    def test_every_title_is_in_one_product(self):
        products, total = self.walk("/api/v1/assets/products", page_size=7)
        self.assertEqual(total, len(products))
        self.assertEqual(len({p["id"] for p in products}), len(products), "ids are unique")
        self.assertEqual(sum(p["title_count"] for p in products), len(self.titles_rows))
        self.assertEqual(sum(p["device_count"] for p in products),
                         sum(t["device_count"] for t in self.titles_rows))
        # most devices first
        counts = [p["device_count"] for p in products]
        self.assertEqual(counts, sorted(counts, reverse=True))
        # fewer products than distinct raw names: the variants were merged
        self.assertLess(len(products), len({(t["name"], t["publisher"]) for t in
                                            self.titles_rows}) + 1)

    def expected(self, name, publisher):
        """Versions of the titles named exactly name: clients and devices, from the titles."""
        vs = {}
        for t in self.titles_rows:
            if t["name"] == name and t["publisher"] == publisher:
                v = vs.setdefault(t["version"], [set(), 0])
                v[0].add(t["client"]["id"])
                v[1] += t["device_count"]
        return vs

    def test_where_is_chrome_installed(self):
        js = self.get("/api/v1/assets/products?search=chrome")
        prods = [p for p in js["data"] if p["name"] == "Google Chrome"]
        self.assertEqual(len(prods), 1, js)
        p = prods[0]
        want = self.expected("Google Chrome", "Google LLC")
        self.assertTrue(want, "the simulator installed Google Chrome")
        clients = set().union(*(v[0] for v in want.values()))
        self.assertGreaterEqual(len(clients), 2, "Chrome is on several clients")
        self.assertEqual(p["client_count"], len(clients))
        self.assertEqual(p["device_count"], sum(v[1] for v in want.values()))
        self.assertEqual(p["publisher"], "Google LLC")
        one = self.get("/api/v1/assets/products/%d" % p["id"])["data"]
        got = {v["version"]: (v["client_count"], v["device_count"]) for v in one["versions"]}
        self.assertEqual(got, {k: (len(v[0]), v[1]) for k, v in want.items()})
        # newest version first
        self.assertEqual([v["version"] for v in one["versions"]][0],
                         max(want, key=lambda s: [int(x) for x in s.split(".")]))

        # the devices across clients, paged, are the installs of those titles
        rows, total = self.walk("/api/v1/assets/products/%d/devices" % p["id"], page_size=3)
        self.assertEqual(total, p["device_count"])
        self.assertEqual(len(rows), total)
        inst, _ = self.walk("/api/v1/assets/installs?filter%5Bname%5D=eq:" +
                            urllib.parse.quote('"Google Chrome"'))
        inst = [i for i in inst if i["publisher"] == "Google LLC"]
        self.assertEqual(sorted(r["id"] for r in rows),
                         sorted(i["hardware_asset_id"] for i in inst))
        self.assertEqual({r["client"]["id"] for r in rows}, clients)
        for r in rows:
            self.assertIn(r["software"]["version"], want)
        # one version only
        v0 = one["versions"][0]
        rows, total = self.walk("/api/v1/assets/products/%d/devices?version=%s" %
                                (p["id"], urllib.parse.quote(v0["version"])))
        self.assertEqual(total, v0["device_count"])
        self.assertTrue(all(r["software"]["version"] == v0["version"] for r in rows))
        # one client only
        c = sorted(clients)[0]
        rows, total = self.walk("/api/v1/assets/products/%d/devices?client_id=%d" % (p["id"], c))
        self.assertTrue(rows and all(r["client"]["id"] == c for r in rows))

    def test_variants_merge(self):
        # "Zoom Workplace (64-bit)" on Windows and "Zoom Workplace" elsewhere, same publisher
        js = self.get("/api/v1/assets/products?search=zoom%20workplace")
        names = {(t["name"], t["publisher"]) for t in self.titles_rows}
        zoom = [p for p in js["data"] if p["publisher"] == "Zoom Video Communications, Inc."
                and p["name"] == "Zoom Workplace"]
        if ("Zoom Workplace (64-bit)", "Zoom Video Communications, Inc.") in names:
            self.assertEqual(len(zoom), 1, js)
            self.assertNotIn("(64-bit)", zoom[0]["name"])

    def test_cli_lists_the_same_products(self):
        api, _ = self.walk("/api/v1/assets/products", page_size=200)
        cli = self.ms.jsonl("assets", "products", "--format", "jsonl")
        self.assertEqual(cli, api)
        found = self.ms.jsonl("assets", "products", "--search", "CHROME", "--format", "jsonl")
        self.assertIn("Google Chrome", [p["name"] for p in found])
        self.assertTrue(all("chrome" in (p["name"] + (p["publisher"] or "")).lower()
                            for p in found))
        rc, _, err = self.ms.run("assets", "products", "--client", "1")
        self.assertEqual(rc, 2, err)

    def test_errors(self):
        self.get("/api/v1/assets/products/1", status=404)
        self.get("/api/v1/assets/products/1/devices", status=404)
        self.get("/api/v1/assets/products?page_size=0", status=400)
        self.get("/api/v1/assets/products?page_size=201", status=400)
        self.get("/api/v1/assets/products?cursor=nonsense", status=400)
        self.get("/api/v1/assets/products?sort=publisher", status=400)
        p = self.get("/api/v1/assets/products?page_size=1")["data"][0]
        self.get("/api/v1/assets/products/%d/devices?client_id=x" % p["id"], status=400)
        st, _, _ = req("GET", self.srv.url + "/api/v1/assets/products")
        self.assertEqual(st, 401)

    def test_sorts(self):
        byname, _ = self.walk("/api/v1/assets/products?sort=name", page_size=200)
        keys = [p["name"].lower() for p in byname]
        self.assertEqual(keys, sorted(keys))
        bycl, _ = self.walk("/api/v1/assets/products?sort=-client_count", page_size=200)
        self.assertEqual([p["client_count"] for p in bycl],
                         sorted((p["client_count"] for p in bycl), reverse=True))

    def test_installs_as_the_cli_lists_them(self):
        rows, total = self.walk("/api/v1/assets/installs", page_size=200)
        cli = self.ms.jsonl("assets", "installs", "--format", "jsonl")
        self.assertEqual(total, len(cli))
        pair = lambda r: (r["hardware_asset_id"], r["software_id"])  # noqa: E731
        self.assertEqual(sorted(map(pair, rows)), sorted(map(pair, cli)))
        c = rows[0]["client"]["id"]
        sub, _ = self.walk("/api/v1/assets/installs?filter%%5Bclient.id%%5D=eq:%d" % c)
        self.assertTrue(sub and all(r["client"]["id"] == c for r in sub))
        cli_c = self.ms.jsonl("assets", "installs", "--client", str(c), "--format", "jsonl")
        self.assertEqual(sorted(map(pair, sub)), sorted(map(pair, cli_c)))
        sub, _ = self.walk("/api/v1/assets/installs?search=chrome")
        self.assertTrue(sub and all("chrome" in r["name"].lower() or
                                    "chrome" in r["device_name"].lower() for r in sub))
        self.get("/api/v1/assets/installs?filter%5Bnope%5D=eq:1", status=400)
        allr, total_all = self.walk("/api/v1/assets/installs?include_retired=true", 200)
        self.assertGreaterEqual(total_all, total)

    def test_ui_pages(self):
        user_add(self.ms, "sue", "viewer", "viewer-password-1")
        st, tok, _ = login(self.srv, "sue", "viewer-password-1")
        self.assertEqual(st, 303)
        h = {"Cookie": "memsync_session=" + tok}
        st, html, _ = req("GET", self.srv.url + "/software/products?search=chrome", headers=h)
        self.assertEqual(st, 200)
        self.assertIn("Google Chrome", html)
        m = re.search(r'href="/software/products/(\d+)">Google Chrome<', html)
        self.assertIsNotNone(m, html[-3000:])
        pid = int(m.group(1))
        st, html, _ = req("GET", self.srv.url + "/software/products/%d" % pid, headers=h)
        self.assertEqual(st, 200)
        one = self.get("/api/v1/assets/products/%d" % pid)["data"]
        for v in one["versions"]:
            self.assertIn(v["version"], html)
        st, html, _ = req("GET", self.srv.url + "/software/products/%d/devices" % pid, headers=h)
        self.assertEqual(st, 200)
        rows, _ = self.walk("/api/v1/assets/products/%d/devices" % pid, page_size=200)
        for r in rows[:20]:
            self.assertIn('href="/assets/%d"' % r["id"], html)
        st, html, _ = req("GET", self.srv.url + "/software/products/424242", headers=h)
        self.assertEqual(st, 404)


class DistinctDevices(unittest.TestCase):
    """A device with two titles of one product (the x86 and the x64 build) counts once."""

    def test_shared_device_counts_once(self):
        sim = harness.Sim("--tenants", "3", "--devices", "12", "--apps-per-device", "8",
                          "--seed", "5")
        self.addCleanup(sim.stop)
        ms = harness.Memsync(sim)
        if ms.db.startswith("postgresql://"):
            self.skipTest("writes the SQLite file directly")
        ms.add_integration("--no-sync")
        ms.run("sync", check=0)
        key = apikey(ms, "read")

        def get(path):
            srv = Serve(ms)  # a new process: a new product snapshot
            try:
                st, text, _ = req("GET", srv.url + path, None, {"x-api-key": key})
            finally:
                srv.stop()
            self.assertEqual(st, 200, text[:300])
            return json.loads(text)["data"]

        # a product with two titles in one client, and a device that has only the first
        found = None
        for p in get("/api/v1/assets/products?page_size=200"):
            if p["title_count"] < 2:
                continue
            by_client = {}
            for d in get("/api/v1/assets/products/%d/devices?page_size=200" % p["id"]):
                by_client.setdefault(d["client"]["id"], {}).setdefault(
                    d["software"]["id"], set()).add(d["id"])
            for titles in by_client.values():
                sets = list(titles.items())
                for (_, sa), (tb, sb) in zip(sets, sets[1:]):
                    extra = sorted(sa - sb)
                    if extra and found is None:
                        found = (p, tb, extra[0])
        self.assertIsNotNone(found, "the simulator gave some client two titles of a product")
        p, tb, dev = found
        # That device gets the second title too (and the title's count says so).
        con = sqlite3.connect(ms.db)
        con.execute("INSERT INTO software_install (account_id, asset_id, title_id, "
                    "first_seen_at, last_seen_at, last_seen_gen) SELECT account_id, ?, id, 0, 0, "
                    "0 FROM software_title WHERE id = ?", (dev, tb))
        con.execute("UPDATE software_title SET device_count = device_count + 1 WHERE id = ?",
                    (tb,))
        con.commit()
        con.close()
        after = get("/api/v1/assets/products/%d" % p["id"])
        self.assertEqual(after["title_count"], p["title_count"])
        self.assertEqual(after["device_count"], p["device_count"], "the device counts once")


if __name__ == "__main__":
    unittest.main()
