"""`memsync backup` and `memsync restore` (SQLite): a backup taken while serve holds the database
open and a sync writes to it restores, in a new place, to a whole inventory (each tenant as
before or after that sync, never half); a backup after the sync restores to exactly the same
inventory as the source. Restore refuses a damaged file, a file that is not memsync's and a
database in use, and leaves the database untouched when it does."""
import os
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def by_tenant(assets):
    out = {}
    for a in assets:
        out.setdefault(a["client"]["tenant_id"], set()).add(a["source"]["intune_device_id"])
    return out


def snapshot(ms):
    """Everything a user sees of the inventory, from the exports."""
    return {
        "hardware": sorted(ms.run("assets", "hardware", "--format", "csv", check=0)[1]
                           .splitlines()),
        "software": sorted(ms.run("assets", "software", "--format", "csv", check=0)[1]
                           .splitlines()),
        "installs": sorted(ms.run("assets", "installs", "--format", "csv", check=0)[1]
                           .splitlines()),
        "clients": ms.json("clients", "--format", "json"),
    }


class Backup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = harness.Sim("--tenants", "6", "--devices", "150")

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.ms = harness.Memsync(self.sim)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
        self.ms.cleanup()

    def start(self, *args):
        with open(os.path.join(self.ms.dir, "%s-%d.log" % (args[0], len(self.procs))),
                  "wb") as log:
            p = subprocess.Popen([harness.BIN] + list(args), cwd=self.ms.dir, env=self.ms.env,
                                 stdout=log, stderr=subprocess.STDOUT)
        harness._procs.append(p)
        self.procs.append(p)
        return p

    def serve(self):
        url_file = os.path.join(self.ms.dir, "serve.url")
        p = self.start("serve", "--listen", "127.0.0.1:0", "--url-file", url_file,
                       "--no-schedule")
        deadline = time.time() + 30
        while not os.path.exists(url_file):
            self.assertIsNone(p.poll(), "serve exited")
            self.assertLess(time.time(), deadline, "serve did not start")
            time.sleep(0.05)
        return p

    def other(self, name):
        """A Memsync on a fresh directory (nothing there yet) with the same settings."""
        o = harness.Memsync(self.sim)
        self.addCleanup(o.cleanup)
        return o

    def test_backup_during_sync_restores_whole_inventory(self):
        ms = self.ms
        ms.add_integration()
        before = by_tenant(ms.json("assets", "hardware", "--format", "json"))
        self.assertEqual(len(before), 6)
        srv = self.serve()
        tenants = [t["id"] for t in self.sim.world()["tenants"]]
        self.sim.control([{"op": "add_devices", "tenant": t, "count": 40} for t in tenants] +
                         [{"op": "set_latency", "ms": 400}])
        try:
            sync = self.start("sync", "--full")
            time.sleep(0.5)
            self.assertIsNone(sync.poll(), "the sync is still running when the backup starts")
            backup = os.path.join(ms.dir, "during.db")
            code, out, err = ms.run("backup", backup)
            self.assertEqual(code, 0, err)
            running = sync.poll() is None
            self.assertEqual(sync.wait(timeout=300), 0)
        finally:
            self.sim.control({"op": "set_latency", "ms": 0})
        self.assertTrue(running, "the backup finished while the sync ran")
        self.assertIn("master key", out)
        self.assertIn(ms.db + ".key", out)
        self.assertEqual(stat.S_IMODE(os.stat(backup).st_mode), 0o600)
        self.assertFalse(os.path.exists(backup + "-wal"))
        after = by_tenant(ms.json("assets", "hardware", "--format", "json"))

        # Restored in a new place: each tenant is as before the sync or as after it.
        new = self.other("restored")
        code, out, err = new.run("restore", backup)
        self.assertEqual(code, 0, err)
        self.assertNotIn("before-restore", out)  # there was nothing to replace
        got = by_tenant(new.json("assets", "hardware", "--format", "json"))
        self.assertEqual(set(got), set(before))
        for t, ids in got.items():
            self.assertIn(ids, (before[t], after[t]), "tenant %s is whole" % t)
        self.assertEqual(new.title_count_drift(), [])

        # After the sync, with serve still holding the database: the very same inventory.
        self.assertIsNone(srv.poll())
        backup2 = os.path.join(ms.dir, "after.db")
        ms.run("backup", backup2, check=0)
        new2 = self.other("restored2")
        new2.run("restore", backup2, check=0)
        self.assertEqual(snapshot(new2), snapshot(ms))
        self.assertEqual(by_tenant(new2.json("assets", "hardware", "--format", "json")), after)

    def test_restore_refuses_damaged_foreign_and_in_use(self):
        ms = self.ms
        ms.add_integration()
        backup = os.path.join(ms.dir, "good.db")
        ms.run("backup", backup, check=0)
        with open(ms.db, "rb") as f:
            before = f.read()
        want = snapshot(ms)

        # Damaged: a page overwritten, and a file cut short.
        damaged = os.path.join(ms.dir, "damaged.db")
        with open(backup, "rb") as f:
            data = bytearray(f.read())
        page = 4096
        data[page * 3:page * 4] = b"\xff" * page
        with open(damaged, "wb") as f:
            f.write(data)
        code, _, err = ms.run("restore", damaged)
        self.assertEqual(code, 1)
        self.assertIn("damaged", err)
        short = os.path.join(ms.dir, "short.db")
        with open(short, "wb") as f:
            f.write(bytes(data[:len(data) // 3]))
        code, _, err = ms.run("restore", short)
        self.assertEqual(code, 1)
        self.assertIn(short, err)
        # Not memsync's: a text file, another application's SQLite database.
        text = os.path.join(ms.dir, "notes.txt")
        with open(text, "w") as f:
            f.write("not a database\n" * 500)
        code, _, err = ms.run("restore", text)
        self.assertEqual(code, 1)
        self.assertIn("not a SQLite database", err)
        import sqlite3
        foreign = os.path.join(ms.dir, "foreign.db")
        con = sqlite3.connect(foreign)
        con.execute("create table recipes (name text)")
        con.commit()
        con.close()
        code, _, err = ms.run("restore", foreign)
        self.assertEqual(code, 1)
        self.assertIn("not a memsync database", err)
        with open(ms.db, "rb") as f:
            self.assertEqual(f.read(), before, "refused restores left the database untouched")
        self.assertFalse(os.path.exists(ms.db + ".restore"))

        # In use: serve has it open.
        srv = self.serve()
        code, _, err = ms.run("restore", backup)
        self.assertEqual(code, 1)
        self.assertIn("in use", err)
        self.assertEqual(snapshot(ms), want)
        srv.terminate()
        self.assertEqual(srv.wait(timeout=30), 0)

        # Stopped: the restore goes through and keeps what it replaced.
        code, out, err = ms.run("restore", backup)
        self.assertEqual(code, 0, err)
        self.assertIn("before-restore", out)
        self.assertTrue(os.path.exists(ms.db + ".before-restore"))
        self.assertFalse(os.path.exists(ms.db + "-wal"))
        self.assertEqual(stat.S_IMODE(os.stat(ms.db).st_mode), 0o600)
        self.assertEqual(snapshot(ms), want)

    def test_backup_refuses_the_database_itself(self):
        self.ms.add_integration("--no-sync")
        with open(self.ms.db, "rb") as f:
            before = f.read()
        for target in (self.ms.db, os.path.join(self.ms.dir, ".", "memsync.db")):
            code, _, err = self.ms.run("backup", target)
            self.assertEqual(code, 1)
            self.assertIn("the database itself", err)
        with open(self.ms.db, "rb") as f:
            self.assertEqual(f.read(), before)
        code, _, err = self.ms.run("backup", self.ms.dir)
        self.assertEqual(code, 1)
        self.assertIn("directory", err)

    def test_postgresql_explains_pg_dump(self):
        for cmd in ("backup", "restore"):
            code, _, err = self.ms.run("--db", "postgresql://memsync@db.example/memsync", cmd,
                                       "x.dump")
            self.assertEqual(code, 1)
            self.assertIn("pg_dump" if cmd == "backup" else "pg_restore", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
