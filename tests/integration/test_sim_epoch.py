#!/usr/bin/python3
"""memsync sim --epoch: a world's dates are relative to today unless --epoch fixes them, so the
demo shows today's share of stale devices and the tests keep dates that do not move."""
import datetime
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def parse(ts):
    return datetime.datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)


class SimEpoch(unittest.TestCase):
    def devices(self, sim):
        tenant = sim.customers()[0]["companyProfile"]["tenantId"]
        return sim.graph_all(tenant, "/v1.0/deviceManagement/managedDevices")

    def test_dates_follow_today(self):
        sim = harness.Sim("--tenants", "1", "--devices", "200", "--seed", "7", epoch=None)
        try:
            devs = self.devices(sim)
        finally:
            sim.stop()
        now = datetime.datetime.now(datetime.timezone.utc)
        last = [parse(d["lastSyncDateTime"]) for d in devs]
        self.assertTrue(all(t <= now + datetime.timedelta(minutes=5) for t in last))
        stale = sum(1 for t in last if now - t > datetime.timedelta(days=30))
        # About one device in ten has not checked in for a month; never all of them.
        self.assertGreater(stale, 0)
        self.assertLess(stale, len(devs) // 3)
        self.assertTrue(any(now - t < datetime.timedelta(days=14) for t in last))

    def test_epoch_fixes_the_dates(self):
        worlds = []
        for _ in range(2):
            sim = harness.Sim("--tenants", "1", "--devices", "20", "--seed", "7",
                              "--epoch", "2026-06-01T00:00:00Z", epoch=None)
            try:
                worlds.append(self.devices(sim))
            finally:
                sim.stop()
        self.assertEqual(worlds[0], worlds[1])
        epoch = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
        last = [parse(d["lastSyncDateTime"]) for d in worlds[0]]
        self.assertTrue(all(t <= epoch for t in last))
        self.assertTrue(any(epoch - t < datetime.timedelta(days=14) for t in last))

    def test_bad_epoch_refused(self):
        with self.assertRaises(RuntimeError):
            harness.Sim("--epoch", "yesterday", epoch=None)


if __name__ == "__main__":
    unittest.main()
