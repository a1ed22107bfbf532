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
    def test_bom_intune_401_and_support_ids(self):
        sim = harness.Sim("--tenants", "5", "--devices", "4", "--apps-per-device", "3")
        ms = harness.Memsync(sim)
        try:
            tenants = [t["id"] for t in sim.world()["tenants"]]
            ms.add_integration()
            sim.control([{"op": "clear_faults"}, {"op": "reset_stats"}])
            sim.control([
                # The customer list: first a 503 (retried with the same MS-RequestId), then a
                # byte-order mark on every answer.
                {"op": "fault", "route": "customers", "kind": "status", "status": 503,
                 "retry_after": 0.2, "count": 1},
                {"op": "fault", "route": "customers", "kind": "bom"},
                # Tokens, Graph pages and $batch answers with a BOM, for every tenant.
                {"op": "fault", "route": "token_v2", "kind": "bom"},
                {"op": "fault", "route": "organization", "kind": "bom"},
                {"op": "fault", "tenant": tenants[0], "route": "managedDevices", "kind": "bom"},
                {"op": "fault", "route": "batch", "kind": "bom"},
                # Intune's 401 UnknownError: one tenant without a licence, one without the
                # permission.
                {"op": "set_tenant", "tenant": tenants[1], "intune_401": True,
                 "intune_licensed": False},
                {"op": "set_tenant", "tenant": tenants[2], "intune_401": True,
                 "permission": False},
                # The licence message on a 403, after Intune's usual preamble.
                {"op": "fault", "tenant": tenants[3], "route": "managedDevices", "kind": "status",
                 "status": 403, "code": "Forbidden",
                 "message": "Operation ID (for customer support): 00000000-0000-0000-0000-"
                            "000000000000 - Activity ID: 11111111-1111-1111-1111-111111111111 - "
                            + NOT_APPLICABLE},
                # The same message in an error body that starts with a BOM.
                {"op": "fault", "tenant": tenants[4], "route": "managedDevices", "kind": "status",
                 "status": 400, "code": "BadRequest", "message": NOT_APPLICABLE, "bom": True},
            ])
            code, out, err = ms.run("sync")
            self.assertEqual(code, 3, out + err)
            clients = {c["tenant_id"]: c for c in ms.json("clients", "--format", "json")}

            # BOMs everywhere: the healthy tenant is exact, software included.
            ok = clients[tenants[0]]
            self.assertEqual(ok["status"], "ok", ok)
            self.assertIsNone(ok["error"])
            assets = [a for a in ms.json("assets", "hardware", "--format", "json")
                      if a["client"]["tenant_id"] == tenants[0]]
            self.assertEqual(len(assets), 4)
            self.assertGreater(ok["software_count"], 0)
            self.assertNotIn("software inventory incomplete", err)

            # Intune's failures, each with its own remedy and never token_rejected.
            want = {1: "no_intune_license", 2: "permission_missing", 3: "no_intune_license",
                    4: "no_intune_license"}
            for i, code_want in want.items():
                c = clients[tenants[i]]
                self.assertEqual(c["status"], "error", c)
                self.assertEqual(c["error"]["code"], code_want, "tenant %d: %s" % (i, c["error"]))
                # Microsoft's request id and date, for its support.
                self.assertRegex(c["error"]["request_id"] or "", GUID, "tenant %d" % i)
                self.assertTrue(c["error"]["date"], "tenant %d" % i)
                self.assertIn("request_id=%s" % c["error"]["request_id"], err)
            self.assertIn("adminconsent?client_id=" + sim.env["MEMSYNC_SIM_SYNC_APP_ID"],
                          clients[tenants[2]]["error"]["remedy"])
            self.assertIn("admin-consented application permissions",
                          clients[tenants[2]]["error"]["message"])

            # The headers memsync sent.
            log = requests_log(sim)
            graph = [r for r in log if r["route"] in (
                "organization", "managedDevices", "batch", "deviceDetectedApps")]
            self.assertTrue(graph)
            for r in graph:
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

            # The REST API shows the ids on the client and in the run's tenant results.
            key = ms.run("apikey", "create", "--name", "t", "--scope", "read",
                         check=0)[1].strip()
            srv = ServeLite(ms)
            try:
                st, body, _ = harness.http("GET", srv.url + "/api/v1/clients?page_size=50",
                                           headers={"x-api-key": key})
                self.assertEqual(st, 200, body)
                api_clients = {c["tenant_id"]: c for c in json.loads(body)["data"]}
                c = api_clients[tenants[2]]
                self.assertEqual(c["error"]["code"], "permission_missing")
                self.assertEqual(c["error"]["request_id"],
                                 clients[tenants[2]]["error"]["request_id"])
                self.assertTrue(c["error"]["date"])
                st, body, _ = harness.http("GET", srv.url + "/api/v1/sync-runs?page_size=1",
                                           headers={"x-api-key": key})
                run_id = json.loads(body)["data"][0]["id"]
                st, body, _ = harness.http("GET", srv.url + "/api/v1/sync-runs/%d" % run_id,
                                           headers={"x-api-key": key})
                self.assertEqual(st, 200, body)
                results = {t["tenant_id"]: t for t in json.loads(body)["data"]["tenants"]}
                self.assertEqual(results[tenants[1]]["error"]["request_id"],
                                 clients[tenants[1]]["error"]["request_id"])
                self.assertTrue(results[tenants[1]]["error"]["date"])
            finally:
                srv.stop()

            # A later clean sync clears the error and its ids.
            sim.control([{"op": "clear_faults"}] + [
                {"op": "set_tenant", "tenant": t, "intune_401": False, "intune_licensed": True,
                 "permission": True} for t in tenants])
            ms.run("sync", check=0)
            for c in ms.json("clients", "--format", "json"):
                self.assertEqual(c["status"], "ok", c)
                self.assertIsNone(c["error"])
        finally:
            sim.stop()
            ms.cleanup()

    def test_entra_codes(self):
        """Each further AADSTS code comes out of the token route with its own remedy and with
        Entra's trace id as the request id."""
        sim = harness.Sim("--tenants", "5", "--devices", "2", "--apps-per-device", "1")
        ms = harness.Memsync(sim)
        try:
            tenants = [t["id"] for t in sim.world()["tenants"]]
            ms.add_integration()
            codes = {7000229: "app_no_service_principal", 7000112: "app_disabled",
                     53003: "conditional_access", 900382: "wrong_cloud",
                     500011: "resource_not_in_tenant"}
            sim.control([{"op": "clear_faults"}] + [
                {"op": "fault", "tenant": tenants[i], "route": "token_v2", "kind": "status",
                 "code": "AADSTS%d" % c} for i, c in enumerate(codes)])
            code, out, err = ms.run("sync", "--no-software")
            self.assertEqual(code, 3, out + err)
            clients = {c["tenant_id"]: c for c in ms.json("clients", "--format", "json")}
            for i, (aadsts, want) in enumerate(codes.items()):
                c = clients[tenants[i]]
                self.assertEqual(c["error"]["code"], want, "AADSTS%d: %s" % (aadsts, c["error"]))
                self.assertRegex(c["error"]["request_id"] or "", GUID)
                self.assertTrue(c["error"]["date"])
            self.assertIn("cloud setting (global, usgov, usgovdod, china)",
                          clients[tenants[3]]["error"]["remedy"])
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

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
