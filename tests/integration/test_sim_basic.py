#!/usr/bin/python3
"""memsync sim: tokens (v1/v2, tenant and audience checks, secrets), Partner Center customer
paging, managedDevices paging edges, $select, determinism. Python standard library only."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

BIN = os.environ.get("MEMSYNC_BIN", "build/memsync")
GRAPH = "https://graph.microsoft.com"
PC = "https://api.partnercenter.microsoft.com"


class Sim:
    """Runs `memsync sim` on 127.0.0.1:0 and reads its env file."""

    def __init__(self, *args, scenario=None):
        self.dir = tempfile.mkdtemp(prefix="simtest")
        self.envfile = os.path.join(self.dir, "sim.env")
        cmd = [BIN, "sim", "--listen", "127.0.0.1:0", "--env-file", self.envfile] + list(args)
        if "--epoch" not in args:  # byte-identical worlds need a fixed "now"
            cmd += ["--epoch", "2026-06-01T00:00:00Z"]
        if scenario is not None:
            path = os.path.join(self.dir, "scenario.json")
            with open(path, "w") as f:
                json.dump(scenario, f)
            cmd += ["--scenario", path]
        self.log = open(os.path.join(self.dir, "sim.log"), "w+b")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 60
        while not os.path.exists(self.envfile):
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError("sim exited: " + self.log.read().decode())
            if time.time() > deadline:
                raise RuntimeError("sim did not start")
            time.sleep(0.05)
        self.env = {}
        with open(self.envfile) as f:
            for line in f:
                k, v = line.rstrip("\n").split("=", 1)
                assert v[0] == "'" and v[-1] == "'", line
                self.env[k] = v[1:-1]
        self.login = self.env["MEMSYNC_LOGIN_URL"]
        self.graph = self.env["MEMSYNC_GRAPH_URL"]
        self.pc = self.env["MEMSYNC_PARTNER_CENTER_URL"]
        self.base = self.login[: -len("/login")]

    def stop(self):
        """Stops the simulator; a non-zero exit (crash, sanitizer report, leak) fails the test
        with the simulator's log."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.seek(0)
        log = self.log.read().decode(errors="replace")
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.proc.returncode != 0:
            raise AssertionError("memsync sim exited %d:\n%s" % (self.proc.returncode, log[-4000:]))
        return self.proc.returncode

    def req(self, method, url, body=None, headers=None, raw=False):
        data = body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        r = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(r, timeout=60) as resp:
                payload = resp.read()
                return resp.status, dict(resp.headers), payload if raw else json.loads(payload)
        except urllib.error.HTTPError as e:
            payload = e.read()
            try:
                j = json.loads(payload)
            except ValueError:
                j = payload
            return e.code, dict(e.headers), payload if raw else j

    def world(self):
        return self.req("GET", self.base + "/_sim/world")[2]

    def control(self, *ops):
        st, _, j = self.req("POST", self.base + "/_sim/control", list(ops))
        assert st == 200, j
        return j["results"]

    def token(self, tenant, app="sync", v2=True, resource=GRAPH, secret=None, raw_body=None,
              basic=False):
        cid = self.env["MEMSYNC_SIM_SYNC_APP_ID" if app == "sync" else "MEMSYNC_SIM_PARTNER_APP_ID"]
        sec = secret if secret is not None else self.env[
            "MEMSYNC_SIM_SYNC_APP_SECRET" if app == "sync" else "MEMSYNC_SIM_PARTNER_APP_SECRET"]
        url = "%s/%s/oauth2/%s" % (self.login, tenant, "v2.0/token" if v2 else "token")
        form = {"grant_type": "client_credentials"}
        if v2:
            form["scope"] = resource + "/.default"
        else:
            form["resource"] = resource
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if basic:
            cred = "%s:%s" % (urllib.parse.quote(cid, safe=""), urllib.parse.quote(sec, safe=""))
            headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        else:
            form["client_id"] = cid
            if sec != "":
                form["client_secret"] = sec
        body = raw_body if raw_body is not None else urllib.parse.urlencode(form)
        return self.req("POST", url, body, headers)

    def bearer(self, tenant, **kw):
        st, _, j = self.token(tenant, **kw)
        assert st == 200, j
        return {"Authorization": "Bearer " + j["access_token"]}

    def graph_get(self, path, hdrs, version="v1.0", raw=False):
        return self.req("GET", "%s/%s%s" % (self.graph, version, path), headers=hdrs, raw=raw)


def all_devices(sim, hdrs, first_url):
    pages, devices, url = [], [], first_url
    while url:
        st, _, j = sim.req("GET", url, headers=hdrs)
        assert st == 200, j
        pages.append(j)
        devices += j["value"]
        url = j.get("@odata.nextLink")
        assert len(pages) < 100
    return pages, devices


class TokenTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim("--tenants", "3", "--devices", "4", "--seed", "5")
        cls.w = cls.sim.world()
        cls.t0 = cls.w["tenants"][0]["id"]
        cls.t1 = cls.w["tenants"][1]["id"]
        cls.partner = cls.sim.env["MEMSYNC_SIM_PARTNER_TENANT_ID"]

    @classmethod
    def tearDownClass(cls):
        assert cls.sim.stop() == 0

    def assert_aad_error(self, res, status, error, code):
        st, hdrs, j = res
        self.assertEqual(st, status, j)
        self.assertEqual(j["error"], error)
        self.assertEqual(j["error_codes"], [code])
        self.assertIsInstance(j["error_codes"][0], int)
        desc = j["error_description"]
        self.assertTrue(desc.startswith("AADSTS%d: " % code), desc)
        self.assertIn("\r\nTrace ID: " + j["trace_id"], desc)
        self.assertIn("\r\nCorrelation ID: " + j["correlation_id"], desc)
        self.assertIn("\r\nTimestamp: " + j["timestamp"], desc)
        self.assertRegex(j["timestamp"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$")
        self.assertEqual(j["error_uri"], "https://login.microsoftonline.com/error?code=%d" % code)

    def test_secret_has_awkward_characters(self):
        s = self.sim.env["MEMSYNC_SIM_SYNC_APP_SECRET"]
        for ch in "+/=":
            self.assertIn(ch, s)

    def test_v2_token_numbers(self):
        st, _, j = self.sim.token(self.t0)
        self.assertEqual(st, 200, j)
        self.assertEqual(j["token_type"], "Bearer")
        self.assertIsInstance(j["expires_in"], int)
        self.assertIsInstance(j["ext_expires_in"], int)
        self.assertGreater(j["expires_in"], 300)
        self.assertEqual(j["access_token"].count("."), 2)

    def test_v1_token_strings(self):
        st, _, j = self.sim.token(self.t0, v2=False)
        self.assertEqual(st, 200, j)
        for k in ("expires_in", "expires_on", "not_before"):
            self.assertIsInstance(j[k], str, k)
            int(j[k])
        self.assertEqual(j["resource"], GRAPH)
        self.assertAlmostEqual(int(j["expires_on"]) - int(j["not_before"]), int(j["expires_in"]))

    def test_tenant_by_domain(self):
        dom = self.w["tenants"][0]["initial_domain"]
        st, _, j = self.sim.token(dom)
        self.assertEqual(st, 200, j)

    def test_partner_app_only_in_partner_tenant_for_pc(self):
        st, _, j = self.sim.token(self.partner, app="partner", v2=False, resource=PC)
        self.assertEqual(st, 200, j)
        st, _, j = self.sim.token(self.partner, app="partner", v2=True, resource=PC)
        self.assertEqual(st, 200, j)
        self.assert_aad_error(self.sim.token(self.t0, app="partner", v2=False, resource=PC), 400,
                              "unauthorized_client", 700016)
        self.assert_aad_error(self.sim.token(self.partner, app="partner", v2=True), 400,
                              "invalid_scope", 70011)

    def test_sync_app_graph_in_partner_and_customers(self):
        for t in (self.partner, self.t0, self.t1):
            st, _, j = self.sim.token(t)
            self.assertEqual(st, 200, j)

    def test_wrong_secret(self):
        self.assert_aad_error(self.sim.token(self.t0, secret="not-the-secret"), 401,
                              "invalid_client", 7000215)

    def test_secret_form_encoded_vs_not(self):
        s = self.sim.env["MEMSYNC_SIM_SYNC_APP_SECRET"]
        cid = self.sim.env["MEMSYNC_SIM_SYNC_APP_ID"]
        good = "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s" % (
            cid, urllib.parse.quote(s, safe=""), urllib.parse.quote(GRAPH + "/.default", safe=""))
        st, _, j = self.sim.token(self.t0, raw_body=good)
        self.assertEqual(st, 200, j)
        # '+' sent raw decodes to a space: the secret no longer matches
        bad = "grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s" % (
            cid, s, urllib.parse.quote(GRAPH + "/.default", safe=""))
        self.assert_aad_error(self.sim.token(self.t0, raw_body=bad), 401, "invalid_client",
                              7000215)

    def test_http_basic(self):
        st, _, j = self.sim.token(self.t0, basic=True)
        self.assertEqual(st, 200, j)

    def test_no_secret(self):
        self.assert_aad_error(self.sim.token(self.t0, secret=""), 401, "invalid_client", 7000218)

    def test_unknown_tenant(self):
        self.assert_aad_error(self.sim.token("00000000-1111-2222-3333-444444444444"), 400,
                              "invalid_tenant", 90002)

    def test_graph_audience_and_tenant_checks(self):
        h0 = self.sim.bearer(self.t0)
        h1 = self.sim.bearer(self.t1)
        st, _, j = self.sim.graph_get("/organization", h0)
        self.assertEqual(st, 200, j)
        self.assertEqual(j["value"][0]["id"], self.t0)
        st, _, j = self.sim.graph_get("/organization", h1)
        self.assertEqual(j["value"][0]["id"], self.t1)
        d0 = self.sim.graph_get("/deviceManagement/managedDevices", h0)[2]["value"]
        d1 = self.sim.graph_get("/deviceManagement/managedDevices", h1)[2]["value"]
        self.assertFalse({d["id"] for d in d0} & {d["id"] for d in d1})
        # a device of tenant 0 cannot be read with a token of tenant 1
        st, _, j = self.sim.graph_get("/deviceManagement/managedDevices/" + d0[0]["id"], h1)
        self.assertEqual(st, 404, j)
        # Partner Center token on Graph, Graph token on Partner Center
        hpc = self.sim.bearer(self.partner, app="partner", v2=False, resource=PC)
        st, hd, j = self.sim.graph_get("/organization", hpc)
        self.assertEqual(st, 401)
        self.assertEqual(j["error"]["code"], "InvalidAuthenticationToken")
        self.assertIn("request-id", j["error"]["innerError"])
        st, _, j = self.sim.req("GET", self.sim.pc + "/v1/customers", headers=h0)
        self.assertEqual(st, 401, j)
        # missing and forged tokens
        st, _, j = self.sim.graph_get("/organization", {})
        self.assertEqual(st, 401)
        self.assertEqual(j["error"]["code"], "InvalidAuthenticationToken")
        tok = h0["Authorization"]
        forged = tok[:-4] + ("AAAA" if not tok.endswith("AAAA") else "BBBB")
        st, _, j = self.sim.graph_get("/organization", {"Authorization": forged})
        self.assertEqual(st, 401)

    def test_zz_control_consent_and_expiry(self):
        sim = Sim("--tenants", "2", "--devices", "1")
        try:
            t = sim.world()["tenants"][1]["id"]
            self.assertEqual(sim.token(t)[0], 200)
            sim.control({"op": "revoke_consent", "tenant": t})
            self.assert_aad_error(sim.token(t), 400, "unauthorized_client", 700016)
            t0 = sim.world()["tenants"][0]["id"]
            self.assertEqual(sim.token(t0)[0], 200)
            sim.control({"op": "expire_secret", "app": "sync"})
            self.assert_aad_error(sim.token(t0), 401, "invalid_client", 7000222)
            new = sim.control({"op": "rotate_secret", "app": "sync"})[0]["secret"]
            self.assertEqual(sim.token(t0, secret=new)[0], 200)
        finally:
            sim.stop()


class PagingTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(scenario={"seed": 3, "apps_per_device": 2,
                                "tenants": [{"devices": 0}, {"devices": 1000}, {"devices": 1001},
                                            {"devices": 1}, {"devices": 5}, {"devices": 5},
                                            {"devices": 5}]})
        cls.w = cls.sim.world()
        cls.partner = cls.sim.env["MEMSYNC_SIM_PARTNER_TENANT_ID"]

    @classmethod
    def tearDownClass(cls):
        assert cls.sim.stop() == 0

    def test_customers_paging(self):
        h = self.sim.bearer(self.partner, app="partner", v2=False, resource=PC)
        st, _, j = self.sim.req("GET", self.sim.pc + "/v1/customers?size=3", headers=h)
        self.assertEqual(st, 200, j)
        self.assertEqual(j["attributes"], {"objectType": "Collection"})
        ids = []
        pages = 0
        while True:
            pages += 1
            self.assertEqual(j["totalCount"], len(j["items"]))
            for it in j["items"]:
                self.assertEqual(it["id"], it["companyProfile"]["tenantId"])
                self.assertEqual(it["attributes"]["objectType"], "Customer")
                self.assertEqual(it["companyProfile"]["attributes"]["objectType"],
                                 "CustomerCompanyProfile")
                self.assertIn("domain", it["companyProfile"])
                self.assertIn("companyName", it["companyProfile"])
                self.assertIn("relationshipToPartner", it)
                self.assertNotIn("allowDelegatedAccess", it)
                ids.append(it["id"])
            nxt = j["links"].get("next")
            if not nxt:
                break
            self.assertEqual(nxt["uri"], "/v1/customers?size=3&seekOperation=Next")
            self.assertEqual(nxt["method"], "GET")
            self.assertEqual(nxt["headers"][0]["key"], "MS-ContinuationToken")
            # without the header the next page is refused
            st, _, e = self.sim.req("GET", self.sim.pc + nxt["uri"], headers=h)
            self.assertEqual(st, 400, e)
            hh = dict(h)
            hh[nxt["headers"][0]["key"]] = nxt["headers"][0]["value"]
            st, _, j = self.sim.req("GET", self.sim.pc + nxt["uri"], headers=hh)
            self.assertEqual(st, 200, j)
        self.assertEqual(pages, 3)
        self.assertEqual(ids, [t["id"] for t in self.w["tenants"]])
        st, _, j = self.sim.req("GET", self.sim.pc + "/v1/customers", headers=h)
        self.assertEqual(len(j["items"]), 7)
        self.assertNotIn("next", j["links"])
        st, _, c = self.sim.req("GET", self.sim.pc + "/v1/customers/" + ids[2], headers=h)
        self.assertEqual(st, 200, c)
        self.assertTrue(c["allowDelegatedAccess"])
        self.assertEqual(c["id"], ids[2])

    def test_customers_filter(self):
        h = self.sim.bearer(self.partner, app="partner", v2=False, resource=PC)
        names = [t["name"] for t in self.w["tenants"]]
        prefix = names[0][:2]
        want = [t["id"] for t in self.w["tenants"] if t["name"].lower().startswith(prefix.lower())]
        f = json.dumps({"Field": "CompanyName", "Value": prefix, "Operator": "starts_with"})
        url = self.sim.pc + "/v1/customers?size=1&filter=" + urllib.parse.quote(f)
        got = []
        hh = dict(h)
        while url:
            st, _, j = self.sim.req("GET", url, headers=hh)
            self.assertEqual(st, 200, j)
            got += [it["id"] for it in j["items"]]
            nxt = j["links"].get("next")
            url = None
            if nxt:
                self.assertIn("filter=", nxt["uri"])
                url = self.sim.pc + nxt["uri"]
                hh = dict(h, **{"MS-ContinuationToken": nxt["headers"][0]["value"]})
        self.assertEqual(got, want)
        f = json.dumps({"Field": "IndirectReseller", "Value": "x", "Operator": "starts_with"})
        st, _, j = self.sim.req("GET", self.sim.pc + "/v1/customers?filter=" +
                                urllib.parse.quote(f), headers=h)
        self.assertEqual(st, 403, j)
        st, _, j = self.sim.req("GET", self.sim.pc + "/v1/customers?filter=%7Bbad", headers=h)
        self.assertEqual(st, 400, j)

    def device_pages(self, idx, top=None, version="v1.0"):
        t = self.w["tenants"][idx]["id"]
        h = self.sim.bearer(t)
        url = "%s/%s/deviceManagement/managedDevices" % (self.sim.graph, version)
        if top:
            url += "?$top=%d" % top
        return all_devices(self.sim, h, url)

    def test_zero_devices(self):
        pages, devs = self.device_pages(0)
        self.assertEqual(len(pages), 1)
        self.assertEqual(devs, [])
        self.assertNotIn("@odata.nextLink", pages[0])
        self.assertTrue(pages[0]["@odata.context"].endswith(
            "/v1.0/$metadata#deviceManagement/managedDevices"))

    def test_exactly_1000(self):
        pages, devs = self.device_pages(1)
        self.assertEqual(len(pages), 1)
        self.assertEqual(len(devs), 1000)

    def test_1001(self):
        pages, devs = self.device_pages(2)
        self.assertEqual([len(p["value"]) for p in pages], [1000, 1])
        self.assertEqual(len({d["id"] for d in devs}), 1001)
        nl = pages[0]["@odata.nextLink"]
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(nl).query)
        tok = q["$skiptoken"][0]
        self.assertFalse(tok.isdigit())
        self.assertNotIn("1000", tok)

    def test_top_and_forged_skiptoken(self):
        pages, devs = self.device_pages(4, top=2)
        self.assertEqual([len(p["value"]) for p in pages], [2, 2, 1])
        t = self.w["tenants"][4]["id"]
        h = self.sim.bearer(t)
        st, _, j = self.sim.graph_get("/deviceManagement/managedDevices?$skiptoken=1000", h)
        self.assertEqual(st, 400, j)

    def test_select(self):
        t = self.w["tenants"][3]["id"]
        h = self.sim.bearer(t)
        st, _, j = self.sim.graph_get(
            "/deviceManagement/managedDevices?$select=id,deviceName,serialNumber", h)
        self.assertEqual(st, 200, j)
        self.assertEqual(list(j["value"][0].keys()), ["id", "deviceName", "serialNumber"])
        self.assertIn("managedDevices(id,deviceName,serialNumber)", j["@odata.context"])
        st, _, j = self.sim.graph_get("/deviceManagement/managedDevices?$select=id,bogusProp", h)
        self.assertEqual(st, 400)
        self.assertEqual(j["error"]["code"], "BadRequest")
        self.assertIn("bogusProp", j["error"]["message"])

    def test_full_device_shape(self):
        t = self.w["tenants"][1]["id"]
        h = self.sim.bearer(t)
        j = self.sim.graph_get("/deviceManagement/managedDevices?$top=200", h)[2]
        types = {
            "id": str, "totalStorageSpaceInBytes": int, "freeStorageSpaceInBytes": int,
            "physicalMemoryInBytes": int, "isEncrypted": bool, "isSupervised": bool,
            "easActivated": bool, "deviceActionResults": list, "lastSyncDateTime": str,
        }
        big = 0
        for d in j["value"]:
            self.assertEqual(len(d), 56, sorted(d))
            for k, ty in types.items():
                self.assertIsInstance(d[k], ty, k)
            self.assertEqual(d["physicalMemoryInBytes"], 0)
            self.assertIsNone(d["ethernetMacAddress"])
            self.assertEqual(d["easActivationDateTime"], "0001-01-01T00:00:00Z")
            if d["totalStorageSpaceInBytes"] > 2 ** 31:
                big += 1
            if d["userPrincipalName"] == "":
                self.assertEqual(d["userId"], "")
                self.assertEqual(d["emailAddress"], "")
        self.assertGreater(big, 100)

    def test_single_get_and_beta_memory(self):
        t = self.w["tenants"][4]["id"]
        h = self.sim.bearer(t)
        lst = self.sim.graph_get("/deviceManagement/managedDevices", h)[2]["value"]
        st, _, one = self.sim.graph_get("/deviceManagement/managedDevices/" + lst[0]["id"], h)
        self.assertEqual(st, 200, one)
        ctx = one.pop("@odata.context")
        self.assertTrue(ctx.endswith("$metadata#deviceManagement/managedDevices/$entity"), ctx)
        self.assertEqual(one, lst[0])
        st, _, b = self.sim.graph_get("/deviceManagement/managedDevices('%s')"
                                      "?$select=id,physicalMemoryInBytes,ethernetMacAddress,"
                                      "hardwareInformation" % lst[0]["id"], h, version="beta")
        self.assertEqual(st, 200, b)
        self.assertGreater(b["physicalMemoryInBytes"], 2 ** 31)
        self.assertIn("hardwareInformation", b)
        st, _, v = self.sim.graph_get("/deviceManagement/managedDevices/%s"
                                      "?$select=id,physicalMemoryInBytes" % lst[0]["id"], h)
        self.assertEqual(v["physicalMemoryInBytes"], 0)


class DeterminismTests(unittest.TestCase):
    def fetch(self, seed):
        sim = Sim("--tenants", "2", "--devices", "30", "--seed", str(seed))
        try:
            w = sim.world()
            out = [json.dumps(w["tenants"], sort_keys=True).encode()]
            for t in w["tenants"]:
                h = sim.bearer(t["id"])
                st, _, raw = sim.graph_get("/deviceManagement/managedDevices", h, raw=True)
                self.assertEqual(st, 200)
                out.append(raw.replace(sim.base.encode(), b"BASE"))
                st, _, raw = sim.graph_get("/deviceManagement/detectedApps", h, raw=True)
                out.append(raw.replace(sim.base.encode(), b"BASE"))
            out.append(sim.env["MEMSYNC_SIM_PARTNER_TENANT_ID"].encode())
            return out
        finally:
            sim.stop()

    def test_same_seed_same_bytes(self):
        a, b, c = self.fetch(11), self.fetch(11), self.fetch(12)
        self.assertEqual(a, b)
        self.assertNotEqual(a[1], c[1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
