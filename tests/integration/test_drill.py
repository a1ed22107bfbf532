"""Every figure leads to its devices, and a page per client: the hardware list's filters in the
API and the CLI (each against what the synced devices say), each insight figure equal to the
rows its link lists (overview cards, per-client cells, the client page), GET/PATCH
/api/v1/clients/{id}, the client page and its forms, the clients list by status, the saved
columns and page size, and the empty list of a client that never synced.

Standard library only. Both servers listen on 127.0.0.1 port 0.
"""
import html
import json
import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Memsync, Sim  # noqa: E402
from test_api import Serve, api, apikey, check, csrf_of, get_json, login, req, FAILS  # noqa: E402
from test_api import hget, user_add  # noqa: E402

STALE = 30
FIGURES = {"stale": "stale_days=%d" % STALE, "unsupported_os": "os_support=past",
           "no_serial": "serial=missing", "duplicate_serial": "serial=shared"}


def ts(s):
    return None if s is None else time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - \
        time.timezone


def total(srv, key, query):
    return get_json(srv, "/api/v1/assets/hardware?page_size=1&" + query, key)["total_count"]


def ids(srv, key, query):
    out, cursor = [], None
    while True:
        p = "/api/v1/assets/hardware?page_size=100&" + query
        if cursor:
            p += "&cursor=" + urllib.parse.quote(cursor)
        js = get_json(srv, p, key)
        out += [r["id"] for r in js["data"]]
        cursor = js["next_cursor"]
        if cursor is None:
            check(len(out) == js["total_count"], "total_count is the rows listed (%s)" % query)
            return sorted(out)


def cli_ids(ms, *args):
    _, out, err = ms.run("assets", "hardware", "--format", "jsonl", *args, check=0)
    return sorted(json.loads(line)["id"] for line in out.splitlines() if line.strip())


def overview_scope(srv, ms, key, cookie, client, excluded):
    """The overview (API insights, UI cards and table, CLI insights) counts only clients that are
    not excluded, and each card still equals the list its link opens."""
    cid = client["id"]
    what = "excluded" if excluded else "included again"
    ins = get_json(srv, "/api/v1/insights?stale_days=%d" % STALE, key)["data"]
    rows = [r["client"]["id"] for r in ins]
    check((cid in rows) != excluded, "%s: API insights %s client %d" % (
        what, "leave out" if excluded else "count", cid))
    scope = "filter[client.included]=eq:true"
    for fig, q in list(FIGURES.items()) + [("devices", "")]:
        want = sum(r[fig] for r in ins)
        check(total(srv, key, scope + "&" + q) == want,
              "%s: overview %s (%d) = its list in scope" % (what, fig, want))
    everyone = total(srv, key, "")
    inscope = total(srv, key, scope)
    check((inscope < everyone) == excluded,
          "%s: the scope leaves out its %d devices (%d of %d)" % (
              what, client["device_count"], inscope, everyone))
    st, text, _ = req("GET", srv.url + "/", headers=cookie)
    check(st == 200 and ('href="/clients/%d"' % cid in text) != excluded,
          "%s: the overview's table %s the client" % (what, "lacks" if excluded else "has"))
    cards = re.findall(r'<a class="card[^"]*" data-figure="(\w+)" href="([^"]+)"><strong>(\d+)',
                       text)
    figs = dict((f, int(n)) for f, _, n in cards)
    check(figs.get("devices") == sum(r["devices"] for r in ins),
          "%s: the devices card is the API's sum" % what)
    for fig, href, n in cards:
        check("included=true" in href, "%s: card %s carries the overview's scope" % (what, fig))
        st, page, _ = req("GET", srv.url + href.replace("&amp;", "&"), headers=cookie)
        m = re.search(r"<span>(\d+) total", page)
        check(st == 200 and m and int(m.group(1)) == int(n),
              "%s: card %s: %s devices, its list %s" % (what, fig, n, m.group(1) if m else None))
    _, out, _ = ms.run("insights", "--format", "json", check=0)
    cli = json.loads(out)
    check(sorted(r["client"]["id"] for r in cli) == sorted(rows),
          "%s: CLI insights count the API's clients" % what)
    check(len(cli_ids(ms, "--included")) == sum(r["devices"] for r in cli),
          "%s: CLI assets hardware --included lists the CLI's devices" % what)
    _, out, _ = ms.run("insights", "--client", str(cid), "--format", "json", check=0)
    check(len(json.loads(out)) == 1, "%s: insights --client names the client anyway" % what)


def main():
    sim = Sim("--tenants", "4", "--devices", "40", "--apps-per-device", "3", "--seed", "7")
    ms = Memsync(sim)
    bad = sim.world()["tenants"][3]["id"]
    # This tenant never syncs: no consent from the start.
    sim.control({"op": "set_tenant", "tenant": bad, "consented": False})
    ms.add_integration(check=None)
    srv = Serve(ms)
    m = re.search(r'created user "admin" with password (\S+)', srv.stdout())
    admin_pw = m.group(1)
    key = apikey(ms, "admin")
    read_key = apikey(ms, "read")
    now = time.time()

    everything = []
    cursor = None
    while True:
        js = get_json(srv, "/api/v1/assets/hardware?page_size=200" +
                      ("&cursor=" + urllib.parse.quote(cursor) if cursor else ""), key)
        everything += js["data"]
        cursor = js["next_cursor"]
        if not cursor:
            break
    check(len(everything) >= 100, "the synced devices are listed (%d)" % len(everything))
    by_id = {a["id"]: a for a in everything}

    # --- each filter against what the devices say (API and CLI) --------------------------------
    def expect(pred):
        return sorted(a["id"] for a in everything if pred(a))

    serial_tenants = {}
    for a in everything:
        if a["serial_number"]:
            serial_tenants.setdefault(a["serial_number"].upper(), set()).add(
                a["client"]["tenant_id"])
    a0 = everything[0]
    model, maker = a0["model"], a0["manufacturer"]
    cut = "2024-01-01"
    cases = [
        ("stale_days=30", ["--stale-days", "30"],
         lambda a: a["last_check_in_at"] is None or now - ts(a["last_check_in_at"]) > 30 * 86400),
        ("serial=missing", ["--serial", "missing"], lambda a: a["serial_number"] is None),
        ("serial=shared", ["--serial", "shared"],
         lambda a: a["serial_number"] is not None and
         len(serial_tenants[a["serial_number"].upper()]) > 1),
        ("encrypted=true", ["--encrypted", "true"], lambda a: a["is_encrypted"] is True),
        ("encrypted=false", ["--encrypted", "false"], lambda a: a["is_encrypted"] is not True),
        ("compliance=compliant", ["--compliance", "compliant"],
         lambda a: a["compliance_state"] == "compliant"),
        ("compliance=not_compliant", ["--compliance", "not_compliant"],
         lambda a: a["compliance_state"] != "compliant"),
        ("filter[model]=eq:" + urllib.parse.quote(model), ["--model", model],
         lambda a: (a["model"] or "").lower() == model.lower()),
        ("filter[manufacturer]=eq:" + urllib.parse.quote(maker), ["--manufacturer", maker],
         lambda a: (a["manufacturer"] or "").lower() == maker.lower()),
        ("filter[ownership]=eq:company", ["--ownership", "company"],
         lambda a: a["ownership"] == "company"),
        ("filter[enrolled_at]=lt:" + cut, ["--enrolled-before", cut],
         lambda a: a["enrolled_at"] is not None and a["enrolled_at"] < cut),
        ("filter[enrolled_at]=gte:" + cut, ["--enrolled-after", cut],
         lambda a: a["enrolled_at"] is not None and a["enrolled_at"] >= cut),
    ]
    for query, cli, pred in cases:
        want = expect(pred)
        got = ids(srv, key, query)
        check(got == want, "API %s lists exactly its devices (%d, want %d)" % (
            query, len(got), len(want)))
        check(cli_ids(ms, *cli) == want, "CLI %s lists the same devices" % " ".join(cli))
    some = [q for q, _, p in cases if expect(p) and len(expect(p)) < len(everything)]
    check(len(some) >= 6, "most filters select a proper subset here (%d)" % len(some))
    # OS past support: every listed device is one, and OS support narrows nothing else.
    past = ids(srv, key, "os_support=past")
    check(past == cli_ids(ms, "--os-support", "past"), "CLI --os-support past = API")
    soon = ids(srv, key, "os_support=ends_within:3650")
    check(not set(past) & set(soon), "past support and ending soon never overlap")
    for q in ("stale_days=0", "os_support=never", "serial=x", "encrypted=maybe",
              "compliance=a%20b", "os_support=ends_within:99999"):
        st, js, text, _ = api(srv, "GET", "/api/v1/assets/hardware?" + q, key)
        check(st == 400, "a bad derived filter is refused: %s (%s)" % (q, st))
    keyset = get_json(srv, "/api/v1/assets/hardware?page_size=1", key)["next_cursor"]
    st, *_ = api(srv, "GET", "/api/v1/assets/hardware?serial=missing&cursor=" +
                 urllib.parse.quote(keyset), key)
    check(st == 400, "a derived filter refuses another list's cursor (%s)" % st)
    rc, _, err = ms.run("assets", "hardware", "--os-support", "later", check=None)
    check(rc != 0 and "os_support" in err, "the CLI refuses a bad --os-support (%d)" % rc)
    # The CSV export takes the same filters.
    for q in ("stale_days=30", "serial=shared", "os_support=past&filter[ownership]=eq:company"):
        st, text, _ = req("GET", srv.url + "/api/v1/assets/hardware.csv?" + q,
                          headers={"x-api-key": key})
        lines = text.strip().split("\r\n")[1:]
        check(st == 200 and sorted(int(l.split(",")[0]) for l in lines if l) ==
              ids(srv, key, q), "the CSV export of %s lists the same devices" % q)
    st, text, _ = req("GET", srv.url + "/api/v1/assets/hardware.csv?serial=nope",
                      headers={"x-api-key": key})
    check(st == 400, "the CSV export refuses a bad filter (%s)" % st)
    # Missing from Intune's last listing: kept, marked, and listed by the missing filter.
    t0 = sim.world()["tenants"][0]["id"]
    sim.control({"op": "remove_devices", "tenant": t0, "last": 2})
    ms.run("sync", "--full")
    gone = ids(srv, key, "filter[missing_since]=gte:1970-01-01")
    check(len(gone) == 2 and cli_ids(ms, "--missing") == gone,
          "CLI --missing = the API's missing_since filter (%d)" % len(gone))
    # Paging a derived list: every row once.
    rows, cursor = [], None
    while True:
        p = "/api/v1/assets/hardware?page_size=7&encrypted=false"
        if cursor:
            p += "&cursor=" + urllib.parse.quote(cursor)
        js = get_json(srv, p, key)
        rows += [r["id"] for r in js["data"]]
        cursor = js["next_cursor"]
        if not cursor:
            break
    check(sorted(rows) == expect(lambda a: a["is_encrypted"] is not True) and
          len(rows) == len(set(rows)), "a derived list pages through every row once")

    # --- every figure equals the rows its link lists ------------------------------------------
    ins = get_json(srv, "/api/v1/insights?stale_days=%d" % STALE, key)["data"]
    check(len(ins) == 3, "three clients have devices (%d)" % len(ins))
    sums = dict.fromkeys(list(FIGURES) + ["devices"], 0)
    for row in ins:
        cid = row["client"]["id"]
        base = "filter[client.id]=eq:%d" % cid
        check(total(srv, key, base) == row["devices"], "devices of client %d" % cid)
        sums["devices"] += row["devices"]
        for fig, q in FIGURES.items():
            n = total(srv, key, base + "&" + q)
            check(n == row[fig], "client %d: %s = %d, its list has %d" % (cid, fig, row[fig], n))
            sums[fig] += row[fig]
        for pct, q in (("encrypted_pct", "encrypted=false"),
                       ("compliant_pct", "compliance=not_compliant")):
            n = total(srv, key, base + "&" + q)
            d = row["devices"]
            check(round((d - n) * 100 / d) == row[pct] or (d - n) * 100 // d == row[pct] or
                  ((d - n) * 100 + d // 2) // d == row[pct],
                  "client %d: %s %s%% and %d devices not" % (cid, pct, row[pct], n))
        # The client answer's links say the same.
        c = get_json(srv, "/api/v1/clients/%d" % cid, key)["data"]
        check(c["insight"]["devices"] == row["devices"], "the client answer has its figures")
        for fig, link in c["figure_links"].items():
            n = total(srv, key, link)
            want = row[fig] if fig in row and not fig.endswith("_pct") else None
            if want is not None:
                check(n == want, "client %d figure_links[%s] lists %d = %d" % (cid, fig, n, want))
    for fig, q in FIGURES.items():
        check(total(srv, key, q) == sums[fig], "overview %s = its list" % fig)

    # --- the web UI: cards and cells link to lists of their size ------------------------------
    st, tok, _ = login(srv, "admin", admin_pw)
    cookie = {"Cookie": "memsync_session=" + tok}
    csrf = csrf_of(srv, tok)
    st, text, _ = req("GET", srv.url + "/", headers=cookie)
    cards = re.findall(r'<a class="card[^"]*" data-figure="(\w+)" href="([^"]+)"><strong>(\d+)',
                       text)
    check(len(cards) == 5, "the overview has five figure cards with links (%d)" % len(cards))
    for fig, href, n in cards:
        st, page, _ = req("GET", srv.url + href.replace("&amp;", "&"), headers=cookie)
        m = re.search(r"<span>(\d+) total", page)
        check(st == 200 and m and int(m.group(1)) == int(n),
              "card %s: %s devices, its list %s" % (fig, n, m.group(1) if m else None))
    cells = re.findall(r'data-k="(\w+)"><a href="([^"]+)">(\d+)</a>', text)
    check(len(cells) >= 15, "the per-client cells link to lists (%d)" % len(cells))
    devs = {}
    for fig, href, n in cells:
        st, page, _ = req("GET", srv.url + href.replace("&amp;", "&"), headers=cookie)
        m = re.search(r"<span>(\d+) total", page)
        listed = int(m.group(1)) if m else -1
        cid = re.search(r"client=(\d+)", href).group(1)
        if fig == "devices":
            devs[cid] = int(n)
        if fig.endswith("_pct"):
            # The share of devices that are; the link lists those that are not.
            d = devs[cid]
            check(((d - listed) * 100 + d // 2) // d == int(n),
                  "cell %s %s%%: %d of %d devices not" % (fig, n, listed, d))
        else:
            check(listed == int(n), "cell %s %s = its list" % (fig, href))

    # --- client page, remedy, actions ---------------------------------------------------------
    clients = get_json(srv, "/api/v1/clients", key)["data"]
    badc = [c for c in clients if c["tenant_id"] == bad][0]
    good = [c for c in clients if c["tenant_id"] != bad][0]
    check(badc["status"] == "error" and badc["error"]["remedy"], "the unconsented tenant failed")
    st, page, _ = req("GET", srv.url + "/assets?client=%d" % badc["id"], headers=cookie)
    check(st == 200 and 'id="why-empty"' in page and "No device matches" not in page and
          badc["error"]["message"].split(".")[0][:40] in page.replace("&#39;", "'"),
          "a never-synced client's list says why")
    st, page, _ = req("GET", srv.url + "/clients/%d" % badc["id"], headers=cookie)
    check(st == 200 and 'id="client-problem"' in page and 'id="client-sync"' in page,
          "the client page shows the problem and the actions")
    check('id="consent"' in page and "adminconsent" in page,
          "the consent remedy is a button")
    st, page, _ = req("GET", srv.url + "/clients/%d" % good["id"], headers=cookie)
    figs = re.findall(r'<a class="card[^"]*" data-figure="(\w+)" href="([^"]+)"><strong>(\d+)',
                      page)
    check(len(figs) == 7, "the client page links its figures (%d)" % len(figs))
    for fig, href, n in figs:
        st, lst, _ = req("GET", srv.url + href.replace("&amp;", "&"), headers=cookie)
        m = re.search(r"<span>(\d+) total", lst)
        listed = int(m.group(1)) if m else -1
        if fig.endswith("_pct"):
            d = good["device_count"]
            check(((d - listed) * 100 + d // 2) // d == int(n), "client card %s" % fig)
        else:
            check(listed == int(n), "client card %s = its list" % fig)
    check('id="client-devices"' in page and 'id="client-software"' in page and
          'id="client-syncs"' in page and "/runs/" in page,
          "the client page lists devices, software and its sync results")
    st, js, text, _ = api(srv, "GET", "/api/v1/clients/999999", key)
    check(st == 404, "an unknown client is 404 (%s)" % st)

    form_h = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie["Cookie"]}

    def post(path, fields):
        return req("POST", srv.url + path, urllib.parse.urlencode(fields).encode(), form_h)

    st, _, hdrs = post("/clients/%d" % good["id"], {"csrf": csrf, "action": "exclude"})
    check(st == 303, "the exclude button answers 303 (%s)" % st)
    c = get_json(srv, "/api/v1/clients/%d" % good["id"], key)["data"]
    check(c["included"] is False, "excluded through the UI")
    _, out, _ = ms.run("clients", "--format", "json", check=0)
    check([x for x in json.loads(out) if x["id"] == good["id"]][0]["included"] is False,
          "the CLI sees the UI's exclusion")
    overview_scope(srv, ms, key, cookie, good, excluded=True)
    st, _, _ = post("/clients/%d" % good["id"], {"action": "include"})
    check(st == 403, "a form without its CSRF token is refused (%s)" % st)
    st, js, text, _ = api(srv, "PATCH", "/api/v1/clients/%d" % good["id"], key,
                          {"included": True, "name": "Renamed Ltd"})
    check(st == 200 and js["data"]["included"] is True and js["data"]["name"] == "Renamed Ltd",
          "PATCH includes and renames (%s %s)" % (st, text[:200]))
    st, js, text, _ = api(srv, "PATCH", "/api/v1/clients/%d" % good["id"], key, {"name": None})
    check(st == 200 and js["data"]["name"] != "Renamed Ltd", "name null restores the name")
    overview_scope(srv, ms, key, cookie, good, excluded=False)
    for body in ({}, {"included": "yes"}, {"colour": "red"}, {"name": 5}, b"[1]"):
        st, js, text, _ = api(srv, "PATCH", "/api/v1/clients/%d" % good["id"], key, body)
        check(st == 400, "PATCH refuses %r (%s)" % (body, st))
    st, js, text, _ = api(srv, "PATCH", "/api/v1/clients/%d" % good["id"], read_key,
                          {"included": False})
    check(st == 403, "a read key cannot PATCH a client (%s)" % st)
    st, js, text, _ = api(srv, "PATCH", "/api/v1/clients/999999", key, {"included": False})
    check(st == 404, "PATCH of an unknown client is 404 (%s)" % st)
    user_add(ms, "vera", "viewer", "viewer-password-9")
    st, vtok, _ = login(srv, "vera", "viewer-password-9")
    st, page, _ = req("GET", srv.url + "/clients/%d" % good["id"],
                      headers={"Cookie": "memsync_session=" + vtok})
    check(st == 200 and 'id="client-actions"' not in page, "a viewer sees no client forms")

    # Sync this tenant now: the consent comes back, the client syncs alone.
    sim.control({"op": "set_tenant", "tenant": bad, "consented": True})
    runs_before = get_json(srv, "/api/v1/sync-runs", key)["total_count"]
    st, js, text, hdrs = api(srv, "POST", "/api/v1/clients/%d/sync" % badc["id"], key)
    check(st == 202, "POST /clients/{id}/sync -> 202 (%s %s)" % (st, text[:200]))
    # The client's row is written before its run is recorded as finished: wait for both.
    deadline = time.time() + 60
    while time.time() < deadline:
        c = get_json(srv, "/api/v1/clients/%d" % badc["id"], key)["data"]
        r = get_json(srv, "/api/v1/sync-runs", key)["data"][0]
        if c["status"] == "ok" and r["status"] != "running":
            break
        time.sleep(0.3)
    check(c["status"] == "ok" and c["device_count"] > 0, "the tenant's own sync filled it")
    runs = get_json(srv, "/api/v1/sync-runs", key)["data"]
    check(len(runs) == runs_before + 1 and runs[0]["tenants_total"] == 1,
          "that run synced this tenant alone")
    check(c["recent_syncs"] and c["recent_syncs"][0]["status"] == "ok",
          "the client answer has its recent syncs, newest first")
    check(hget(hdrs, "Location") == ["/api/v1/sync-runs/%d" % js["data"]["run_id"]] and
          runs[0]["id"] == js["data"]["run_id"], "the answer names the tenant's run and Location")
    # The client page's button: the tenant's run starts and its page opens.
    st, _, hdrs = post("/clients/%d" % badc["id"], {"csrf": csrf, "action": "sync"})
    loc = hget(hdrs, "Location")
    check(st == 303 and loc and re.match(r"^/runs/\d+$", loc[0]),
          "the client page's Sync now goes to the new run (%s %s)" % (st, loc))
    if loc:
        run = int(loc[0].split("/")[-1])
        deadline = time.time() + 60
        while time.time() < deadline:
            r = get_json(srv, "/api/v1/sync-runs/%d" % run, key)["data"]
            if r["status"] != "running":
                break
            time.sleep(0.3)
        check(r["status"] == "ok" and r["tenants_total"] == 1, "that run synced the tenant alone")
    # Its refusals (each answer also checked against /openapi.json).
    api(srv, "PATCH", "/api/v1/clients/%d" % good["id"], key, {"included": False})
    st, js, text, _ = api(srv, "POST", "/api/v1/clients/%d/sync" % good["id"], key)
    check(st == 400 and "excluded" in js["errors"][0]["detail"],
          "an excluded client is not synced (%s)" % st)
    api(srv, "PATCH", "/api/v1/clients/%d" % good["id"], key, {"included": True})
    st, *_ = api(srv, "POST", "/api/v1/clients/999999/sync", key)
    check(st == 404, "POST sync of an unknown client is 404 (%s)" % st)
    st, *_ = api(srv, "POST", "/api/v1/clients/%d/sync" % good["id"], read_key)
    check(st == 403, "a read key cannot sync a client (%s)" % st)

    # --- clients list: failing first ----------------------------------------------------------
    sim.control({"op": "set_tenant", "tenant": bad, "consented": False})
    ms.run("sync", "--full")
    st, page, _ = req("GET", srv.url + "/clients?order=status", headers=cookie)
    first = re.search(r'<tbody><tr><td><a href="/clients/(\d+)"', page)
    check(first and int(first.group(1)) == badc["id"], "failing clients first on request")
    st, page, _ = req("GET", srv.url + "/clients?status=ok", headers=cookie)
    check('href="/clients/%d"' % badc["id"] not in page and
          'href="/clients/%d"' % good["id"] in page, "the clients list filters by status")
    js = get_json(srv, "/api/v1/clients?filter[status]=eq:error", key)
    check([c["id"] for c in js["data"]] == [badc["id"]], "API: filter[status]=eq:error")
    js = get_json(srv, "/api/v1/clients?sort=status,name", key)
    check(js["data"][0]["id"] == badc["id"], "API: sort=status lists failing clients first")

    # --- columns and page size per user -------------------------------------------------------
    st, _, hdrs = post("/assets/preferences", {"csrf": csrf, "col": "model", "page_size": "25",
                                               "back": "os=Windows"})
    check(st == 303, "saving columns answers 303 (%s)" % st)
    st, page, _ = req("GET", srv.url + "/assets", headers=cookie)
    heads = re.findall(r"<th[^>]*>(?:<a [^>]*>)?([^<]+)", page.split("<tbody>")[0])
    check([h.strip(" ↑↓") for h in heads] == ["Name", "Model"], "the chosen columns (%s)" % heads)
    check(page.count('<tr><td><a href="/assets/') == 25, "25 rows per page")
    check(re.search(r'"/assets\?page=2[^"]*"', page) is not None, "a next page")
    st, page, _ = req("GET", srv.url + "/assets", headers={"Cookie": "memsync_session=" + vtok})
    check("<th><a href=\"/assets?sort=serial_number\">Serial" in page,
          "another user keeps the default columns")
    check(page.count('<tr><td><a href="/assets/') == 50, "50 rows per page by default")
    names = [html.unescape(n) for n in
             re.findall(r'<tr><td><a href="/assets/\d+">([^<]*)</a>', page)]
    check(names == sorted(names, key=lambda s: s) or names == sorted(names, key=str.lower),
          "the list is ordered by name by default %s" % names[:12])

    srv.stop()
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
