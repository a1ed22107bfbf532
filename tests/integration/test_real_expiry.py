"""Key expiry from Microsoft: when the Sync App may read the apps' objects (the optional
Application.Read.All in the partner tenant), a sync takes each key's endDateTime from
passwordCredentials (the credential whose hint is the stored key's first three characters) and
says so; without it the entered date stays, marked as entered."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class KeyExpiry(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "1", "--devices", "2", "--seed", "5")
        self.ms = harness.Memsync(self.sim)
        self.ms.add_integration("--no-sync", "--sync-app-secret-expires", "2099-01-01",
                                "--partner-app-secret-expires", "2098-01-01")

    def tearDown(self):
        self.sim.stop()
        self.ms.cleanup()

    def credentials(self, app_env):
        partner = self.sim.env["MEMSYNC_SIM_PARTNER_TENANT_ID"]
        tok = self.sim.sync_token(partner)
        code, body, _ = harness.http(
            "GET", "%s/v1.0/applications(appId='%s')" % (self.sim.graph, self.sim.env[app_env]),
            headers={"Authorization": "Bearer " + tok})
        self.assertEqual(code, 200, body)
        return json.loads(body)["passwordCredentials"]

    def secrets(self):
        st = self.ms.json("status", "--format", "json")["integrations"][0]
        return st["sync_app_secret"], st["partner_app_secret"]

    def test_expiry_taken_from_microsoft_when_permitted(self):
        # A second Sync App key that outlives the one memsync holds: the stored key's hint
        # picks the right credential, not the latest.
        secret = self.sim.env["MEMSYNC_SIM_SYNC_APP_SECRET"]
        self.sim.control({"op": "add_secret", "app": "sync"})
        self.sim.control({"op": "expire_secret", "app": "sync", "which": "current",
                          "expires": "2031-05-05T00:00:00Z"})
        creds = self.credentials("MEMSYNC_SIM_SYNC_APP_ID")
        mine = [c for c in creds if c["hint"] == secret[:3]]
        self.assertEqual(len(mine), 1)
        self.assertNotEqual(mine[0]["endDateTime"][:10], "2031-05-05")
        partner = self.credentials("MEMSYNC_SIM_PARTNER_APP_ID")[0]["endDateTime"][:10]
        self.ms.run("sync", check=0)
        sync, part = self.secrets()
        self.assertEqual(sync["expires_on"], mine[0]["endDateTime"][:10])
        self.assertEqual(sync["expiry_source"], "microsoft")
        self.assertEqual(part["expires_on"], partner)
        self.assertEqual(part["expiry_source"], "microsoft")
        listed = self.ms.json("integration", "list", "--format", "json")[0]
        self.assertEqual(listed["sync_app_secret"]["expiry_source"], "microsoft")
        _, text, _ = self.ms.run("status", check=0)
        self.assertIn("from Microsoft", text)

    def test_entered_date_stays_without_application_read(self):
        self.sim.control({"op": "set_partner", "application_read": False})
        self.ms.run("sync", check=0)
        sync, part = self.secrets()
        self.assertEqual(sync["expires_on"], "2099-01-01")
        self.assertEqual(sync["expiry_source"], "entered")
        self.assertEqual(part["expires_on"], "2098-01-01")
        self.assertEqual(part["expiry_source"], "entered")
        clients = self.ms.json("clients", "--format", "json")
        self.assertEqual([c["status"] for c in clients], ["ok"], "the sync itself is not hurt")


if __name__ == "__main__":
    unittest.main()
