"""Bad input gets a clear error and a non-zero exit: secrets, usage, network, JSON, database."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class CliErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = harness.Sim("--tenants", "2", "--devices", "5")

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.ms = harness.Memsync(self.sim)

    def tearDown(self):
        self.ms.cleanup()

    def add_args(self, pfile, sfile):
        s = self.sim.env
        return ["integration", "add", "--partner-tenant-id", s["MEMSYNC_SIM_PARTNER_TENANT_ID"],
                "--partner-app-id", s["MEMSYNC_SIM_PARTNER_APP_ID"],
                "--partner-app-secret-file", pfile, "--sync-app-id", s["MEMSYNC_SIM_SYNC_APP_ID"],
                "--sync-app-secret-file", sfile]

    def test_missing_secret_file(self):
        pf, _ = self.ms.write_secrets()
        code, _, err = self.ms.run(*self.add_args(pf, "/nonexistent/sync.secret"))
        self.assertNotEqual(code, 0)
        self.assertIn("/nonexistent/sync.secret", err)
        self.assertIn("Sync App", err)

    def test_unreadable_secret_file(self):
        pf, sf = self.ms.write_secrets()
        os.chmod(sf, 0)
        if os.access(sf, os.R_OK):  # root reads anything: use a directory instead
            sf = self.ms.dir
        code, _, err = self.ms.run(*self.add_args(pf, sf))
        self.assertNotEqual(code, 0)
        self.assertIn("Sync App", err)

    def test_empty_secret_file(self):
        pf, sf = self.ms.write_secrets()
        open(sf, "w").close()
        code, _, err = self.ms.run(*self.add_args(pf, sf))
        self.assertNotEqual(code, 0)
        self.assertIn("empty", err)

    def test_secret_from_stdin(self):
        pf, _ = self.ms.write_secrets()
        code, out, err = self.ms.run(*self.add_args(pf, "-"), "--no-sync",
                                     stdin=self.sim.env["MEMSYNC_SIM_SYNC_APP_SECRET"].encode())
        self.assertEqual(code, 0, err)
        self.assertIn("saved", out)

    def test_secret_id_instead_of_value(self):
        pf, sf = self.ms.write_secrets()
        with open(sf, "w") as f:
            f.write("3f2b6c1e-9a4d-4e2b-8c7f-1a2b3c4d5e6f\n")
        code, _, err = self.ms.run(*self.add_args(pf, sf))
        self.assertEqual(code, 1)
        self.assertIn("ID, not its value", err)

    def test_secrets_are_not_accepted_on_the_command_line(self):
        code, _, err = self.ms.run("integration", "add", "--sync-app-secret", "x")
        self.assertEqual(code, 2)
        self.assertIn("unknown option --sync-app-secret", err)

    def test_unknown_command_and_flag(self):
        code, _, err = self.ms.run("frobnicate")
        self.assertEqual(code, 2)
        self.assertIn("unknown command", err)
        code, _, err = self.ms.run("clients", "--colour")
        self.assertEqual(code, 2)
        self.assertIn("unknown option --colour", err)
        code, _, err = self.ms.run("--bogus", "clients")
        self.assertEqual(code, 2)
        code, _, err = self.ms.run("clients", "--format", "xml")
        self.assertEqual(code, 2)
        self.assertIn("xml", err)

    def test_bad_guid(self):
        pf, sf = self.ms.write_secrets()
        args = self.add_args(pf, sf)
        args[args.index("--partner-tenant-id") + 1] = "not-a-guid"
        code, _, err = self.ms.run(*args)
        self.assertEqual(code, 2)
        self.assertIn("Microsoft Partner Account ID", err)
        self.assertIn("not a GUID", err)

    def test_unreachable_endpoint(self):
        pf, sf = self.ms.write_secrets()
        import socket
        with socket.socket() as sock:  # a port that nothing listens on any more
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        code, out, err = self.ms.run(*self.add_args(pf, sf),
                                     env={"MEMSYNC_LOGIN_URL": "http://127.0.0.1:%d/login" % port})
        self.assertEqual(code, 1)
        self.assertIn("127.0.0.1:%d" % port, out + err)
        self.assertIn("not saved", err)
        self.assertFalse(self.ms.json("integration", "list", "--format", "json"))

    def test_non_loopback_http_is_refused(self):
        pf, sf = self.ms.write_secrets()
        code, out, err = self.ms.run(*self.add_args(pf, sf),
                                     env={"MEMSYNC_LOGIN_URL": "http://login.example.com"})
        self.assertEqual(code, 1)
        self.assertIn("http", (out + err).lower())

    def test_malformed_json_from_partner_center(self):
        self.ms.add_integration("--no-sync")
        self.sim.control({"op": "fault", "tenant": "*", "route": "customers", "kind": "truncate",
                          "count": 100})
        try:
            code, _, err = self.ms.run("sync")
        finally:
            self.sim.control({"op": "clear_faults"})
        self.assertEqual(code, 1)
        self.assertIn("customers", err)
        self.assertIn("not understood", err)

    def test_not_a_memsync_database(self):
        with open(self.ms.db, "w") as f:
            f.write("this is a shopping list, not a database\n" * 100)
        with open(self.ms.db, "rb") as f:
            before = f.read()
        code, _, err = self.ms.run("clients")
        self.assertEqual(code, 1)
        self.assertIn(self.ms.db, err)
        with open(self.ms.db, "rb") as f:
            self.assertEqual(f.read(), before, "the file was not modified")

    def test_foreign_sqlite_database(self):
        import sqlite3
        con = sqlite3.connect(self.ms.db)
        con.execute("create table recipes (name text)")
        con.commit()
        con.close()
        code, _, err = self.ms.run("assets", "hardware")
        self.assertEqual(code, 1)
        self.assertIn("memsync", err)

    def test_sync_without_integration(self):
        code, _, err = self.ms.run("sync")
        self.assertEqual(code, 1)
        self.assertIn("integration add", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
