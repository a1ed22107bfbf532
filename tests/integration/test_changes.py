"""The change feed end to end (docs/API.md "Change feed"): GET /api/v1/changes and `memsync
changes` after a full sync, a change made in the simulator, an incremental sync, a retirement
and a client's failure and recovery; paging, filters and refusals; an integrator that pulls
with its cursor after each of several syncs rebuilds the inventory the API lists. Runs on
SQLite, and on PostgreSQL under the pg label (MEMSYNC_TEST_PG_URL)."""
import functools
import os
import re
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_api import Serve, api, apikey  # noqa: E402


def pull(srv, key, cursor=None, limit=None, **params):
    """Every change after cursor, following next_cursor; returns (rows, last next_cursor)."""
    rows, pages = [], 0
    while True:
        q = dict(params)
        if cursor is not None:
            q["cursor"] = cursor
        if limit is not None:
            q["limit"] = str(limit)
        st, js, text, _ = api(srv, "GET", "/api/v1/changes?" + urllib.parse.urlencode(q), key)
        assert st == 200, (st, text[:400])
        if limit is not None:
            assert len(js["data"]) <= limit
        rows += js["data"]
        pages += 1
        assert pages < 10000
        if js["data"]:
            assert js["next_cursor"] == js["data"][-1]["cursor"]
        else:
            assert js["next_cursor"] == (cursor or "c1.0"), (js, cursor)
        cursor = js["next_cursor"]
        if not js["has_more"]:
            return rows, cursor


# The feed's field names and where the API's asset has them (docs/API.md "Fields").
FED = {"azure_ad_device_id": "source.azure_ad_device_id", "name": "name",
       "serial_number": "serial_number", "manufacturer": "manufacturer", "model": "model",
       "type": "type", "os_name": "operating_system.name",
       "os_version": "operating_system.version", "user_principal_name": "user.principal_name",
       "user_display_name": "user.display_name", "user_email": "user.email",
       "ownership": "ownership", "compliance_state": "compliance_state",
       "management_state": "management_state", "enrollment_type": "enrollment_type",
       "is_encrypted": "is_encrypted", "is_supervised": "is_supervised",
       "storage_total_bytes": "storage.total_bytes", "memory_bytes": "memory_bytes",
       "wifi_mac": "wifi_mac", "ethernet_mac": "ethernet_mac", "imei": "imei", "meid": "meid",
       "phone_number": "phone_number", "enrolled_at": "enrolled_at"}


def seqs(rows):
    return [int(r["cursor"].split(".")[1]) for r in rows]


class ChangeFeed(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "3", "--devices", "12", "--seed", "23",
                               "--apps-per-device", "2")
        self.ms = harness.Memsync(self.sim)
        self.ms.env.update(harness.RETIRE_AT_ONCE)
        self.ms.add_integration()  # validates and runs the first full sync
        self.srv = Serve(self.ms)
        self.key = apikey(self.ms, "read")
        self.tenants = [t["id"] for t in self.sim.world()["tenants"]]

    def tearDown(self):
        self.srv.stop()
        self.srv.out.close()
        self.srv.err.close()
        self.sim.stop()
        self.ms.cleanup()

    def hardware(self, retired=False):
        q = "/api/v1/assets/hardware?page_size=200" + ("&include_retired=true" if retired else "")
        st, js, text, _ = api(self.srv, "GET", q, self.key)
        self.assertEqual(st, 200, text[:300])
        self.assertIsNone(js["next_cursor"])
        return [a for a in js["data"] if (a["retired_at"] is not None) == retired]

    def asset(self, aid):
        st, js, text, _ = api(self.srv, "GET", "/api/v1/assets/hardware/%d" % aid, self.key)
        self.assertEqual(st, 200, text[:300])
        return js["data"] if "data" in js else js

    def test_full_sync_paging_and_filters(self):
        rows, head = pull(self.srv, self.key)
        s = seqs(rows)
        self.assertEqual(s, sorted(set(s)), "commit order, no repeats")
        kinds = {}
        for r in rows:
            kinds.setdefault(r["kind"], []).append(r)
        assets = self.hardware()
        self.assertEqual(len(assets), 36)
        self.assertEqual(sorted(r["asset"]["id"] for r in kinds["asset.created"]),
                         sorted(a["id"] for a in assets))
        installs = self.ms.sql("SELECT count(*) FROM software_install")[0][0]
        self.assertEqual(len(kinds["install.added"]), installs)
        self.assertTrue(all(r["software"]["name"] for r in kinds["install.added"]))
        status = kinds["client.status"]
        self.assertEqual(sorted((r["client"]["tenant_id"], r["old"], r["new"]) for r in status),
                         sorted((t, "never", "ok") for t in self.tenants))
        self.assertEqual(set(kinds), {"asset.created", "install.added", "client.status"})
        # Small pages give the same rows in the same order; the cursor moves on.
        paged, head2 = pull(self.srv, self.key, limit=7)
        self.assertEqual(paged, rows)
        self.assertEqual(head2, head)
        again, head3 = pull(self.srv, self.key, cursor=head)
        self.assertEqual((again, head3), ([], head), "nothing after the newest cursor")
        # "now" is the newest position, no rows.
        st, js, _, _ = api(self.srv, "GET", "/api/v1/changes?cursor=now", self.key)
        self.assertEqual((st, js["data"], js["next_cursor"], js["has_more"]),
                         (200, [], head, False))
        # Filters: by kind (several), by client.
        only, _ = pull(self.srv, self.key, kind="client.status,asset.created")
        self.assertEqual(only, [r for r in rows if r["kind"] in ("client.status",
                                                                  "asset.created")])
        cid = status[0]["client"]["id"]
        mine, _ = pull(self.srv, self.key, client=str(cid))
        self.assertEqual(mine, [r for r in rows if r["client"]["id"] == cid])
        self.assertTrue(mine)
        # Refusals: 400 with the error envelope.
        for bad in ("cursor=12", "cursor=c1.x", "cursor=c1.-1", "kind=asset.deleted",
                    "kind=asset.created,asset.created", "limit=0", "limit=501", "client=abc"):
            st, js, text, _ = api(self.srv, "GET", "/api/v1/changes?" + bad, self.key)
            self.assertEqual(st, 400, bad + ": " + text[:200])
            self.assertEqual(js["errors"][0]["code"], "invalid_request")
        st, _, _, _ = api(self.srv, "GET", "/api/v1/changes", None)
        self.assertEqual(st, 401)
        # Another account sees none of them.
        other = apikey(self.ms, "read", account="other")
        self.assertEqual(pull(self.srv, other)[0], [])
        # The command line prints the same rows and the cursor to resume from.
        rc, out, err = self.ms.run("changes", check=0)
        lines = [harness.json.loads(l) for l in out.splitlines()]
        self.assertEqual([l["cursor"] for l in lines], [r["cursor"] for r in rows])
        self.assertIn("next_cursor=" + head, err)
        rc, out, err = self.ms.run("changes", "--since", head, check=0)
        self.assertEqual(out, "")
        self.ms.run("changes", "--since", "bogus", check=2)

    def test_change_incremental_retire_and_status(self):
        _, cursor = pull(self.srv, self.key)
        before = {a["id"]: a for a in self.hardware()}
        victim = sorted(before.values(), key=lambda a: a["id"])[0]
        intune = victim["source"]["intune_device_id"]
        tenant = victim["client"]["tenant_id"]
        # A sync with nothing changed but check-ins: no rows, updated_at unmoved.
        self.sim.control({"op": "modify_device", "tenant": tenant, "id": intune, "touch": True})
        self.ms.run("sync", "--full", check=0)
        rows, cursor = pull(self.srv, self.key, cursor=cursor)
        self.assertEqual(rows, [], "a check-in alone is not a change")
        self.assertEqual(self.asset(victim["id"])["updated_at"], victim["updated_at"])
        time.sleep(1.1)  # updated_at has a resolution of one second
        # A change in the simulator, seen by an incremental sync.
        self.sim.control({"op": "modify_device", "tenant": tenant, "id": intune,
                          "set": {"deviceName": "RENAMED-FEED", "osVersion": "99.1"},
                          "touch": True})
        self.ms.run("sync", "--incremental", check=0)
        rows, cursor = pull(self.srv, self.key, cursor=cursor)
        changed = {(r["field"], r["old"], r["new"]) for r in rows if r["kind"] == "asset.changed"}
        self.assertEqual(changed, {("name", victim["name"], "RENAMED-FEED"),
                                   ("os_version", victim["operating_system"]["version"], "99.1")},
                         rows)
        self.assertTrue(all(r["asset"]["id"] == victim["id"] for r in rows))
        self.assertEqual(rows[0]["asset"]["name"], "RENAMED-FEED")
        after = {a["id"]: a for a in self.hardware()}
        self.assertGreater(after[victim["id"]]["updated_at"], victim["updated_at"])
        for aid, a in after.items():
            if aid != victim["id"]:
                self.assertEqual(a["updated_at"], before[aid]["updated_at"])
        # A retirement.
        res = self.sim.control({"op": "remove_devices", "tenant": self.tenants[1], "last": 2})
        removed = set(res["results"][0]["removed"])
        self.ms.run("sync", "--full", check=0)
        rows, cursor = pull(self.srv, self.key, cursor=cursor)
        self.assertEqual({r["asset"]["intune_device_id"] for r in rows
                          if r["kind"] == "asset.retired"}, removed)
        self.assertEqual({r["kind"] for r in rows}, {"asset.retired"})
        # A client that fails and recovers.
        self.sim.control({"op": "revoke_consent", "tenant": self.tenants[2]})
        self.ms.run("sync", "--full", check=None)
        rows, cursor = pull(self.srv, self.key, cursor=cursor)
        self.assertEqual([(r["kind"], r["client"]["tenant_id"], r["old"], r["new"]) for r in rows],
                         [("client.status", self.tenants[2], "ok", "error")])
        self.ms.run("sync", "--full", check=None)  # still failing: no new row
        self.assertEqual(pull(self.srv, self.key, cursor=cursor)[0], [])
        self.sim.control({"op": "set_tenant", "tenant": self.tenants[2], "consented": True})
        self.ms.run("sync", "--full", check=0)
        rows, cursor = pull(self.srv, self.key, cursor=cursor)
        self.assertEqual([(r["kind"], r["old"], r["new"]) for r in rows],
                         [("client.status", "error", "ok")])

    def test_integrator_rebuilds_the_inventory(self):
        """An integrator pulls with its cursor after each of 5 syncs with changes (devices added,
        fields changed, retired, revived, installs added and removed, clients failing and
        recovering) and rebuilds the inventory from the feed alone (plus one GET per created
        asset); after every sync it equals what the API lists, field by fed field."""
        state, installs, status = {}, set(), {}

        def text(v):
            if isinstance(v, bool):
                return "true" if v else "false"
            return None if v is None else str(v)

        def fields(a):
            """The fed fields (names of the feed) of an API asset, as the feed's text."""
            return {f: text(functools.reduce(lambda o, k: o[k], path.split("."), a))
                    for f, path in FED.items()}

        def apply(rows):
            for r in rows:
                k, a = r["kind"], r["asset"]
                if k == "asset.created":
                    d = self.asset(a["id"])
                    state[a["id"]] = dict(fields(d), retired=d["retired_at"] is not None)
                elif k == "asset.changed":
                    self.assertIn(r["field"], state[a["id"]], r)
                    state[a["id"]][r["field"]] = r["new"]
                elif k == "asset.retired":
                    state[a["id"]]["retired"] = True
                elif k == "asset.revived":
                    state[a["id"]]["retired"] = False
                elif k == "install.added":
                    installs.add((a["id"], r["software"]["id"]))
                elif k == "install.removed":
                    installs.discard((a["id"], r["software"]["id"]))
                elif k == "client.status":
                    status[r["client"]["id"]] = r["new"]

        def check(step, kinds):
            listed = {a["id"]: a for a in self.hardware() + self.hardware(retired=True)}
            self.assertEqual(set(state), set(listed), step)
            for aid, a in listed.items():
                want = dict(fields(a), retired=a["retired_at"] is not None)
                self.assertEqual(state[aid], want, "%s: asset %d" % (step, aid))
            live = {aid for aid, v in state.items() if not v["retired"]}
            listed_installs, q = set(), "/api/v1/assets/installs?page_size=200"
            while q:
                st, js, text_, _ = api(self.srv, "GET", q, self.key)
                self.assertEqual(st, 200, text_[:300])
                listed_installs |= {(i["hardware_asset_id"], i["software_id"])
                                    for i in js["data"]}
                q = js["next_cursor"] and ("/api/v1/assets/installs?page_size=200&cursor="
                                           + urllib.parse.quote(js["next_cursor"]))
            self.assertEqual({(i, s) for i, s in installs if i in live}, listed_installs, step)
            st, js, _, _ = api(self.srv, "GET", "/api/v1/clients", self.key)
            self.assertEqual(status, {c["id"]: c["status"] for c in js["data"]}, step)
            for k in kinds:
                self.assertIn(k, seen, "%s: the feed had a %s row" % (step, k))

        # A second simulator with the same seed serves the same world with other changes:
        # switching memsync between the two retires and revives devices.
        other = harness.Sim("--tenants", "3", "--devices", "12", "--seed", "23",
                            "--apps-per-device", "2")
        try:
            def use(sim):
                for k in ("MEMSYNC_LOGIN_URL", "MEMSYNC_GRAPH_URL", "MEMSYNC_PARTNER_CENTER_URL"):
                    self.ms.env[k] = sim.env[k]

            def first_device(sim, t):
                return sim.graph_all(t, "/v1.0/deviceManagement/managedDevices")[0]["id"]

            t0, t1, t2 = self.tenants
            rows, cursor = pull(self.srv, self.key)
            apply(rows)
            check("the first sync", [])
            steps = [
                ("1: added, changed, installs added", self.sim, [
                    {"op": "modify_device", "tenant": t0, "id": first_device(self.sim, t0),
                     "set": {"deviceName": "STEP1", "osVersion": "10.0.99",
                             "complianceState": "noncompliant"}, "touch": True},
                    {"op": "add_devices", "tenant": t0, "count": 2},
                    {"op": "set_apps", "apps_per_device": 3, "tenant": t1}],
                 ["asset.created", "asset.changed", "install.added"]),
                ("2: retired, changed back, installs removed, a client failing", other, [
                    {"op": "remove_devices", "tenant": t2, "last": 2},
                    {"op": "set_apps", "apps_per_device": 1, "tenant": t0},
                    {"op": "revoke_consent", "tenant": t1}],
                 ["asset.retired", "install.removed", "client.status"]),
                ("3: revived, recovered, installs back", self.sim, [
                    {"op": "remove_devices", "tenant": t0, "ids": [first_device(self.sim, t0)]},
                    {"op": "modify_device", "tenant": t2, "id": first_device(self.sim, t2),
                     "set": {"deviceName": "STEP3"}, "touch": True}],
                 ["asset.revived", "install.added", "asset.retired", "client.status"]),
                ("4: installs removed, added", self.sim, [
                    {"op": "set_apps", "apps_per_device": 1, "tenant": t2},
                    {"op": "add_devices", "tenant": t1, "count": 1}],
                 ["install.removed", "asset.created"]),
                ("5: another client failing", self.sim, [
                    {"op": "revoke_consent", "tenant": t0},
                    {"op": "modify_device", "tenant": t1, "id": first_device(self.sim, t1),
                     "set": {"deviceName": "STEP5", "osVersion": "10.0.5"}, "touch": True},
                    {"op": "add_devices", "tenant": t2, "count": 1}],
                 ["client.status", "asset.changed", "asset.created"]),
            ]
            for step, sim, ops, kinds in steps:
                sim.control(ops)
                use(sim)
                self.ms.run("sync", "--full", check=None)
                rows, cursor = pull(self.srv, self.key, cursor=cursor, limit=50)
                self.assertTrue(rows, "step %s changed something" % step)
                seen = {r["kind"] for r in rows}
                apply(rows)
                check(step, kinds)
        finally:
            other.stop()


if __name__ == "__main__":
    unittest.main()
