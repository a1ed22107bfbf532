#!/usr/bin/python3
"""memsync sim fidelity: every JSON response fixture in FIXTURE_DIR is compared with the
simulator's answer on the equivalent route (member names, nesting, JSON types, recursively);
throttling at the documented rate (scaled down); request bounds."""
import glob
import json
import os
import socket
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sim_basic import GRAPH, PC, Sim  # noqa: E402

FIXTURES = os.environ.get(
    "FIXTURE_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "microsoft"))
# Annotations the service adds or omits depending on the request ($count, derived types, etags).
OPTIONAL = {"@odata.type", "@odata.etag", "@odata.count", "@odata.nextLink", "@odata.context"}


def jtype(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def compare(fx, got, path="$", extras=(), skip=(), problems=None):
    """Every member of the fixture must exist in the simulator's answer with the same JSON type
    (null on either side is accepted: nullable members); members the fixture lacks must be named
    in `extras`. Arrays: every element is checked against the fixture's first element."""
    if problems is None:
        problems = []
    if fx is None or got is None:
        return problems
    if jtype(fx) != jtype(got):
        problems.append("%s: fixture %s, sim %s" % (path, jtype(fx), jtype(got)))
        return problems
    if isinstance(fx, dict):
        for k, v in fx.items():
            if k in skip:
                continue
            if k not in got:
                if k not in OPTIONAL:
                    problems.append("%s.%s: missing in sim" % (path, k))
                continue
            compare(v, got[k], path + "." + k, extras, skip, problems)
        for k in got:
            if k not in fx and k not in extras and k not in OPTIONAL and k not in skip:
                problems.append("%s.%s: not in fixture" % (path, k))
    elif isinstance(fx, list) and fx:
        for i, g in enumerate(got[:50]):
            compare(fx[0], g, "%s[%d]" % (path, i), extras, skip, problems)
    return problems


def fixture(name):
    path = os.path.join(FIXTURES, name)
    if not os.path.exists(path):
        raise AssertionError("fixture not found: %s (FIXTURE_DIR names tests/fixtures/microsoft)"
                             % path)
    with open(path) as f:
        return json.load(f)


def unwrap(fx):
    """Intune's generated single-GET examples wrap the entity in {"value": {...}}."""
    if isinstance(fx, dict) and list(fx) == ["value"] and isinstance(fx["value"], dict):
        return fx["value"]
    return fx


DEVICE_V1_EXTRAS = ("managementState", "enrollmentProfileName")
ORG_EXTRAS = ("id", "deletedDateTime", "createdDateTime", "postalCode", "preferredLanguage",
              "state", "street", "tenantType", "onPremisesSyncEnabled", "verifiedDomains",
              "provisionedPlans", "technicalNotificationMails")


class Fidelity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim("--tenants", "5", "--devices", "30", "--apps-per-device", "6",
                      "--pc-limit", "1000")
        w = cls.sim.world()
        cls.t = w["tenants"][0]["id"]
        cls.partner = w["partner_tenant_id"]
        cls.h = cls.sim.bearer(cls.t)
        cls.hp = cls.sim.bearer(cls.partner)
        cls.hpc = cls.sim.bearer(cls.partner, app="partner", v2=False, resource=PC)
        cls.covered = set()

    @classmethod
    def tearDownClass(cls):
        assert cls.sim.stop() == 0

    def check(self, name, got, extras=(), skip=(), wrap=False):
        fx = fixture(name)
        if wrap:
            fx = unwrap(fx)
        problems = compare(fx, got, extras=extras, skip=skip)
        self.assertEqual(problems, [], name)
        type(self).covered.add(name)

    def ok(self, res):
        st, _, j = res
        self.assertLess(st, 300, j)
        return j

    def test_tokens(self):
        v2 = self.ok(self.sim.token(self.t))
        self.check("aad-v2-token-client-credentials.success.response.json", v2,
                   extras=("ext_expires_in",))
        self.check("aad-v2-token-client-credentials.recorded.response.json", v2)
        v1 = self.ok(self.sim.token(self.t, v2=False))
        self.check("aad-v1-token-client-credentials.success.response.json", v1,
                   extras=("ext_expires_in", "not_before"))
        pc = self.ok(self.sim.token(self.partner, app="partner", v2=False, resource=PC))
        self.check("pc-app-only-token-aadv1-graphwindowsnet.response.json", pc)
        st, _, e = self.sim.token(self.t, resource="https://foo.microsoft.com")
        self.assertEqual(st, 400)
        self.check("aad-v2-token-error-invalid_scope.response.json", e, extras=("error_uri",))
        self.check("aad-token-error-sample-with-error_uri.response.json", e)

    def test_graph_errors(self):
        self.sim.control({"op": "fault", "tenant": self.t, "route": "organization", "kind": "429",
                          "count": 1})
        st, hd, e = self.sim.graph_get("/organization", self.h)
        self.assertEqual(st, 429)
        float(hd["Retry-After"])
        self.check("graph-error-429-throttled.response.json", e)
        st, _, e = self.sim.graph_get("/deviceManagement/managedDevices?$select=nope", self.h)
        self.assertEqual(st, 400)
        # older samples spell the inner request id "requestId"; members of innerError vary
        self.check("graph-error-example.response.json", e, skip=("innerError",))
        self.assertIn("request-id", e["error"]["innerError"])

    def test_devices(self):
        lst = self.ok(self.sim.graph_get("/deviceManagement/managedDevices", self.h))
        self.check("graph-v1.0-managedDevices-list.response.json", lst, extras=DEVICE_V1_EXTRAS)
        self.check("observed-thirdparty-graph-v1.0-managedDevices-list.cloudpc.response.json", lst,
                   extras=DEVICE_V1_EXTRAS)
        did = lst["value"][0]["id"]
        one = self.ok(self.sim.graph_get("/deviceManagement/managedDevices/" + did, self.h))
        self.check("graph-v1.0-managedDevice-get.response.json", one, extras=DEVICE_V1_EXTRAS,
                   wrap=True)
        beta = self.ok(self.sim.graph_get("/deviceManagement/managedDevices/" + did, self.h,
                                          version="beta"))
        self.check("graph-beta-managedDevice-get.response.json", beta, wrap=True)

    def test_apps(self):
        lst = self.ok(self.sim.graph_get("/deviceManagement/detectedApps", self.h))
        extras = ("publisher", "platform")
        self.check("graph-v1.0-detectedApps-list.response.json", lst, extras=extras)
        one = self.ok(self.sim.graph_get("/deviceManagement/detectedApps/" + lst["value"][0]["id"],
                                         self.h))
        self.check("graph-v1.0-detectedApp-get.response.json", one, extras=extras, wrap=True)

    def test_apps_select(self):
        # OData $select: only the named properties (any case), the next link keeps it, and an
        # unknown name is Graph's 400.
        q = "/deviceManagement/detectedApps?$select=id,DisplayName&$top=2"
        lst = self.ok(self.sim.graph_get(q, self.h))
        self.assertEqual([sorted(a) for a in lst["value"]], [["displayName", "id"]] * 2)
        self.assertIn("$select=id,displayName&", lst["@odata.nextLink"])
        nxt = self.ok(self.sim.req("GET", lst["@odata.nextLink"], None, self.h)[0:3])
        self.assertTrue(all(sorted(a) == ["displayName", "id"] for a in nxt["value"]), nxt)
        did = self.ok(self.sim.graph_get("/deviceManagement/managedDevices?$top=1",
                                         self.h))["value"][0]["id"]
        per = self.ok(self.sim.graph_get(
            "/deviceManagement/managedDevices/%s/detectedApps?$select=id,version,sizeInByte" % did,
            self.h, version="beta"))
        self.assertTrue(per["value"])
        self.assertTrue(all(sorted(a) == ["id", "sizeInByte", "version"] for a in per["value"]))
        one = self.ok(self.sim.graph_get("/deviceManagement/detectedApps/%s?$select=platform"
                                         % lst["value"][0]["id"], self.h))
        self.assertEqual(sorted(one), ["@odata.context", "platform"])
        st, _, j = self.sim.graph_get("/deviceManagement/detectedApps?$select=id,colour", self.h)
        self.assertEqual(st, 400, j)
        self.assertIn("Could not find a property named 'colour' on type "
                      "'microsoft.graph.detectedApp'", j["error"]["message"])

    def test_organization(self):
        org = self.ok(self.sim.graph_get("/organization", self.h))
        self.check("graph-v1.0-organization-get.response.json", org, extras=ORG_EXTRAS)
        self.check("graph-v1.0-organization-list.response.json", org, extras=ORG_EXTRAS)

    def test_batch(self):
        body = {"requests": [{"id": "1", "method": "GET", "url": "/organization"},
                             {"id": "2", "method": "GET",
                              "url": "/deviceManagement/managedDevices?$top=1"},
                             {"id": "3", "method": "GET", "url": "/deviceManagement/nope"}]}
        st, _, j = self.sim.req("POST", self.sim.graph + "/v1.0/$batch", body,
                                dict(self.h, **{"Content-Type": "application/json"}))
        self.assertEqual(st, 200, j)
        # inner bodies depend on the inner route; their shapes are checked by the other tests
        self.check("graph-v1.0-batch.response.json", j, skip=("body", "headers"))
        for r in j["responses"]:
            self.assertIsInstance(r["headers"], dict)
            self.assertIsInstance(r["body"], dict)

    def test_export_jobs(self):
        req = fixture("intune-reports-exportJobs-Devices.request.json")
        req["reportName"] = "DevicesWithInventory"
        req["select"] = ["DeviceName", "ManagementAgent", "OwnerType", "ComplianceState", "OS",
                         "OSVersion", "LastContact", "UPN", "DeviceId"]
        hdr = dict(self.h, **{"Content-Type": "application/json"})
        st, _, c = self.sim.req("POST", self.sim.graph + "/beta/deviceManagement/reports/"
                                "exportJobs", req, hdr)
        self.assertEqual(st, 201, c)
        self.check("intune-reports-exportJobs-Devices.create.response.json", c)
        self.check("graph-v1.0-exportJobs-create.response.json", c)
        path = "/deviceManagement/reports/exportJobs('%s')" % c["id"]
        g = self.ok(self.sim.graph_get(path, self.h, version="beta"))
        self.check("graph-v1.0-exportJob-get.response.json", g, wrap=True,
                   extras=("@odata.context",))
        g = self.ok(self.sim.graph_get(path, self.h, version="beta"))
        self.assertEqual(g["status"], "completed")
        self.check("intune-reports-exportJobs-Devices.completed.response.json", g)

    def test_directory(self):
        lst = self.ok(self.sim.graph_get("/contracts", self.hp))
        self.assertEqual(len(lst["value"]), 5)
        self.check("graph-v1.0-contracts-list.response.json", lst)
        one = self.ok(self.sim.graph_get("/contracts/" + lst["value"][0]["id"], self.hp))
        self.check("graph-v1.0-contract-get.response.json", one)
        self.check("graph-v1.0-delegatedAdminCustomers-list.response.json",
                   self.ok(self.sim.graph_get("/tenantRelationships/delegatedAdminCustomers",
                                              self.hp)))
        self.check("graph-v1.0-delegatedAdminRelationships-list.response.json",
                   self.ok(self.sim.graph_get("/tenantRelationships/delegatedAdminRelationships",
                                              self.hp)))
        self.check("graph-v1.0-findTenantInformationByTenantId.response.json",
                   self.ok(self.sim.graph_get(
                       "/tenantRelationships/findTenantInformationByTenantId(tenantId='%s')"
                       % self.t, self.hp)))
        app = self.ok(self.sim.graph_get(
            "/applications(appId='%s')" % self.sim.env["MEMSYNC_SIM_SYNC_APP_ID"], self.hp))
        self.check("graph-v1.0-application-get.response.json", app)
        pw = self.ok(self.sim.req(
            "POST", "%s/v1.0/applications/%s/addPassword" % (self.sim.graph, app["id"]),
            fixture("graph-v1.0-application-addPassword.request.json"),
            dict(self.hp, **{"Content-Type": "application/json"})))
        self.check("graph-v1.0-application-addPassword.response.json", pw)

    def test_partner_center(self):
        lst = self.ok(self.sim.req("GET", self.sim.pc + "/v1/customers?size=2", headers=self.hpc))
        self.check("pc-v1-customers-list.response.json", lst,
                   extras=("commerceId", "links", "next"))
        self.check("pc-v1-customers-filter-companyname.response.json", lst,
                   extras=("commerceId", "next"))
        # the paging example is another collection: compare the envelope's links only
        self.check("pc-v1-paging-example-links-next.response.json", lst, skip=("items",))
        one = self.ok(self.sim.req("GET", self.sim.pc + "/v1/customers/" + self.t,
                                   headers=self.hpc))
        self.check("pc-v1-customer-get.response.json", one)

    def test_zz_pc_throttle_and_coverage(self):
        sim = Sim("--tenants", "2", "--devices", "1", "--pc-limit", "3")
        try:
            h = sim.bearer(sim.env["MEMSYNC_SIM_PARTNER_TENANT_ID"], app="partner", v2=False,
                           resource=PC)
            res = [sim.req("GET", sim.pc + "/v1/customers", headers=h) for _ in range(5)]
            self.assertEqual([r[0] for r in res], [200, 200, 200, 429, 429])
            st, hd, e = res[3]
            self.assertRegex(hd["Retry-After"], r"^\d+$")
            self.assertEqual(e["message"],
                             "Rate limit is exceeded. Try again in %s seconds." % hd["Retry-After"])
            self.check("pc-error-429-throttled.response.json", e)
        finally:
            sim.stop()
        # every JSON response fixture is compared by one of the tests above
        names = {os.path.basename(p) for p in glob.glob(os.path.join(FIXTURES,
                                                                      "*.response.json"))}
        self.assertTrue(names)
        missing = names - type(self).covered
        self.assertEqual(missing, set())


class Throttling(unittest.TestCase):
    """Intune's 2000 requests / 20 s per app per tenant, scaled to 20 / 2 s."""

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim("--tenants", "3", "--devices", "3", "--intune-limit", "20",
                      "--intune-window-ms", "2000")
        cls.w = cls.sim.world()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def test_ignoring_retry_after(self):
        h = self.sim.bearer(self.w["tenants"][0]["id"])
        codes, waits = [], []
        for _ in range(50):
            st, hd, j = self.sim.graph_get("/deviceManagement/managedDevices", h)
            codes.append(st)
            if st == 429:
                waits.append(float(hd["Retry-After"]))
                self.assertEqual(j["error"]["code"], "TooManyRequests")
        first = codes.index(429)
        self.assertLessEqual(first, 20)
        self.assertGreaterEqual(first, 15)  # a window may roll over mid-test
        self.assertGreater(codes.count(429), 20)
        self.assertTrue(all(0 < w <= 2.0 for w in waits), waits)
        self.assertTrue(any(w != int(w) for w in waits), waits)
        # another tenant has its own budget; /organization is not an Intune route
        h2 = self.sim.bearer(self.w["tenants"][1]["id"])
        self.assertEqual(self.sim.graph_get("/deviceManagement/managedDevices", h2)[0], 200)
        self.assertEqual(self.sim.graph_get("/organization", h)[0], 200)

    def test_honouring_retry_after(self):
        h = self.sim.bearer(self.w["tenants"][2]["id"])
        ok = throttled = 0
        consecutive = 0
        t0 = time.time()
        while ok < 45:
            st, hd, _ = self.sim.graph_get("/deviceManagement/managedDevices", h)
            if st == 429:
                throttled += 1
                consecutive += 1
                self.assertEqual(consecutive, 1, "a 429 right after honouring Retry-After")
                time.sleep(float(hd["Retry-After"]))
            else:
                self.assertEqual(st, 200)
                consecutive = 0
                ok += 1
        # 45 requests at 20 per 2 s need at least two window changes, each costing one 429
        self.assertLessEqual(throttled, 3)
        self.assertGreaterEqual(time.time() - t0, 2.0)

    def test_batch_items_throttled_individually(self):
        sim = Sim("--tenants", "1", "--devices", "2", "--intune-limit", "5",
                  "--intune-window-ms", "5000")
        try:
            h = sim.bearer(sim.world()["tenants"][0]["id"])
            reqs = [{"id": str(i), "method": "GET", "url": "/deviceManagement/managedDevices"}
                    for i in range(1, 9)]
            reqs.append({"id": "9", "method": "GET", "url": "/organization"})
            st, _, j = sim.req("POST", sim.graph + "/v1.0/$batch", {"requests": reqs},
                               dict(h, **{"Content-Type": "application/json"}))
            self.assertEqual(st, 200, j)
            by = {r["id"]: r for r in j["responses"]}
            codes = [by[str(i)]["status"] for i in range(1, 9)]
            self.assertEqual(codes, [200] * 5 + [429] * 3)
            self.assertGreater(float(by["6"]["headers"]["Retry-After"]), 0)
            self.assertEqual(by["9"]["status"], 200)
        finally:
            sim.stop()


class Bounds(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim("--tenants", "1", "--devices", "1")
        u = urllib.parse.urlsplit(cls.sim.base)
        cls.addr = (u.hostname, u.port)

    @classmethod
    def tearDownClass(cls):
        assert cls.sim.stop() == 0

    def raw(self, data, read=65536):
        s = socket.create_connection(self.addr, timeout=30)
        try:
            s.sendall(data)
            out = b""
            while len(out) < read:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    break
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out:
                    break
            return out
        finally:
            s.close()

    def alive(self):
        st, _, w = self.sim.req("GET", self.sim.base + "/_sim/world")
        self.assertEqual(st, 200)
        self.assertEqual(len(w["tenants"]), 1)

    def test_big_body(self):
        body = b"x" * (10 * 1024 * 1024 + 10)
        st, _, j = self.sim.req("POST", self.sim.graph + "/v1.0/$batch", body,
                                {"Content-Type": "application/json"})
        self.assertEqual(st, 413)
        self.alive()

    def test_long_url(self):
        out = self.raw(b"GET /graph/v1.0/organization?x=" + b"a" * (100 * 1024) +
                       b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertRegex(out[:12], rb"^HTTP/1\.1 4(14|31|13|00)")
        self.alive()

    def test_malformed_header(self):
        out = self.raw(b"GET /_sim/world HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n")
        self.assertRegex(out[:12], rb"^HTTP/1\.1 400")
        out = self.raw(b"GET /_sim/world HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 300000 +
                       b"\r\n\r\n")
        self.assertTrue(out == b"" or out.startswith(b"HTTP/1.1 4"), out[:40])
        out = self.raw(b"\x00\x01garbage\r\n\r\n")
        self.assertTrue(out == b"" or out.startswith(b"HTTP/1.1 400"), out[:40])
        self.alive()

    def test_bad_json_and_methods(self):
        h = self.sim.bearer(self.sim.world()["tenants"][0]["id"])
        st, _, j = self.sim.req("POST", self.sim.graph + "/v1.0/$batch", b"{not json",
                                dict(h, **{"Content-Type": "application/json"}))
        self.assertEqual(st, 400)
        deep = b"[" * 5000 + b"]" * 5000
        st, _, j = self.sim.req("POST", self.sim.base + "/_sim/control", deep)
        self.assertEqual(st, 400)
        st, _, j = self.sim.req("DELETE", self.sim.graph + "/v1.0/organization", headers=h)
        self.assertEqual(st, 405)
        self.alive()


if __name__ == "__main__":
    unittest.main(verbosity=2)
