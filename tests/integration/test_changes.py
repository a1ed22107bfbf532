"""The change feed end to end (docs/API.md "Change feed"): GET /api/v1/changes and `memsync
changes` after a full sync, a change made in the simulator, an incremental sync, a retirement
and a client's failure and recovery; paging, filters and refusals; an integrator that pulls
with its cursor after each of several syncs rebuilds the inventory the API lists. Runs on
SQLite, and on PostgreSQL under the pg label (MEMSYNC_TEST_PG_URL)."""
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
        """Pull after each of 5 syncs with changes; the state built from the feed alone (plus
        one GET per created asset) equals what the API lists."""
        state, installs, cursor = {}, set(), None

        def apply(rows):
            for r in rows:
                k, a = r["kind"], r["asset"]
                if k == "asset.created":
                    d = self.asset(a["id"])
                    state[a["id"]] = {"name": d["name"], "os_version":
                                      d["operating_system"]["version"], "retired": False}
                elif k == "asset.changed" and r["field"] in ("name", "os_version"):
                    state[a["id"]][r["field"]] = r["new"]
                elif k == "asset.retired":
                    state[a["id"]]["retired"] = True
                elif k == "asset.revived":
                    state[a["id"]]["retired"] = False
                elif k == "install.added":
                    installs.add((a["id"], r["software"]["id"]))
                elif k == "install.removed":
                    installs.discard((a["id"], r["software"]["id"]))

        rows, cursor = pull(self.srv, self.key)
        apply(rows)
        for step in range(5):
            t = self.tenants[step % 3]
            devs = self.sim.graph_all(t, "/v1.0/deviceManagement/managedDevices")
            ops = [{"op": "modify_device", "tenant": t, "id": devs[0]["id"],
                    "set": {"deviceName": "step%d-%s" % (step, devs[0]["deviceName"])},
                    "touch": True},
                   {"op": "add_devices", "tenant": t, "count": 2}]
            if step == 2:
                ops.append({"op": "remove_devices", "tenant": t, "last": 1})
            if step == 3:
                ops.append({"op": "set_apps", "apps_per_device": 3, "tenant": t})
            self.sim.control(ops)
            self.ms.run("sync", "--full", check=0)
            rows, cursor = pull(self.srv, self.key, cursor=cursor, limit=50)
            self.assertTrue(rows, "step %d changed something" % step)
            apply(rows)
        active = {a["id"]: a for a in self.hardware()}
        self.assertEqual({k for k, v in state.items() if not v["retired"]}, set(active))
        for aid, a in active.items():
            self.assertEqual(state[aid]["name"], a["name"])
            self.assertEqual(state[aid]["os_version"], a["operating_system"]["version"])
        self.assertEqual({k for k, v in state.items() if v["retired"]},
                         {a["id"] for a in self.hardware(retired=True)})
        want = {(r[0], r[1]) for r in self.ms.sql(
            "SELECT asset_id, title_id FROM software_install WHERE removed_at IS NULL")}
        self.assertEqual(installs, want)


if __name__ == "__main__":
    unittest.main()
