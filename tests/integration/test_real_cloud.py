"""National clouds: an integration's `cloud` picks the token audiences (and the hosts, unless the
URL settings name them), so a US Government tenant syncs with `--cloud usgov` and refuses a
commercial token with AADSTS900382."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class NationalCloud(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "2", "--devices", "6", "--apps-per-device", "2",
                               "--seed", "12", "--no-throttle")
        self.gov, self.com = [t["id"] for t in self.sim.world()["tenants"]]
        self.sim.control({"op": "set_tenant", "tenant": self.gov, "cloud": "usgov"})
        self.made = []

    def tearDown(self):
        self.sim.stop()
        for ms in self.made:
            ms.cleanup()

    def memsync(self):
        ms = harness.Memsync(self.sim)
        self.made.append(ms)
        return ms

    def clients(self, ms):
        return {c["tenant_id"]: c for c in ms.json("clients", "--format", "json")}

    def devices(self, ms, tenant):
        return len(ms.json("assets", "hardware", "--format", "json", "--client", tenant))

    def test_usgov_integration_syncs_a_usgov_tenant(self):
        ms = self.memsync()
        ms.add_integration("--cloud", "usgov", "--no-sync")
        listed = ms.json("integration", "list", "--format", "json")
        self.assertEqual([i["cloud"] for i in listed], ["usgov"])
        code, out, err = ms.run("sync")
        self.assertEqual(code, 3, out + err)  # the commercial tenant fails, the other syncs
        c = self.clients(ms)
        self.assertEqual(c[self.gov]["status"], "ok", c[self.gov])
        self.assertEqual(self.devices(ms, self.gov), 6)
        self.assertEqual(c[self.com]["status"], "error")
        self.assertIn("900382", json.dumps(c[self.com]["error"]))

    def test_global_integration_gets_900382_from_a_usgov_tenant(self):
        ms = self.memsync()
        ms.add_integration("--no-sync")
        self.assertEqual(ms.json("integration", "list", "--format", "json")[0]["cloud"],
                         "global")
        code, out, err = ms.run("sync")
        self.assertEqual(code, 3, out + err)
        c = self.clients(ms)
        self.assertEqual(c[self.com]["status"], "ok")
        self.assertEqual(self.devices(ms, self.com), 6)
        self.assertEqual(c[self.gov]["status"], "error")
        self.assertIn("900382", json.dumps(c[self.gov]["error"]))
        self.assertEqual(self.devices(ms, self.gov), 0)

    def test_api_creates_and_shows_the_cloud(self):
        import test_api
        ms = self.memsync()
        key = test_api.apikey(ms, "admin")
        srv = test_api.Serve(ms)
        try:
            st, js, text, _ = test_api.api(srv, "POST", "/api/v1/integrations", key,
                                           test_api.integration_body(self.sim, cloud="mars"))
            self.assertEqual(st, 400, text)
            self.assertIn("global, usgov, usgovdod, china", text)
            st, js, text, _ = test_api.api(srv, "POST", "/api/v1/integrations", key,
                                           test_api.integration_body(self.sim, cloud="usgov"))
            self.assertEqual(st, 201, text)
            iid = js["data"]["id"]
            run = test_api.wait_run(srv, key, iid)
            got = test_api.get_json(srv, "/api/v1/integrations/%d" % iid, key)["data"]
            self.assertEqual(got["cloud"], "usgov")
            self.assertEqual(got["sync_app_secret"]["expiry_source"], "microsoft")
            self.assertEqual(run["status"], "partial", "the commercial tenant fails, 900382")
            c = self.clients(ms)
            self.assertEqual(c[self.gov]["status"], "ok")
            self.assertIn("900382", json.dumps(c[self.com]["error"]))
        finally:
            srv.stop()
            srv.out.close()
            srv.err.close()

    def test_unknown_cloud_is_refused(self):
        ms = self.memsync()
        code, _, err = ms.add_integration("--cloud", "mars", "--no-sync", check=None)
        self.assertEqual(code, 2, err)
        self.assertIn("global, usgov, usgovdod, china", err)
        self.assertEqual(ms.json("integration", "list", "--format", "json"), [])


if __name__ == "__main__":
    unittest.main()
