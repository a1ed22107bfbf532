"""Sync rules beyond the basics: un-retirement, installs removed and re-added, serials that move
between tenants or appear in two, customer sources (contracts, GDAP), excluded and renamed
clients, incremental syncs."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def installs_of(ms, tenant):
    return sum(s["device_count"] for s in ms.json("assets", "software", "--format", "json",
                                                  "--client", tenant))


class Rules(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "3", "--devices", "12", "--apps-per-device", "4",
                               "--seed", "21")
        self.ms = harness.Memsync(self.sim)
        self.ms.env.update(harness.RETIRE_AT_ONCE)
        self.tenants = [t["id"] for t in self.sim.world()["tenants"]]

    def tearDown(self):
        try:
            # Whatever the test did (retire, revive, remove, re-add, move, exports), every
            # title's stored device count is what its installs say.
            self.assertEqual(self.ms.title_count_drift(), [])
        finally:
            self.sim.stop()
            self.ms.cleanup()

    def assets(self):
        return self.ms.json("assets", "hardware", "--format", "json", "--include-retired")

    def test_retired_device_comes_back(self):
        # A second simulator with the same seed serves the same world; in it two devices are
        # gone. Syncing against it retires them, syncing against the first revives them.
        other = harness.Sim("--tenants", "3", "--devices", "12", "--apps-per-device", "4",
                            "--seed", "21")
        try:
            self.ms.add_integration()
            gone = set(other.control({"op": "remove_devices", "tenant": self.tenants[2],
                                      "last": 2})["results"][0]["removed"])
            first = {a["source"]["intune_device_id"]: a for a in self.assets()}
            for k in ("MEMSYNC_LOGIN_URL", "MEMSYNC_GRAPH_URL", "MEMSYNC_PARTNER_CENTER_URL"):
                self.ms.env[k] = other.env[k]
            self.ms.run("sync", check=0)
            mid = {a["source"]["intune_device_id"]: a for a in self.assets()}
            self.assertEqual({d for d, a in mid.items() if a["retired_at"]}, gone)
            for k in ("MEMSYNC_LOGIN_URL", "MEMSYNC_GRAPH_URL", "MEMSYNC_PARTNER_CENTER_URL"):
                self.ms.env[k] = self.sim.env[k]
            self.ms.run("sync", check=0)
            last = {a["source"]["intune_device_id"]: a for a in self.assets()}
            self.assertFalse([d for d, a in last.items() if a["retired_at"]])
            for d in gone:
                self.assertEqual(last[d]["id"], first[d]["id"], "same memsync id after revival")
                self.assertEqual(last[d]["first_synced_at"], first[d]["first_synced_at"])
        finally:
            other.stop()

    def test_installs_removed_and_re_added(self):
        self.ms.add_integration()
        t = self.tenants[0]
        self.assertEqual(installs_of(self.ms, t), 12 * 4)
        self.sim.control({"op": "set_apps", "apps_per_device": 1, "tenant": t})
        self.ms.run("sync", check=0)
        self.assertEqual(installs_of(self.ms, t), 12)
        self.assertEqual(installs_of(self.ms, self.tenants[1]), 12 * 4, "other tenants untouched")
        current = self.ms.json("assets", "installs", "--client", t, "--format", "json")
        self.assertEqual(len(current), 12)
        everything = self.ms.json("assets", "installs", "--client", t, "--include-retired",
                                  "--format", "json")
        self.assertEqual(len(everything), 12 * 4, "removed installs are kept")
        self.assertEqual(len([i for i in everything if i["removed_at"]]), 12 * 3)
        self.sim.control({"op": "set_apps", "apps_per_device": 4, "tenant": t})
        self.ms.run("sync", check=0)
        self.assertEqual(installs_of(self.ms, t), 12 * 4)
        total = self.ms.sql("select count(*) from software_install")[0][0]
        removed = self.ms.sql("select count(*) from software_install "
                              "where removed_at is not null")[0][0]
        self.assertEqual(removed, 0, "re-added installs are revived, not duplicated")
        self.assertEqual(total, 3 * 12 * 4)

    def test_serial_in_two_tenants_and_serial_that_moves(self):
        self.ms.add_integration()
        a_devs = self.sim.graph_all(self.tenants[0], "/v1.0/deviceManagement/managedDevices")
        b_devs = self.sim.graph_all(self.tenants[1], "/v1.0/deviceManagement/managedDevices")
        serial = "MOVE-ME-4711"
        self.sim.control([
            {"op": "modify_device", "tenant": self.tenants[0], "id": a_devs[0]["id"],
             "set": {"serialNumber": serial}},
            {"op": "modify_device", "tenant": self.tenants[1], "id": b_devs[0]["id"],
             "set": {"serialNumber": " move-me-4711 "}},
        ])
        self.ms.run("sync", check=0)
        dup = [a for a in self.ms.json("assets", "hardware", "--format", "json")
               if a["serial_number"] and a["serial_number"].upper() == serial]
        self.assertEqual(len(dup), 2)
        self.assertTrue(all(a["serial_duplicate"] for a in dup), "same serial, two tenants")
        # The laptop leaves tenant A: A's record is retired and the duplicate flag clears.
        self.sim.control({"op": "remove_devices", "tenant": self.tenants[0],
                          "ids": [a_devs[0]["id"]]})
        self.ms.run("sync", check=0)
        moved = [a for a in self.assets()
                 if a["serial_number"] and a["serial_number"].upper() == serial]
        self.assertEqual(len(moved), 2)
        active = [a for a in moved if not a["retired_at"]]
        self.assertEqual(len(active), 1)
        self.assertEqual(active[0]["client"]["tenant_id"], self.tenants[1])
        self.assertFalse(active[0]["serial_duplicate"])

    def test_change_history_is_recorded(self):
        self.ms.add_integration()
        devs = self.sim.graph_all(self.tenants[0], "/v1.0/deviceManagement/managedDevices")
        self.sim.control({"op": "modify_device", "tenant": self.tenants[0], "id": devs[3]["id"],
                          "set": {"deviceName": "RENAMED-PC", "osVersion": "10.0.26100.2605"},
                          "touch": True})
        code, out, _ = self.ms.run("sync", check=0)
        self.assertIn("1 changed", out)
        rows = self.ms.sql("select field, old_value, new_value from asset_change")
        fields = {r[0]: (r[1], r[2]) for r in rows}
        self.assertEqual(fields["name"], (devs[3]["deviceName"], "RENAMED-PC"))
        self.assertIn("os_version", fields)

    def test_exclude_include_and_rename(self):
        self.ms.add_integration()
        t = self.tenants[1]
        self.ms.run("clients", "exclude", t, check=0)
        self.sim.control({"op": "add_devices", "tenant": t, "count": 3})
        code, out, err = self.ms.run("sync", check=0)
        self.assertIn("2 tenants", out)
        clients = {c["tenant_id"]: c for c in self.ms.json("clients", "--format", "json")}
        self.assertFalse(clients[t]["included"])
        self.assertEqual(clients[t]["device_count"], 12, "excluded: not synced, data kept")
        self.ms.run("clients", "include", t, check=0)
        self.ms.run("sync", check=0)
        clients = {c["tenant_id"]: c for c in self.ms.json("clients", "--format", "json")}
        self.assertEqual(clients[t]["device_count"], 15)
        self.ms.run("clients", "rename", t, "Our Favourite Client", check=0)
        self.ms.run("sync", check=0)
        clients = {c["tenant_id"]: c for c in self.ms.json("clients", "--format", "json")}
        self.assertEqual(clients[t]["name"], "Our Favourite Client")
        names = {a["client"]["name"] for a in self.ms.json("assets", "hardware", "--format",
                                                           "json", "--client", t)}
        self.assertEqual(names, {"Our Favourite Client"})

    def test_contracts_and_gdap_sources(self):
        for source in ("contracts", "gdap"):
            ms = harness.Memsync(self.sim)
            try:
                ms.add_integration("--tenant-source", source)
                clients = ms.json("clients", "--format", "json")
                self.assertEqual(sorted(c["tenant_id"] for c in clients), sorted(self.tenants),
                                 source)
                self.assertTrue(all(c["source"] == source for c in clients))
                self.assertEqual(len(ms.json("assets", "hardware", "--format", "json")), 36)
            finally:
                ms.cleanup()

    def test_incremental_fetches_apps_only_for_devices_that_checked_in(self):
        self.ms.add_integration()
        self.sim.control({"op": "reset_stats"})
        code, out, _ = self.ms.run("sync", "--incremental", check=0)
        quiet = self.sim.stats()
        self.assertNotIn("batch", quiet["requests"], "no device checked in: no app requests")
        devs = self.sim.graph_all(self.tenants[2], "/v1.0/deviceManagement/managedDevices")
        self.sim.control({"op": "modify_device", "tenant": self.tenants[2], "id": devs[0]["id"],
                          "set": {}, "touch": True})
        self.sim.control({"op": "set_apps", "apps_per_device": 6, "tenant": self.tenants[2]})
        self.sim.control({"op": "reset_stats"})
        self.ms.run("sync", "--incremental", check=0)
        st = self.sim.stats()
        self.assertEqual(sum(st["requests"]["batch"].values()), 1)
        # Only the device that checked in got its new apps.
        self.assertEqual(installs_of(self.ms, self.tenants[2]), 11 * 4 + 6)



class ReportExport(unittest.TestCase):
    def test_large_tenant_reads_apps_from_the_report_export(self):
        import json
        sim = harness.Sim("--tenants", "1", "--devices", "30", "--apps-per-device", "3",
                          "--seed", "8", "--no-throttle")
        ms = harness.Memsync(sim)
        try:
            big = sim.control({"op": "add_tenant", "name": "Big Fleet Ltd",
                               "devices": 2100})["results"][0]["tenant"]
            big = big["id"] if isinstance(big, dict) else big
            small = [t["id"] for t in sim.world()["tenants"] if t["id"] != big][0]
            sim.control({"op": "reset_stats"})
            ms.add_integration()
            st = sim.stats()["requests"]
            self.assertGreaterEqual(st["exportJobs"][big], 2, "job created and polled")
            self.assertEqual(st["download"].get(big, sum(st["download"].values())), 1)
            self.assertNotIn(big, st.get("batch", {}), "no per-device reads for the big tenant")
            self.assertIn(small, st["batch"], "small tenants read apps per device")
            # Ground truth: every device's detected apps, read per device through $batch.
            tok = sim.sync_token(big)
            devs = sim.graph_all(big, "/v1.0/deviceManagement/managedDevices?$select=id")
            want = 0
            for i in range(0, len(devs), 20):
                reqs = [{"id": str(k), "method": "GET",
                         "url": "/deviceManagement/managedDevices/%s/detectedApps" % d["id"]}
                        for k, d in enumerate(devs[i:i + 20])]
                code, body, _ = harness.http("POST", sim.graph + "/beta/$batch",
                                             json.dumps({"requests": reqs}).encode(),
                                             {"Authorization": "Bearer " + tok,
                                              "Content-Type": "application/json"})
                self.assertEqual(code, 200)
                for r in json.loads(body)["responses"]:
                    self.assertEqual(r["status"], 200)
                    want += len(r["body"]["value"])
            self.assertEqual(installs_of(ms, big), want)
            self.assertEqual(installs_of(ms, small), 30 * 3)
        finally:
            sim.stop()
            ms.cleanup()

    def test_export_failure_falls_back_to_per_device_reads(self):
        # The automatic strategy takes the export from the tenant budget's number of devices
        # on: a small budget makes a small tenant take it (2,050 devices at the default budget
        # read one by one wait out two Intune windows).
        sim = harness.Sim("--tenants", "1", "--devices", "50", "--apps-per-device", "2",
                          "--seed", "9", "--no-throttle")
        ms = harness.Memsync(sim)
        ms.env["MEMSYNC_INTUNE_TENANT_BUDGET"] = "50"
        try:
            t = sim.world()["tenants"][0]["id"]
            sim.control({"op": "fault", "tenant": "*", "route": "exportJobs", "kind": "status",
                         "status": 400, "message": "Report not available."})
            ms.add_integration()
            st = sim.stats()["requests"]
            self.assertGreaterEqual(st["exportJobs"][t], 1, "the export was tried")
            self.assertGreaterEqual(sum(st["batch"].values()), 50 // 20)
            self.assertEqual(installs_of(ms, t), 50 * 2)
        finally:
            sim.stop()
            ms.cleanup()


class Insights(unittest.TestCase):
    def test_insights_match_the_assets(self):
        sim = harness.Sim("--tenants", "3", "--devices", "25", "--seed", "31")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration()
            env = {"MEMSYNC_NOW": "2026-11-27T00:00:00Z"}
            rows = {r["client"]["tenant_id"]: r for r in json.loads(
                ms.run("insights", "--format", "json", "--stale-days", "90", env=env,
                       check=0)[1])}
            assets = ms.json("assets", "hardware", "--format", "json")
            for tid, r in rows.items():
                mine = [a for a in assets if a["client"]["tenant_id"] == tid]
                self.assertEqual(r["devices"], len(mine))
                self.assertEqual(r["no_serial"], len([a for a in mine if not a["serial_number"]]))
                self.assertEqual(r["unsupported_os"], len([
                    a for a in mine if a["operating_system"]["end_of_support"] and
                    a["operating_system"]["end_of_support"] < "2026-11-27"]))
                enc = len([a for a in mine if a["is_encrypted"]])
                self.assertEqual(r["encrypted_pct"], (enc * 100 + len(mine) // 2) // len(mine))
        finally:
            sim.stop()
            ms.cleanup()


class HardwareDetail(unittest.TestCase):
    def test_memory_and_ethernet_mac_per_device(self):
        sim = harness.Sim("--tenants", "2", "--devices", "15", "--seed", "41")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration("--no-sync")
            ms.run("sync", "--no-software", check=0)
            self.assertTrue(all(a["memory_bytes"] is None
                                for a in ms.json("assets", "hardware", "--format", "json")),
                            "list responses carry no memory")
            sim.control({"op": "reset_stats"})
            ms.run("sync", "--no-software", "--hardware-detail", check=0)
            self.assertEqual(sum(sim.stats()["requests"]["batch"].values()), 2,
                             "15 devices per tenant: one $batch each")
            for a in ms.json("assets", "hardware", "--format", "json"):
                tid, did = a["client"]["tenant_id"], a["source"]["intune_device_id"]
                tok = sim.sync_token(tid)
                code, body, _ = harness.http(
                    "GET", sim.graph + "/beta/deviceManagement/managedDevices/%s?$select=id,"
                    "physicalMemoryInBytes,ethernetMacAddress" % did, None,
                    {"Authorization": "Bearer " + tok})
                want = json.loads(body)
                self.assertEqual(a["memory_bytes"], want["physicalMemoryInBytes"] or None)
                self.assertEqual(a["ethernet_mac"], want["ethernetMacAddress"] or None)
        finally:
            sim.stop()
            ms.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
