"""Database files are private: the SQLite database and its -wal and -shm files (while serve holds
it open) and the master key are created 0600 whatever the caller's umask; `memsync config` never
shows a PostgreSQL password."""
import os
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class PrivateFiles(unittest.TestCase):
    def test_database_wal_shm_and_key_are_0600(self):
        sim = harness.Sim("--tenants", "2", "--devices", "5")
        ms = harness.Memsync(sim)
        old = os.umask(0o022)  # the usual umask; memsync must not depend on it
        srv = None
        try:
            ms.add_integration()
            self.assertEqual(mode(ms.db), 0o600)
            self.assertEqual(mode(ms.db + ".key"), 0o600)
            url_file = os.path.join(ms.dir, "serve.url")
            with open(os.path.join(ms.dir, "serve.err"), "wb") as err:
                srv = subprocess.Popen([harness.BIN, "serve", "--listen", "127.0.0.1:0",
                                        "--url-file", url_file], cwd=ms.dir, env=ms.env,
                                       stdout=subprocess.DEVNULL, stderr=err)
                harness._procs.append(srv)
                deadline = time.time() + 30
                while not os.path.exists(url_file) and time.time() < deadline:
                    self.assertIsNone(srv.poll())
                    time.sleep(0.05)
                # A sync while serve holds the database open: SQLite's -wal and -shm exist.
                ms.run("sync", check=0)
                for suffix in ("-wal", "-shm"):
                    self.assertTrue(os.path.exists(ms.db + suffix), suffix)
                    self.assertEqual(mode(ms.db + suffix), 0o600, suffix)
                self.assertEqual(mode(url_file), 0o600)
        finally:
            os.umask(old)
            if srv is not None:
                srv.terminate()
                srv.wait(timeout=30)
            ms.cleanup()
            sim.stop()

    def test_config_hides_postgresql_password(self):
        ms = harness.Memsync()
        try:
            _, out, _ = ms.run("--db", "postgresql://memsync:hunter2@db.example.com/memsync",
                               "config", check=0)
            self.assertIn("db = postgresql://memsync:****@db.example.com/memsync", out)
            self.assertNotIn("hunter2", out)
            _, out, _ = ms.run("config", check=0, env={
                "MEMSYNC_DB": "host=db user=memsync password=hunter2 dbname=memsync"})
            self.assertIn("password=****", out)
            self.assertNotIn("hunter2", out)
        finally:
            ms.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
