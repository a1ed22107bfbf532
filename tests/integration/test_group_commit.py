"""Group commit (SQLite): the sync commits the tenants it reconciled in the last quarter second
together, each tenant a savepoint. A database failure in one tenant takes back that tenant only;
a failure that ends the whole transaction takes back every tenant of the batch, and each of
them is then reported failed with the store remedy, never as synced. Store faults are injected
with SQLite triggers."""
import os
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

TENANTS, DEVICES = 12, 30


class GroupCommit(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", str(TENANTS), "--devices", str(DEVICES),
                               "--apps-per-device", "3", "--seed", "77")
        self.ms = harness.Memsync(self.sim)
        if self.ms.db.startswith("postgresql://"):
            self.skipTest("PostgreSQL commits each tenant on its own")
        self.tenants = [t["id"] for t in self.sim.world()["tenants"]]
        self.poisoned = self.tenants[5]
        self.ms.add_integration("--no-sync")

    def tearDown(self):
        self.sim.stop()
        self.ms.cleanup()

    def trigger(self, action):
        con = sqlite3.connect(self.ms.db)
        try:
            con.execute("DROP TRIGGER IF EXISTS poison")
            if action:
                # Fires when the tenant's commit marks its client ok: after its devices and
                # installs were written inside its savepoint.
                con.execute("CREATE TRIGGER poison BEFORE UPDATE OF status ON client "
                            "WHEN NEW.tenant_id = '%s' AND NEW.status = 'ok' "
                            "BEGIN SELECT RAISE(%s, 'injected store fault'); END"
                            % (self.poisoned, action))
            con.commit()
        finally:
            con.close()

    def state(self):
        """tenant -> (client status, error code, active devices, installs, result status)"""
        run = self.ms.sql("SELECT max(id) FROM sync_run")[0][0]
        out = {}
        for tid in self.tenants:
            row = self.ms.sql("SELECT status, error_code, id FROM client WHERE tenant_id = '%s'"
                              % tid)
            status, code, cid = row[0] if row else (None, None, None)
            devs = self.ms.sql("SELECT count(*) FROM hardware_asset WHERE client_id = %s AND "
                               "retired_at IS NULL" % (cid or -1))[0][0]
            installs = self.ms.sql("SELECT count(*) FROM software_install i JOIN hardware_asset "
                                   "h ON h.id = i.asset_id WHERE h.client_id = %s AND "
                                   "i.removed_at IS NULL" % (cid or -1))[0][0]
            res = self.ms.sql("SELECT status, error_code FROM sync_tenant_result WHERE "
                              "run_id = %d AND tenant_id = '%s'" % (run, tid))
            self.assertEqual(len(res), 1, "one result per tenant and run: %s" % tid)
            out[tid] = (status, code, devs, installs, res[0])
        return out

    def assert_honest(self, state):
        """Every tenant reported ok has exactly the simulator's data; every other one is
        reported with the store remedy and has none of this sync's data."""
        lost = []
        for tid, (status, code, devs, installs, res) in state.items():
            if res[0] == "ok":
                self.assertEqual(status, "ok", tid)
                self.assertEqual((devs, installs), (DEVICES, DEVICES * 3), tid)
            else:
                self.assertEqual(res, ("error", "store_error"), tid)
                self.assertEqual((status, code), ("error", "store_error"), tid)
                self.assertEqual((devs, installs), (0, 0), tid)
                lost.append(tid)
        return lost

    def test_failed_tenant_takes_back_only_itself(self):
        self.trigger("ABORT")
        code, out, err = self.ms.run("sync", "--full")
        self.assertEqual(code, 3, err[-2000:])
        lost = self.assert_honest(self.state())
        self.assertEqual(lost, [self.poisoned])
        self.assertIn("store_error", err)
        # The fault gone, the next sync completes the tenant.
        self.trigger(None)
        code, out, err = self.ms.run("sync", "--full")
        self.assertEqual(code, 0, err[-2000:])
        self.assertEqual(self.assert_honest(self.state()), [])

    def test_ended_transaction_takes_back_its_batch_and_says_so(self):
        # RAISE(ROLLBACK) ends the whole transaction: every tenant reconciled since the last
        # commit is gone, and must be reported failed, not synced.
        self.trigger("ROLLBACK")
        code, out, err = self.ms.run("sync", "--full")
        self.assertEqual(code, 3, err[-2000:])
        lost = self.assert_honest(self.state())
        self.assertIn(self.poisoned, lost)
        summary = self.ms.sql("SELECT status FROM sync_run ORDER BY id DESC LIMIT 1")[0][0]
        self.assertEqual(summary, "partial")
        self.trigger(None)
        code, out, err = self.ms.run("sync", "--full")
        self.assertEqual(code, 0, err[-2000:])
        self.assertEqual(self.assert_honest(self.state()), [])

    def test_without_group_commit_each_tenant_commits_alone(self):
        # sync_commit_ms = 0: the transaction the fault ends holds the poisoned tenant only.
        self.trigger("ROLLBACK")
        code, out, err = self.ms.run("sync", "--full", env={"MEMSYNC_SYNC_COMMIT_MS": "0"})
        self.assertEqual(code, 3, err[-2000:])
        self.assertEqual(self.assert_honest(self.state()), [self.poisoned])


if __name__ == "__main__":
    unittest.main()
