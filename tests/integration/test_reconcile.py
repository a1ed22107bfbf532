"""Reconcile rules end to end: devices missing from a complete listing are retired (never
deleted); a sync that fails halfway through a tenant's pages changes nothing; paging edges."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def by_tenant(assets):
    out = {}
    for a in assets:
        out.setdefault(a["client"]["tenant_id"], []).append(a)
    return out


class Retirement(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "3", "--devices", "40", "--seed", "11",
                               "--apps-per-device", "2")
        self.ms = harness.Memsync(self.sim)
        self.ms.env.update(harness.RETIRE_AT_ONCE)
        self.ms.add_integration()
        self.tenants = [t["id"] for t in self.sim.world()["tenants"]]

    def tearDown(self):
        self.sim.stop()
        self.ms.cleanup()

    def assets(self, *extra):
        return self.ms.json("assets", "hardware", "--format", "json", "--include-retired", *extra)

    def test_missing_devices_are_retired_exactly(self):
        res = self.sim.control({"op": "remove_devices", "tenant": self.tenants[0], "last": 5})
        removed = set(res["results"][0]["removed"])
        self.assertEqual(len(removed), 5)
        self.ms.run("sync", check=0)
        all_assets = self.assets()
        self.assertEqual(len(all_assets), 120, "retired devices are kept, not deleted")
        retired = {a["source"]["intune_device_id"] for a in all_assets if a["retired_at"]}
        self.assertEqual(retired, removed)
        active = self.ms.json("assets", "hardware", "--format", "json")
        self.assertEqual(len(active), 115)
        clients = {c["tenant_id"]: c for c in self.ms.json("clients", "--format", "json")}
        self.assertEqual(clients[self.tenants[0]]["device_count"], 35)

    def test_failed_listing_retires_nothing(self):
        # A tenant with two pages: page 2 fails with 500 every time.
        res = self.sim.control({"op": "add_tenant", "name": "Two Pages Ltd", "devices": 1500})
        big = res["results"][0]["tenant"]
        big_id = big["id"] if isinstance(big, dict) else big
        self.ms.run("sync", check=0)
        before = by_tenant(self.assets())
        self.assertEqual(len(before[big_id]), 1500)
        self.sim.control([
            {"op": "remove_devices", "tenant": big_id, "last": 3},
            {"op": "fault", "tenant": big_id, "route": "managedDevices", "page": 2,
             "kind": "status", "status": 500},
        ])
        code, out, err = self.ms.run("sync")
        self.assertEqual(code, 3, err)
        self.assertIn("Two Pages Ltd", err)
        after = by_tenant(self.assets())
        self.assertEqual(len(after[big_id]), 1500)
        self.assertFalse([a for a in after[big_id] if a["retired_at"]],
                         "a partial listing must not retire anything")
        clients = {c["tenant_id"]: c for c in self.ms.json("clients", "--format", "json")}
        self.assertEqual(clients[big_id]["status"], "error")
        self.assertTrue(clients[big_id]["error"]["remedy"])
        self.assertEqual(clients[big_id]["device_count"], 1500)
        # The healthy tenants were synced normally in the same run.
        for t in self.tenants:
            self.assertEqual(clients[t]["status"], "ok")
        # Once the fault clears, exactly the removed devices are retired.
        self.sim.control({"op": "clear_faults"})
        self.ms.run("sync", check=0)
        final = by_tenant(self.assets())
        self.assertEqual(len([a for a in final[big_id] if a["retired_at"]]), 3)

    def test_truncated_json_keeps_data(self):
        self.sim.control({"op": "fault", "tenant": self.tenants[1], "route": "managedDevices",
                          "kind": "truncate"})
        code, _, err = self.ms.run("sync")
        self.assertEqual(code, 3, err)
        clients = {c["tenant_id"]: c for c in self.ms.json("clients", "--format", "json")}
        self.assertEqual(clients[self.tenants[1]]["error"]["code"], "bad_response")
        self.assertEqual(clients[self.tenants[1]]["device_count"], 40)


class PagingEdges(unittest.TestCase):
    def test_zero_one_thousand_and_one_thousand_and_one(self):
        scen = os.path.join(os.environ.get("MEMSYNC_SOURCE_DIR", "."), "scenarios",
                            "paging-edges.json")
        sim = harness.Sim("--scenario", scen)
        ms = harness.Memsync(sim)
        try:
            ms.add_integration()
            clients = ms.json("clients", "--format", "json")
            counts = sorted(c["device_count"] for c in clients)
            self.assertEqual(counts, [0, 1, 1000, 1001])
            self.assertTrue(all(c["status"] == "ok" for c in clients))
            assets = ms.json("assets", "hardware", "--format", "json")
            served = set()
            for t in sim.world()["tenants"]:
                for d in sim.graph_all(t["id"], "/v1.0/deviceManagement/managedDevices"):
                    served.add(d["id"])
            self.assertEqual({a["source"]["intune_device_id"] for a in assets}, served)
        finally:
            sim.stop()
            ms.cleanup()

    def test_customers_over_several_partner_center_pages(self):
        sim = harness.Sim("--tenants", "520", "--devices", "1", "--apps-per-device", "0")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration("--no-sync")
            ms.run("sync", "--no-software", check=0)
            clients = ms.json("clients", "--format", "json")
            self.assertEqual(len(clients), 520)
            pages = sum(sim.stats()["requests"]["customers"].values())
            self.assertGreaterEqual(pages, 2, "the listing spanned several pages")
        finally:
            sim.stop()
            ms.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
