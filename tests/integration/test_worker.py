"""`memsync worker` (docs/DEPLOY.md "Workers"): queued syncs run by several worker processes that lease
per-tenant jobs from a shared PostgreSQL database; a worker killed mid-job loses nothing, its
lease lapses and another worker finishes the job. On SQLite both commands refuse clearly."""
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_api import Serve, api, apikey, get_json, hget, login, req  # noqa: E402

PG = os.environ.get("MEMSYNC_TEST_PG_URL")


def sim_state(sim):
    want = set()
    for t in sim.world()["tenants"]:
        for d in sim.graph_all(t["id"], "/v1.0/deviceManagement/managedDevices"):
            want.add((t["id"], d["id"], d["deviceName"] or None))
    return want


def db_state(ms):
    return {(a["client"]["tenant_id"], a["source"]["intune_device_id"], a["name"])
            for a in ms.json("assets", "hardware", "--format", "json")}


def queue(ms, *extra):
    code, out, err = ms.run("sync", "--queue", *extra)
    if code != 0:
        raise AssertionError("sync --queue: exit %d\n%s%s" % (code, out, err))
    return int(out.split("queued as run ")[1].split(";")[0])


def workers(ms, n, *extra):
    return [subprocess.Popen([harness.BIN, "worker", "--once", "--poll-seconds", "1"] +
                             list(extra), cwd=ms.dir, env=ms.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) for _ in range(n)]


def wait_leased_tenant(ms, run, timeout=60):
    """Ids of the run's tenant jobs a worker holds, once there is one (or [] at the timeout)."""
    deadline = time.time() + timeout
    leased = []
    while time.time() < deadline and not leased:
        leased = ms.sql("select id from sync_job where run_id = %d and state = 'leased' "
                        "and tenant_id is not null" % run)
        time.sleep(0.05)
    return leased


def wait_all(procs, timeout=180):
    logs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        logs.append((p.returncode, err.decode("utf-8", "replace")))
    return logs


@unittest.skipIf(PG, "the SQLite refusal is checked on SQLite")
class WorkerNeedsPostgres(unittest.TestCase):
    def test_refused_on_sqlite(self):
        sim = harness.Sim("--tenants", "2", "--devices", "3", "--no-throttle")
        ms = harness.Memsync(sim)
        try:
            ms.add_integration("--no-sync")
            code, out, err = ms.run("worker", "--once")
            self.assertEqual(code, 1, err)
            self.assertIn("PostgreSQL", err)
            self.assertIn("memsync serve", err)
            code, out, err = ms.run("sync", "--queue")
            self.assertEqual(code, 1, err)
            self.assertIn("postgresql://", err)
            self.assertEqual(ms.sql("select count(*) from sync_run"), [(0,)])
            code, out, err = ms.run("worker", "--lease-seconds", "0")
            self.assertEqual(code, 2, err)
            code, out, err = ms.run("serve", "--listen", "127.0.0.1:0",
                                    env={"MEMSYNC_SYNC_RUNNER": "workers"})
            self.assertEqual(code, 1, err)
            self.assertIn("sync_runner = workers needs a PostgreSQL database", err)
            code, out, err = ms.run("config", env={"MEMSYNC_SYNC_RUNNER": "cluster"})
            self.assertEqual(code, 2, err)
            self.assertIn("MEMSYNC_SYNC_RUNNER", err)
        finally:
            sim.stop()
            ms.cleanup()


@unittest.skipUnless(PG, "workers share a PostgreSQL database (MEMSYNC_TEST_PG_URL)")
class Workers(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "12", "--devices", "25", "--apps-per-device", "4",
                               "--latency-ms", "5", "--seed", "7", "--no-throttle")
        self.ms = harness.Memsync(self.sim)
        self.ms.add_integration("--no-sync")
        self.tenants = {t["id"] for t in self.sim.world()["tenants"]}

    def tearDown(self):
        self.sim.stop()
        self.ms.cleanup()

    def test_three_workers_share_a_run(self):
        ms = self.ms
        # Slow enough that one worker cannot finish every tenant before the others poll.
        self.sim.control({"op": "set_latency", "ms": 80})
        run = queue(ms, "--full")
        # One queued run per integration at a time.
        code, out, err = ms.run("sync", "--queue")
        self.assertEqual(code, 1)
        self.assertIn("run %d" % run, err)
        self.assertIn("not finished", err)
        # Two tenants at a time each, so that no worker takes every job at once.
        logs = wait_all(workers(ms, 3, "--concurrency", "2"))
        for code, err in logs:
            self.assertEqual(code, 0, err[-3000:])
        self.assertEqual(ms.sql("select status from sync_run where id = %d" % run), [("ok",)])
        res = ms.sql("select tenant_id, status from sync_tenant_result where run_id = %d" % run)
        self.assertEqual(sorted(t for t, _ in res), sorted(self.tenants), "each tenant once")
        self.assertEqual({s for _, s in res}, {"ok"})
        jobs = ms.sql("select state, count(*) from sync_job where run_id = %d group by state" % run)
        self.assertEqual(jobs, [("done", len(self.tenants) + 1)])
        self.assertEqual(db_state(ms), sim_state(self.sim))
        installs = ms.sql("select count(*) from software_install where removed_at is null")[0][0]
        self.assertGreater(installs, 0)
        # More than one worker did tenant work (leases were shared, not serialised).
        busy = sum(1 for _, err in logs if "tenant synced" in err)
        self.assertGreaterEqual(busy, 2, [e[-800:] for _, e in logs])
        self.sim.control({"op": "set_latency", "ms": 5})

        # An incremental queued run after a change picks the change up.
        dev = self.sim.graph_all(sorted(self.tenants)[0],
                                 "/v1.0/deviceManagement/managedDevices?$select=id")[0]["id"]
        self.sim.control({"op": "modify_device", "tenant": sorted(self.tenants)[0], "id": dev,
                          "set": {"deviceName": "moved-by-worker"}, "touch": True})
        run2 = queue(ms, "--incremental")
        for code, err in wait_all(workers(ms, 2)):
            self.assertEqual(code, 0, err[-3000:])
        self.assertEqual(ms.sql("select kind, status from sync_run where id = %d" % run2),
                         [("incremental", "ok")])
        self.assertEqual(db_state(ms), sim_state(self.sim))

    def test_one_worker_syncs_many_tenants_at_once(self):
        ms = self.ms
        self.sim.control({"op": "set_latency", "ms": 60})
        run = queue(ms, "--full")
        logs = wait_all(workers(ms, 1, "--concurrency", "5"))
        code, err = logs[0]
        self.assertEqual(code, 0, err[-3000:])
        self.assertIn("concurrency=5", err)
        self.assertEqual(ms.sql("select status from sync_run where id = %d" % run), [("ok",)])
        jobs = ms.sql("select state, count(*) from sync_job where run_id = %d group by state" % run)
        self.assertEqual(jobs, [("done", len(self.tenants) + 1)])
        self.assertEqual(db_state(ms), sim_state(self.sim))
        # 12 tenants, 5 at a time: three engine runs, each with several tenants in flight.
        self.assertEqual(err.count("status=ok tenants=5 ok=5"), 2, err[-3000:])
        self.assertEqual(err.count("status=ok tenants=2 ok=2"), 1, err[-3000:])
        res = ms.sql("select tenant_id from sync_tenant_result where run_id = %d" % run)
        self.assertEqual(sorted(t for t, in res), sorted(self.tenants), "each tenant once")
        code, out, err = ms.run("worker", "--once", "--concurrency", "0")
        self.assertEqual(code, 2, err)

    def test_killed_worker_loses_nothing(self):
        ms = self.ms
        # Slow responses so the first worker is surely mid-tenant when it is killed.
        self.sim.control({"op": "set_latency", "ms": 150})
        run = queue(ms, "--full")
        victim = subprocess.Popen([harness.BIN, "worker", "--lease-seconds", "2",
                                   "--poll-seconds", "1"], cwd=ms.dir, env=ms.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        leased = wait_leased_tenant(ms, run)
        self.assertTrue(leased, "the worker leased a tenant job")
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.sim.control({"op": "set_latency", "ms": 5})
        # Workers come and go until the run is finished; the dead worker's lease lapses.
        deadline = time.time() + 120
        while time.time() < deadline:
            for code, err in wait_all(workers(ms, 2, "--lease-seconds", "30")):
                self.assertEqual(code, 0, err[-3000:])
            if ms.sql("select status from sync_run where id = %d" % run) != [("running",)]:
                break
            time.sleep(1)
        self.assertEqual(ms.sql("select status from sync_run where id = %d" % run), [("ok",)])
        retried = ms.sql("select attempts, state from sync_job where id = %d" % leased[0][0])
        self.assertEqual(retried, [(2, "done")])
        oks = {t for t, s in ms.sql("select tenant_id, status from sync_tenant_result where "
                                    "run_id = %d" % run) if s == "ok"}
        self.assertEqual(oks, self.tenants)
        self.assertEqual(db_state(ms), sim_state(self.sim))
        # Every client's stored count matches its assets: only whole tenant transactions.
        for stored, actual in ms.sql(
                "select c.device_count, (select count(*) from hardware_asset h where "
                "h.client_id = c.id and h.retired_at is null) from client c"):
            self.assertEqual(stored, actual)

    def test_serve_queues_for_workers(self):
        ms = self.ms
        ms.env["MEMSYNC_SYNC_RUNNER"] = "workers"
        srv = Serve(ms)
        try:
            key = apikey(ms, "admin")
            iid = ms.sql("select id from integration")[0][0]
            st, _, body, _ = api(srv, "POST", "/api/v1/integrations/%d/sync" % iid, key=key)
            self.assertIn(st, (200, 202), body)
            deadline = time.time() + 30
            runs = []
            while time.time() < deadline and not runs:
                runs = ms.sql("select r.id from sync_run r join sync_job j on j.run_id = r.id")
                time.sleep(0.1)
            self.assertTrue(runs, srv.stderr()[-2000:])
            self.assertIn("sync queued for workers", srv.stderr())
            # serve itself synced nothing: the run waits for a worker.
            self.assertEqual(ms.sql("select count(*) from hardware_asset"), [(0,)])
            for code, err in wait_all(workers(ms, 2)):
                self.assertEqual(code, 0, err[-3000:])
            self.assertEqual(ms.sql("select status from sync_run where id = %d" % runs[0][0]),
                             [("ok",)])
            self.assertEqual(db_state(ms), sim_state(self.sim))
        finally:
            srv.stop()
            srv.out.close()
            srv.err.close()

    def test_client_sync_and_live_run_for_workers(self):
        """POST /clients/{id}/sync queues one job for that tenant; the run (API and page) lists
        its unfinished jobs from the database: queued as pending, leased as running."""
        ms = self.ms
        queue(ms, "--full")
        for code, err in wait_all(workers(ms, 2)):
            self.assertEqual(code, 0, err[-3000:])
        ms.env["MEMSYNC_SYNC_RUNNER"] = "workers"
        srv = Serve(ms)
        try:
            pw = re.search(r'created user "admin" with password (\S+)', srv.stdout()).group(1)
            key = apikey(ms, "admin")
            _, tok, _ = login(srv, "admin", pw)
            cookie = {"Cookie": "memsync_session=" + tok}
            client = get_json(srv, "/api/v1/clients?sort=name", key)["data"][0]
            st, js, body, hdrs = api(srv, "POST", "/api/v1/clients/%d/sync" % client["id"],
                                     key=key)
            self.assertEqual(st, 202, body)
            run = js["data"]["run_id"]
            self.assertEqual(hget(hdrs, "Location"), ["/api/v1/sync-runs/%d" % run])
            # One job, for this tenant alone: no discovery job.
            self.assertEqual(ms.sql("select tenant_id, state from sync_job where run_id = %d" %
                                    run), [(client["tenant_id"], "queued")])
            data = get_json(srv, "/api/v1/sync-runs/%d" % run, key)["data"]
            self.assertEqual(data["status"], "running")
            self.assertEqual([(t["tenant_id"], t["status"]) for t in data["tenants_unfinished"]],
                             [(client["tenant_id"], "pending")])
            _, page, _ = req("GET", srv.url + "/runs/%d" % run, headers=cookie)
            self.assertIn('data-state="pending"', page)
            st, _, body, _ = api(srv, "POST", "/api/v1/clients/%d/sync" % client["id"], key=key)
            self.assertEqual(st, 409, body)
            # A worker holds the job (leased 5 s ago by the database's clock): running, timed.
            ms.sql("update sync_job set state = 'leased', lease_owner = 'test', attempts = 1, "
                   "leased_at = extract(epoch from now())::bigint - 5, lease_expires_at = "
                   "extract(epoch from now())::bigint + 600 where run_id = %d" % run)
            live = get_json(srv, "/api/v1/sync-runs/%d" % run, key)["data"]["tenants_unfinished"]
            self.assertEqual([t["status"] for t in live], ["running"])
            self.assertGreaterEqual(live[0]["elapsed_ms"], 5000)
            _, page, _ = req("GET", srv.url + "/runs/%d" % run, headers=cookie)
            self.assertIn('data-state="running"', page)
            self.assertRegex(page, r'data-label="Time">\d+(\.\d)? s so far')
            ms.sql("update sync_job set state = 'queued', lease_owner = NULL, attempts = 0, "
                   "leased_at = NULL, lease_expires_at = NULL where run_id = %d" % run)
            for code, err in wait_all(workers(ms, 1)):
                self.assertEqual(code, 0, err[-3000:])
            data = get_json(srv, "/api/v1/sync-runs/%d" % run, key)["data"]
            self.assertEqual(data["status"], "ok")
            self.assertEqual([t["tenant_id"] for t in data["tenants"]], [client["tenant_id"]])
            self.assertIsNone(data["tenants_unfinished"])
            # A whole integration queued: its discovery job reads the customer list first.
            iid = ms.sql("select id from integration")[0][0]
            st, js, body, _ = api(srv, "POST", "/api/v1/integrations/%d/sync" % iid, key=key)
            self.assertEqual(st, 202, body)
            run2 = js["data"]["run_id"]
            self.assertEqual(get_json(srv, "/api/v1/sync-runs/%d" % run2, key)["data"]
                             ["tenants_unfinished"], [])
            _, page, _ = req("GET", srv.url + "/runs/%d" % run2, headers=cookie)
            self.assertIn("Reading the customer list", page)
            for code, err in wait_all(workers(ms, 2)):
                self.assertEqual(code, 0, err[-3000:])
            self.assertEqual(ms.sql("select status from sync_run where id = %d" % run2),
                             [("ok",)])
        finally:
            srv.stop()
            srv.out.close()
            srv.err.close()

    def test_failed_discovery_fails_the_run_with_its_reason(self):
        ms = self.ms
        self.sim.control({"op": "fault", "tenant": "*", "route": "customers", "kind": "status",
                          "status": 403})
        run = queue(ms, "--full")
        logs = wait_all(workers(ms, 1))
        self.assertEqual(logs[0][0], 3, logs[0][1][-2000:])
        status, why = ms.sql("select status, error_message from sync_run where id = %d" % run)[0]
        self.assertEqual(status, "failed")
        self.assertIn("Partner Center", why)
        self.assertEqual(ms.sql("select count(*) from sync_job where run_id = %d" % run), [(1,)])
        # The next queued run is accepted and, with Partner Center back, completes.
        self.sim.control({"op": "clear_faults"})
        run2 = queue(ms, "--full")
        for code, err in wait_all(workers(ms, 2)):
            self.assertEqual(code, 0, err[-3000:])
        self.assertEqual(ms.sql("select status, error_message from sync_run where id = %d" %
                                run2), [("ok", None)])

    def test_sigterm_gives_the_job_back(self):
        ms = self.ms
        self.sim.control({"op": "set_latency", "ms": 150})
        run = queue(ms, "--full")
        w = subprocess.Popen([harness.BIN, "worker", "--poll-seconds", "1"], cwd=ms.dir,
                             env=ms.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        leased = wait_leased_tenant(ms, run)
        self.assertTrue(leased)
        w.send_signal(signal.SIGTERM)
        _, err = w.communicate(timeout=60)
        self.assertEqual(w.returncode, 0, err.decode()[-2000:])
        self.assertIn("given back", err.decode())
        # Nothing is left leased by the stopped worker; another one completes the run.
        self.assertEqual(ms.sql("select count(*) from sync_job where run_id = %d and state = "
                                "'leased'" % run), [(0,)])
        self.sim.control({"op": "set_latency", "ms": 5})
        for code, err in wait_all(workers(ms, 2)):
            self.assertEqual(code, 0, err[-3000:])
        self.assertEqual(ms.sql("select status from sync_run where id = %d" % run), [("ok",)])
        self.assertEqual(db_state(ms), sim_state(self.sim))


if __name__ == "__main__":
    unittest.main()
