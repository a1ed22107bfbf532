"""Integration setup: validation with remedies for each wrong value, secrets that appear nowhere,
rotation without downtime, and expiry warnings."""
import datetime
import glob
import json
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class Validation(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "3", "--devices", "4", "--seed", "5")
        self.ms = harness.Memsync(self.sim)
        self.tenants = [t["id"] for t in self.sim.world()["tenants"]]

    def tearDown(self):
        self.sim.stop()
        self.ms.cleanup()

    def add(self, partner_secret=None, sync_secret=None, **over):
        s = self.sim.env
        pf, sf = self.ms.write_secrets()
        if partner_secret is not None:
            with open(pf, "w") as f:
                f.write(partner_secret)
        if sync_secret is not None:
            with open(sf, "w") as f:
                f.write(sync_secret)
        args = {"--partner-tenant-id": s["MEMSYNC_SIM_PARTNER_TENANT_ID"],
                "--partner-app-id": s["MEMSYNC_SIM_PARTNER_APP_ID"],
                "--sync-app-id": s["MEMSYNC_SIM_SYNC_APP_ID"]}
        args.update(over)
        argv = ["integration", "add", "--partner-app-secret-file", pf,
                "--sync-app-secret-file", sf, "--no-sync"]
        for k, v in args.items():
            argv += [k, v]
        code, out, err = self.ms.run(*argv)
        saved = self.ms.json("integration", "list", "--format", "json")
        return code, out, err, saved

    def check_line(self, out, status, title_part):
        for line in out.splitlines():
            if line.strip().startswith(status) and title_part in line:
                return
        self.fail("no %s check containing %r in:\n%s" % (status, title_part, out))

    def test_all_good(self):
        code, out, err, saved = self.add()
        self.assertEqual(code, 0, err)
        self.assertEqual(len(saved), 1)
        self.assertNotIn("FAIL", out)

    def test_bad_guid(self):
        code, out, err, saved = self.add(**{"--sync-app-id": "0000-1111"})
        self.assertEqual(code, 2)
        self.assertIn("Microsoft Sync App ID", err)
        self.assertEqual(saved, [])

    def test_wrong_partner_key(self):
        code, out, err, saved = self.add(partner_secret="not-the-right-secret~value")
        self.assertEqual(code, 1)
        self.check_line(out, "FAIL", "Partner App gets a Partner Center token")
        self.assertIn("AADSTS7000215", out)
        self.assertIn("secret's ID was pasted instead of its value", out)
        self.assertEqual(saved, [])

    def test_secret_id_pasted(self):
        code, out, err, saved = self.add(sync_secret="5c1f4a9e-3b2d-4c7e-9f10-2a3b4c5d6e7f")
        self.assertEqual(code, 1)
        self.assertIn("secret's ID, not its value", err)
        self.assertEqual(saved, [])

    def test_expired_key(self):
        self.sim.control({"op": "expire_secret", "app": "sync"})
        code, out, err, saved = self.add()
        self.assertEqual(code, 1)
        self.check_line(out, "FAIL", "Sync App gets a Graph token")
        self.assertIn("AADSTS7000222", out)
        self.assertIn("rotate it here", out)
        self.assertEqual(saved, [])

    def test_sync_app_absent_from_partner_tenant(self):
        self.sim.control({"op": "fault", "tenant": self.sim.env["MEMSYNC_SIM_PARTNER_TENANT_ID"],
                          "route": "token_v2", "kind": "status", "status": 400,
                          "code": "AADSTS700016", "app": "sync"})
        code, out, err, saved = self.add()
        self.assertEqual(code, 1)
        self.assertIn("AADSTS700016", out)
        self.assertIn("adminconsent?client_id=" + self.sim.env["MEMSYNC_SIM_SYNC_APP_ID"], out)
        self.assertEqual(saved, [])

    def test_sync_app_absent_from_some_customers_is_a_warning(self):
        self.sim.control({"op": "revoke_consent", "tenant": self.tenants[1]})
        code, out, err, saved = self.add()
        self.assertEqual(code, 0, out + err)
        self.check_line(out, "WARN", "Sync App signs in to")
        self.assertIn("%s/%s/adminconsent?client_id=%s" % (
            self.sim.login, self.tenants[1], self.sim.env["MEMSYNC_SIM_SYNC_APP_ID"]), out)
        self.assertEqual(len(saved), 1)

    def test_no_intune_licence_is_a_warning(self):
        self.sim.control({"op": "set_tenant", "tenant": self.tenants[0],
                          "intune_licensed": False})
        code, out, err, saved = self.add()
        self.assertEqual(code, 0, out + err)
        self.check_line(out, "WARN", "reads Intune managed devices")
        self.assertIn("no Intune licence", out)
        self.assertIn("Request not applicable to target tenant.", out)

    def test_permission_missing_is_a_warning(self):
        self.sim.control({"op": "set_tenant", "tenant": self.tenants[2], "permission": False})
        code, out, err, saved = self.add()
        self.assertEqual(code, 0, out + err)
        self.assertIn("DeviceManagementManagedDevices.Read.All", out)


class SecretsNowhere(unittest.TestCase):
    def test_plaintext_secrets_appear_nowhere(self):
        sim = harness.Sim("--tenants", "6", "--devices", "30", "--latency-ms", "30")
        ms = harness.Memsync(sim)
        secrets = [sim.env["MEMSYNC_SIM_PARTNER_APP_SECRET"], sim.env["MEMSYNC_SIM_SYNC_APP_SECRET"]]
        try:
            ms.env["MEMSYNC_LOG_LEVEL"] = "debug"
            ms.add_integration("--no-sync")
            # Watch `ps` while a sync runs.
            seen_cmdlines = []
            proc = subprocess.Popen([harness.BIN, "sync"], cwd=ms.dir, env=ms.env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            while proc.poll() is None:
                ps = subprocess.run(["ps", "-eo", "args"], capture_output=True).stdout.decode()
                seen_cmdlines.append(ps)
                time.sleep(0.05)
            out, err = proc.communicate()
            logs = out.decode() + err.decode()
            self.assertEqual(proc.returncode, 0, logs)
            self.assertIn("debug", logs, "the most verbose level was on")
            outputs = [logs] + seen_cmdlines
            for args in (["status", "--format", "json"], ["integration", "list", "--format", "json"],
                         ["integration", "show", "1"], ["clients", "--format", "csv"],
                         ["assets", "hardware", "--format", "json"], ["config"]):
                code, o, e = ms.run(*args)
                outputs += [o, e]
            # A failing run's error messages too.
            sim.control({"op": "expire_secret", "app": "sync"})
            code, o, e = ms.run("sync")
            outputs += [o, e]
            for path in glob.glob(os.path.join(ms.dir, "memsync.db*")):
                if path.endswith(".key"):
                    continue
                with open(path, "rb") as f:
                    outputs.append(f.read().decode("latin-1"))
            for text in outputs:
                for sec in secrets:
                    self.assertNotIn(sec, text)
        finally:
            sim.stop()
            ms.cleanup()

    def test_ciphertext_moved_to_another_row_does_not_open(self):
        import sqlite3
        sim = harness.Sim("--tenants", "1", "--devices", "2")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration("--no-sync")
            ms.add_integration("--no-sync", "--name", "Second")
            con = sqlite3.connect(ms.db)
            cols = [r[1] for r in con.execute("pragma table_info(integration)")]
            col = [c for c in cols if "sync" in c and "sealed" in c or c == "sync_secret"][0]
            sealed = con.execute("select %s from integration where id = 1" % col).fetchone()[0]
            self.assertTrue(sealed.startswith("v1:"))
            con.execute("update integration set %s = ? where id = 2" % col, (sealed,))
            con.commit()
            con.close()
            code, out, err = ms.run("sync", "--integration", "2")
            self.assertEqual(code, 1)
            self.assertIn("master key", err.lower() + " master key" if "moved" in err else err)
            code, out, err = ms.run("sync", "--integration", "1")
            self.assertEqual(code, 0, err)
        finally:
            sim.stop()
            ms.cleanup()


class Rotation(unittest.TestCase):
    def test_rotate_sync_secret_during_a_full_sync(self):
        sim = harness.Sim("--tenants", "60", "--devices", "20", "--latency-ms", "100")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration("--no-sync")
            new = sim.control({"op": "add_secret", "app": "sync"})["results"][0]["secret"]
            newfile = os.path.join(ms.dir, "new.secret")
            with open(newfile, "w") as f:
                f.write(new)
            result = {}

            def run_sync():
                result["sync"] = ms.run("sync", "--parallel", "4")
            t = threading.Thread(target=run_sync)
            t.start()
            time.sleep(0.8)
            self.assertTrue(t.is_alive(), "the sync should still be running")
            code, out, err = ms.run("integration", "rotate-secret", "1", "--sync",
                                    "--secret-file", newfile, "--expires", "2027-03-01")
            self.assertEqual(code, 0, out + err)
            t.join(120)
            code, out, err = result["sync"]
            self.assertEqual(code, 0, "the running sync finished without a failed tenant:\n" + err)
            self.assertIn("60 ok, 0 failed", out)
            # Microsoft now rejects the old secret; the next sync must use the new one.
            sim.control({"op": "expire_secret", "app": "sync", "which": "old"})
            code, out, err = ms.run("sync")
            self.assertEqual(code, 0, err)
            st = ms.json("status", "--format", "json")
            self.assertEqual(st["integrations"][0]["sync_app_secret"]["hint"], new[:3])
            # The date entered with the new key (2027-03-01) gives way to the one Microsoft
            # holds for that key, which the sync reads (the Sync App may read applications).
            partner = sim.env["MEMSYNC_SIM_PARTNER_TENANT_ID"]
            _, body, _ = harness.http(
                "GET", "%s/v1.0/applications(appId='%s')" % (sim.graph,
                                                             sim.env["MEMSYNC_SIM_SYNC_APP_ID"]),
                headers={"Authorization": "Bearer " + sim.token(
                    partner, sim.env["MEMSYNC_SIM_SYNC_APP_ID"], new)})
            ends = [c["endDateTime"][:10] for c in json.loads(body)["passwordCredentials"]
                    if c["hint"] == new[:3]]
            self.assertEqual(st["integrations"][0]["sync_app_secret"]["expires_on"], ends[0])
            self.assertEqual(st["integrations"][0]["sync_app_secret"]["expiry_source"],
                             "microsoft")
        finally:
            sim.stop()
            ms.cleanup()

    def test_rotation_refuses_a_bad_secret(self):
        sim = harness.Sim("--tenants", "2", "--devices", "2")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration("--no-sync")
            bad = os.path.join(ms.dir, "bad.secret")
            with open(bad, "w") as f:
                f.write("wrong~secret~value")
            code, out, err = ms.run("integration", "rotate-secret", "1", "--partner",
                                    "--secret-file", bad)
            self.assertEqual(code, 1)
            self.assertIn("AADSTS7000215", out)
            self.assertEqual(ms.run("sync")[0], 0, "the old secret is still in use")
        finally:
            sim.stop()
            ms.cleanup()


class KeyRotation(unittest.TestCase):
    def test_rotate_master_key(self):
        sim = harness.Sim("--tenants", "2", "--devices", "3")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration("--no-sync")
            key = ms.db + ".key"
            old = open(key).read()
            code, out, err = ms.run("key", "rotate")
            self.assertEqual(code, 0, err)
            self.assertNotEqual(open(key).read(), old)
            self.assertEqual(open(key + ".old").read(), old)
            self.assertEqual(os.stat(key).st_mode & 0o077, 0)
            self.assertEqual(ms.run("sync")[0], 0, "secrets open under the new key")
            # The old key no longer opens anything, and says so.
            code, out, err = ms.run("sync", env={"MEMSYNC_MASTER_KEY_FILE": key + ".old"})
            self.assertEqual(code, 1)
            self.assertIn("key", err)
        finally:
            sim.stop()
            ms.cleanup()


class Expiry(unittest.TestCase):
    @staticmethod
    def api_level(ms, now):
        """The sync key's expiry level as GET /api/v1/integrations shows it at time now."""
        import re
        env = dict(ms.env, MEMSYNC_NOW=now)
        url_file = os.path.join(ms.dir, "serve.url")
        if os.path.exists(url_file):
            os.unlink(url_file)
        if not getattr(ms, "api_key", None):
            out = ms.run("apikey", "create", "--name", "expiry-test", check=0)[1]
            ms.api_key = re.search(r"msk_[0-9a-f]+", out).group(0)
        proc = subprocess.Popen([harness.BIN, "serve", "--listen", "127.0.0.1:0", "--url-file",
                                 url_file, "--no-schedule"], cwd=ms.dir, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                if os.path.exists(url_file) and open(url_file).read().strip():
                    break
                time.sleep(0.05)
            base = open(url_file).read().strip()
            harness.serve_started(base)
            code, body, _ = harness.http("GET", base + "/api/v1/integrations", None,
                                         {"x-api-key": ms.api_key})
            assert code == 200, body
            return json.loads(body)["data"][0]["sync_app_secret"]["expiry_level"]
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    def test_microsoft_says_expired_before_our_date(self):
        sim = harness.Sim("--tenants", "2", "--devices", "2")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration("--no-sync", "--sync-app-secret-expires", "2099-01-01")
            sim.control({"op": "expire_secret", "app": "sync"})
            code, out, err = ms.run("sync")
            self.assertEqual(code, 3)
            st = ms.json("status", "--format", "json")
            sec = st["integrations"][0]["sync_app_secret"]
            self.assertEqual(sec["level"], "expired")
            self.assertIn("rotate-secret 1 --sync", sec["message"])
            self.assertEqual(st["problems"][0]["code"], "secret_expired")
        finally:
            sim.stop()
            ms.cleanup()

    def test_warnings_at_31_30_13_and_0_days(self):
        sim = harness.Sim("--tenants", "1", "--devices", "1")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration("--no-sync", "--sync-app-secret-expires", "2027-06-30",
                               "--partner-app-secret-expires", "2028-01-01")
            exp = datetime.datetime(2027, 6, 30, tzinfo=datetime.timezone.utc)
            want = {31: "ok", 30: "warn_30", 13: "warn_14", 6: "warn_7", 0: "expired"}
            for days, level in want.items():
                now = (exp - datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
                st = json.loads(ms.run("status", "--format", "json", check=0,
                                       env={"MEMSYNC_NOW": now})[1])
                sec = st["integrations"][0]["sync_app_secret"]
                self.assertEqual(sec["level"], level, "at %d days" % days)
                self.assertEqual(st["integrations"][0]["partner_app_secret"]["level"], "ok")
                _, text, _ = ms.run("status", check=0, env={"MEMSYNC_NOW": now})
                self.assertEqual(self.api_level(ms, now), level, "API at %d days" % days)
                if level == "ok":
                    self.assertNotIn("rotate-secret 1 --sync", text)
                else:
                    self.assertIn("rotate-secret 1 --sync", text)
                    self.assertIn("2027-06-30", text)
        finally:
            sim.stop()
            ms.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
