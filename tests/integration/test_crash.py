"""Crash safety: `memsync sync` killed with SIGKILL at random moments, 50 times, while the
simulated world changes. After every kill the database passes an integrity check and holds only
whole tenant transactions; a final clean sync leaves exactly the simulator's state."""
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

KILLS = int(os.environ.get("MEMSYNC_CRASH_KILLS", "50"))


class Crash(unittest.TestCase):
    def test_sigkill_loop(self):
        rnd = random.Random(int(os.environ.get("MEMSYNC_CRASH_SEED", "4242")))
        sim = harness.Sim("--tenants", "24", "--devices", "80", "--apps-per-device", "6",
                          "--latency-ms", "3", "--seed", "99", "--no-throttle")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration("--no-sync")
            tenants = [t["id"] for t in sim.world()["tenants"]]
            # Measure one undisturbed sync to spread the kills over its whole length.
            t0 = time.time()
            ms.run("sync", check=0)
            span = max(time.time() - t0, 0.3)
            killed_mid_run = 0
            for i in range(KILLS):
                # Change the world a little so every run has work to do.
                t = rnd.choice(tenants)
                op = rnd.choice(["remove", "add", "modify"])
                if op == "remove":
                    sim.control({"op": "remove_devices", "tenant": t, "last": rnd.randint(1, 3)})
                elif op == "add":
                    sim.control({"op": "add_devices", "tenant": t, "count": rnd.randint(1, 4)})
                else:
                    devs = sim.graph_all(t, "/v1.0/deviceManagement/managedDevices?$select=id")
                    if devs:
                        sim.control({"op": "modify_device", "tenant": t,
                                     "id": rnd.choice(devs)["id"],
                                     "set": {"deviceName": "renamed-%d" % i}, "touch": True})
                proc = subprocess.Popen([harness.BIN, "sync"], cwd=ms.dir, env=ms.env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                # Kill at a random moment of the sync; one that ends before it is not waited
                # out (the kill would find nothing to interrupt).
                try:
                    proc.wait(timeout=rnd.uniform(0.0, span))
                except subprocess.TimeoutExpired:
                    killed_mid_run += 1
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                con = sqlite3.connect(ms.db, timeout=10)
                try:
                    self.assertEqual(con.execute("pragma integrity_check").fetchone()[0], "ok",
                                     "after kill %d" % i)
                    self.assertEqual(con.execute("pragma foreign_key_check").fetchall(), [])
                    # Whole tenant transactions only: each client's count matches its assets.
                    rows = con.execute(
                        "select c.device_count, (select count(*) from hardware_asset h "
                        "where h.client_id = c.id and h.retired_at is null) from client c "
                        "where c.status = 'ok'").fetchall()
                    for stored, actual in rows:
                        self.assertEqual(stored, actual, "after kill %d" % i)
                    # And each title's device count matches its installs.
                    self.assertEqual(con.execute(harness.Memsync.TITLE_COUNT_DRIFT).fetchall(),
                                     [], "after kill %d" % i)
                finally:
                    con.close()
            self.assertGreater(killed_mid_run, KILLS // 3, "most kills landed mid-sync")

            # The kills ran under the retirement policy (devices missing once are only marked);
            # the final sync retires at once, so the inventory must equal the world exactly.
            code, out, err = ms.run("sync", env=harness.RETIRE_AT_ONCE)
            self.assertEqual(code, 0, err)
            active = ms.json("assets", "hardware", "--format", "json")
            got = {(a["client"]["tenant_id"], a["source"]["intune_device_id"], a["name"])
                   for a in active}
            want = set()
            for t in tenants:
                for d in sim.graph_all(t, "/v1.0/deviceManagement/managedDevices"):
                    want.add((t, d["id"], d["deviceName"] or None))
            self.assertEqual(got, want)
            con = sqlite3.connect(ms.db)
            self.assertEqual(con.execute("pragma integrity_check").fetchone()[0], "ok")
            con.close()
        finally:
            sim.stop()
            ms.cleanup()


class Interrupt(unittest.TestCase):
    def test_ctrl_c_stops_cleanly(self):
        sim = harness.Sim("--tenants", "30", "--devices", "40", "--latency-ms", "100")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration("--no-sync")
            proc = subprocess.Popen([harness.BIN, "sync", "--parallel", "4"], cwd=ms.dir,
                                    env=ms.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            # Interrupt once the first tenants are stored, with most of the sync still to run
            # (a fixed pause is too short on a slow or sanitizer build).
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                try:
                    con = sqlite3.connect(ms.db, timeout=10)
                    try:
                        done = con.execute("select count(*) from client "
                                           "where status = 'ok' and device_count > 0")
                        done = done.fetchone()[0]
                    finally:
                        con.close()
                except sqlite3.Error:
                    done = 0  # the schema is not there yet
                if done:
                    break
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
            self.assertEqual(proc.returncode, 3)
            self.assertIn("interrupted", out.decode())
            self.assertIn("Run the sync again", err.decode())
            # Interrupted tenants are not reported as failing, and nothing half-done is stored.
            clients = ms.json("clients", "--format", "json")
            self.assertTrue(clients)
            self.assertTrue(all(c["status"] == "ok" for c in clients))
            self.assertTrue(all(c["device_count"] == 40 for c in clients))
            # The latency only had to keep the first sync running until the interrupt.
            sim.control({"op": "set_latency", "ms": 0})
            self.assertEqual(ms.run("sync")[0], 0)
            self.assertEqual(len(ms.json("clients", "--format", "json")), 30)
        finally:
            sim.stop()
            ms.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
