#!/usr/bin/python3
"""Microsoft's own Python client, MSAL (Debian's python3-msal), against `memsync sim --tls`:
tenant discovery, client-credential tokens for the sync app (Graph, customer tenants) and the
partner app (Partner Center, partner tenant), MSAL's token cache, and Entra errors as MSAL
reports them. The tokens must work on the simulator's Graph and Partner Center."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

try:
    import msal
    import requests
except ImportError as e:  # a missing dependency is a failure, not a skip
    sys.exit("test_sim_msal needs python3-msal (scripts/deps.sh test): %s" % e)

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
PC_SCOPE = ["https://api.partnercenter.microsoft.com/.default"]


def _supports(name):
    import inspect
    return name in inspect.signature(msal.ConfidentialClientApplication.__init__).parameters


class SimMsal(unittest.TestCase):
    sim = None

    @classmethod
    def setUpClass(cls):
        cls.sim = harness.Sim("--tls", "--tenants", "3", "--devices", "30", "--no-throttle")
        cls.ca = cls.sim.env["MEMSYNC_CA_FILE"]
        cls.session = requests.Session()
        # REQUESTS_CA_BUNDLE and proxy variables would override verify= and reach elsewhere.
        cls.session.trust_env = False
        cls.session.verify = cls.ca
        cls.world = cls._get(cls.sim.root + "/_sim/world")
        cls.partner_tenant = cls.sim.env["MEMSYNC_SIM_PARTNER_TENANT_ID"]
        cls.customer = cls.world["tenants"][0]

    @classmethod
    def tearDownClass(cls):
        cls.session.close()
        cls.sim.stop()

    @classmethod
    def _get(cls, url, token=None):
        headers = {"Authorization": "Bearer " + token} if token else {}
        r = cls.session.get(url, headers=headers, timeout=30)
        if r.status_code != 200:
            raise AssertionError("GET %s: %s %s" % (url, r.status_code, r.text[:400]))
        return r.json()

    def app(self, tenant, client_id=None, secret=None):
        kwargs = {"http_client": self.session}
        # Instance discovery would ask login.microsoftonline.com about 127.0.0.1.
        if _supports("instance_discovery"):
            kwargs["instance_discovery"] = False
        kwargs["validate_authority"] = False
        return msal.ConfidentialClientApplication(
            client_id or self.sim.env["MEMSYNC_SIM_SYNC_APP_ID"],
            client_credential=secret or self.sim.env["MEMSYNC_SIM_SYNC_APP_SECRET"],
            authority="%s/%s" % (self.sim.env["MEMSYNC_LOGIN_URL"], tenant), **kwargs)

    def token_requests(self):
        st = self._get(self.sim.root + "/_sim/stats")
        return sum(st["requests"].get("token_v2", {}).values())

    def test_tls_is_required_to_verify(self):
        # The sim's certificate is not trusted without its CA: MSAL would fail, so the test's
        # session really relies on MEMSYNC_CA_FILE.
        plain = requests.Session()
        plain.trust_env = False
        with self.assertRaises(requests.exceptions.SSLError):
            plain.get(self.sim.root + "/_sim/world", timeout=10)
        plain.close()
        self.assertTrue(self.sim.env["MEMSYNC_LOGIN_URL"].startswith("https://"))

    def test_sync_app_token_in_customer_tenant_reads_graph(self):
        res = self.app(self.customer["id"]).acquire_token_for_client(scopes=GRAPH_SCOPE)
        self.assertIn("access_token", res, res)
        self.assertEqual(res["token_type"].lower(), "bearer")
        self.assertIsInstance(res["expires_in"], int)
        self.assertGreater(res["expires_in"], 300)
        tok = res["access_token"]
        org = self._get(self.sim.env["MEMSYNC_GRAPH_URL"] + "/v1.0/organization", tok)
        self.assertEqual([o["id"] for o in org["value"]], [self.customer["id"]])
        url = self.sim.env["MEMSYNC_GRAPH_URL"] + "/v1.0/deviceManagement/managedDevices"
        ids = []
        while url:
            page = self._get(url, tok)
            ids += [d["id"] for d in page["value"]]
            url = page.get("@odata.nextLink")
        self.assertEqual(len(ids), self.customer["devices"])
        self.assertEqual(len(set(ids)), len(ids))

    def test_tenant_by_domain(self):
        t = self.world["tenants"][1]
        res = self.app(t["initial_domain"]).acquire_token_for_client(scopes=GRAPH_SCOPE)
        self.assertIn("access_token", res, res)
        org = self._get(self.sim.env["MEMSYNC_GRAPH_URL"] + "/v1.0/organization",
                        res["access_token"])
        self.assertEqual(org["value"][0]["id"], t["id"])

    def test_token_cache_serves_second_request(self):
        app = self.app(self.world["tenants"][2]["id"])
        first = app.acquire_token_for_client(scopes=GRAPH_SCOPE)
        self.assertIn("access_token", first, first)
        before = self.token_requests()
        again = app.acquire_token_silent(GRAPH_SCOPE, account=None)
        self.assertIsNotNone(again, "MSAL did not cache the sim's token response")
        self.assertEqual(again["access_token"], first["access_token"])
        self.assertEqual(self.token_requests(), before)

    def test_partner_app_token_lists_customers(self):
        app = self.app(self.partner_tenant, self.sim.env["MEMSYNC_SIM_PARTNER_APP_ID"],
                       self.sim.env["MEMSYNC_SIM_PARTNER_APP_SECRET"])
        res = app.acquire_token_for_client(scopes=PC_SCOPE)
        self.assertIn("access_token", res, res)
        tok = res["access_token"]
        body = self._get(self.sim.env["MEMSYNC_PARTNER_CENTER_URL"] + "/v1/customers?size=500",
                         tok)
        ids = {c["id"] for c in body["items"]}
        self.assertEqual(ids, {t["id"] for t in self.world["tenants"]})
        # A Partner Center token is no Graph token.
        r = self.session.get(self.sim.env["MEMSYNC_GRAPH_URL"] + "/v1.0/organization",
                             headers={"Authorization": "Bearer " + tok}, timeout=30)
        self.assertEqual(r.status_code, 401, r.text)
        self.assertEqual(r.json()["error"]["code"], "InvalidAuthenticationToken")

    def test_sync_app_graph_token_in_partner_tenant(self):
        res = self.app(self.partner_tenant).acquire_token_for_client(scopes=GRAPH_SCOPE)
        self.assertIn("access_token", res, res)

    def test_wrong_secret_is_aadsts7000215(self):
        secret = self.sim.env["MEMSYNC_SIM_SYNC_APP_SECRET"]
        res = self.app(self.customer["id"], secret=secret[:-2] + "x=").acquire_token_for_client(
            scopes=GRAPH_SCOPE)
        self.assertNotIn("access_token", res)
        self.assertEqual(res.get("error"), "invalid_client", res)
        self.assertIn("AADSTS7000215", res.get("error_description", ""), res)
        self.assertIn(7000215, res.get("error_codes", []), res)

    def test_partner_app_in_customer_tenant_is_700016(self):
        app = self.app(self.customer["id"], self.sim.env["MEMSYNC_SIM_PARTNER_APP_ID"],
                       self.sim.env["MEMSYNC_SIM_PARTNER_APP_SECRET"])
        res = app.acquire_token_for_client(scopes=PC_SCOPE)
        self.assertEqual(res.get("error"), "unauthorized_client", res)
        self.assertIn(700016, res.get("error_codes", []), res)

    def test_wrong_scope_is_70011(self):
        res = self.app(self.customer["id"]).acquire_token_for_client(
            scopes=["https://graph.example.com/.default"])
        self.assertEqual(res.get("error"), "invalid_scope", res)
        self.assertIn(70011, res.get("error_codes", []), res)

    def test_unknown_tenant_fails_discovery(self):
        # MSAL reads the tenant's openid-configuration first; Entra answers 400 there.
        with self.assertRaises(ValueError) as cm:
            self.app("00000000-0000-0000-0000-00000000dead")
        self.assertIn("authority", str(cm.exception).lower())

    def test_revoked_consent_then_restored(self):
        t = self.world["tenants"][1]
        self._control({"op": "revoke_consent", "tenant": t["id"]})
        try:
            res = self.app(t["id"]).acquire_token_for_client(scopes=GRAPH_SCOPE)
            self.assertIn(700016, res.get("error_codes", []), res)
        finally:
            self._control({"op": "set_tenant", "tenant": t["id"], "consented": True})
        res = self.app(t["id"]).acquire_token_for_client(scopes=GRAPH_SCOPE)
        self.assertIn("access_token", res, res)

    @classmethod
    def _control(cls, op):
        r = cls.session.post(cls.sim.root + "/_sim/control", json=op, timeout=30)
        if r.status_code != 200:
            raise AssertionError("control %s: %s %s" % (op, r.status_code, r.text))
        return r.json()


if __name__ == "__main__":
    unittest.main(verbosity=2)
