#!/usr/bin/python3
"""memsync sim: detected apps, faults, tenant states, control ops, $batch, export jobs, TLS,
OpenID configuration, built-in scenarios, statistics."""
import csv
import http.client
import io
import json
import os
import socket
import ssl
import sys
import time
import unittest
import urllib.parse
import urllib.request
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sim_basic import GRAPH, PC, Sim  # noqa: E402


def raw_get(sim, path, headers):
    """GET with http.client so broken bodies can be observed."""
    u = urllib.parse.urlsplit(sim.base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    try:
        body = r.read()
        err = None
    except (http.client.IncompleteRead, ConnectionError) as e:
        body, err = None, e
    c.close()
    return r.status, dict(r.getheaders()), body, err


class AppTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim("--tenants", "2", "--devices", "40", "--apps-per-device", "12")
        cls.t = cls.sim.world()["tenants"][0]["id"]
        cls.h = cls.sim.bearer(cls.t)

    @classmethod
    def tearDownClass(cls):
        assert cls.sim.stop() == 0

    def test_detected_apps(self):
        st, _, j = self.sim.graph_get("/deviceManagement/detectedApps", self.h)
        self.assertEqual(st, 200, j)
        apps = j["value"]
        self.assertGreater(len(apps), 12)
        pubs_null = 0
        for a in apps:
            self.assertRegex(a["id"], r"^[0-9a-f]{64}$")
            self.assertIsInstance(a["sizeInByte"], int)
            self.assertIsInstance(a["deviceCount"], int)
            self.assertGreater(a["deviceCount"], 0)
            self.assertIn(a["platform"], ("windows", "ios", "androidWorkProfile", "macOS"))
            self.assertIsInstance(a["version"], str)
            pubs_null += a["publisher"] is None
        self.assertGreater(pubs_null, 0)
        # inverse: devices of one app, counted
        a = max(apps, key=lambda x: x["deviceCount"])
        st, _, d = self.sim.graph_get("/deviceManagement/detectedApps/%s/managedDevices" % a["id"],
                                      self.h)
        self.assertEqual(st, 200, d)
        self.assertEqual(len(d["value"]), a["deviceCount"])
        st, _, one = self.sim.graph_get("/deviceManagement/detectedApps/" + a["id"], self.h)
        self.assertEqual(one["id"], a["id"])
        # per-device apps: beta only
        dev = d["value"][0]["id"]
        st, _, pa = self.sim.graph_get("/deviceManagement/managedDevices/%s/detectedApps" % dev,
                                       self.h, version="beta")
        self.assertEqual(st, 200, pa)
        self.assertIn(a["id"], [x["id"] for x in pa["value"]])
        self.assertLessEqual(len(pa["value"]), 12)
        st, _, e = self.sim.graph_get("/deviceManagement/managedDevices/%s/detectedApps" % dev,
                                      self.h)
        self.assertEqual(st, 400, e)

    def test_filter_and_count(self):
        q = urllib.parse.quote
        all_devs = self.sim.graph_get("/deviceManagement/managedDevices", self.h)[2]["value"]
        win = [d for d in all_devs if d["operatingSystem"] == "Windows"]
        st, _, j = self.sim.graph_get("/deviceManagement/managedDevices?$filter=%s&$count=true"
                                      "&$top=3" % q("operatingSystem eq 'Windows'"), self.h)
        self.assertEqual(st, 200, j)
        self.assertEqual(j["@odata.count"], len(win))
        got = list(j["value"])
        while "@odata.nextLink" in j:
            self.assertIn("filter", j["@odata.nextLink"])
            st, _, j = self.sim.req("GET", j["@odata.nextLink"], headers=self.h)
            self.assertNotIn("@odata.count", j)
            self.assertGreater(len(j["value"]), 0)
            got += j["value"]
        self.assertEqual([d["id"] for d in got], [d["id"] for d in win])
        # incremental sync: devices whose lastSyncDateTime moved
        d0 = all_devs[0]
        self.sim.control({"op": "modify_device", "tenant": self.t, "id": d0["id"], "touch": True})
        since = "2026-06-01T00:30:00Z"
        st, _, j = self.sim.graph_get("/deviceManagement/managedDevices?$filter=%s" % q(
            "lastSyncDateTime gt %s" % since), self.h)
        self.assertEqual([d["id"] for d in j["value"]], [d0["id"]])
        s = d0["serialNumber"].replace("'", "''")
        st, _, j = self.sim.graph_get("/deviceManagement/managedDevices?$filter=%s" % q(
            "serialNumber eq '%s' and startswith(deviceName,'%s')" % (
                s, d0["deviceName"][:3].replace("'", "''"))), self.h)
        self.assertIn(d0["id"], [d["id"] for d in j["value"]])
        for bad in ("bogus eq 'x'", "deviceName eq", "lastSyncDateTime gt 'notadate'",
                    "deviceName eq 'x' or deviceName eq 'y'"):
            st, _, j = self.sim.graph_get("/deviceManagement/managedDevices?$filter=" + q(bad),
                                          self.h)
            self.assertEqual(st, 400, bad)
            self.assertEqual(j["error"]["code"], "BadRequest")

    def test_batch(self):
        devs = self.sim.graph_get("/deviceManagement/managedDevices?$select=id", self.h)[2]["value"]
        reqs = [{"id": str(i + 1), "method": "GET",
                 "url": "/deviceManagement/managedDevices/%s/detectedApps" % d["id"]}
                for i, d in enumerate(devs[:19])]
        reqs.append({"id": "20", "method": "GET", "url": "/deviceManagement/managedDevices/nope"})
        st, _, j = self.sim.req("POST", self.sim.graph + "/beta/$batch", {"requests": reqs},
                                dict(self.h, **{"Content-Type": "application/json"}))
        self.assertEqual(st, 200, j)
        by = {r["id"]: r for r in j["responses"]}
        self.assertEqual(len(by), 20)
        for i in range(1, 20):
            self.assertEqual(by[str(i)]["status"], 200)
            self.assertIn("value", by[str(i)]["body"])
            self.assertIn("headers", by[str(i)])
        self.assertEqual(by["20"]["status"], 404)
        self.assertIn("error", by["20"]["body"])
        # inner query options apply; dependsOn on a failed request gives 424
        reqs2 = [{"id": "a", "method": "GET",
                  "url": "/deviceManagement/managedDevices?$select=id,serialNumber&$top=2"},
                 {"id": "b", "method": "GET", "url": "/deviceManagement/nope"},
                 {"id": "c", "dependsOn": ["b"], "method": "GET", "url": "/organization"},
                 {"id": "d", "dependsOn": ["a"], "method": "GET", "url": "/organization"}]
        st, _, j = self.sim.req("POST", self.sim.graph + "/v1.0/$batch?$top=999",
                                {"requests": reqs2},
                                dict(self.h, **{"Content-Type": "application/json"}))
        by = {r["id"]: r for r in j["responses"]}
        self.assertEqual(list(by["a"]["body"]["value"][0]), ["id", "serialNumber"])
        self.assertEqual(len(by["a"]["body"]["value"]), 2)
        self.assertEqual(by["b"]["status"], 400)
        self.assertEqual(by["c"]["status"], 424)
        self.assertEqual(by["d"]["status"], 200)
        st, _, j = self.sim.req("POST", self.sim.graph + "/v1.0/$batch",
                                {"requests": [reqs2[0], dict(reqs2[1], id="A")]},
                                dict(self.h, **{"Content-Type": "application/json"}))
        self.assertEqual(st, 400, j)
        reqs.append({"id": "21", "method": "GET", "url": "/organization"})
        st, _, j = self.sim.req("POST", self.sim.graph + "/v1.0/$batch", {"requests": reqs},
                                dict(self.h, **{"Content-Type": "application/json"}))
        self.assertEqual(st, 400, j)

    def test_export_jobs(self):
        for report, col in (("DevicesWithInventory", "SerialNumber"),
                            ("AppInvRawData", "ApplicationName")):
            body = {"reportName": report, "format": "csv"}
            if report == "DevicesWithInventory":
                body["select"] = ["DeviceId", "DeviceName", "SerialNumber", "EthernetMAC",
                                  "StorageTotal"]
            st, _, j = self.sim.req("POST", self.sim.graph + "/beta/deviceManagement/reports/"
                                    "exportJobs", body,
                                    dict(self.h, **{"Content-Type": "application/json"}))
            self.assertEqual(st, 201, j)
            self.assertTrue(j["id"].startswith(report + "_"))
            self.assertEqual(j["status"], "notStarted")
            self.assertIsNone(j["url"])
            url = "/deviceManagement/reports/exportJobs('%s')" % j["id"]
            for _ in range(10):
                st, _, j = self.sim.graph_get(url, self.h, version="beta")
                self.assertEqual(st, 200, j)
                if j["status"] == "completed":
                    break
                self.assertEqual(j["status"], "inProgress")
            self.assertEqual(j["status"], "completed")
            with urllib.request.urlopen(j["url"], timeout=30) as r:
                data = r.read()
            z = zipfile.ZipFile(io.BytesIO(data))
            names = z.namelist()
            self.assertEqual(len(names), 1)
            text = z.read(names[0]).decode("utf-8")
            rows = list(csv.reader(io.StringIO(text, newline="")))
            self.assertIn(col, rows[0])
            if report == "DevicesWithInventory":
                self.assertEqual(len(rows), 41)
                self.assertEqual(rows[0], body["select"])
            else:
                apps = self.sim.graph_get("/deviceManagement/detectedApps", self.h)[2]["value"]
                self.assertEqual(len(rows) - 1, sum(a["deviceCount"] for a in apps))
        st, _, j = self.sim.req("POST", self.sim.graph + "/beta/deviceManagement/reports/"
                                "exportJobs", {"reportName": "Nope"},
                                dict(self.h, **{"Content-Type": "application/json"}))
        self.assertEqual(st, 400)


class FaultTests(unittest.TestCase):
    def setUp(self):
        self.sim = Sim("--tenants", "3", "--devices", "6", "--apps-per-device", "2")
        self.w = self.sim.world()
        self.t = self.w["tenants"][0]["id"]
        self.h = self.sim.bearer(self.t)
        self.dpath = "/graph/v1.0/deviceManagement/managedDevices"

    def tearDown(self):
        self.sim.stop()

    def fault(self, **kw):
        kw.setdefault("tenant", self.t)
        kw.setdefault("route", "managedDevices")
        self.sim.control(dict(op="fault", **kw))

    def test_status_count_then_recovers(self):
        self.fault(kind="status", status=503, count=2, retry_after=3)
        for _ in range(2):
            st, hd, body, _ = raw_get(self.sim, self.dpath, self.h)
            self.assertEqual(st, 503)
            self.assertEqual(hd.get("Retry-After"), "3")
            self.assertEqual(json.loads(body)["error"]["code"], "ServiceUnavailable")
        st, _, body, _ = raw_get(self.sim, self.dpath, self.h)
        self.assertEqual(st, 200)
        # other tenants are untouched
        h2 = self.sim.bearer(self.w["tenants"][1]["id"])
        self.fault(kind="status", status=500)
        self.assertEqual(raw_get(self.sim, self.dpath, h2)[0], 200)
        self.assertEqual(raw_get(self.sim, self.dpath, self.h)[0], 500)
        self.sim.control({"op": "clear_faults"})
        self.assertEqual(raw_get(self.sim, self.dpath, self.h)[0], 200)

    def test_drop_and_truncate(self):
        self.fault(kind="drop", count=1)
        st, _, body, err = raw_get(self.sim, self.dpath, self.h)
        self.assertIsNotNone(err)
        self.fault(kind="truncate", count=1)
        st, _, body, err = raw_get(self.sim, self.dpath, self.h)
        self.assertEqual(st, 200)
        with self.assertRaises(ValueError):
            json.loads(body)
        st, _, body, err = raw_get(self.sim, self.dpath, self.h)
        json.loads(body)

    def test_page_two_only(self):
        self.fault(kind="status", status=500, page=2)
        st, _, body, _ = raw_get(self.sim, self.dpath + "?$top=2", self.h)
        self.assertEqual(st, 200)
        nxt = json.loads(body)["@odata.nextLink"]
        st, _, body, _ = raw_get(self.sim, nxt[len(self.sim.base):], self.h)
        self.assertEqual(st, 500)

    def test_latency_and_429_without_retry_after(self):
        self.fault(kind="latency", latency_ms=400, count=1)
        t0 = time.time()
        self.assertEqual(raw_get(self.sim, self.dpath, self.h)[0], 200)
        self.assertGreaterEqual(time.time() - t0, 0.35)
        self.fault(kind="429", retry_after=None, count=1)
        st, hd, body, _ = raw_get(self.sim, self.dpath, self.h)
        self.assertEqual(st, 429)
        self.assertNotIn("Retry-After", hd)
        self.assertEqual(json.loads(body)["error"]["code"], "TooManyRequests")

    def test_slow(self):
        self.fault(kind="slow", count=1)
        t0 = time.time()
        st, _, body, err = raw_get(self.sim, self.dpath + "?$top=1&$select=id,deviceName",
                                   self.h)
        self.assertEqual(st, 200)
        self.assertIsNone(err)
        self.assertEqual(len(json.loads(body)["value"]), 1)
        self.assertGreaterEqual(time.time() - t0, 0.1)

    def test_tenant_states(self):
        t1, t2 = self.w["tenants"][1]["id"], self.w["tenants"][2]["id"]
        h1, h2 = self.sim.bearer(t1), self.sim.bearer(t2)
        self.sim.control({"op": "set_tenant", "tenant": t1, "intune_licensed": False},
                         {"op": "set_tenant", "tenant": t2, "permission": False})
        st, _, j = self.sim.graph_get("/deviceManagement/managedDevices", h1)
        self.assertEqual(st, 400)
        self.assertEqual(j["error"]["code"], "BadRequest")
        self.assertEqual(j["error"]["message"], "Request not applicable to target tenant.")
        st, _, j = self.sim.graph_get("/deviceManagement/managedDevices", h2)
        self.assertEqual(st, 403)
        self.assertEqual(j["error"]["code"], "Forbidden")
        self.assertTrue(j["error"]["message"].startswith(
            "Application is not authorized to perform this operation - Operation ID"))
        # organization still answers (it is not an Intune route)
        self.assertEqual(self.sim.graph_get("/organization", h1)[0], 200)
        self.sim.control({"op": "set_tenant", "tenant": 2, "exists": False,
                          "indirect_reseller": True})
        st, _, j = self.sim.token(t2)
        self.assertEqual((st, j["error_codes"]), (400, [90002]))
        hp = self.sim.bearer(self.sim.env["MEMSYNC_SIM_PARTNER_TENANT_ID"], app="partner",
                             v2=False, resource=PC)
        st, _, c = self.sim.req("GET", self.sim.pc + "/v1/customers", headers=hp)
        ind = [x for x in c["items"] if x["id"] == t2][0]
        self.assertRegex(ind["associatedPartnerId"], r"^[0-9a-f-]{36}$")

    def test_token_fault_aadsts(self):
        self.sim.control({"op": "fault", "tenant": self.t, "route": "token_v2", "kind": "status",
                          "status": 400, "code": "AADSTS53003",
                          "message": "Access has been blocked by Conditional Access policies."})
        st, _, j = self.sim.token(self.t)
        self.assertEqual(st, 400)
        self.assertEqual(j["error_codes"], [53003])

    def test_control_devices(self):
        ids = [d["id"] for d in self.sim.graph_get(
            "/deviceManagement/managedDevices?$select=id", self.h)[2]["value"]]
        r = self.sim.control({"op": "remove_devices", "tenant": self.t, "last": 2},
                             {"op": "add_devices", "tenant": 0, "count": 3},
                             {"op": "modify_device", "tenant": self.t, "id": ids[0],
                              "set": {"deviceName": "Renamed"}, "touch": True})
        self.assertEqual(sorted(r[0]["removed"]), sorted(ids[-2:]))
        after = self.sim.graph_get("/deviceManagement/managedDevices", self.h)[2]["value"]
        self.assertEqual(len(after), 7)
        self.assertEqual(after[0]["deviceName"], "Renamed")
        self.assertGreater(after[0]["lastSyncDateTime"], "2026-06-01")
        self.assertEqual([d["id"] for d in after[-3:]], r[1]["ids"])
        st, _, e = self.sim.req("POST", self.sim.base + "/_sim/control", {"op": "nope"})
        self.assertEqual(st, 400)
        stats = self.sim.req("GET", self.sim.base + "/_sim/stats")[2]
        self.assertGreaterEqual(stats["requests"]["managedDevices"][self.t], 2)
        self.assertGreaterEqual(stats["requests"]["token_v2"][self.t], 1)

    def test_secret_rotation_via_graph(self):
        partner = self.sim.env["MEMSYNC_SIM_PARTNER_TENANT_ID"]
        hp = self.sim.bearer(partner)
        appid = self.sim.env["MEMSYNC_SIM_SYNC_APP_ID"]
        st, _, a = self.sim.graph_get("/applications(appId='%s')" % appid, hp)
        self.assertEqual(st, 200, a)
        self.assertEqual(len(a["passwordCredentials"]), 1)
        self.assertIsNone(a["passwordCredentials"][0]["secretText"])
        st, _, p = self.sim.req("POST", "%s/v1.0/applications/%s/addPassword" % (
            self.sim.graph, a["id"]), {"passwordCredential": {"displayName": "new"}},
            dict(hp, **{"Content-Type": "application/json"}))
        self.assertEqual(st, 200, p)
        self.assertEqual(self.sim.token(self.t, secret=p["secretText"])[0], 200)
        old = a["passwordCredentials"][0]["keyId"]
        st, _, _ = self.sim.req("POST", "%s/v1.0/applications/%s/removePassword" % (
            self.sim.graph, a["id"]), {"keyId": old},
            dict(hp, **{"Content-Type": "application/json"}), raw=True)
        self.assertEqual(st, 204)
        st, _, j = self.sim.token(self.t)
        self.assertEqual((st, j["error_codes"]), (401, [7000215]))


class ScenarioTests(unittest.TestCase):
    def test_builtins(self):
        for name, tenants, devices in (("demo", 5, 234), ("faults", 20, 600)):
            sim = Sim("--scenario", name)
            try:
                w = sim.world()
                self.assertEqual(len(w["tenants"]), tenants)
                self.assertEqual(sum(t["devices"] for t in w["tenants"]), devices)
                if name == "faults":
                    self.assertFalse(w["tenants"][6]["consented"])
                    self.assertFalse(w["tenants"][7]["exists"])
                    self.assertFalse(w["tenants"][8]["intune_licensed"])
                    self.assertFalse(w["tenants"][9]["permission"])
                    self.assertIsNotNone(w["tenants"][10]["associated_partner_id"])
                    st, _, j = sim.token(w["tenants"][6]["id"])
                    self.assertEqual(j["error_codes"], [700016])
                    h = sim.bearer(w["tenants"][13]["id"])
                    self.assertEqual(sim.graph_get("/deviceManagement/managedDevices", h)[0], 503)
            finally:
                self.assertEqual(sim.stop(), 0)

    def test_msp_reference(self):
        sim = Sim("--scenario", "msp-reference")
        try:
            w = sim.world()
            sizes = sorted((t["devices"] for t in w["tenants"]), reverse=True)
            self.assertEqual(len(sizes), 200)
            self.assertEqual(sum(sizes), 40000)
            self.assertGreater(sizes[0], 3000)
            self.assertLess(sizes[100], 200)
            names = [t["name"] for t in w["tenants"]]
            self.assertTrue(any(ord(ch) > 0x2000 for n in names for ch in n))
            # hostile and unicode device names, the same serial in two tenants
            serials = {}
            hostile = 0
            for t in w["tenants"][:6]:
                h = sim.bearer(t["id"])
                _, _, j = sim.graph_get("/deviceManagement/managedDevices?$select=serialNumber,"
                                        "deviceName,manufacturer", h)
                for d in j["value"]:
                    serials.setdefault(d["serialNumber"], set()).add(t["id"])
                    hostile += any(c in d["deviceName"] for c in "<\n\"=")
            self.assertGreater(hostile, 0)
            self.assertTrue(any(len(v) > 1 and len(k) == 7 for k, v in serials.items()))
        finally:
            sim.stop()


class LatencyAndGlobalLimit(unittest.TestCase):
    def test_latency_flag(self):
        sim = Sim("--tenants", "1", "--devices", "1", "--latency-ms", "300")
        try:
            t0 = time.time()
            st, _, _ = sim.req("GET", sim.base + "/_sim/world")
            self.assertEqual(st, 200)
            self.assertGreaterEqual(time.time() - t0, 0.28)
            sim.control({"op": "set_latency", "ms": 0})
            t0 = time.time()
            sim.req("GET", sim.base + "/_sim/world")
            self.assertLess(time.time() - t0, 0.25)
        finally:
            sim.stop()

    def test_global_limit_across_tenants(self):
        sim = Sim(scenario={"tenants": 3, "devices": 1,
                            "throttle": {"global_limit": 6, "global_window_ms": 5000}})
        try:
            w = sim.world()
            hs = [sim.bearer(t["id"]) for t in w["tenants"]]
            codes = [sim.graph_get("/organization", hs[i % 3])[0] for i in range(9)]
            self.assertEqual(codes, [200] * 6 + [429] * 3)
            stats = sim.req("GET", sim.base + "/_sim/stats")[2]
            self.assertEqual(stats["throttled"], 3)
        finally:
            sim.stop()


class TlsTests(unittest.TestCase):
    def test_tls_and_openid(self):
        sim = Sim("--tls", "--tenants", "1", "--devices", "2")
        try:
            ca = sim.env["MEMSYNC_CA_FILE"]
            self.assertTrue(sim.login.startswith("https://127.0.0.1:"))
            ctx = ssl.create_default_context(cafile=ca)
            u = sim.base + "/_sim/world"
            with urllib.request.urlopen(u, context=ctx, timeout=30) as r:
                w = json.load(r)
            tid = w["tenants"][0]["id"]
            u = "%s/%s/v2.0/.well-known/openid-configuration" % (sim.login, tid)
            with urllib.request.urlopen(u, context=ctx, timeout=30) as r:
                oc = json.load(r)
            self.assertEqual(oc["token_endpoint"], "%s/%s/oauth2/v2.0/token" % (sim.login, tid))
            self.assertIn("issuer", oc)
            with self.assertRaises(Exception):
                urllib.request.urlopen(u, context=ssl.create_default_context(), timeout=10)
        finally:
            sim.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
