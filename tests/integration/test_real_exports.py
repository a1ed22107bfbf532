"""Report exports as the real cloud serves them: large and slow downloads that break off and are
resumed with Range, zip64, a download URL on a host that is not Azure Blob Storage, an export
POST whose answer is lost, and codes in the columns unless localizationType asks for names."""
import json
import os
import socket
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def installs_of(ms, tenant):
    return sum(s["device_count"] for s in ms.json("assets", "software", "--format", "json",
                                                  "--client", tenant))


class Exports(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "1", "--devices", "30", "--apps-per-device", "3",
                               "--seed", "8", "--no-throttle")
        self.ms = harness.Memsync(self.sim)
        self.tmp = tempfile.mkdtemp(prefix="memsync-tmp-")
        self.ms.env["TMPDIR"] = self.tmp
        self.tenant = self.sim.world()["tenants"][0]["id"]
        self.ms.add_integration("--no-sync")

    def tearDown(self):
        try:
            self.assertEqual(self.ms.title_count_drift(), [])
        finally:
            self.sim.stop()
            self.ms.cleanup()
            os.rmdir(self.tmp)

    def sync(self, strategy="export", *extra):
        return self.ms.run("sync", "--app-strategy", strategy, *extra, check=0)

    def test_large_slow_export_dropped_once_resumes_with_range(self):
        # ~40,000 padding rows of devices that left the tenant, a zip64 archive, paced at
        # 400 KB/s, and the first download cut after 60,000 bytes.
        self.sim.control({"op": "set_export", "pad_rows": 40000, "bytes_per_s": 400000,
                          "drop_after": 60000, "zip64": True})
        self.sim.control({"op": "reset_stats"})
        self.sync()
        st = self.sim.stats()
        self.assertGreaterEqual(st["download_ranges"], 1, "the retry asked for the rest only")
        self.assertGreaterEqual(sum(st["requests"]["download"].values()), 2)
        self.assertNotIn("batch", st["requests"], "apps came from the report, not per device")
        self.assertEqual(installs_of(self.ms, self.tenant), 30 * 3)
        self.assertEqual(os.listdir(self.tmp), [], "no temporary file is left behind")

    def test_download_url_on_a_foreign_host_is_not_fetched(self):
        # A listener stands in for a host that is neither Azure Blob Storage nor Graph.
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        lsock.settimeout(0.2)
        hits = []
        stop = threading.Event()

        def accept():
            while not stop.is_set():
                try:
                    c, _ = lsock.accept()
                    hits.append(1)
                    c.close()
                except OSError:
                    pass
        th = threading.Thread(target=accept, daemon=True)
        th.start()
        try:
            self.sim.control({"op": "set_export",
                              "url_host": "127.0.0.1:%d" % lsock.getsockname()[1]})
            self.sim.control({"op": "reset_stats"})
            self.sync()
        finally:
            stop.set()
            th.join()
            lsock.close()
        self.assertEqual(hits, [], "nothing was sent to the foreign host")
        st = self.sim.stats()["requests"]
        self.assertIn(self.tenant, st["batch"], "the tenant fell back to per-device reads")
        self.assertEqual(installs_of(self.ms, self.tenant), 30 * 3)

    def test_lost_answer_to_the_export_post_does_not_start_a_second_job(self):
        # Microsoft creates the job, then the connection drops before the answer arrives.
        self.sim.control({"op": "fault", "tenant": self.tenant, "route": "exportJobs",
                          "kind": "drop", "count": 1})
        self.sync()
        tok = self.sim.sync_token(self.tenant)
        code, body, _ = harness.http("GET", self.sim.graph +
                                     "/beta/deviceManagement/reports/exportJobs",
                                     headers={"Authorization": "Bearer " + tok})
        self.assertEqual(code, 200)
        jobs = [j for j in json.loads(body)["value"] if j["reportName"] == "AppInvRawData"]
        self.assertEqual(len(jobs), 1, "one export job, found again rather than asked twice")
        self.assertNotIn("batch", self.sim.stats()["requests"])
        self.assertEqual(installs_of(self.ms, self.tenant), 30 * 3)

    def titles(self):
        return sorted((s["name"], s["version"], s["publisher"] or "", s["platform"] or "",
                       s["device_count"])
                      for s in self.ms.json("assets", "software", "--format", "json"))

    def test_export_and_per_device_make_the_same_titles(self):
        # By default the report leaves codes in localizable columns (Platform "1", name in
        # Platform_loc); memsync asks for names, so both paths key a title the same way.
        self.sim.control({"op": "set_export", "localized_codes": True})
        self.sync("export", "--full")
        first = self.titles()
        self.assertEqual(sum(t[4] for t in first), 30 * 3)
        self.assertTrue(all(t[3] and not t[3].isdigit() for t in first), first[:3])
        self.sync("per-device", "--full")
        self.assertEqual(self.titles(), first, "per-device reads changed no title")
        self.sync("export", "--full")
        self.assertEqual(self.titles(), first)
        removed = self.ms.sql("SELECT count(*) FROM software_install WHERE removed_at IS NOT NULL")
        self.assertEqual(removed[0][0], 0, "no install was removed and added again")
        self.assertEqual(self.ms.sql("SELECT count(*) FROM software_install")[0][0], 30 * 3)


if __name__ == "__main__":
    unittest.main()
