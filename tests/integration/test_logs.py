"""Structured logs: with MEMSYNC_LOG_FORMAT=json every stderr line is one JSON object whose
key=value fields are members (a failed tenant's line has tenant and code); in text format a
tenant name with control characters cannot start a line of its own."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

EVIL = "Evil Corp\n2026-01-01T00:00:00.000Z error forged line\r\x1b[2J"


class Logs(unittest.TestCase):
    def test_json_lines_have_members(self):
        sim = harness.Sim("--scenario", "faults")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration("--no-sync")
            code, _, err = ms.run("sync", env={"MEMSYNC_LOG_FORMAT": "json"})
            self.assertEqual(code, 3, err[-2000:])
            lines = []
            for raw in err.splitlines():
                if raw.startswith("memsync sync:") or raw.startswith("  "):
                    continue  # the command's own report to the user, not the log
                obj = json.loads(raw)  # every log line is one JSON object
                self.assertIsInstance(obj, dict)
                for k in ("ts", "level", "msg"):
                    self.assertIn(k, obj, raw)
                self.assertNotIn("=", obj["msg"].split(":")[0], raw)
                lines.append(obj)
            failed = [o for o in lines if o["msg"] == "tenant failed"]
            self.assertGreaterEqual(len(failed), 5, err[-2000:])
            for o in failed:
                self.assertEqual(o["level"], "warn")
                self.assertRegex(o["tenant"], r"^[0-9a-f-]{36}$")
                self.assertIsInstance(o["code"], str)
                self.assertIsInstance(o["requests"], int)
                self.assertTrue(o["detail"])
                self.assertIsInstance(o["run"], int)
                self.assertIn("request_id", o)
            # A failure Microsoft answered carries its request id (Graph's request-id header).
            answered = [o for o in failed if o["code"] == "permission_missing"]
            self.assertTrue(answered, err[-2000:])
            for o in answered:
                self.assertRegex(o["request_id"], r"^[0-9a-f-]{36}$", o)
            codes = {o["code"] for o in failed}
            self.assertTrue({"tenant_not_found", "permission_missing"} <= codes, codes)
            done = [o for o in lines if o["msg"] == "sync finished"]
            self.assertEqual(len(done), 1)
            self.assertIsInstance(done[0]["run"], int)
            self.assertIsInstance(done[0]["devices"], int)
            # Fields that carry Microsoft's request id are members too.
            for o in lines:
                for v in o.values():
                    self.assertNotIn("request_id=", str(v))
        finally:
            ms.cleanup()
            sim.stop()

    def test_text_values_cannot_forge_lines(self):
        sim = harness.Sim("--tenants", "1", "--devices", "3")
        ms = harness.Memsync(sim)
        try:
            sim.control({"op": "add_tenant", "name": EVIL, "devices": 2})
            ms.add_integration("--no-sync")
            code, _, err = ms.run("sync", env={"MEMSYNC_LOG_FORMAT": "text"})
            self.assertEqual(code, 0, err)
            for line in err.split("\n"):
                self.assertNotIn("\r", line)
                self.assertNotIn("\x1b", line)
                self.assertFalse(line.startswith("2026-01-01"), line)
                self.assertNotIn(" error forged", line.split(" ", 2)[1] if " " in line else "")
            synced = [l for l in err.split("\n") if "tenant synced" in l and "Evil" in l]
            self.assertEqual(len(synced), 1, err)
            self.assertIn("Evil Corp\\n2026-01-01T00:00:00.000Z error forged line\\r\\x1b[2J",
                          synced[0])
            # The same name is a plain JSON string member in json format.
            code, _, err = ms.run("sync", env={"MEMSYNC_LOG_FORMAT": "json"})
            self.assertEqual(code, 0, err)
            names = [json.loads(l).get("name") for l in err.splitlines()
                     if l.startswith("{") and "Evil" in l]
            self.assertEqual(names, [EVIL])
        finally:
            ms.cleanup()
            sim.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
