"""Microsoft's failures as the real cloud sends them, beyond its documentation: a UTF-8 byte-order
mark before the JSON (Partner Center, Graph pages, $batch, tokens, error bodies), Intune's 401
UnknownError for a missing licence or permission, "Request not applicable to target tenant." on
a 403, the further AADSTS codes; and the ids Microsoft support asks for, sent by memsync and
recorded with every failure (log, run result, client error in the CLI and the REST API)."""
import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
NOT_APPLICABLE = "Request not applicable to target tenant."


def requests_log(sim):
    st, body, _ = harness.http("GET", sim.root + "/_sim/requests")
    assert st == 200, body
    return json.loads(body)["requests"]


class RealErrors(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "5", "--devices", "4", "--apps-per-device", "3")
        self.ms = harness.Memsync(self.sim)
        self.tenants = [t["id"] for t in self.sim.world()["tenants"]]
        self.ms.add_integration()
        self.sim.control([{"op": "clear_faults"}, {"op": "reset_stats"}])

    def tearDown(self):
        self.sim.stop()
        self.ms.cleanup()

    def clients(self):
        return {c["tenant_id"]: c for c in self.ms.json("clients", "--format", "json")}

    def assert_exact(self, tenant):
        """The tenant synced, with every device and some software."""
        c = self.clients()[tenant]
        self.assertEqual(c["status"], "ok", c)
        self.assertIsNone(c["error"])
        served = {d["id"] for d in self.sim.graph_all(
            tenant, "/v1.0/deviceManagement/managedDevices")}
        got = {a["source"]["intune_device_id"]
               for a in self.ms.json("assets", "hardware", "--format", "json")
               if a["client"]["tenant_id"] == tenant}
        self.assertEqual(got, served)
        self.assertEqual(len(got), 4)
        self.assertGreater(c["software_count"], 0)

    def assert_failed(self, i, code, err):
        c = self.clients()[self.tenants[i]]
        self.assertEqual(c["status"], "error", c)
        self.assertEqual(c["error"]["code"], code, "tenant %d: %s" % (i, c["error"]))
        # Microsoft's request id and date, for its support, also in the log line.
        self.assertRegex(c["error"]["request_id"] or "", GUID, "tenant %d" % i)
        self.assertTrue(c["error"]["date"], "tenant %d" % i)
        self.assertIn("request_id=%s" % c["error"]["request_id"], err)
        return c

    def test_bom_everywhere(self):
        """A byte-order mark on the customer list, tokens, /organization, device pages, $batch
        answers and an error body: every tenant as if there were none."""
        t = self.tenants
        self.sim.control([
            # an error envelope with a BOM still tells the missing licence (the first
            # matching fault applies, so this one comes before the BOM on every page)
            {"op": "fault", "tenant": t[4], "route": "managedDevices", "kind": "status",
             "status": 400, "code": "BadRequest", "message": NOT_APPLICABLE, "bom": True},
            {"op": "fault", "route": "customers", "kind": "bom"},
            {"op": "fault", "route": "token_v2", "kind": "bom"},
            {"op": "fault", "route": "organization", "kind": "bom"},
            {"op": "fault", "route": "managedDevices", "kind": "bom"},
            {"op": "fault", "route": "batch", "kind": "bom"},
        ])
        code, out, err = self.ms.run("sync")
        self.assertEqual(code, 3, out + err)
        self.sim.control([{"op": "clear_faults"}])  # for the test's own reads
        for i in range(4):
            self.assert_exact(t[i])
        self.assertNotIn("software inventory incomplete", err)
        self.assert_failed(4, "no_intune_license", err)
        routes = self.sim.stats()["requests"]
        for r in ("customers", "token_v2", "organization", "managedDevices", "batch"):
            self.assertIn(r, routes)

    def test_intune_401(self):
        """Intune's 401 UnknownError is a licence or a permission problem, by assignedPlans,
        never a rejected token."""
        t = self.tenants
        self.sim.control([
            {"op": "set_tenant", "tenant": t[1], "intune_401": True, "intune_licensed": False},
            {"op": "set_tenant", "tenant": t[2], "intune_401": True, "permission": False},
        ])
        code, out, err = self.ms.run("sync")
        self.assertEqual(code, 3, out + err)
        self.assert_exact(t[0])
        self.assert_failed(1, "no_intune_license", err)
        c = self.assert_failed(2, "permission_missing", err)
        self.assertIn("adminconsent?client_id=" + self.sim.env["MEMSYNC_SIM_SYNC_APP_ID"],
                      c["error"]["remedy"])
        self.assertIn("admin-consented application permissions", c["error"]["message"])
        self.assertNotIn("token_rejected", err)

    def test_not_applicable_on_403(self):
        """"Request not applicable to target tenant." is the licence at any status."""
        self.sim.control([
            {"op": "fault", "tenant": self.tenants[3], "route": "managedDevices",
             "kind": "status", "status": 403, "code": "Forbidden",
             "message": "Operation ID (for customer support): 00000000-0000-0000-0000-"
                        "000000000000 - Activity ID: 11111111-1111-1111-1111-111111111111 - "
                        + NOT_APPLICABLE},
        ])
        code, out, err = self.ms.run("sync")
        self.assertEqual(code, 3, out + err)
        self.assert_failed(3, "no_intune_license", err)

    def test_support_headers_and_ids(self):
        """client-request-id to Graph, MS-RequestId (kept on a retry), MS-CorrelationId and
        MS-Contract-Version to Partner Center; Microsoft's ids of a failure in the run's
        results and the REST API."""
        t = self.tenants
        self.sim.control([
            {"op": "fault", "route": "customers", "kind": "status", "status": 503,
             "retry_after": 0.2, "count": 1},
            {"op": "set_tenant", "tenant": t[1], "intune_licensed": False},
            {"op": "set_tenant", "tenant": t[2], "permission": False},
        ])
        code, out, err = self.ms.run("sync")
        self.assertEqual(code, 3, out + err)
        clients = self.clients()
        self.assert_failed(1, "no_intune_license", err)
        self.assert_failed(2, "permission_missing", err)

        log = requests_log(self.sim)
        # $batch items carry no headers of their own: the batch does.
        graph = [r for r in log if r["route"] in (
            "organization", "managedDevices", "batch", "deviceDetectedApps")
            and not r["batch_item"]]
        self.assertTrue(graph)
        for r in graph + [r for r in log if r["route"] == "token_v2"]:
            self.assertRegex(r["client_request_id"], GUID, r)
        ids = [r["client_request_id"] for r in graph]
        self.assertEqual(len(ids), len(set(ids)), "a fresh client-request-id per request")
        pc = [r for r in log if r["route"] == "customers"]
        self.assertGreaterEqual(len(pc), 2)
        for r in pc:
            self.assertRegex(r["ms_request_id"], GUID, r)
            self.assertRegex(r["ms_correlation_id"], GUID, r)
            self.assertEqual(r["ms_contract_version"], "v1")
        self.assertEqual(pc[0]["status"], 503)
        self.assertEqual(pc[1]["ms_request_id"], pc[0]["ms_request_id"],
                         "a retry keeps its MS-RequestId")
        self.assertEqual(len({r["ms_correlation_id"] for r in pc}), 1,
                         "one MS-CorrelationId per run")

        key = self.ms.run("apikey", "create", "--name", "t", "--scope", "read",
                          check=0)[1].strip()
        srv = ServeLite(self.ms)
        try:
            hdr = {"x-api-key": key}
            st, body, _ = harness.http("GET", srv.url + "/api/v1/clients?page_size=50",
                                       headers=hdr)
            self.assertEqual(st, 200, body)
            api_clients = {c["tenant_id"]: c for c in json.loads(body)["data"]}
            c = api_clients[t[2]]
            self.assertEqual(c["error"]["code"], "permission_missing")
            self.assertEqual(c["error"]["request_id"], clients[t[2]]["error"]["request_id"])
            self.assertEqual(c["error"]["date"], clients[t[2]]["error"]["date"])
            self.assertIsNone(api_clients[t[0]]["error"])  # healthy: null, as in the CLI
            st, body, _ = harness.http("GET", srv.url + "/api/v1/sync-runs?page_size=1",
                                       headers=hdr)
            run_id = json.loads(body)["data"][0]["id"]
            st, body, _ = harness.http("GET", srv.url + "/api/v1/sync-runs/%d" % run_id,
                                       headers=hdr)
            self.assertEqual(st, 200, body)
            results = {r["tenant_id"]: r for r in json.loads(body)["data"]["tenants"]}
            self.assertEqual(results[t[1]]["error"]["request_id"],
                             clients[t[1]]["error"]["request_id"])
            self.assertTrue(results[t[1]]["error"]["date"])
            # ... and so does the web UI's client list.
            import test_api
            test_api.user_add(self.ms, "ada", "viewer", "a long enough password 42")
            st, token, _ = test_api.login(srv, "ada", "a long enough password 42")
            self.assertTrue(token, st)
            st, page, _ = test_api.req("GET", srv.url + "/clients",
                                       headers={"Cookie": "memsync_session=" + token})
            self.assertEqual(st, 200)
            self.assertIn("request-id " + clients[t[2]]["error"]["request_id"], page)
        finally:
            srv.stop()

        # A later clean sync clears the error and its ids.
        self.sim.control([{"op": "set_tenant", "tenant": x, "intune_licensed": True,
                           "permission": True} for x in t])
        self.ms.run("sync", check=0)
        for c in self.ms.json("clients", "--format", "json"):
            self.assertEqual(c["status"], "ok", c)
            self.assertIsNone(c["error"])

    def test_entra_codes(self):
        """Each further AADSTS code comes out of the token route with its own remedy and with
        Entra's trace id as the request id."""
        codes = {7000229: "app_no_service_principal", 7000112: "app_disabled",
                 53003: "conditional_access", 900382: "wrong_cloud",
                 500011: "resource_not_in_tenant"}
        self.sim.control([
            {"op": "fault", "tenant": self.tenants[i], "route": "token_v2", "kind": "status",
             "code": "AADSTS%d" % c} for i, c in enumerate(codes)])
        code, out, err = self.ms.run("sync", "--no-software")
        self.assertEqual(code, 3, out + err)
        for i, want in enumerate(codes.values()):
            self.assert_failed(i, want, err)
        self.assertIn("cloud setting (global, usgov, usgovdod, china)",
                      self.clients()[self.tenants[3]]["error"]["remedy"])


class SetupChecks(unittest.TestCase):
    def test_intune_401_at_setup(self):
        """`integration add` tells Intune's 401 apart too: licence and permission warnings."""
        sim = harness.Sim("--tenants", "3", "--devices", "2", "--apps-per-device", "1")
        ms = harness.Memsync(sim)
        try:
            t = [x["id"] for x in sim.world()["tenants"]]
            sim.control([
                {"op": "set_tenant", "tenant": t[0], "intune_401": True,
                 "intune_licensed": False},
                {"op": "set_tenant", "tenant": t[1], "intune_401": True, "permission": False},
            ])
            code, out, err = ms.add_integration("--no-sync", check=None)
            self.assertEqual(code, 0, out + err)
            self.assertIn("no Intune licence", out)
            self.assertIn("DeviceManagementManagedDevices.Read.All", out)
            self.assertNotIn("rejected the Sync App's access token", out)
            # the checks send the ids Microsoft support asks for, as the sync does
            log = requests_log(sim)
            pc = [r for r in log if r["route"] == "customers"]
            self.assertTrue(pc)
            for r in pc:
                self.assertRegex(r["ms_request_id"], GUID)
                self.assertRegex(r["ms_correlation_id"], GUID)
                self.assertEqual(r["ms_contract_version"], "v1")
            for r in log:
                if r["route"] in ("organization", "managedDevices", "token_v2"):
                    self.assertRegex(r["client_request_id"], GUID, r)
        finally:
            sim.stop()
            ms.cleanup()


class ServeLite:
    """`memsync serve` on 127.0.0.1:0 for the REST API checks."""

    def __init__(self, ms):
        import subprocess
        self.url_file = os.path.join(ms.dir, "serve.url")
        self.log = open(os.path.join(ms.dir, "serve.log"), "wb")
        self.proc = subprocess.Popen([harness.BIN, "serve", "--listen", "127.0.0.1:0",
                                      "--url-file", self.url_file], cwd=ms.dir, env=ms.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        harness._procs.append(self.proc)
        deadline = time.time() + 30
        while not os.path.exists(self.url_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("serve did not start")
            time.sleep(0.05)
        with open(self.url_file) as f:
            self.url = f.read().strip()
        harness.serve_started(self.url)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
