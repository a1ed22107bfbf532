"""Intune throttling as the real cloud does it, and $batch item 401s.

Intune often answers 429 without Retry-After, and the beta per-device detectedApps throttles
below the published 2,000 per 20 s, also without the header (MSEndpointMgr "A beginners guide
to Microsoft Graph API rate limiting in Intune"; Microsoft Q&A 5784629). memsync must then wait
for Intune's 20-second window to pass (never retry inside it), and a throttled tenant finishes
later instead of failing, with every device and install. A $batch item answering 401 gets one
token refresh and goes again instead of leaving the software inventory incomplete.
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

WINDOW_MS = 20000
# A request already sent (or queued in the HTTP engine) when the first 429 arrived may still
# reach the simulator just after it.
GRACE_MS = 1500
NOT_COUNTED = ("token_v1", "token_v2", "openid", "customers", "customer", "batch", "download")


def software(ms):
    """tenant id -> {(title, version): device count}"""
    out = {}
    for sw in ms.json("assets", "software", "--format", "json"):
        t = out.setdefault(sw["client"]["tenant_id"], {})
        key = (sw["name"], sw["version"])
        t[key] = t.get(key, 0) + sw["device_count"]
    return out


def truth(sim, tid):
    """(device ids, {(title, version): count}) the simulator serves for tenant tid."""
    devs = {d["id"] for d in sim.graph_all(tid, "/v1.0/deviceManagement/managedDevices")}
    installs = {}
    for d in devs:
        for app in sim.graph_all(tid, "/beta/deviceManagement/managedDevices/%s/detectedApps" % d):
            key = (app.get("displayName"), app.get("version"))
            installs[key] = installs.get(key, 0) + 1
    return devs, installs


def request_log(sim):
    st, body, _ = harness.http("GET", sim.root + "/_sim/requests")
    assert st == 200, body
    log = json.loads(body)
    assert log["enabled"] and log["dropped"] == 0, "request log incomplete"
    return log["requests"]


def early_requests(log, tid):
    """Requests of tenant tid that reached the simulator inside the window that began with a
    429 without Retry-After (after the grace for requests already in flight)."""
    early = []
    hold_start, hold_end = None, -1
    for e in sorted((e for e in log if e["tenant"] == tid and e["route"] not in NOT_COUNTED),
                    key=lambda e: e["ms"]):
        if hold_start is not None and hold_start + GRACE_MS < e["ms"] < hold_end:
            early.append((e["ms"] - hold_start, e["route"], e["status"]))
        if e["status"] == 429 and not e["retry_after"] and e["ms"] >= hold_end:
            hold_start, hold_end = e["ms"], e["ms"] + WINDOW_MS
    return early


class RealThrottle(unittest.TestCase):
    def check_exact(self, sim, ms, tids):
        clients = {c["tenant_id"]: c for c in ms.json("clients", "--format", "json")}
        assets = ms.json("assets", "hardware", "--format", "json")
        sw = software(ms)
        for tid in tids:
            self.assertEqual(clients[tid]["status"], "ok", clients[tid])
            devs, installs = truth(sim, tid)
            got = {a["source"]["intune_device_id"] for a in assets
                   if a["client"]["tenant_id"] == tid}
            self.assertEqual(got, devs, "devices of %s" % tid)
            self.assertEqual(sw.get(tid), installs, "installs of %s" % tid)

    def test_429_without_retry_after(self):
        """429s without Retry-After on managedDevices and $batch items at a rate, detectedApps
        throttled below the published limit, and one tenant throttled on every request for
        25 s: every tenant ends ok and exact, no retry comes inside the window, and each
        tenant's throttled count is the simulator's."""
        sim = harness.Sim("--tenants", "4", "--devices", "15", "--apps-per-device", "4",
                          "--seed", "3")
        ms = harness.Memsync(sim)
        try:
            small = [t["id"] for t in sim.world()["tenants"]]
            # More devices than detectedApps lets through in one window.
            big = sim.control({"op": "add_tenant", "name": "Big Apps Inc",
                               "devices": 30})["results"][0]["tenant"]
            slow = sim.control({"op": "add_tenant", "name": "Always Throttled Ltd",
                                "devices": 10})["results"][0]["tenant"]
            tids = [t["id"] for t in sim.world()["tenants"]]
            self.assertEqual(set(tids), set(small) | {big, slow})
            rated = [(tid, "managedDevices", 0.5) for tid in small] + \
                [(tid, "batch_item", 0.05) for tid in small + [big]]
            # At most once per tenant and route, so that the test's length is bounded (each
            # 429 without Retry-After costs a 20 s window).
            rate_faults = [{"op": "fault", "tenant": tid, "route": route, "kind": "429",
                            "retry_after": None, "rate": rate, "count": 1}
                           for tid, route, rate in rated]
            ops = [{"op": "request_log", "enabled": True},
                   {"op": "set_throttle", "detected_apps_limit": 20},
                   # Every request throttled for 25 s: longer than the old 12 s budget.
                   {"op": "fault", "tenant": slow, "route": "organization", "kind": "429",
                    "retry_after": None, "for_ms": 25000},
                   {"op": "fault", "tenant": slow, "route": "managedDevices", "kind": "429",
                    "retry_after": None, "for_ms": 25000}] + rate_faults
            ms.add_integration("--no-sync")
            sim.control(ops)
            t0 = time.monotonic()
            code, out, err = ms.run("sync", "--full")
            took = time.monotonic() - t0
            self.assertEqual(code, 0, out + err[-3000:])
            self.assertGreater(took, 25)
            log = request_log(sim)
            # The switches fired: 429s without Retry-After on every route under test.
            fired = {(e["route"], e["retry_after"]) for e in log if e["status"] == 429}
            self.assertIn(("managedDevices", False), fired)
            self.assertIn(("deviceDetectedApps", False), fired)
            self.assertIn(("organization", False), fired)
            slow_429 = [e["ms"] for e in log if e["tenant"] == slow and e["status"] == 429]
            self.assertGreaterEqual(max(slow_429) - min(slow_429), WINDOW_MS - 1000)

            # No retry inside the 20-second window that a 429 without Retry-After began.
            for tid in tids:
                self.assertEqual(early_requests(log, tid), [], "tenant %s" % tid)

            # Each tenant's throttled count is the 429s the simulator answered it.
            run = ms.sql("SELECT max(id) FROM sync_run")[0][0]
            counted = dict(ms.sql("SELECT tenant_id, throttled FROM sync_tenant_result "
                                  "WHERE run_id = %d" % run))
            for tid in tids:
                answered = len([e for e in log if e["tenant"] == tid and e["status"] == 429])
                self.assertEqual(counted[tid], answered, "throttled count of %s" % tid)

            # Every tenant ok and exact (read the truth without faults or throttles).
            sim.control([{"op": "clear_faults"}, {"op": "set_throttle", "detected_apps_limit": 0}])
            self.check_exact(sim, ms, tids)
        finally:
            sim.stop()
            ms.cleanup()

    def test_batch_item_401_refreshes_once(self):
        """$batch items answering 401 InvalidAuthenticationToken: one token refresh, the items
        go again, and the software inventory is complete."""
        sim = harness.Sim("--tenants", "2", "--devices", "25", "--apps-per-device", "4")
        ms = harness.Memsync(sim)
        try:
            tids = [t["id"] for t in sim.world()["tenants"]]
            ms.add_integration("--no-sync")
            sim.control([{"op": "fault", "tenant": tids[0], "route": "batch_item",
                          "kind": "status", "status": 401, "code": "InvalidAuthenticationToken",
                          "message": "Access token has expired or is not yet valid.",
                          "count": 3},
                         {"op": "reset_stats"}])
            code, out, err = ms.run("sync", "--full")
            self.assertEqual(code, 0, out + err)
            stats = sim.stats()["requests"]
            tokens = sum(stats.get(r, {}).get(tids[0], 0) for r in ("token_v1", "token_v2"))
            self.assertEqual(tokens, 2, "one token, then one refresh")
            self.check_exact(sim, ms, tids)
        finally:
            sim.stop()
            ms.cleanup()

    def test_sim_throttle_switches(self):
        """The tenant's 4,000 Intune requests per 20 s are shared with its other apps: with
        other_apps phantom requests in each window, ours get 429 once the rest is used. The
        per-device detectedApps limit answers 429 without Retry-After."""
        sim = harness.Sim("--tenants", "1", "--devices", "3")
        try:
            tid = sim.world()["tenants"][0]["id"]
            tok = sim.sync_token(tid)
            sim.control({"op": "set_throttle", "other_apps": 3997})
            got = []
            for _ in range(5):
                st, _, h = harness.http("GET", sim.graph + "/v1.0/deviceManagement/managedDevices",
                                        None, {"Authorization": "Bearer " + tok})
                got.append((st, "Retry-After" in h))
            self.assertEqual(got, [(200, False)] * 3 + [(429, True)] * 2)
            # Off by default (and with other_apps 0): no tenant-wide window at all.
            sim.control({"op": "set_throttle", "other_apps": 0})
            st, _, _ = harness.http("GET", sim.graph + "/v1.0/deviceManagement/managedDevices",
                                    None, {"Authorization": "Bearer " + tok})
            self.assertEqual(st, 200)
            # A tenant's own other_apps overrides the throttle's; null returns to it.
            sim.control([{"op": "set_throttle", "other_apps": 0},
                         {"op": "set_tenant", "tenant": tid, "other_apps": 3998}])
            self.assertEqual(sim.world()["tenants"][0]["other_apps"], 3998)
            got = []
            for _ in range(3):
                st, _, h = harness.http("GET", sim.graph + "/v1.0/deviceManagement/managedDevices",
                                        None, {"Authorization": "Bearer " + tok})
                got.append((st, "Retry-After" in h))
            self.assertEqual(got, [(200, False)] * 2 + [(429, True)])
            sim.control({"op": "set_tenant", "tenant": tid, "other_apps": None})
            self.assertIsNone(sim.world()["tenants"][0]["other_apps"])
            st, _, _ = harness.http("GET", sim.graph + "/v1.0/deviceManagement/managedDevices",
                                    None, {"Authorization": "Bearer " + tok})
            self.assertEqual(st, 200)

            # detected_apps_limit: per-device detectedApps, called directly or in a $batch, gets
            # 429 without Retry-After beyond it (other routes are not affected).
            dev = sim.graph_all(tid, "/v1.0/deviceManagement/managedDevices")[0]["id"]
            path = "/deviceManagement/managedDevices/%s/detectedApps" % dev
            sim.control({"op": "set_throttle", "detected_apps_limit": 2})
            got = [harness.http("GET", sim.graph + "/beta" + path, None,
                                {"Authorization": "Bearer " + tok})[0] for _ in range(3)]
            self.assertEqual(got, [200, 200, 429])
            st, body, _ = harness.http(
                "POST", sim.graph + "/beta/$batch",
                json.dumps({"requests": [{"id": "1", "method": "GET", "url": path}]}).encode(),
                {"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
            item = json.loads(body)["responses"][0]
            self.assertEqual((st, item["status"]), (200, 429))
            self.assertNotIn("Retry-After", item["headers"])
            st, _, _ = harness.http("GET", sim.graph + "/v1.0/deviceManagement/managedDevices",
                                    None, {"Authorization": "Bearer " + tok})
            self.assertEqual(st, 200)
        finally:
            sim.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
