"""Where the parts of the real-cloud work meet: the automatic app strategy follows the tenant
budget, and a retirement confirmation is not queued."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class Seams(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "1", "--devices", "1200", "--apps-per-device", "2",
                               "--seed", "21", "--no-throttle")
        self.ms = harness.Memsync(self.sim)
        self.ms.add_integration("--no-sync")
        self.tenant = self.sim.world()["tenants"][0]["id"]

    def tearDown(self):
        self.sim.stop()
        self.ms.cleanup()

    def sync_routes(self, env=None):
        self.sim.control({"op": "reset_stats"})
        rc, out, err = self.ms.run("sync", "--full", env=env or {})
        self.assertEqual(rc, 0, out + err)
        installs = sum(s["device_count"] for s in self.ms.json(
            "assets", "software", "--format", "json", "--client", self.tenant))
        self.assertEqual(installs, 1200 * 2)
        return self.sim.stats()["requests"]

    def test_strategy_follows_the_budget(self):
        # 1,200 devices read one by one would need two windows of the default budget (1,000 per
        # 20 s): the export instead.
        routes = self.sync_routes()
        self.assertIn("exportJobs", routes)
        self.assertNotIn("batch", routes)
        # A budget of 1,900 reads them in one window: per device.
        routes = self.sync_routes({"MEMSYNC_INTUNE_TENANT_BUDGET": "1900"})
        self.assertNotIn("exportJobs", routes)
        self.assertIn("batch", routes)

    def test_confirm_retire_is_not_queued(self):
        rc, out, err = self.ms.run("sync", "--queue", "--confirm-retire")
        self.assertEqual(rc, 2, out + err)
        self.assertIn("--confirm-retire cannot be queued", err)


if __name__ == "__main__":
    unittest.main()
