#!/usr/bin/python3
"""A sync run while it runs: `POST .../sync` answers the run's id and its Location at once; the
run (API and page) lists the tenants still pending and running beside the finished ones, each
with its time; "Sync now" is disabled while the integration's sync is queued or running.
Standard library only; memsync serve and memsync sim on 127.0.0.1 port 0."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Memsync, Sim  # noqa: E402
from test_api import FAILS, Serve, api, apikey, check, csrf_of, get_json, hget, login, \
    req, wait_run  # noqa: E402


def main():
    # Slow answers and one tenant at a time: the run has pending tenants for a while.
    sim = Sim("--tenants", "5", "--devices", "8", "--apps-per-device", "1", "--seed", "3",
              "--latency-ms", "150")
    ms = Memsync(sim)
    ms.env["MEMSYNC_VALIDATE_SAMPLE"] = "1"
    ms.env["MEMSYNC_SYNC_PARALLEL"] = "1"
    ms.add_integration("--no-sync", check=0)
    srv = Serve(ms)
    pw = re.search(r'created user "admin" with password (\S+)', srv.stdout()).group(1)
    key = apikey(ms, "admin")
    _, token, _ = login(srv, "admin", pw)
    cookie = {"Cookie": "memsync_session=" + token}
    wait_run(srv, key, 1)  # the never-synced integration's first sync, started by serve

    st, js, text, hdrs = api(srv, "POST", "/api/v1/integrations/1/sync", key)
    check(st == 202, "sync request accepted (%s %s)" % (st, text[:200]))
    run = (js or {}).get("data", {}).get("run_id")
    check(isinstance(run, int) and run > 0, "the answer names the run (%s)" % js)
    check(hget(hdrs, "Location") == ["/api/v1/sync-runs/%s" % run],
          "Location names the run (%s)" % hget(hdrs, "Location"))
    st, js, text, _ = api(srv, "POST", "/api/v1/integrations/1/sync", key)
    check(st == 409, "a second request while it runs is refused (%s)" % st)

    # While it runs: pending and running tenants, the disabled button.
    seen_pending = seen_running = seen_page = seen_button = False
    deadline = time.time() + 120
    data = None
    while time.time() < deadline:
        data = get_json(srv, "/api/v1/sync-runs/%d" % run, key)["data"]
        live = data.get("tenants_unfinished") or []
        if data["status"] != "running":
            break
        states = {t["status"] for t in live}
        if "pending" in states and "running" in states and not seen_page:
            seen_pending = seen_running = True
            running = [t for t in live if t["status"] == "running"]
            check(all(t["elapsed_ms"] >= 0 for t in running), "a running tenant has its time")
            st, page, _ = req("GET", srv.url + "/runs/%d" % run, headers=cookie)
            seen_page = ('data-state="pending"' in page and 'data-state="running"' in page
                         and " so far" in page)
            st, page, _ = req("GET", srv.url + "/integrations", headers=cookie)
            seen_button = re.search(r'<button type="submit" class="sync-now" disabled', page) \
                is not None and ">Sync now</button>" not in page
        time.sleep(0.1)
    check(seen_pending and seen_running, "the run lists pending and running tenants")
    check(seen_page, "the run page lists pending and running tenants with their time")
    check(seen_button, "Sync now is disabled while the sync runs")
    check(data is not None and data["status"] == "ok", "the run finishes ok (%s)" %
          (data or {}).get("status"))
    check(data is not None and len(data["tenants"]) == 5 and data["tenants_unfinished"] is None,
          "every tenant finished, none left unfinished")
    st, page, _ = req("GET", srv.url + "/runs/%d" % run, headers=cookie)
    check(page.count('data-state="done"') == 5 and 'data-state="pending"' not in page,
          "the finished run lists its tenants as done")
    check(re.search(r'data-label="Time">\d+(\.\d)? (ms|s)<', page) is not None,
          "each finished tenant shows its duration")
    st, page, _ = req("GET", srv.url + "/integrations", headers=cookie)
    check(">Sync now</button>" in page, "Sync now is enabled again")

    # The UI's button starts a run and goes to its page.
    csrf = csrf_of(srv, token)
    st, _, hdrs = req("POST", srv.url + "/integrations/1/sync", ("csrf=" + csrf).encode(),
                      dict(cookie, **{"Content-Type": "application/x-www-form-urlencoded",
                                      "Origin": srv.url}))
    loc = hget(hdrs, "Location")
    check(st == 303 and loc and re.fullmatch(r"/runs/\d+", loc[0]) and loc[0] != "/runs/%d" % run,
          "Sync now goes to the new run's page (%s %s)" % (st, loc))
    srv.stop()
    sim.stop()
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
