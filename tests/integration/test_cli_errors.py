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


class Composes(unittest.TestCase):
    """The CLI in pipelines and scripts: a reader that stops early, a --client that matches
    nothing, --help everywhere."""

    @classmethod
    def setUpClass(cls):
        # Enough rows that every format overflows a pipe's buffer after `head` has gone.
        cls.sim = harness.Sim("--tenants", "3", "--devices", "200")
        cls.ms = harness.Memsync(cls.sim)
        cls.ms.add_integration()

    @classmethod
    def tearDownClass(cls):
        cls.ms.cleanup()
        cls.sim.stop()

    def test_reader_going_away_is_not_an_error(self):
        import subprocess
        for args in (["assets", "hardware", "--format", "csv"],
                     ["assets", "hardware", "--format", "table"],
                     ["assets", "hardware", "--format", "json"],
                     ["assets", "installs", "--format", "jsonl"],
                     ["assets", "software", "--format", "csv"]):
            # Exactly what a shell runs for `memsync ... | head -1`, with pipefail.
            cmd = "set -o pipefail; %s %s | head -1" % (
                harness.shlex.quote(harness.BIN), " ".join(args))
            p = subprocess.run(["bash", "-c", cmd], cwd=self.ms.dir, env=self.ms.env,
                               capture_output=True, timeout=120)
            self.assertEqual(p.returncode, 0, "%s: %s" % (args, p.stderr.decode()))
            self.assertEqual(p.stderr, b"", args)
            self.assertEqual(len(p.stdout.splitlines()), 1, args)
            # And a reader that closes without reading anything at all.
            proc = subprocess.Popen([harness.BIN] + args, cwd=self.ms.dir, env=self.ms.env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            proc.stdout.close()
            err = proc.stderr.read()
            proc.stderr.close()
            self.assertEqual(proc.wait(timeout=120), 0, "%s: %s" % (args, err))
            self.assertEqual(err, b"", args)

    def test_full_disk_is_an_error(self):
        if not os.path.exists("/dev/full"):
            self.skipTest("no /dev/full")
        with open("/dev/full", "wb") as full:
            import subprocess
            p = subprocess.run([harness.BIN, "assets", "hardware", "--format", "csv"],
                               cwd=self.ms.dir, env=self.ms.env, stdout=full,
                               stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(p.returncode, 1)
        err = p.stderr.decode()
        self.assertIn("No space left on device", err)
        self.assertNotIn(": ok", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_client_that_matches_nothing(self):
        for args in (["assets", "hardware"], ["assets", "software"], ["assets", "installs"],
                     ["insights"]):
            code, out, err = self.ms.run(*args, "--client", "Nope Ltd")
            self.assertEqual(code, 1, args)
            self.assertEqual(out, "", args)
            self.assertIn("'Nope Ltd'", err)
            self.assertIn("memsync clients", err)
        # A client named by id, tenant id or exact name still works.
        c = self.ms.json("clients", "--format", "json")[0]
        for key in (str(c["id"]), c["tenant_id"], c["name"]):
            rows = self.ms.json("assets", "hardware", "--client", key, "--format", "json")
            self.assertEqual(len(rows), c["device_count"], key)
            self.assertEqual({r["client"]["tenant_id"] for r in rows}, {c["tenant_id"]})

    def test_help_is_help(self):
        for args in (["config"], ["key"], ["key", "rotate"], ["user"], ["apikey"],
                     ["backup"], ["restore"], ["sim"], ["assets"], ["clients"], ["status"],
                     ["insights"], ["sync"], ["integration"], ["worker"], ["serve"],
                     ["clients", "exclude"], ["clients", "rename"], ["integration", "show"],
                     ["user", "add"], ["apikey", "create"], ["assets", "hardware"]):
            for flag in ("--help", "-h"):
                code, out, err = self.ms.run(*args, flag, timeout=30)
                self.assertEqual(code, 0, "%s %s: %s" % (args, flag, err))
                self.assertTrue(out.startswith("usage: memsync"), "%s %s: %r" % (args, flag, out))
                self.assertEqual(err, "", args)
        code, out, _ = self.ms.run("config", "--help")
        self.assertNotIn("db = ", out)
        code, _, err = self.ms.run("config", "--bogus")
        self.assertEqual(code, 2)
        self.assertIn("--bogus", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
