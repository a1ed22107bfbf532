"""memsync talks to the simulator over TLS with the CA file the simulator wrote, and refuses a
server it cannot verify."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class Tls(unittest.TestCase):
    def test_sync_over_tls_and_refusal_without_the_ca(self):
        sim = harness.Sim("--tls", "--tenants", "2", "--devices", "5")
        ms = harness.Memsync(sim)
        try:
            self.assertTrue(sim.graph.startswith("https://"))
            self.assertTrue(os.path.isabs(sim.env["MEMSYNC_CA_FILE"]))
            # Without the CA the server cannot be verified: nothing is saved.
            ca = ms.env.pop("MEMSYNC_CA_FILE")
            code, out, err = ms.add_integration(check=None)
            self.assertEqual(code, 1)
            self.assertIn("certificate", (out + err).lower())
            self.assertEqual(ms.json("integration", "list", "--format", "json"), [])
            ms.env["MEMSYNC_CA_FILE"] = ca
            ms.add_integration()
            self.assertEqual(len(ms.json("assets", "hardware", "--format", "json")), 10)
        finally:
            sim.stop()
            ms.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
