"""SQLite and PostgreSQL give the same answers: one simulated MSP synced into both, compared
whole (hardware with retired devices, software titles, installs, clients, the change history)
after a full sync, an incremental sync that changes devices and apps, and a sync that retires
devices. Only the times each sync wrote are told apart, by the sync that wrote them (the two
databases are synced a few seconds apart). Needs MEMSYNC_TEST_PG_URL (label pg)."""
import datetime
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

PG = os.environ.get("MEMSYNC_TEST_PG_URL")

# Times memsync writes (the rest come from the simulator and match as they are).
SYNC_TIMES = {"first_synced_at", "last_synced_at", "retired_at", "missing_since", "first_seen_at",
              "last_seen_at", "removed_at", "last_sync_at", "updated_at", "created_at", "at",
              "error_date", "synced_at"}


def to_epoch(v):
    if isinstance(v, (int, float)):
        return v
    try:
        return datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


def normalise(v, starts, key=None):
    """v with each time memsync wrote replaced by the number of the sync that wrote it."""
    if isinstance(v, dict):
        return {k: normalise(x, starts, k) for k, x in v.items()}
    if isinstance(v, list):
        return [normalise(x, starts) for x in v]
    if key in SYNC_TIMES and v is not None:
        t = to_epoch(v)
        if t is not None:
            return "sync %d" % sum(1 for s in starts if t >= s)
    return v


@unittest.skipUnless(PG, "compares with PostgreSQL (MEMSYNC_TEST_PG_URL)")
class Parity(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "4", "--devices", "30", "--apps-per-device", "6",
                               "--seed", "23", "--no-throttle")
        saved = os.environ.pop("MEMSYNC_TEST_PG_URL")
        try:
            self.lite = harness.Memsync(self.sim)
        finally:
            os.environ["MEMSYNC_TEST_PG_URL"] = saved
        self.pg = harness.Memsync(self.sim)
        self.assertTrue(self.pg.db.startswith("postgresql://"))
        self.assertFalse(self.lite.db.startswith("postgresql://"))
        self.starts = {id(self.lite): [], id(self.pg): []}
        for ms in (self.lite, self.pg):
            ms.env.update(harness.RETIRE_AT_ONCE)
            ms.add_integration("--no-sync")
        self.tenants = sorted(t["id"] for t in self.sim.world()["tenants"])

    def tearDown(self):
        self.sim.stop()
        self.lite.cleanup()
        self.pg.cleanup()

    def sync(self, *args):
        for ms in (self.lite, self.pg):
            # Whole seconds apart: a sync's times are told from the one before by the second.
            time.sleep(1.1)
            self.starts[id(ms)].append(int(time.time()))
            ms.run("sync", *args, check=0)

    def export(self, ms):
        """Everything the CLI lists, memsync's row ids replaced by natural keys (tenants are
        reconciled in whatever order they finish, so ids differ from run to run)."""
        starts = self.starts[id(ms)]
        hw = ms.json("assets", "hardware", "--format", "json", "--include-retired")
        sw = ms.json("assets", "software", "--format", "json")
        inst = ms.json("assets", "installs", "--format", "json", "--include-retired")
        clients = ms.json("clients", "--format", "json")
        asset = {a["id"]: "%s/%s" % (a["client"]["tenant_id"], a["source"]["intune_device_id"])
                 for a in hw}
        title = {t["id"]: "%s/%s/%s/%s/%s" % (t["client"]["tenant_id"], t["name"], t["version"],
                                              t["publisher"], t["platform"]) for t in sw}
        for rows in (hw, sw, inst):
            for r in rows:
                r["client"].pop("id")
        for a in hw:
            a["id"] = asset[a["id"]]
        for t in sw:
            t["id"] = title[t["id"]]
        for i in inst:
            i["hardware_asset_id"] = asset[i["hardware_asset_id"]]
            # Titles no active device has are not listed: named by the install's own fields.
            i["software_id"] = title.get(i["software_id"], "%s/%s/%s/%s/?" % (
                i["client"]["tenant_id"], i["name"], i["version"], i["publisher"]))
        for c in clients:
            c.pop("id")
        history = [[asset[a], "sync %d" % sum(1 for s in starts if at >= s), f, o, n]
                   for a, at, f, o, n in ms.sql(
                       "SELECT asset_id, at, field, old_value, new_value FROM asset_change")]
        out = {
            "hardware": sorted(hw, key=lambda a: a["id"]),
            "software": sorted(sw, key=lambda t: t["id"]),
            "installs": sorted(inst, key=lambda i: (i["hardware_asset_id"], i["software_id"])),
            "clients": sorted(clients, key=lambda c: c["tenant_id"]),
            "history": sorted(history, key=lambda h: [str(x) for x in h]),
        }
        return normalise(out, starts)

    def assertSame(self, round_name):
        a, b = self.export(self.lite), self.export(self.pg)
        for part in a:
            self.assertEqual(a[part], b[part], "%s: %s differs between SQLite and PostgreSQL" %
                             (round_name, part))
        self.assertEqual(self.lite.title_count_drift(), [])
        self.assertEqual(self.pg.title_count_drift(), [])
        return a

    def test_full_incremental_and_retirement_rounds(self):
        self.sync("--full")
        first = self.assertSame("full sync")
        self.assertEqual(len(first["hardware"]), 120)
        self.assertGreater(len(first["installs"]), 0)

        # Renamed and re-owned devices (history rows), a new device, other apps.
        t0, t1 = self.tenants[0], self.tenants[1]
        devs = self.sim.graph_all(t0, "/v1.0/deviceManagement/managedDevices?$select=id")
        for i, d in enumerate(devs[:3]):
            self.sim.control({"op": "modify_device", "tenant": t0, "id": d["id"], "touch": True,
                              "set": {"deviceName": "renamed-%d" % i, "model": "Model %d" % i}})
        self.sim.control([{"op": "add_devices", "tenant": t1, "count": 2},
                          {"op": "set_apps", "tenant": t1, "apps_per_device": 9}])
        self.sync("--incremental")
        second = self.assertSame("incremental sync")
        self.assertEqual(len(second["hardware"]), 122)
        self.assertGreaterEqual(len(second["history"]), 3)

        # Devices gone (retired) and apps uninstalled (removed installs).
        self.sim.control([{"op": "remove_devices", "tenant": t0, "last": 4},
                          {"op": "set_apps", "tenant": self.tenants[2], "apps_per_device": 2}])
        self.sync("--full")
        third = self.assertSame("retirement")
        self.assertEqual(sum(1 for a in third["hardware"] if a["retired_at"]), 4)
        self.assertGreater(sum(1 for i in third["installs"] if i["removed_at"]), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
