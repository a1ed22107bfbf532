"""`memsync key rotate` while serve runs: serve reads the new key file before it next uses the key
(it notices the file was replaced), and SIGHUP makes it read the file at once. Without that, serve
kept the old key and every sync it ran failed to open the re-sealed secrets.
"""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_api import Serve, api, apikey, get_json, wait_run  # noqa: E402


class KeyReload(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "2", "--devices", "4", "--apps-per-device", "1",
                               "--seed", "7")
        self.ms = harness.Memsync(self.sim)

    def tearDown(self):
        self.sim.stop()
        self.ms.cleanup()

    def sync_now(self, srv, key, iid):
        last = get_json(srv, "/api/v1/sync-runs", key)["data"]
        after = last[0]["id"] if last else 0
        st, _, text, _ = api(srv, "POST", "/api/v1/integrations/%d/sync" % iid, key)
        self.assertEqual(st, 202, text)
        return wait_run(srv, key, iid, after=after)

    def test_rotate_while_serve_runs(self):
        self.ms.add_integration()
        srv = Serve(self.ms)
        try:
            key = apikey(self.ms, "admin")
            iid = get_json(srv, "/api/v1/integrations", key)["data"][0]["id"]
            code, out, err = self.ms.run("key", "rotate")
            self.assertEqual(code, 0, err)
            self.assertIn("kill -HUP", out)
            self.assertIn(".old", out)
            run = self.sync_now(srv, key, iid)
            self.assertEqual([t["status"] for t in run["tenants"]], ["ok", "ok"],
                             "serve opens the secrets re-sealed under the new key: %s" % run)
            self.assertIn("master key reloaded", srv.stderr())
            # A second rotation, then SIGHUP: serve reads the file at once and keeps running.
            code, out, err = self.ms.run("key", "rotate")
            self.assertEqual(code, 0, err)
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while "master key file read again" not in srv.stderr() and time.time() < deadline:
                time.sleep(0.05)
            self.assertIn("master key file read again", srv.stderr())
            self.assertIsNone(srv.proc.poll(), "SIGHUP does not stop serve")
            run = self.sync_now(srv, key, iid)
            self.assertEqual([t["status"] for t in run["tenants"]], ["ok", "ok"])
        finally:
            srv.stop()
        # The CLI (a new process) opens what serve used, and serve's start warns about FILE.old.
        code, _, err = self.ms.run("sync", "--no-software")
        self.assertEqual(code, 0, err)
        srv = Serve(self.ms, name="serve2")
        try:
            self.assertIn("previous master key is still at", srv.stderr())
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main()
