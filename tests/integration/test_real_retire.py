"""Retirement that one short listing cannot fool, and /organization as optional.

The real Microsoft cloud can end an unfiltered managedDevices listing early without a nextLink
(microsoftgraph/microsoft-graph-docs #21659, microsoftgraph/msgraph-sdk-powershell #1819), skip
a device renamed while the pages are read (the LastDeviceName/LastDeviceId keyset), and answer
/organization with 403 where consent predates Organization.Read.All. The simulator does each
(faults `short` and `rename`, set_tenant org_readable); memsync must retire a device only after
repeated absence, hold back mass retirements, cross-check the listing against
managedDeviceOverview, and sync a tenant whose organization it may not read.
Time moves with MEMSYNC_NOW.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_api import Serve, apikey, get_json, login, req, user_add  # noqa: E402

T0 = "2026-12-01T08:00:00Z"
T0_1H = "2026-12-01T09:00:00Z"
T0_12H = "2026-12-01T20:00:00Z"
T0_25H = "2026-12-02T09:00:00Z"
T0_26H = "2026-12-02T10:00:00Z"


class RealRetire(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "2", "--devices", "20", "--apps-per-device", "2",
                               "--seed", "17")
        self.ms = harness.Memsync(self.sim)
        self.tenants = [t["id"] for t in self.sim.world()["tenants"]]
        self.t0 = self.tenants[0]

    def tearDown(self):
        self.sim.stop()
        self.ms.cleanup()

    def sync(self, now, *extra, env=None, code=0):
        e = {"MEMSYNC_NOW": now}
        e.update(env or {})
        rc, out, err = self.ms.run("sync", "--no-software", *extra, env=e)
        self.assertEqual(rc, code, err)
        return out, err

    def assets(self, tenant=None):
        rows = self.ms.json("assets", "hardware", "--format", "json", "--include-retired")
        return {a["source"]["intune_device_id"]: a for a in rows
                if tenant is None or a["client"]["tenant_id"] == tenant}

    def client(self, tenant):
        return {c["tenant_id"]: c for c in self.ms.json("clients", "--format", "json")}[tenant]

    def retired(self, tenant=None):
        return {d for d, a in self.assets(tenant).items() if a["retired_at"]}

    def start(self):
        rc, _, err = self.ms.run(*self.add_args(), env={"MEMSYNC_NOW": T0})
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(self.assets(self.t0)), 20)

    def add_args(self):
        pf, sf = self.ms.write_secrets()
        s = self.sim.env
        return ["integration", "add", "--partner-tenant-id", s["MEMSYNC_SIM_PARTNER_TENANT_ID"],
                "--partner-app-id", s["MEMSYNC_SIM_PARTNER_APP_ID"],
                "--partner-app-secret-file", pf, "--sync-app-id", s["MEMSYNC_SIM_SYNC_APP_ID"],
                "--sync-app-secret-file", sf]

    def test_short_listing_retires_nothing(self):
        # The listing ends after 5 of 20 devices, without a nextLink; the count cross-check is
        # unavailable too (403), so only the retirement policy stands between them and loss.
        self.start()
        self.sim.control([
            {"op": "fault", "tenant": self.t0, "route": "managedDevices", "kind": "short",
             "keep": 5, "count": 1},
            {"op": "fault", "tenant": self.t0, "route": "managedDeviceOverview",
             "kind": "status", "status": 403, "count": 1},
        ])
        self.sync(T0_25H)
        self.assertEqual(self.retired(), set(), "one short listing retires nothing")
        marked = [a for a in self.assets(self.t0).values() if a["missing_since"]]
        self.assertEqual(len(marked), 15)
        self.assertEqual(self.client(self.t0)["status"], "ok")
        # The next, whole listing clears every mark.
        self.sync(T0_26H)
        self.assertEqual(self.retired(), set())
        self.assertFalse([a for a in self.assets().values() if a["missing_since"]])

    def test_removed_device_retires_after_two_syncs_and_a_day(self):
        self.start()
        gone = set(self.sim.control({"op": "remove_devices", "tenant": self.t0,
                                     "last": 1})["results"][0]["removed"])
        self.sync(T0_1H)
        a = self.assets(self.t0)
        self.assertEqual(self.retired(), set(), "missing once is not gone")
        (dev,) = gone
        self.assertEqual(a[dev]["missing_since"], T0_1H)
        # Visible in the API too, and filterable.
        # serve at the same time, or its scheduler would sync (and retire) by the real clock.
        srv = Serve(self.ms, env={"MEMSYNC_NOW": T0_1H})
        try:
            key = apikey(self.ms, "read")
            rows = get_json(srv, "/api/v1/assets/hardware?filter[missing_since]=gte:%%22%s%%22"
                            % T0, key)["data"]
            self.assertEqual([r["source"]["intune_device_id"] for r in rows], [dev])
            self.assertEqual(rows[0]["missing_since"], T0_1H)
            self.assertIsNone(rows[0]["retired_at"])
            clients = get_json(srv, "/api/v1/clients", key)["data"]
            self.assertTrue(all(c["warning"] is None for c in clients), clients)
        finally:
            srv.stop()
        # Two complete listings, but not yet 24 hours: kept.
        self.sync(T0_12H)
        self.assertEqual(self.retired(), set())
        # 24 hours after the first listing that lacked it: retired, and kept as a record.
        self.sync(T0_26H)
        self.assertEqual(self.retired(), gone)
        a = self.assets(self.t0)
        self.assertEqual(a[dev]["retired_at"], T0_26H)
        self.assertEqual(a[dev]["missing_since"], T0_1H)
        self.assertEqual(self.client(self.t0)["device_count"], 19)

    def test_mass_removal_is_held_until_confirmed(self):
        self.start()
        gone = set(self.sim.control({"op": "remove_devices", "tenant": self.t0,
                                     "last": 10})["results"][0]["removed"])
        self.sync(T0_1H)
        _, err = self.sync(T0_26H)
        self.assertEqual(self.retired(), set(), "half a tenant does not retire at once")
        c = self.client(self.t0)
        self.assertEqual(c["status"], "ok")
        self.assertEqual(c["device_count"], 20)
        self.assertEqual(c["warning"]["code"], "retire_held")
        self.assertIn("10 of its 20 devices", c["warning"]["message"])
        self.assertIn("--confirm-retire", c["warning"]["remedy"])
        self.assertIn("synced with warnings", err)
        self.assertIsNone(self.client(self.tenants[1])["warning"])
        st = self.ms.json("status", "--format", "json")
        self.assertEqual([w["code"] for w in st["warnings"]], ["retire_held"])
        # Held again on the next sync; the marks keep their first date.
        self.sync("2026-12-03T10:00:00Z")
        self.assertEqual(self.retired(), set())
        self.assertTrue(all(a["missing_since"] == T0_1H for d, a in self.assets(self.t0).items()
                            if d in gone))
        # The MSP checked Intune: they are gone.
        self.sync("2026-12-03T11:00:00Z", "--confirm-retire")
        self.assertEqual(self.retired(), gone)
        c = self.client(self.t0)
        self.assertIsNone(c["warning"])
        self.assertEqual(c["device_count"], 10)

    def test_overview_count_catches_a_short_listing(self):
        # Retirement at once and no guard: only the managedDeviceOverview cross-check is left.
        self.start()
        self.ms.env.update(harness.RETIRE_AT_ONCE)
        self.sim.control({"op": "fault", "tenant": self.t0, "route": "managedDevices",
                          "kind": "short", "keep": 5, "count": 1})
        self.sync(T0_25H)
        self.assertEqual(self.retired(), set())
        self.assertFalse([a for a in self.assets().values() if a["missing_since"]],
                         "an incomplete listing marks nothing")
        c = self.client(self.t0)
        self.assertEqual(c["status"], "ok")
        self.assertEqual(c["warning"]["code"], "listing_short")
        self.assertIn("5 listed, 20 counted", c["warning"]["message"])
        self.sync(T0_26H)
        self.assertIsNone(self.client(self.t0)["warning"])
        # A device really gone still retires (the count agrees with the listing).
        gone = set(self.sim.control({"op": "remove_devices", "tenant": self.t0,
                                     "last": 1})["results"][0]["removed"])
        self.sync("2026-12-02T11:00:00Z")
        self.assertEqual(self.retired(), gone)

    def test_device_renamed_during_listing_is_not_retired(self):
        self.start()
        before = self.assets(self.t0)
        self.sim.control({"op": "fault", "tenant": self.t0, "route": "managedDevices",
                          "kind": "rename", "count": 1})
        self.sync(T0_25H)
        self.assertEqual(self.retired(), set(), "a skipped device is not gone")
        missing = [d for d, a in self.assets(self.t0).items() if a["missing_since"]]
        self.assertEqual(len(missing), 1)
        self.sync(T0_26H)
        after = self.assets(self.t0)
        self.assertEqual(self.retired(), set())
        (dev,) = missing
        self.assertIsNone(after[dev]["missing_since"])
        self.assertEqual(after[dev]["name"], "0-" + before[dev]["name"])

    def test_organization_forbidden_still_syncs(self):
        t1 = self.tenants[1]
        self.sim.control({"op": "set_tenant", "tenant": t1, "org_readable": False})
        self.start()
        c = self.client(t1)
        self.assertEqual(c["status"], "ok")
        self.assertEqual(c["device_count"], 20)
        self.assertEqual(len(self.assets(t1)), 20)
        pc = {x["id"]: x for x in self.sim.customers()}[t1]
        self.assertEqual(c["name"], pc["companyProfile"]["companyName"])
        self.assertEqual(c["default_domain"], pc["companyProfile"]["domain"])
        self.assertEqual(c["warning"]["code"], "org_unreadable")
        self.assertIn("Organization.Read.All", c["warning"]["message"])
        self.assertIn("adminconsent?client_id=" + self.sim.env["MEMSYNC_SIM_SYNC_APP_ID"],
                      c["warning"]["remedy"])
        self.assertIsNone(self.client(self.t0)["warning"])
        # The API and the UI's clients page show it.
        srv = Serve(self.ms, env={"MEMSYNC_NOW": T0})
        try:
            key = apikey(self.ms, "read")
            api = {c["tenant_id"]: c for c in get_json(srv, "/api/v1/clients", key)["data"]}
            self.assertEqual(api[t1]["warning"]["code"], "org_unreadable")
            self.assertEqual(api[t1]["warning"]["remedy"], c["warning"]["remedy"])
            self.assertIsNone(api[self.t0]["warning"])
            user_add(self.ms, "tech", "viewer", "correct horse battery")
            _, token, _ = login(srv, "tech", "correct horse battery")
            st, page, _ = req("GET", srv.url + "/clients",
                              headers={"Cookie": "memsync_session=" + token})
            self.assertEqual(st, 200)
            self.assertIn('data-code="org_unreadable"', page)
            self.assertIn("Organization.Read.All", page)
        finally:
            srv.stop()
        # Consented again: the warning clears with the next sync.
        self.sim.control({"op": "set_tenant", "tenant": t1, "org_readable": True})
        self.sync(T0_1H)
        self.assertIsNone(self.client(t1)["warning"])


if __name__ == "__main__":
    unittest.main()
