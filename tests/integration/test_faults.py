"""The fault scenario: among 20 tenants some fail in each way of docs/SETUP.md and src/ms/remedy.c, some are
throttled, some drop connections and answer 503. Healthy tenants complete with exactly the
expected devices and installs, failing ones keep their previous data, every failure is reported
with its remedy, and `memsync sync` exits 3."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

# tenant index in the built-in "faults" scenario -> remedy code memsync must report (None = ok)
EXPECTED = {
    0: None, 1: None, 2: None, 3: None, 4: None, 5: None,
    6: "app_not_in_tenant",
    7: "tenant_not_found",
    8: "no_intune_license",
    9: "permission_missing",
    10: "indirect_reseller",
    11: "throttled",
    12: None,            # drops the connection twice, then recovers
    13: "service_error",  # 503 without Retry-After, always
    14: "bad_response",   # truncated JSON
    15: "service_error",  # 500 on /organization
    16: None,            # 1.5 s latency on everything
    17: "token_rejected",  # Graph 401 even after a token refresh
    18: None,            # a 429 without Retry-After (a 20 s wait), then fine
    19: "service_error",  # 500 on managedDevices, always
}


class Faults(unittest.TestCase):
    @staticmethod
    def software(ms):
        """tenant id -> {(title, version): device count}"""
        out = {}
        for sw in ms.json("assets", "software", "--format", "json"):
            t = out.setdefault(sw["client"]["tenant_id"], {})
            t[(sw["name"], sw["version"])] = t.get((sw["name"], sw["version"]), 0) + \
                sw["device_count"]
        return out

    def test_fault_scenario(self):
        healthy = harness.Sim("--scenario", "faults")
        faulty = harness.Sim("--scenario", "faults")
        ms = harness.Memsync(healthy)
        try:
            tenants = [t["id"] for t in healthy.world()["tenants"]]
            self.assertEqual(tenants, [t["id"] for t in faulty.world()["tenants"]],
                             "same scenario, same world")
            # First sync against a world with every fault cleared: everybody has data.
            healthy.control([{"op": "clear_faults"}] + [
                {"op": "set_tenant", "tenant": t, "consented": True, "exists": True,
                 "intune_licensed": True, "permission": True} for t in tenants])
            ms.add_integration()
            first = {a["source"]["intune_device_id"]: a
                     for a in ms.json("assets", "hardware", "--format", "json")}
            self.assertEqual(len(first), 600)
            software_before = self.software(ms)

            # Then a sync against the faulty world (same tenants, credentials and devices).
            for k in ("MEMSYNC_LOGIN_URL", "MEMSYNC_GRAPH_URL", "MEMSYNC_PARTNER_CENTER_URL"):
                ms.env[k] = faulty.env[k]
            code, out, err = ms.run("sync")
            self.assertEqual(code, 3, out + err)
            clients = {c["tenant_id"]: c for c in ms.json("clients", "--format", "json")}
            assets = ms.json("assets", "hardware", "--format", "json")
            per_tenant = {}
            for a in assets:
                per_tenant.setdefault(a["client"]["tenant_id"], []).append(a)
            for i, tid in enumerate(tenants):
                c = clients[tid]
                want = EXPECTED[i]
                if want is None:
                    self.assertEqual(c["status"], "ok", "tenant %d: %s" % (i, c))
                    # The healthy world serves the same devices without the faults.
                    served = {d["id"] for d in healthy.graph_all(
                        tid, "/v1.0/deviceManagement/managedDevices")}
                    got = {a["source"]["intune_device_id"] for a in per_tenant[tid]}
                    self.assertEqual(got, served, "tenant %d devices" % i)
                    self.assertEqual(len(got), 30)
                    # Every install the simulator serves for this tenant, per title.
                    want_installs = {}
                    for d in per_tenant[tid]:
                        for app in healthy.graph_all(tid, "/beta/deviceManagement/managedDevices/"
                                                    "%s/detectedApps"
                                                    % d["source"]["intune_device_id"]):
                            key = (app.get("displayName"), app.get("version"))
                            want_installs[key] = want_installs.get(key, 0) + 1
                    self.assertEqual(self.software(ms).get(tid), want_installs,
                                     "tenant %d installs" % i)
                else:
                    self.assertEqual(c["status"], "error", "tenant %d" % i)
                    self.assertEqual(c["error"]["code"], want, "tenant %d: %s" % (i, c["error"]))
                    self.assertTrue(c["error"]["message"])
                    self.assertTrue(c["error"]["remedy"])
                    # Previous data kept, untouched.
                    self.assertEqual(len(per_tenant[tid]), 30, "tenant %d kept its devices" % i)
                    for a in per_tenant[tid]:
                        self.assertEqual(a, first[a["source"]["intune_device_id"]])
                    self.assertIn(c["name"], err, "tenant %d listed on stderr" % i)
            # The consent remedy carries the admin-consent link for that tenant.
            self.assertIn("adminconsent?client_id=", clients[tenants[6]]["error"]["remedy"])
            self.assertIn(tenants[6], clients[tenants[6]]["error"]["remedy"])
            # Installs of the failing tenants are intact.
            software_after = self.software(ms)
            for i, tid in enumerate(tenants):
                if EXPECTED[i] is not None:
                    self.assertTrue(software_before[tid])
                    self.assertEqual(software_after[tid], software_before[tid])
            st = ms.json("status", "--format", "json")
            self.assertEqual(st["clients"]["error"],
                             len([v for v in EXPECTED.values() if v is not None]))
        finally:
            healthy.stop()
            faulty.stop()
            ms.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
