"""The real-world scenario: every behaviour of the real Microsoft cloud that issue 17 names, on
one realistic MSP, through a full sync and ten incremental ones.

`memsync sim --scenario real-world` lists devices short now and then and renames one while its
pages are read, throttles Intune without Retry-After (managedDevices, $batch items, detectedApps
below the published limit, a budget shared with the tenant's other apps), puts byte-order marks
on Partner Center and Graph answers, answers Intune's 401 UnknownError for an unlicensed and an
unpermitted tenant, serves a large, slow zip64 export that breaks off once, and forbids
/organization on one tenant. memsync runs with its default retirement policy and guard; time
moves three hours a sync (MEMSYNC_NOW), so the 24-hour rule is crossed. After every sync no
device the simulator still has is retired; at the end every healthy tenant is exact.
"""
import datetime
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scenarios",
                        "real-world.json")
T0 = datetime.datetime(2026, 12, 1, 8, 0, 0)
EXPORT_T, PER_DEVICE_T, RENAME_T, BATCH429_T = 0, 1, 2, 3
FEW_T, MANY_T, ORG_T, BUDGET_T, NOLIC_T, NOPERM_T = 4, 6, 5, 7, 23, 24
APPS = 4


def at(hours):
    return (T0 + datetime.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


class RealWorld(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--scenario", SCENARIO)
        self.ms = harness.Memsync(self.sim)
        self.world = self.sim.world()
        self.ids = [t["id"] for t in self.world["tenants"]]
        self.log = []

    def tearDown(self):
        self.sim.stop()
        self.ms.cleanup()

    def requests(self):
        st, body, _ = harness.http("GET", self.sim.root + "/_sim/requests")
        self.assertEqual(st, 200)
        r = json.loads(body)
        self.assertEqual(r["dropped"], 0)
        self.sim.control({"op": "request_log", "enabled": True})
        return r["requests"]

    def sync(self, hours, *extra):
        rc, out, err = self.ms.run("sync", *extra, env={"MEMSYNC_NOW": at(hours)})
        # The unlicensed and the unpermitted tenant fail; every other one syncs.
        self.assertEqual(rc, 3, out + err)
        self.log.extend(self.requests())
        return err

    def assets(self):
        rows = self.ms.json("assets", "hardware", "--format", "json", "--include-retired")
        by = {}
        for a in rows:
            by.setdefault(a["client"]["tenant_id"], {})[a["source"]["intune_device_id"]] = a
        return by

    def clients(self):
        return {c["tenant_id"]: c for c in self.ms.json("clients", "--format", "json")}

    def check_nothing_active_retired(self, removed, label):
        """Only devices really removed from the simulator are ever retired."""
        by = self.assets()
        retired = {d for devs in by.values() for d, a in devs.items() if a["retired_at"]}
        self.assertEqual(retired - removed, set(), "%s: active devices retired" % label)
        return by

    def installs(self, tenant):
        return sum(s["device_count"] for s in self.ms.json(
            "assets", "software", "--format", "json", "--client", tenant))

    def test_full_then_ten_incremental_syncs(self):
        healthy = [i for i in range(25) if i not in (NOLIC_T, NOPERM_T)]
        self.ms.add_integration("--no-sync")

        # 1. The full sync (a short listing may already hide devices: the next ones add them).
        self.sync(0, "--full")
        self.check_nothing_active_retired(set(), "full sync")

        # Devices really leave Intune before the second sync: 2 of 120 (under the guard) and
        # 30 of 70 (a mass removal the guard holds back).
        few = set(self.sim.control({"op": "remove_devices", "tenant": self.ids[FEW_T],
                                    "last": 2})["results"][0]["removed"])
        many = set(self.sim.control({"op": "remove_devices", "tenant": self.ids[MANY_T],
                                     "last": 30})["results"][0]["removed"])
        short_seen = False

        # 2.-11. Ten incremental syncs, three hours apart.
        for k in range(1, 11):
            hours = 3 * k
            self.sync(hours, "--incremental")
            by = self.check_nothing_active_retired(few | many, "sync at +%dh" % hours)
            cl = self.clients()
            per = by[self.ids[PER_DEVICE_T]]
            if (cl[self.ids[PER_DEVICE_T]]["warning"] or {}).get("code") == "listing_short" or \
                    any(a["missing_since"] for a in per.values()):
                short_seen = True
            few_retired = {d for d in few if by[self.ids[FEW_T]][d]["retired_at"]}
            # Missing since +3 h: two complete listings and 24 hours are needed.
            if hours < 27:
                self.assertEqual(few_retired, set(), "retired before 24 h, at +%dh" % hours)
            else:
                self.assertEqual(few_retired, few, "not retired at +%dh" % hours)
                self.assertEqual(by[self.ids[FEW_T]][next(iter(few))]["missing_since"], at(3))
            # The mass removal is held, with a warning, however long it lasts.
            self.assertFalse([d for d in many if by[self.ids[MANY_T]][d]["retired_at"]])
            if hours >= 27:
                w = cl[self.ids[MANY_T]]["warning"]
                self.assertEqual(w["code"], "retire_held", w)
                self.assertIn("--confirm-retire", w["remedy"])

        # Every switch fired.
        def hits(route=None, status=None, tenant=None, ra=None, item=None):
            return [r for r in self.log
                    if (route is None or r["route"] == route)
                    and (status is None or r["status"] == status)
                    and (tenant is None or r["tenant"] == self.ids[tenant])
                    and (ra is None or bool(r["retry_after"]) == ra)
                    and (item is None or bool(r["batch_item"]) == item)]
        self.assertTrue(short_seen, "a short listing of tenant 1")
        self.assertTrue(hits("managedDevices", 429, ra=False), "429 without Retry-After")
        self.assertTrue(hits(None, 429, BATCH429_T, ra=False, item=True), "$batch item 429")
        self.assertTrue(hits(None, 429, PER_DEVICE_T, ra=False, item=True),
                        "detectedApps limit")
        # Tenant 7's other apps leave it 40 requests a window; its full sync needs ~65 at once.
        self.assertTrue(hits(None, 429, BUDGET_T, ra=True), "the budget shared with other apps")
        self.assertTrue(hits(None, 401, NOLIC_T) and hits(None, 401, NOPERM_T), "intune_401")
        self.assertTrue(hits("organization", 403, ORG_T), "/organization 403")
        self.assertTrue(hits("customers", 200), "Partner Center with a BOM")
        self.assertGreaterEqual(self.sim.stats()["download_ranges"], 1, "export resumed (Range)")
        self.assertTrue(hits("exportJobs"), "the export ran")

        # The right remedies on the failed tenants; a warning on the org-403 tenant.
        cl = self.clients()
        self.assertEqual(cl[self.ids[NOLIC_T]]["status"], "error")
        self.assertEqual(cl[self.ids[NOLIC_T]]["error"]["code"], "no_intune_license")
        self.assertEqual(cl[self.ids[NOPERM_T]]["status"], "error")
        self.assertEqual(cl[self.ids[NOPERM_T]]["error"]["code"], "permission_missing")
        self.assertEqual(cl[self.ids[ORG_T]]["status"], "ok")
        self.assertEqual(cl[self.ids[ORG_T]]["warning"]["code"], "org_unreadable")
        self.assertIn("Organization.Read.All", cl[self.ids[ORG_T]]["warning"]["remedy"] +
                      cl[self.ids[ORG_T]]["warning"]["message"])

        # The renamed device kept its identity under its new name.
        renamed = [a for a in by[self.ids[RENAME_T]].values() if a["name"].startswith("0-")]
        self.assertTrue(renamed, "a device renamed during the listing")
        self.assertFalse([a for a in renamed if a["retired_at"]])

        # Every healthy tenant ends exact: the simulator's own listing, faults cleared.
        self.sim.control([{"op": "clear_faults"}, {"op": "set_throttle", "enabled": False}])
        for i in healthy:
            served = {d["id"] for d in self.sim.graph_all(
                self.ids[i], "/v1.0/deviceManagement/managedDevices")}
            active = {d for d, a in by[self.ids[i]].items() if not a["retired_at"]}
            self.assertEqual(len(served), self.world["tenants"][i]["devices"] -
                             len(few if i == FEW_T else many if i == MANY_T else ()))
            if i == MANY_T:
                self.assertEqual(active, served | many, "held back, not lost")
            else:
                self.assertEqual(active, served, "tenant %d ends exact" % i)
            self.assertEqual(cl[self.ids[i]]["status"], "ok", cl[self.ids[i]])
        for i in (EXPORT_T, PER_DEVICE_T, RENAME_T):
            self.assertEqual(self.installs(self.ids[i]), self.world["tenants"][i]["devices"] * APPS, "tenant %d" % i)
        self.assertEqual(self.ms.title_count_drift(), [])


if __name__ == "__main__":
    unittest.main()
