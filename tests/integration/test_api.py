"""`memsync serve` against `memsync sim`: authentication on every route, roles, account
isolation, sessions and CSRF, secrets never in responses, the OpenAPI document, pagination,
filters, sorting, search, CSV exports, rotation and per-tenant remedies.

Standard library only. Both servers listen on 127.0.0.1 port 0.
"""
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BIN, Memsync, Sim  # noqa: E402

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, flush=True)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def req(method, url, body=None, headers=None):
    """Returns (status, body text, headers as a list of (name, value))."""
    r = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with OPENER.open(r, timeout=120) as resp:
            ans = resp.status, resp.read().decode("utf-8", "replace"), resp.getheaders()
    except urllib.error.HTTPError as e:
        ans = e.code, e.read().decode("utf-8", "replace"), list(e.headers.items())
    harness.api_check(method, url, *ans)  # every API answer against /openapi.json
    return ans


def hget(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


class Serve:
    """A running `memsync serve` on 127.0.0.1:0 for one Memsync work directory."""

    def __init__(self, ms, name="serve", env=None):
        """name: its files in ms.dir (NAME.url, .out, .err); env: extra environment."""
        self.ms = ms
        self.name = name
        self.url_file = os.path.join(ms.dir, name + ".url")
        if os.path.exists(self.url_file):
            os.unlink(self.url_file)
        self.out = open(os.path.join(ms.dir, name + ".out"), "wb")
        self.err = open(os.path.join(ms.dir, name + ".err"), "wb")
        e = dict(ms.env)
        # These tests send far more than one key's rate a minute; test_api_http tests the limit.
        e.setdefault("MEMSYNC_API_RATE_PER_MINUTE", "0")
        e.update(env or {})
        self.proc = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--url-file",
                                      self.url_file], cwd=ms.dir, env=e, stdout=self.out,
                                     stderr=self.err)
        harness._procs.append(self.proc)
        deadline = time.time() + 30
        while not os.path.exists(self.url_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("serve did not start: " + self.stderr())
            time.sleep(0.05)
        with open(self.url_file) as f:
            self.url = f.read().strip()
        harness.serve_started(self.url)

    def stdout(self):
        self.out.flush()
        with open(os.path.join(self.ms.dir, self.name + ".out"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        self.err.flush()
        with open(os.path.join(self.ms.dir, self.name + ".err"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        return self.proc.returncode


def api(srv, method, path, key=None, body=None, headers=None):
    h = dict(headers or {})
    if key:
        h["x-api-key"] = key
    data = None
    if body is not None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        h.setdefault("Content-Type", "application/json")
    st, text, hdrs = req(method, srv.url + path, data, h)
    try:
        js = json.loads(text) if text and text.lstrip()[:1] in "{[" else None
    except ValueError:
        js = None
    return st, js, text, hdrs


def get_json(srv, path, key):
    st, js, text, _ = api(srv, "GET", path, key)
    assert st == 200, "%s -> %s %s" % (path, st, text[:500])
    return js


def walk(srv, path, key, page_size):
    """All rows of a list, following next_cursor."""
    rows, cursor, pages = [], None, 0
    while True:
        sep = "&" if "?" in path else "?"
        p = "%s%spage_size=%d" % (path, sep, page_size)
        if cursor:
            p += "&cursor=" + urllib.parse.quote(cursor)
        js = get_json(srv, p, key)
        rows += js["data"]
        pages += 1
        check(len(js["data"]) <= page_size, "page larger than page_size on " + path)
        cursor = js["next_cursor"]
        if cursor is None:
            return rows, js["total_count"], pages
        assert pages < 1000


def user_add(ms, name, role, password, account=None):
    args = ["user", "add", name, "--role", role, "--password-file", "-"]
    if account:
        args += ["--account", account]
    ms.run(*args, stdin=(password + "\n").encode(), check=0)


def apikey(ms, scope, account=None):
    args = ["apikey", "create", "--name", "test-" + scope, "--scope", scope]
    if account:
        args += ["--account", account]
    _, out, err = ms.run(*args, check=0)
    key = out.strip()
    assert re.fullmatch(r"msk_[0-9a-f]{64}", key), (out, err)
    return key


def login(srv, name, password, headers=None):
    form = urllib.parse.urlencode({"name": name, "password": password, "next": "/assets"})
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers or {})
    st, text, hdrs = req("POST", srv.url + "/login", form.encode(), h)
    cookies = hget(hdrs, "Set-Cookie")
    token = None
    for c in cookies:
        m = re.match(r"memsync_session=([0-9a-f]+);", c)
        if m:
            token = m.group(1)
    return st, token, cookies


def csrf_of(srv, token):
    st, text, _ = req("GET", srv.url + "/integrations", headers={"Cookie": "memsync_session=" +
                                                                  token})
    assert st == 200, (st, text[:300])
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', text)
    assert m, "no csrf field on /integrations"
    return m.group(1)


def wait_run(srv, key, integration_id, after=0, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = get_json(srv, "/api/v1/sync-runs?filter[integration_id]=eq:%d" % integration_id,
                        key)["data"]
        done = [r for r in runs if r["id"] > after and r["status"] != "running"]
        if done:
            return get_json(srv, "/api/v1/sync-runs/%d" % done[0]["id"], key)["data"]
        time.sleep(0.2)
    raise AssertionError("sync did not finish")


def integration_body(sim, **over):
    e = sim.env
    b = {"name": "Contoso MSP", "partner_tenant_id": e["MEMSYNC_SIM_PARTNER_TENANT_ID"],
         "partner_app_id": e["MEMSYNC_SIM_PARTNER_APP_ID"],
         "partner_app_secret": e["MEMSYNC_SIM_PARTNER_APP_SECRET"],
         "sync_app_id": e["MEMSYNC_SIM_SYNC_APP_ID"],
         "sync_app_secret": e["MEMSYNC_SIM_SYNC_APP_SECRET"]}
    b.update(over)
    return b


SECURITY_HEADERS = ("X-Content-Type-Options", "Content-Security-Policy", "Referrer-Policy")


def metric(srv, key, name):
    st, _, text, _ = api(srv, "GET", "/metrics", key)
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if st == 200 and m else -1


def cache_checks(sim, ms, srv, admin_key, other_key, iid, tenant_id):
    """The hardware list's answer cache (api_cache_mb) and ETags: same bytes cached or not, fresh
    after any commit (also by another process), per account, bounded, off at 0."""
    off = Serve(ms, name="serve-nocache", env={"MEMSYNC_API_CACHE_MB": "0"})
    small = Serve(ms, name="serve-1mb", env={"MEMSYNC_API_CACHE_MB": "1"})
    # No cache at all: every row read and written in full (the row cache is api_row_cache_mb).
    bare = Serve(ms, name="serve-bare", env={"MEMSYNC_API_CACHE_MB": "0",
                                             "MEMSYNC_API_ROW_CACHE_MB": "0"})
    lazy_rows = not ms.db.startswith("postgresql://")  # PostgreSQL reads rows in full
    hw = "/api/v1/assets/hardware"
    urls = [hw, hw + "?page_size=200", hw + "?page_size=5&sort=-name",
            hw + "?sort=%2Bserial_number,-id&page_size=13",
            hw + "?filter[operating_system.name]=in:Windows,iOS&page_size=9",
            hw + "?search=a&page_size=3", hw + "?include_retired=true&page_size=200"]
    first = walk(srv, hw + "?sort=-name", admin_key, 7)[0]
    urls.append(hw + "?page_size=7&sort=-name&cursor=" +
                urllib.parse.quote(get_json(srv, hw + "?page_size=7&sort=-name",
                                            admin_key)["next_cursor"]))
    check(len(first) >= 120, "sorted walk before caching")
    hits0 = metric(srv, admin_key, "memsync_api_cache_hits_total")
    for u in urls:
        a = api(srv, "GET", u, admin_key)
        b = api(srv, "GET", u, admin_key)
        c = api(off, "GET", u, admin_key)
        c2 = api(off, "GET", u, admin_key)
        d = api(bare, "GET", u, admin_key)
        check(a[0] == b[0] == c[0] == d[0] == 200,
              "cache: %s answers 200 (%s %s %s %s)" % (u, a[0], b[0], c[0], d[0]))
        check(a[2] == b[2] == c[2] == c2[2] == d[2],
              "cache: %s is the same bytes rendered, cached, from cached rows, uncached" % u)
        ea, eb_, ec = hget(a[3], "ETag"), hget(b[3], "ETag"), hget(c[3], "ETag")
        check(ea and ea == eb_ and ec, "cache: %s has one ETag (%s %s)" % (u, ea, eb_))
    check(metric(srv, admin_key, "memsync_api_cache_hits_total") >= hits0 + len(urls),
          "cache: the second requests were hits")
    check(metric(off, admin_key, "memsync_api_cache_entries") == 0 and
          metric(off, admin_key, "memsync_api_cache_hits_total") == 0 and
          metric(off, admin_key, "memsync_api_cache_max_bytes") == 0,
          "cache: api_cache_mb = 0 caches nothing")
    rows_hit = metric(off, admin_key, "memsync_api_row_cache_hits_total")
    check((rows_hit > 0) == lazy_rows and
          (metric(off, admin_key, "memsync_api_row_cache_entries") > 0) == lazy_rows,
          "row cache: rows rendered once are read from it (SQLite: %d hits)" % rows_hit)
    check(metric(off, admin_key, "memsync_api_row_cache_max_bytes") == 128 * 1024 * 1024 and
          metric(bare, admin_key, "memsync_api_row_cache_max_bytes") == 0 and
          metric(bare, admin_key, "memsync_api_row_cache_entries") == 0,
          "row cache: 128 MiB by default, none at api_row_cache_mb = 0")
    # Rows rendered by yajl are the detail's (jansson) rows.
    page = get_json(srv, hw + "?page_size=200", admin_key)["data"]
    for row in page[:: max(1, len(page) // 10)]:
        d = get_json(srv, hw + "/%d" % row["id"], admin_key)["data"]
        d.pop("software", None)
        d.pop("history", None)
        check(d == row, "cache: list row %d equals its detail" % row["id"])

    # ETag / If-None-Match.
    st, _, text, hdrs = api(srv, "GET", urls[1], admin_key)
    tag = hget(hdrs, "ETag")[0]
    check(re.match(r'^"[0-9a-f]{32}"$', tag) is not None, "ETag is a quoted hash (%s)" % tag)
    for inm in (tag, "W/" + tag, '"nope", ' + tag, "*"):
        st, _, text, hdrs = api(srv, "GET", urls[1], admin_key, headers={"If-None-Match": inm})
        check(st == 304 and text == "" and hget(hdrs, "ETag") == [tag],
              "If-None-Match %s -> 304 without a body (%s)" % (inm, st))
    offtag = hget(api(off, "GET", urls[1], admin_key)[3], "ETag")[0]
    st, *_ = api(off, "GET", urls[1], admin_key, headers={"If-None-Match": offtag})
    check(st == 304, "304 also with the cache off (%s)" % st)
    check(offtag != tag, "ETags are per process (a restart cannot match an old tag)")
    st, *_ = api(srv, "GET", urls[1], admin_key, headers={"If-None-Match": '"other"'})
    check(st == 200, "another ETag -> 200")
    st, *_ = api(srv, "GET", urls[1], None, headers={"If-None-Match": tag})
    check(st == 401, "If-None-Match without credentials -> 401 (%s)" % st)
    st, _, _, hdrs = api(srv, "GET", hw + "?page_size=0", admin_key)
    check(st == 400 and not hget(hdrs, "ETag"), "an error answer has no ETag")
    st, _, _, hdrs = api(srv, "GET", hw + "?page_size=0", admin_key)
    check(st == 400, "an error answer is not cached")

    # Account isolation: B asks for the URLs A just cached, with A's ETag too.
    for u in urls:
        st, js, _, hdrs = api(srv, "GET", u, other_key)
        check(st == 200 and js["data"] == [] and js["total_count"] == 0,
              "cache: the other account never gets A's cached %s" % u)
        check(hget(hdrs, "ETag") != [tag], "cache: another account's ETag differs")
    st, js, *_ = api(srv, "GET", urls[1], other_key, headers={"If-None-Match": tag})
    check(st == 200 and js["data"] == [], "A's ETag gets no 304 for B (%s)" % st)

    # Another process's sync commits: the next answer is fresh, with a new ETag.
    before = get_json(srv, urls[1], admin_key)
    sim.control({"op": "add_devices", "tenant": tenant_id, "count": 2})
    ms.run("sync", "--full")
    st, js, text, hdrs = api(srv, "GET", urls[1], admin_key, headers={"If-None-Match": tag})
    check(st == 200 and js["total_count"] == before["total_count"] + 2,
          "cache: fresh after a CLI sync (%s, %s -> %s)" %
          (st, before["total_count"], js and js["total_count"]))
    check(text == api(off, "GET", urls[1], admin_key)[2], "cache: fresh bytes after the sync")
    tag2 = hget(hdrs, "ETag")[0]
    check(tag2 != tag, "a new ETag after the sync")
    # A device changes in Intune: the rows the row cache holds show the change.
    dev = get_json(srv, hw + "?page_size=1&filter[client.tenant_id]=eq:" + tenant_id,
                   admin_key)["data"][0]
    for u in urls:
        api(off, "GET", u, admin_key)
    sim.control({"op": "modify_device", "tenant": tenant_id,
                 "id": dev["source"]["intune_device_id"],
                 "set": {"deviceName": "row-cache-renamed", "complianceState": "noncompliant"},
                 "touch": True})
    ms.run("sync")
    for u in urls + [hw + "/%d" % dev["id"]]:
        c = api(off, "GET", u, admin_key)
        d = api(bare, "GET", u, admin_key)
        check(c[0] == d[0] == 200 and c[2] == d[2],
              "row cache: %s fresh after the device changed" % u)
    row = [r for r in get_json(off, hw + "?page_size=200&sort=-last_check_in_at",
                               admin_key)["data"] if r["id"] == dev["id"]]
    check(row and row[0]["name"] == "row-cache-renamed" and
          row[0]["compliance_state"] == "noncompliant",
          "row cache: the changed device's row is new (%s)" % (row and row[0]["name"]))
    # An integration write (this process) changes the version too.
    st, *_ = api(srv, "PATCH", "/api/v1/integrations/%d" % iid, admin_key, {"name": "Cache test"})
    check(st == 200, "integration renamed (%s)" % st)
    st, _, _, hdrs = api(srv, "GET", urls[1], admin_key, headers={"If-None-Match": tag2})
    check(st == 200 and hget(hdrs, "ETag") != [tag2], "a new ETag after an integration write")

    # Generic lists' counts are cached per data version too: fresh once a sync changes them;
    # sync runs (no data version behind them) are counted every time.
    sw_before = get_json(srv, "/api/v1/assets/software?page_size=1", admin_key)["total_count"]
    runs_before = get_json(srv, "/api/v1/sync-runs?page_size=1", admin_key)["total_count"]
    sim.control({"op": "set_apps", "apps_per_device": 1, "tenant": tenant_id})
    ms.run("sync", "--full")
    rows, total, _ = walk(srv, "/api/v1/assets/software", admin_key, 200)
    check(total == len(rows) and total < sw_before,
          "software count fresh after a sync (%d -> %d, %d rows)" % (sw_before, total, len(rows)))
    check(get_json(srv, "/api/v1/sync-runs?page_size=1", admin_key)["total_count"] ==
          runs_before + 1, "sync runs counted after a sync")
    sim.control({"op": "set_apps", "apps_per_device": 4, "tenant": tenant_id})

    # The bound: 1 MiB, an answer at most 128 KiB; many distinct pages.
    for n in range(1, 201, 3):
        u = hw + "?page_size=%d&sort=-last_check_in_at" % n
        a = api(small, "GET", u, admin_key)
        b = api(small, "GET", u, admin_key)
        check(a[0] == 200 and a[2] == b[2], "1 MiB cache: same bytes for page_size %d" % n)
    used = metric(small, admin_key, "memsync_api_cache_bytes")
    check(0 < used <= 1024 * 1024, "1 MiB cache holds at most 1 MiB (%d)" % used)
    check(metric(small, admin_key, "memsync_api_cache_evictions_total") > 0,
          "1 MiB cache evicted")
    check(off.stop() == 0 and small.stop() == 0 and bare.stop() == 0,
          "the other servers stop cleanly")


HW_SORT_FIELDS = (
    "id", "client.id", "client.name", "client.tenant_id", "source.integration_id",
    "source.intune_device_id", "source.azure_ad_device_id", "name", "serial_number",
    "manufacturer", "model", "type", "operating_system.name", "operating_system.version",
    "user.principal_name", "user.display_name", "user.email", "ownership", "compliance_state",
    "management_state", "enrollment_type", "is_encrypted", "is_supervised",
    "storage.total_bytes", "storage.free_bytes", "memory_bytes", "wifi_mac", "ethernet_mac",
    "imei", "meid", "phone_number", "enrolled_at", "last_check_in_at", "first_synced_at",
    "last_synced_at", "retired_at")

MISSING = object()


def field_of(asset, path):
    """An asset's value at a dotted path, or MISSING when the JSON does not carry it."""
    v = asset
    for part in path.split("."):
        if not isinstance(v, dict) or part not in v:
            return MISSING
        v = v[part]
    return v


def py_sorted(rows, sorts):
    """rows in the documented order: each (field, desc) with NULLs last both ways, then id in
    the last sort's direction. Text compares by code point (SQLite BINARY, PostgreSQL "C")."""
    out = sorted(rows, key=lambda a: a["id"], reverse=sorts[-1][1])
    for field, desc in reversed(sorts):
        present = [a for a in out if field_of(a, field) is not None]
        nulls = [a for a in out if field_of(a, field) is None]
        out = sorted(present, key=lambda a: field_of(a, field), reverse=desc) + nulls
    return out


def sort_arg(sorts):
    return ",".join(("-" if d else "%2B") + f for f, d in sorts)


def sql_write(ms, query):
    """Runs one write and moves the data version on, as memsync's own writes do (answer and
    count caches)."""
    query += "; UPDATE data_version SET v = v + 1 WHERE id = 1"
    if ms.db.startswith("postgresql://"):
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", ms.db, "-c", query],
                       capture_output=True, check=True)
        return
    import sqlite3
    con = sqlite3.connect(ms.db, timeout=30)
    try:
        con.executescript(query)
        con.commit()
    finally:
        con.close()


def b64url(raw):
    import base64
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(text):
    import base64
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def keyset_checks(ms, srv, key):
    """Sorted hardware lists page by key: every sort field both ways and a mixed multi-field
    sort walk every row once, in the documented order (NULLs last), equal to one big page;
    rows added or retired between pages shift nothing; bad cursors are 400s."""
    hw = "/api/v1/assets/hardware"
    allrows = get_json(srv, hw + "?page_size=200", key)["data"]
    check(len(allrows) == 120, "keyset: 120 devices to page through")
    nulls_seen = ties_across = 0
    sorts_list = [[(f, d)] for f in HW_SORT_FIELDS for d in (False, True)]
    sorts_list += [[("type", False), ("last_check_in_at", True), ("name", False)],
                   [("manufacturer", True), ("imei", False)],
                   [("compliance_state", False), ("is_encrypted", True), ("model", False),
                    ("serial_number", True)]]
    for sorts in sorts_list:
        arg = "sort=" + sort_arg(sorts)
        big = get_json(srv, hw + "?page_size=200&" + arg, key)
        rows, total, pages = walk(srv, hw + "?" + arg, key, 13)
        ids = [a["id"] for a in rows]
        what = "keyset " + arg
        check(total == 120 and len(ids) == 120 and len(set(ids)) == 120,
              what + ": every device exactly once (%d rows, %d distinct)" % (len(ids), len(set(ids))))
        check(ids == [a["id"] for a in big["data"]], what + ": same order as one big page")
        if all(field_of(allrows[0], f) is not MISSING for f, _ in sorts):
            want = [a["id"] for a in py_sorted(allrows, sorts)]
            check(ids == want, what + ": the documented order (NULLs last, then id)")
            first = sorts[0][0]
            vals = [field_of(a, first) for a in rows]
            nulls_seen += any(v is None for v in vals) and any(v is not None for v in vals)
            ties_across += sum(1 for i in range(13, len(vals), 13) if vals[i] == vals[i - 1])
    check(nulls_seen > 0, "keyset: some sort field has NULLs and values (%d)" % nulls_seen)
    check(ties_across > 0, "keyset: equal sort values straddle page boundaries (%d)" % ties_across)

    # Filters, search and client scope still hold under keyset pages.
    cid = allrows[0]["client"]["id"]
    for extra in ("filter[client.id]=eq:%d" % cid, "search=a",
                  "filter[operating_system.name]=like:win"):
        arg = extra + "&sort=-last_check_in_at"
        big = get_json(srv, hw + "?page_size=200&" + arg, key)
        rows, total, _ = walk(srv, hw + "?" + arg, key, 4)
        check([a["id"] for a in rows] == [a["id"] for a in big["data"]] and
              total == big["total_count"] == len(rows) and len(rows) > 0,
              "keyset pages with %s (%d rows)" % (extra, len(rows)))

    # Rows added and retired between two page fetches: the rows that existed are each seen
    # once (positional pages repeat one after an insert before the position and skip one after
    # a retire); a row added before the position is not seen, one added after it is.
    base = ("account_id, client_id, integration_id, tenant_id, first_synced_at, last_synced_at, "
            "last_seen_gen, updated_at")  # every writer of the store sets updated_at
    for n, sorts in enumerate(([("name", False)], [("name", True)],
                               [("last_check_in_at", True)], [("last_check_in_at", False)],
                               [("type", False), ("name", True)])):
        arg = "sort=" + sort_arg(sorts)
        order = [a["id"] for a in py_sorted(allrows, sorts)]
        p1 = get_json(srv, hw + "?page_size=10&" + arg, key)
        p2 = get_json(srv, hw + "?page_size=10&%s&cursor=%s" % (
            arg, urllib.parse.quote(p1["next_cursor"])), key)
        seen = [a["id"] for a in p1["data"] + p2["data"]]
        check(seen == order[:20], "keyset %s: the first two pages" % arg)
        col, desc = sorts[0]
        lo, hi = ("0", "9999999999") if col == "last_check_in_at" else ("'!!ks'", "'~~ks'")
        early, late = (hi, lo) if desc else (lo, hi)
        adds = [("keyset-late", late)]
        if n % 2 == 0:
            adds.append(("keyset-early", early))
        else:
            sql_write(ms, "UPDATE hardware_asset SET retired_at = last_synced_at WHERE id = %d" %
                      seen[3])
        for tag, v in adds:
            sql_write(ms, "INSERT INTO hardware_asset (%s, intune_device_id, %s) SELECT %s, '%s', "
                          "%s FROM hardware_asset WHERE id = %d" % (base, col, base, tag, v, seen[0]))
        rest, cur = [], p2["next_cursor"]
        while cur:
            js = get_json(srv, hw + "?page_size=10&%s&cursor=%s" % (arg, urllib.parse.quote(cur)),
                          key)
            rest += js["data"]
            cur = js["next_cursor"]
        rest_ids = [a["id"] for a in rest]
        tags = [a["source"]["intune_device_id"] for a in rest]
        check([i for i in rest_ids if i in set(order)] == order[20:],
              "keyset %s: after an insert%s between pages, no existing row repeated or skipped" %
              (arg, "" if n % 2 == 0 else " and a retire"))
        check("keyset-early" not in tags, "keyset %s: a row added before the position is not "
              "on later pages" % arg)
        check("keyset-late" in tags, "keyset %s: a row added after the position is" % arg)
        sql_write(ms, "DELETE FROM hardware_asset WHERE intune_device_id LIKE 'keyset-%'")
        sql_write(ms, "UPDATE hardware_asset SET retired_at = NULL WHERE id = %d" % seen[3])

    # Cursors: garbled, tampered, from another order, too long -> 400 with the error envelope;
    # well-formed values are bound, never SQL; an old positional cursor is still honoured.
    p1 = get_json(srv, hw + "?page_size=7&sort=%2Bname", key)
    cur = p1["next_cursor"]
    raw = unb64url(cur)
    check(raw.startswith(b"s:"), "a sorted page's cursor is a keyset cursor")
    check(len(cur) < 200, "the cursor is short (%d characters)" % len(cur))
    bads = ["garbage!", cur[:-3], cur + "AA", b64url(raw + b"x"), b64url(raw.replace(b":t", b":i", 1)),
            b64url(raw[:-1]), b64url(b"s:zzzzzzzz:7:1:1:n;"), b64url(b"k:-1"), b64url(b"o:01"),
            b64url(raw.replace(b":1:", b":5:", 1)), b64url(b"\xff" * 40), "A" * 6000,
            b64url(raw.replace(b";", b"\xc3(;", 1))]
    for i, bad in enumerate(bads):
        st, js, text, _ = api(srv, "GET", hw + "?page_size=7&sort=%2Bname&cursor=" +
                              urllib.parse.quote(bad), key)
        check(st == 400 and js and js["errors"][0]["code"] == "invalid_request",
              "bad cursor #%d -> 400 envelope (%s %s)" % (i, st, text[:200]))
    for other in ("sort=-name", "sort=%2Bmodel", "", "sort=%2Bname,id"):
        st, js, text, _ = api(srv, "GET", hw + "?page_size=7&%s&cursor=%s" % (
            other, urllib.parse.quote(cur)), key)
        check(st == 400 and "first page" in text,
              "a cursor under another order (%s) -> 400 (%s)" % (other, st))
    st, js, text, _ = api(srv, "GET", "/api/v1/clients?cursor=" + urllib.parse.quote(cur), key)
    check(st == 400, "a hardware cursor on another list -> 400 (%s)" % st)
    m = re.match(rb"(s:[0-9a-f]{8}:\d+:\d+:1:)t\d+:.*;$", raw, re.S)
    check(m is not None, "cursor layout as documented")
    if m:
        evil = "x' OR 1=1; DROP TABLE hardware_asset; --"
        forged = b64url(m.group(1) + b"t%d:%s;" % (len(evil), evil.encode()))
        js = get_json(srv, hw + "?page_size=200&sort=%2Bname&cursor=" + urllib.parse.quote(forged),
                      key)
        want = [a["id"] for a in py_sorted(allrows, [("name", False)])
                if a["name"] is None or a["name"] > evil or (a["name"] == evil and a["id"] > 0)]
        check(sorted(a["id"] for a in js["data"]) == sorted(want),
              "a forged cursor value is only a seek position (%d rows)" % len(js["data"]))
    order = [a["id"] for a in py_sorted(allrows, [("name", False)])]
    js = get_json(srv, hw + "?page_size=7&sort=%2Bname&cursor=" + b64url(b"o:14"), key)
    check([a["id"] for a in js["data"]] == order[14:21] and js["next_cursor"] and
          unb64url(js["next_cursor"]).startswith(b"s:"),
          "an old positional cursor is honoured, and the next one is a keyset cursor")
    js2 = get_json(srv, hw + "?page_size=7&sort=%2Bname&cursor=" +
                   urllib.parse.quote(js["next_cursor"]), key)
    check([a["id"] for a in js2["data"]] == order[21:28], "keyset after a positional page")
    # Positional pages (the UI's page numbers, old cursors) across the values / NULLs seam.
    seams = 0
    for field in ("imei", "phone_number", "user.email"):
        seams += 0 < sum(1 for a in allrows if field_of(a, field) is not None) < len(allrows)
        for desc in (False, True):
            want = [a["id"] for a in py_sorted(allrows, [(field, desc)])]
            nonnull = sum(1 for a in allrows if field_of(a, field) is not None)
            arg = "sort=" + sort_arg([(field, desc)])
            for off in sorted({0, max(nonnull - 3, 0), nonnull, min(nonnull + 5, 119)}):
                js = get_json(srv, hw + "?page_size=7&%s&cursor=%s" % (arg, b64url(b"o:%d" % off)),
                              key)
                check([a["id"] for a in js["data"]] == want[off:off + 7],
                      "positional page at %d of %s (%d values)" % (off, arg, nonnull))
    check(seams > 0, "a field with both values and NULLs for the positional seam")
    # Long sort values: a cursor stays bounded (positional fallback past 4 KiB of values).
    long_name = "~" * 5000
    src = allrows[0]["id"]
    sql_write(ms, "UPDATE hardware_asset SET name = '%s' WHERE id = %d" % (long_name, src))
    big = [a["id"] for a in get_json(srv, hw + "?page_size=200&sort=-name", key)["data"]]
    rows, total, _ = walk(srv, hw + "?sort=-name", key, 3)
    check([a["id"] for a in rows] == big and len(big) == 120,
          "a 5,000-byte sort value pages on (positional fallback)")
    at = big.index(src) + 1
    st, js, _, _ = api(srv, "GET", hw + "?page_size=%d&sort=-name" % at, key)
    check(st == 200 and len(js["next_cursor"]) < 6000 and
          unb64url(js["next_cursor"]).startswith(b"o:%d" % at),
          "a cursor stays bounded: positional after a 5,000-byte value")
    sql_write(ms, "UPDATE hardware_asset SET name = '%s' WHERE id = %d" % (
        allrows[0]["name"].replace("'", "''"), src) if allrows[0]["name"] is not None else
        "UPDATE hardware_asset SET name = NULL WHERE id = %d" % src)


def main():
    sim = Sim("--tenants", "4", "--devices", "30", "--apps-per-device", "4", "--seed", "11")
    ms = Memsync(sim)
    ms.env["MEMSYNC_VALIDATE_SAMPLE"] = "2"
    secrets = [sim.env["MEMSYNC_SIM_PARTNER_APP_SECRET"], sim.env["MEMSYNC_SIM_SYNC_APP_SECRET"]]

    # --- first start prints a one-time admin password, once --------------------------------
    srv = Serve(ms)
    out = srv.stdout()
    m = re.search(r'created user "admin" with password (\S+)', out)
    check(m is not None, "first start prints the admin password")
    admin_pw = m.group(1) if m else ""
    check(admin_pw not in srv.stderr(), "the admin password is not logged")
    srv.stop()
    srv = Serve(ms)
    check("created user" not in srv.stdout(), "the admin password is printed only on first start")

    user_add(ms, "victor", "viewer", "viewer-password-1")
    user_add(ms, "oscar", "admin", "other-password-1", account="other")
    admin_key = apikey(ms, "admin")
    read_key = apikey(ms, "read")
    other_key = apikey(ms, "admin", account="other")
    check(admin_key not in ms.run("apikey", "list", check=0)[1], "apikey list never shows keys")

    # --- health, openapi ---------------------------------------------------------------------
    st, js, _, hdrs = api(srv, "GET", "/healthz")
    check(st == 200 and js == {"status": "ok"}, "healthz answers without credentials")
    for h in SECURITY_HEADERS:
        check(hget(hdrs, h), "healthz has " + h)
    doc = get_json(srv, "/openapi.json", None)  # public: it holds no data
    paths = doc["paths"]
    expected = ["/healthz", "/metrics", "/openapi.json", "/api/v1/clients",
                "/api/v1/assets/hardware", "/api/v1/assets/hardware/{id}",
                "/api/v1/assets/software", "/api/v1/assets/software/{id}/devices",
                "/api/v1/integrations", "/api/v1/integrations/{id}",
                "/api/v1/integrations/{id}/rotate-secret", "/api/v1/integrations/{id}/sync",
                "/api/v1/sync-runs", "/api/v1/sync-runs/{id}", "/api/v1/assets/hardware.csv",
                "/api/v1/assets/software.csv", "/api/v1/clients.csv", "/api/v1/insights"]
    for p in expected:
        check(p in paths, "openapi lists " + p)
    check("post" in paths["/api/v1/integrations"] and "patch" in paths["/api/v1/integrations/{id}"],
          "openapi lists the integration writes")

    # --- every route needs credentials -------------------------------------------------------
    for p, ops in paths.items():
        if p in ("/healthz", "/openapi.json"):
            continue
        for method in ops:
            url = p.replace("{id}", "1")
            st, js, text, hdrs = api(srv, method.upper(), url,
                                     body={} if method in ("post", "patch") else None)
            check(st == 401, "%s %s without credentials -> %s" % (method, url, st))
            check(js is not None and js.get("errors") and
                  set(js["errors"][0]) == {"code", "title", "detail"},
                  "401 body is the error envelope on " + url)
            st, *_ = api(srv, method.upper(), url, key="msk_" + "0" * 64,
                         body={} if method in ("post", "patch") else None)
            check(st == 401, "%s %s with a wrong key -> %s" % (method, url, st))

    # --- create an integration: validation first ---------------------------------------------
    st, js, text, _ = api(srv, "POST", "/api/v1/integrations", read_key, integration_body(sim))
    check(st == 403, "a read key cannot create integrations (%s)" % st)
    st, js, text, _ = api(srv, "POST", "/api/v1/integrations", admin_key,
                          integration_body(sim, sync_app_secret="not-the-right-secret-value"))
    check(st == 422, "a wrong key is refused with 422 (%s)" % st)
    check(js and js.get("validation") and not js["validation"]["ok"] and
          any(c["status"] == "fail" for c in js["validation"]["checks"]),
          "422 carries the per-check results")
    check("not-the-right-secret-value" not in text, "a refused secret is not echoed")
    check(get_json(srv, "/api/v1/integrations", admin_key)["total_count"] == 0,
          "nothing is stored after a failed validation")
    st, js, text, _ = api(srv, "POST", "/api/v1/integrations", admin_key,
                          integration_body(sim, partner_tenant_id="not-a-guid"))
    check(st == 400 and "GUID" in text, "a malformed ID is a 400 naming the field")
    st, js, text, _ = api(srv, "POST", "/api/v1/integrations", admin_key, integration_body(sim))
    check(st == 201, "create integration -> 201 (%s %s)" % (st, text[:300]))
    integ = js["data"]
    iid = integ["id"]
    check(js["validation"]["ok"] is True, "validation results come back on success")
    for s in secrets:
        check(s not in text, "the create response holds no secret")
    check(integ["partner_app_secret"]["hint"] == secrets[0][:3] and
          integ["partner_app_secret"]["expires_at"], "hint and expiry are shown")
    run = wait_run(srv, admin_key, iid)
    check(run["status"] == "ok", "the full sync after saving finished ok (%s)" % run["status"])
    check(run["kind"] == "full", "the first sync is full")
    check(len(run["tenants"]) == 4, "per-tenant results of the run")

    # --- reads and pagination ----------------------------------------------------------------
    hw, total, pages = walk(srv, "/api/v1/assets/hardware", admin_key, 7)
    check(total == 120 and len(hw) == 120, "120 devices in pages of 7 (%d/%d)" % (len(hw), total))
    check(len({a["id"] for a in hw}) == 120 and pages == 18, "keyset pages neither repeat nor skip")
    sorted_rows, total2, _ = walk(srv, "/api/v1/assets/hardware?sort=-name", admin_key, 11)
    names = [(a["name"] or "") for a in sorted_rows]
    check(len({a["id"] for a in sorted_rows}) == 120, "sorted walk covers every device once")
    check(names == sorted(names, reverse=True), "sort=-name orders by name, descending")
    js = get_json(srv, "/api/v1/assets/hardware?sort=%2Bserial_number,-id&page_size=200", admin_key)
    serials = [a["serial_number"] for a in js["data"] if a["serial_number"] is not None]
    check(serials == sorted(serials), "sort=+serial_number ascending")
    check(js["next_cursor"] is None and js["total_count"] == 120, "one page of 200 holds all")
    for bad in ("page_size=0", "page_size=201", "page_size=x", "cursor=garbage!",
                "filter[nope]=eq:1", "sort=nope", "filter[name]=zz:1x"):
        st, js, text, _ = api(srv, "GET", "/api/v1/assets/hardware?" + bad, admin_key)
        if bad == "filter[name]=zz:1x":
            check(st == 400 and "unknown filter operator 'zz'" in text,
                  "an unknown operator is a 400, not part of an eq value (%s)" % st)
            continue
        check(st == 400 and js and js["errors"][0]["code"] == "invalid_request",
              "bad list parameter %s -> 400 (%s)" % (bad, st))
    clients = get_json(srv, "/api/v1/clients", admin_key)
    check(clients["total_count"] == 4, "4 clients")
    c0 = clients["data"][0]
    js = get_json(srv, "/api/v1/assets/hardware?page_size=200&filter[client.id]=eq:%d" % c0["id"],
                  admin_key)
    check(js["total_count"] == c0["device_count"] == 30 and
          all(a["client"]["id"] == c0["id"] for a in js["data"]), "filter by client")
    oses = {a["operating_system"]["name"] for a in hw}
    pick = sorted(o for o in oses if o)[:2]
    q = "filter[operating_system.name]=in:" + urllib.parse.quote(",".join(pick))
    js = get_json(srv, "/api/v1/assets/hardware?page_size=200&" + q, admin_key)
    want = [a for a in hw if a["operating_system"]["name"] in pick]
    check(js["total_count"] == len(want) and len(want) > 0, "filter in: on OS")
    target = next(a for a in hw if a["serial_number"])
    js = get_json(srv, "/api/v1/assets/hardware?search=" +
                  urllib.parse.quote(target["serial_number"].lower()), admin_key)
    check(any(a["id"] == target["id"] for a in js["data"]), "search finds a device by serial")
    js = get_json(srv, "/api/v1/assets/hardware?filter[serial_number]=like:" +
                  urllib.parse.quote(target["serial_number"][1:-1].lower()), admin_key)
    check(any(a["id"] == target["id"] for a in js["data"]), "like filter is a substring match")
    dated = sorted(a["last_check_in_at"] for a in hw if a["last_check_in_at"])
    mid = dated[len(dated) // 2]
    js1 = get_json(srv, "/api/v1/assets/hardware?filter[last_check_in_at]=lt:" + mid, admin_key)
    js2 = get_json(srv, "/api/v1/assets/hardware?filter[last_check_in_at]=gte:" + mid, admin_key)
    check(js1["total_count"] + js2["total_count"] == len(dated), "lt and gte split the devices")
    check(js1["total_count"] == sum(1 for d in dated if d < mid), "lt counts right")
    detail = get_json(srv, "/api/v1/assets/hardware/%d" % target["id"], admin_key)["data"]
    check(detail["id"] == target["id"] and isinstance(detail["software"], list) and
          isinstance(detail["history"], list), "asset detail has software and history")
    sw, swtotal, _ = walk(srv, "/api/v1/assets/software", admin_key, 50)
    check(swtotal == len(sw) and swtotal > 0, "software titles list")
    # Lists in their default order page by keyset ('s' cursors): small pages walk the same rows
    # as one big page; an older positional cursor is still honoured; a sorted list stays
    # positional, and its cursor is refused by the default order.
    big = [t["id"] for t in get_json(srv, "/api/v1/assets/software?page_size=200",
                                     admin_key)["data"]]
    small, _, pages = walk(srv, "/api/v1/assets/software", admin_key, 7)
    check([t["id"] for t in small][:len(big)] == big and len(small) == swtotal and pages > 1,
          "software walked in pages of 7 = one page of 200")
    p1 = get_json(srv, "/api/v1/assets/software?page_size=7", admin_key)
    check(unb64url(p1["next_cursor"]).startswith(b"s:"), "software list: keyset cursor")
    js = get_json(srv, "/api/v1/assets/software?page_size=7&cursor=" +
                  urllib.parse.quote(b64url(b"o:7")), admin_key)
    check([t["id"] for t in js["data"]] == big[7:14], "a positional cursor is still honoured")
    js = get_json(srv, "/api/v1/assets/software?page_size=7&sort=-name", admin_key)
    check(unb64url(js["next_cursor"]).startswith(b"o:"), "a sorted software list pages by position")
    st, js, _, _ = api(srv, "GET", "/api/v1/sync-runs?cursor=" +
                       urllib.parse.quote(p1["next_cursor"]), admin_key)
    check(st == 400, "a software cursor is refused by the sync runs list")
    # A name too long for a keyset cursor: that page's cursor is positional, and the walk still
    # reaches every title (never a null cursor before the last page).
    long_name = "Long title " + "x" * 6000
    sql_write(ms, "UPDATE software_title SET name = '%s' WHERE id = %d" % (long_name, sw[0]["id"]))
    rows, total, _ = walk(srv, "/api/v1/assets/software", admin_key, 1)
    check(len(rows) == total == swtotal and long_name in [r["name"] for r in rows],
          "software walk across a 6,000-byte title name (%d of %d)" % (len(rows), total))
    sql_write(ms, "UPDATE software_title SET name = '%s' WHERE id = %d" %
              (sw[0]["name"].replace("'", "''"), sw[0]["id"]))
    runs = [r["id"] for r in get_json(srv, "/api/v1/sync-runs?page_size=200", admin_key)["data"]]
    rwalk, _, rpages = walk(srv, "/api/v1/sync-runs", admin_key, 1)
    check([r["id"] for r in rwalk] == runs and rpages == len(runs) and runs == sorted(runs)[::-1],
          "sync runs walked one by one, newest first")
    titled = next((t for t in sw if t["device_count"] > 0), None)
    check(titled is not None, "a title with devices")
    if titled:
        devs = get_json(srv, "/api/v1/assets/software/%d/devices" % titled["id"], admin_key)
        check(devs["total_count"] == titled["device_count"], "drill-down count = device_count")
    # The stored per-title counts and the drill-down (found from the client's devices) agree
    # with the installs themselves, for every title.
    truth = {}
    acct = ms.sql("SELECT account_id FROM software_title WHERE id = %d" % sw[0]["id"])[0][0]
    for tid, aid in ms.sql("SELECT i.title_id, i.asset_id FROM software_install i JOIN "
                           "hardware_asset h ON h.id = i.asset_id WHERE i.removed_at IS NULL "
                           "AND h.retired_at IS NULL AND h.account_id = %d" % acct):
        truth.setdefault(tid, set()).add(aid)
    check(sorted((t["id"], t["device_count"]) for t in sw) ==
          sorted((k, len(v)) for k, v in truth.items()),
          "every listed title's device_count is its active installs on current devices")
    for t in sw[:: max(1, len(sw) // 12)]:
        rows, total, _ = walk(srv, "/api/v1/assets/software/%d/devices" % t["id"], admin_key, 5)
        check(total == len(rows) and {r["id"] for r in rows} == truth.get(t["id"], set()),
              "drill-down of %s lists exactly its devices" % t["name"])
    st, js, _, _ = api(srv, "GET", "/api/v1/assets/hardware/999999", admin_key)
    check(st == 404 and js["errors"][0]["code"] == "not_found", "missing asset -> 404 envelope")
    keyset_checks(ms, srv, admin_key)

    # --- CSV export equals the API --------------------------------------------------------------
    st, text, hdrs = req("GET", srv.url + "/api/v1/assets/hardware.csv",
                         headers={"x-api-key": admin_key})
    check(st == 200 and hget(hdrs, "Content-Type")[0].startswith("text/csv"), "hardware.csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    check(len(rows) == 120 and {int(r["id"]) for r in rows} == {a["id"] for a in hw},
          "CSV holds the same devices as the API")
    byid = {a["id"]: a for a in hw}
    check(all((r["serial_number"] or None) == byid[int(r["id"])]["serial_number"] or
              r["serial_number"].startswith("'") for r in rows), "CSV serials match the API")
    st, text, _ = req("GET", srv.url + "/api/v1/assets/hardware.csv?filter[client.id]=eq:%d" %
                      c0["id"], headers={"x-api-key": admin_key})
    check(len(list(csv.DictReader(io.StringIO(text)))) == 30, "CSV export honours filters")
    for p in ("/api/v1/clients.csv", "/api/v1/assets/software.csv"):
        st, text, _ = req("GET", srv.url + p, headers={"x-api-key": admin_key})
        check(st == 200 and text.count("\n") >= 2, p + " exports rows")

    # --- viewer and read keys cannot change integrations ------------------------------------
    for key in (read_key,):
        for method, path, body in (("POST", "/api/v1/integrations", integration_body(sim)),
                                   ("PATCH", "/api/v1/integrations/%d" % iid, {"name": "x"}),
                                   ("POST", "/api/v1/integrations/%d/sync" % iid, None),
                                   ("POST", "/api/v1/integrations/%d/rotate-secret" % iid,
                                    {"which": "sync", "secret": "x" * 20})):
            st, js, _, _ = api(srv, method, path, key, body)
            check(st == 403 and js["errors"][0]["code"] == "forbidden",
                  "read key %s %s -> 403 (%s)" % (method, path, st))
    st, vtok, _ = login(srv, "victor", "viewer-password-1")
    check(st == 303 and vtok, "viewer signs in")
    vcsrf = csrf_of(srv, vtok)
    st, js, _, _ = api(srv, "PATCH", "/api/v1/integrations/%d" % iid, body={"name": "x"},
                       headers={"Cookie": "memsync_session=" + vtok, "X-CSRF-Token": vcsrf})
    check(st == 403, "viewer session cannot PATCH integrations (%s)" % st)
    form = urllib.parse.urlencode({"csrf": vcsrf}).encode()
    st, text, _ = req("POST", srv.url + "/integrations/%d/sync" % iid, form,
                      {"Cookie": "memsync_session=" + vtok,
                       "Content-Type": "application/x-www-form-urlencoded"})
    check(st == 403, "viewer cannot press sync now (%s)" % st)
    st, text, _ = req("GET", srv.url + "/integrations",
                      headers={"Cookie": "memsync_session=" + vtok})
    check('id="add-integration"' not in text, "viewer sees no add form")

    # --- sessions, cookies and CSRF ------------------------------------------------------------
    st, tok, cookies = login(srv, "admin", admin_pw)
    check(st == 303 and tok, "admin signs in with the one-time password")
    ck = [c for c in cookies if c.startswith("memsync_session=")][0]
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/"):
        check(flag in ck, "session cookie has " + flag)
    check("Secure" not in ck, "no Secure flag over plain loopback http")
    st, tok2, cookies2 = login(srv, "admin", admin_pw, {"X-Forwarded-Proto": "https"})
    check(any("Secure" in c for c in cookies2), "Secure flag behind a TLS proxy")
    cookie = {"Cookie": "memsync_session=" + tok}
    csrf = csrf_of(srv, tok)
    check(csrf != csrf_of(srv, tok2), "CSRF tokens differ per session")
    st, js, _, _ = api(srv, "PATCH", "/api/v1/integrations/%d" % iid, body={"name": "Renamed"},
                       headers=cookie)
    check(st == 403 and js["errors"][0]["code"] == "csrf", "session PATCH without CSRF -> 403")
    st, js, _, _ = api(srv, "PATCH", "/api/v1/integrations/%d" % iid, body={"name": "Renamed"},
                       headers=dict(cookie, **{"X-CSRF-Token": "0" * 64}))
    check(st == 403, "session PATCH with a wrong CSRF token -> 403")
    st, js, _, _ = api(srv, "PATCH", "/api/v1/integrations/%d" % iid,
                       body={"name": "Renamed", "sync_interval_seconds": 7200},
                       headers=dict(cookie, **{"X-CSRF-Token": csrf}))
    check(st == 200 and js["data"]["name"] == "Renamed" and
          js["data"]["sync_interval_seconds"] == 7200, "session PATCH with CSRF works")
    for path in ("/integrations/%d/sync" % iid, "/integrations", "/logout",
                 "/integrations/%d/rotate" % iid, "/api-keys", "/api-keys/1/revoke", "/users",
                 "/users/1/password", "/users/1/remove"):
        st, text, _ = req("POST", srv.url + path, b"which=sync&secret=abc",
                          dict(cookie, **{"Content-Type": "application/x-www-form-urlencoded"}))
        check(st == 403, "form POST %s without CSRF -> 403 (%s)" % (path, st))
    st, js, _, _ = api(srv, "GET", "/api/v1/me", headers=cookie)
    check(st == 200 and js["data"]["role"] == "admin", "session reads the API")
    st, text, hdrs = req("GET", srv.url + "/assets")
    check(st == 303 and hget(hdrs, "Location")[0].startswith("/login"),
          "UI pages redirect to sign-in")
    st, text, hdrs = req("GET", srv.url + "/login")
    check(st == 200 and "frame-ancestors 'none'" in hget(hdrs, "Content-Security-Policy")[0],
          "sign-in page has the UI CSP")
    st, _, _ = login(srv, "admin", admin_pw, {"Origin": "http://evil.example"})
    check(st == 403, "a sign-in posted from another site is refused (%s)" % st)
    st, _, _ = login(srv, "admin", admin_pw, {"Origin": srv.url})
    check(st == 303, "a sign-in from our own page is accepted (%s)" % st)
    form = urllib.parse.urlencode({"csrf": csrf}).encode()
    st, _, _ = req("POST", srv.url + "/integrations/%d/sync" % iid, form,
                   dict(cookie, **{"Content-Type": "application/x-www-form-urlencoded",
                                   "Referer": "http://evil.example/x"}))
    check(st == 403, "a form with the right token but from another site is refused (%s)" % st)
    st, text, hdrs = req("GET", srv.url + "/login?next=//evil.example")
    check("evil.example" not in text, "sign-in never redirects off-site")
    for i in range(6):
        st, _, _ = login(srv, "victor", "wrong-password-%d" % i)
    check(st == 429, "repeated failed sign-ins are rate limited (%s)" % st)
    st, _, _ = login(srv, "victor", "viewer-password-1")
    check(st == 429, "the limit holds for the right password too")
    st, _, _ = login(srv, "nobody", "wrong", {"X-Real-IP": "203.0.113.9"})
    check("sign-in failed user=nobody ip=203.0.113.9" in srv.stderr(),
          "a loopback proxy's X-Real-IP is the address that is logged and limited")
    form = urllib.parse.urlencode({"csrf": csrf}).encode()
    st, text, hdrs = req("POST", srv.url + "/logout", form,
                         dict(cookie2 := {"Cookie": "memsync_session=" + tok2},
                              **{"Content-Type": "application/x-www-form-urlencoded"}))
    st, js, _, _ = api(srv, "GET", "/api/v1/me", headers=cookie2)
    check(st == 200, "logging out with another session's token does nothing")
    csrf2 = csrf_of(srv, tok2)
    req("POST", srv.url + "/logout", urllib.parse.urlencode({"csrf": csrf2}).encode(),
        dict(cookie2, **{"Content-Type": "application/x-www-form-urlencoded"}))
    st, js, _, _ = api(srv, "GET", "/api/v1/me", headers=cookie2)
    check(st == 401, "a signed-out session is dead")

    # --- failing tenant: remedy per tenant ------------------------------------------------------
    tenants = sim.world()["tenants"]
    bad_tenant = tenants[1]["id"]
    sim.control({"op": "set_tenant", "tenant": bad_tenant, "consented": False})
    # ... and one throttled answer on the way, which the run retries and /metrics counts.
    sim.control({"op": "fault", "tenant": tenants[0]["id"], "route": "managedDevices",
                 "kind": "429", "retry_after": 0.2, "count": 1})
    ms_requests = metric(srv, admin_key, "memsync_microsoft_requests_total")
    ms_throttled = metric(srv, admin_key, "memsync_microsoft_throttled_total")
    check(ms_requests > 0 and ms_throttled == 0,
          "metrics count the syncs' requests to Microsoft (%d, %d)" % (ms_requests, ms_throttled))
    last = get_json(srv, "/api/v1/sync-runs", admin_key)["data"][0]["id"]
    st, js, text, _ = api(srv, "POST", "/api/v1/integrations/%d/sync" % iid, admin_key)
    check(st == 202, "sync now -> 202 (%s %s)" % (st, text[:200]))
    run = wait_run(srv, admin_key, iid, after=last)
    failed = [t for t in run["tenants"] if t["status"] == "error"]
    check(len(failed) == 1 and failed[0]["tenant_id"] == bad_tenant and
          failed[0]["error"]["remedy"], "the failing tenant has its remedy")
    js = get_json(srv, "/api/v1/clients?filter[status]=eq:error", admin_key)
    check(js["total_count"] == 1 and js["data"][0]["error"]["remedy"], "client shows the remedy")
    check(get_json(srv, "/api/v1/assets/hardware", admin_key)["total_count"] == 120,
          "a failed tenant keeps its devices")
    check(metric(srv, admin_key, "memsync_microsoft_throttled_total") == 1 and
          metric(srv, admin_key, "memsync_microsoft_requests_total") > ms_requests,
          "metrics count the throttled answer and the run's requests")
    st, text, _ = req("GET", srv.url + "/", headers=cookie)
    check(st == 200 and "1 client failed its last sync" in text and 'href="/clients"' in text,
          "the overview says a client failed and where to look")
    check("expires in" not in text, "no key warning while both keys have months left")
    soon = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 10 * 86400))
    st, js, text2, _ = api(srv, "PATCH", "/api/v1/integrations/%d" % iid, admin_key,
                           {"partner_app_secret_expires_at": soon})
    check(st == 200, "the partner key's expiry can be set (%s %s)" % (st, text2[:200]))
    st, text, _ = req("GET", srv.url + "/", headers=cookie)
    m = re.search(r"The Partner App Key of [^<]* expires in (\d+) days \(%s\)" % soon, text)
    check(m is not None and int(m.group(1)) in (9, 10),
          "the overview warns of a key that expires in 10 days")
    sim.control({"op": "set_tenant", "tenant": bad_tenant, "consented": True})

    # --- the customer list cannot be read: the run says why ------------------------------------
    sim.control({"op": "fault", "tenant": "*", "route": "customers", "kind": "status",
                 "status": 403})
    last = run["id"]
    st, js, text, _ = api(srv, "POST", "/api/v1/integrations/%d/sync" % iid, admin_key)
    check(st == 202, "sync now -> 202 (%s %s)" % (st, text[:200]))
    run = wait_run(srv, admin_key, iid, after=last)
    check(run["status"] == "failed" and "Partner Center" in (run["error"]["message"] or ""),
          "a run that could not list the customers says why (%s)" % run.get("error"))
    st, text, _ = req("GET", srv.url + "/runs/%d" % run["id"], headers=cookie)
    check(st == 200 and "notice bad" in text and "Partner Center" in text,
          "the run page shows why it failed")
    check(get_json(srv, "/api/v1/assets/hardware", admin_key)["total_count"] == 120,
          "a run that could not list the customers keeps every device")
    sim.control({"op": "clear_faults"})

    # --- rotate a key --------------------------------------------------------------------------
    new_secret = sim.control({"op": "add_secret", "app": "sync"})["results"][0]["secret"]
    st, js, text, _ = api(srv, "POST", "/api/v1/integrations/%d/rotate-secret" % iid, admin_key,
                          {"which": "sync", "secret": "wrong-" + new_secret})
    check(st == 422, "rotation with a wrong key is refused (%s)" % st)
    st, js, text, _ = api(srv, "POST", "/api/v1/integrations/%d/rotate-secret" % iid, admin_key,
                          {"which": "sync", "secret": new_secret, "expires_at": "2027-03-01"})
    check(st == 200 and js["data"]["sync_app_secret"]["hint"] == new_secret[:3] and
          js["data"]["sync_app_secret"]["expires_at"].startswith("2027-03-01"),
          "rotation swaps the key (%s %s)" % (st, text[:200]))
    check(new_secret not in text, "the rotated key is not in the response")
    secrets.append(new_secret)

    # --- account isolation: B sees nothing of A ------------------------------------------------
    for p in ("/api/v1/clients", "/api/v1/assets/hardware", "/api/v1/assets/software",
              "/api/v1/sync-runs", "/api/v1/integrations"):
        js = get_json(srv, p, other_key)
        check(js["total_count"] == 0 and js["data"] == [], "other account sees no " + p)
    ids = {
        "/api/v1/assets/hardware/%d": [a["id"] for a in hw],
        "/api/v1/assets/software/%d/devices": [t["id"] for t in sw],
        "/api/v1/assets/software/%d": [t["id"] for t in sw][:50],
        "/api/v1/sync-runs/%d": [r["id"] for r in get_json(srv, "/api/v1/sync-runs",
                                                             admin_key)["data"]],
        "/api/v1/integrations/%d": [iid],
        "/api/v1/clients/%d": [c["id"] for c in clients["data"]],
    }
    for tmpl, values in ids.items():
        for v in values:
            st, *_ = api(srv, "GET", tmpl % v, other_key)
            check(st == 404, "other account gets 404 for %s" % (tmpl % v))
    for method, path, body in (("PATCH", "/api/v1/integrations/%d" % iid, {"name": "stolen"}),
                               ("POST", "/api/v1/integrations/%d/sync" % iid, None),
                               ("POST", "/api/v1/integrations/%d/rotate-secret" % iid,
                                {"which": "sync", "secret": new_secret})):
        st, *_ = api(srv, method, path, other_key, body)
        check(st == 404, "other account cannot %s %s (%s)" % (method, path, st))
    for p in ("/api/v1/assets/hardware.csv", "/api/v1/clients.csv", "/api/v1/assets/software.csv"):
        st, text, _ = req("GET", srv.url + p, headers={"x-api-key": other_key})
        check(st == 200 and text.count("\n") == 1, "other account's export is only a header")
    st, otok, _ = login(srv, "oscar", "other-password-1")
    st, text, _ = req("GET", srv.url + "/assets/%d" % hw[0]["id"],
                      headers={"Cookie": "memsync_session=" + otok})
    check(st == 404, "other account's UI gets 404 for A's device")
    st, text, _ = req("GET", srv.url + "/assets", headers={"Cookie": "memsync_session=" + otok})
    check(st == 200 and "No devices yet" in text, "other account's UI lists no devices")

    # --- API keys in the UI: admins create (shown once) and revoke; nobody else can ------------
    form_h = {"Content-Type": "application/x-www-form-urlencoded"}

    def ui_post(path, token, fields):
        return req("POST", srv.url + path, urllib.parse.urlencode(fields).encode(),
                   dict(form_h, Cookie="memsync_session=" + token))

    st, text, _ = req("GET", srv.url + "/api-keys", headers={"Cookie": "memsync_session=" + vtok})
    check(st == 403 and "msk_" not in text, "a viewer cannot open the API keys page (%s)" % st)
    check('href="/api-keys"' not in text, "a viewer's navigation has no API keys")
    st, text, _ = ui_post("/api-keys", vtok, {"csrf": vcsrf, "name": "v", "scope": "admin"})
    check(st == 403 and "new-key" not in text, "a viewer cannot create an API key (%s)" % st)
    st, text, _ = req("GET", srv.url + "/assets", headers=cookie)
    check('href="/api-keys"' in text, "admins find API keys in the navigation")
    for fields, what in (({"name": " ", "scope": "read"}, "an empty name"),
                         ({"name": "x" * 101, "scope": "read"}, "a name over 100 bytes"),
                         ({"name": "a\x01b", "scope": "read"}, "a control character"),
                         ({"name": "tool", "scope": "root"}, "an unknown scope")):
        st, text, _ = ui_post("/api-keys", tok, dict(fields, csrf=csrf))
        check(st == 400 and "notice bad" in text and "new-key" not in text,
              "API key with %s is refused (%s)" % (what, st))
    st, text, _ = ui_post("/api-keys", tok, {"csrf": csrf, "name": " PSA <sync> ", "scope": "read"})
    m = re.search(r'id="new-key">(msk_[0-9a-f]{64})<', text)
    check(st == 200 and m is not None, "an admin creates an API key in the UI (%s)" % st)
    ui_key = m.group(1)
    check("PSA &lt;sync&gt;" in text, "the key's name is trimmed and shown as text")
    st, *_ = api(srv, "GET", "/api/v1/clients", ui_key)
    check(st == 200, "the new key reads the API (%s)" % st)
    st, *_ = api(srv, "POST", "/api/v1/integrations", ui_key, integration_body(sim))
    check(st == 403, "a read key made in the UI cannot create integrations (%s)" % st)
    st, text, _ = req("GET", srv.url + "/api-keys", headers=cookie)
    check(st == 200 and ui_key not in text and ui_key[:10] + "…" in text,
          "the key list shows the prefix, never the key again")
    kid_m = re.search(r'<td>PSA &lt;sync&gt;</td>.*?action="/api-keys/(\d+)/revoke"', text, re.S)
    check(kid_m is not None, "the new key has a revoke button")
    ui_kid = int(kid_m.group(1))
    st, text, _ = ui_post("/api-keys/%d/revoke" % ui_kid, tok, {})
    check(st == 403 and api(srv, "GET", "/api/v1/clients", ui_key)[0] == 200,
          "revoking without the CSRF token is refused")
    ocsrf = csrf_of(srv, otok)
    st, text, _ = req("GET", srv.url + "/api-keys", headers={"Cookie": "memsync_session=" + otok})
    check(st == 200 and "PSA &lt;sync&gt;" not in text and "test-read" not in text,
          "another account's admin does not see A's keys")
    st, text, _ = ui_post("/api-keys/%d/revoke" % ui_kid, otok, {"csrf": ocsrf})
    check(st == 404 and api(srv, "GET", "/api/v1/clients", ui_key)[0] == 200,
          "another account's admin cannot revoke A's key (%s)" % st)
    st, text, _ = ui_post("/api-keys/%d/revoke" % ui_kid, tok, {"csrf": csrf})
    check(st == 200 and "notice ok" in text, "an admin revokes the key (%s)" % st)
    st, *_ = api(srv, "GET", "/api/v1/clients", ui_key)
    check(st == 401, "the revoked key is refused (%s)" % st)
    st, text, _ = ui_post("/api-keys/%d/revoke" % ui_kid, tok, {"csrf": csrf})
    check(st == 404 and "notice bad" in text, "revoking twice says it is already revoked (%s)" % st)

    # --- users in the UI: admins add, set passwords and remove, in their own account only ---
    st, text, _ = req("GET", srv.url + "/users", headers={"Cookie": "memsync_session=" + vtok})
    check(st == 403 and 'id="users"' not in text, "a viewer cannot open the users page (%s)" % st)
    st, text, _ = ui_post("/users", vtok, {"csrf": vcsrf, "name": "mallory", "role": "admin",
                                           "password": "mallory-password-1"})
    check(st == 403, "a viewer cannot add a user (%s)" % st)
    st, text, _ = req("GET", srv.url + "/users", headers=cookie)
    check(st == 200 and "victor" in text and "oscar" not in text and "$argon2" not in text,
          "the users page lists the account's users, never hashes")
    for fields, code, what in (({"name": "<b>x</b>", "role": "viewer"}, 400, "a bad name"),
                               ({"name": "nina", "role": "owner"}, 400, "an unknown role"),
                               ({"name": "nina", "role": "viewer", "password": "short"}, 400,
                                "a short password"),
                               ({"name": "oscar", "role": "viewer"}, 409,
                                "a name another account uses")):
        fields = dict({"password": "nina-password-1"}, **fields)
        st, text, _ = ui_post("/users", tok, dict(fields, csrf=csrf))
        check(st == code and "notice bad" in text, "a user with %s is refused (%s)" % (what, st))
        check("<b>x</b>" not in text, "a refused name is echoed as text")
    st, text, _ = ui_post("/users", tok, {"csrf": csrf, "name": "nina@contoso.example",
                                          "role": "viewer", "password": "nina-password-1"})
    check(st == 200 and "notice ok" in text and "nina-password-1" not in text,
          "an admin adds a user (%s)" % st)
    nid = int(re.search(r'<td>nina@contoso\.example</td>.*?action="/users/(\d+)/password"',
                        text, re.S).group(1))
    st, ntok, _ = login(srv, "nina@contoso.example", "nina-password-1",
                        {"X-Real-IP": "198.51.100.20"})
    check(st == 303 and ntok, "the new user signs in")
    st, js, _, _ = api(srv, "GET", "/api/v1/me", headers={"Cookie": "memsync_session=" + ntok})
    check(st == 200 and js["data"]["role"] == "viewer", "with the role the admin chose")
    ocsrf = csrf_of(srv, otok)
    st, text, _ = req("GET", srv.url + "/users", headers={"Cookie": "memsync_session=" + otok})
    check(st == 200 and "nina" not in text and "victor" not in text,
          "another account's admin does not see A's users")
    for path in ("/users/%d/password" % nid, "/users/%d/remove" % nid):
        st, text, _ = ui_post(path, otok, {"csrf": ocsrf, "password": "stolen-password-1"})
        check(st == 404, "another account's admin cannot use %s (%s)" % (path, st))
    st, *_ = api(srv, "GET", "/api/v1/me", headers={"Cookie": "memsync_session=" + ntok})
    check(st == 200, "so the user's session lives on")
    st, text, _ = ui_post("/users/%d/password" % nid, tok, {"csrf": csrf, "password": "short"})
    check(st == 400 and "notice bad" in text, "a short new password is refused (%s)" % st)
    st, text, _ = ui_post("/users/%d/password" % nid, tok,
                          {"csrf": csrf, "password": "nina-password-2"})
    check(st == 200 and "notice ok" in text, "an admin sets a user's password (%s)" % st)
    st, *_ = api(srv, "GET", "/api/v1/me", headers={"Cookie": "memsync_session=" + ntok})
    check(st == 401, "which ends the user's sessions (%s)" % st)
    st, ntok, _ = login(srv, "nina@contoso.example", "nina-password-2",
                        {"X-Real-IP": "198.51.100.21"})
    check(st == 303 and ntok, "the new password signs in")
    me = api(srv, "GET", "/api/v1/me", headers=cookie)[1]["data"]
    st, text, _ = req("GET", srv.url + "/users", headers=cookie)
    self_id = int(re.search(r'\(you\)</span></td>.*?action="/users/(\d+)/password"', text,
                            re.S).group(1))
    st, text, _ = ui_post("/users/%d/remove" % self_id, tok, {"csrf": csrf})
    check(st == 400 and api(srv, "GET", "/api/v1/me", headers=cookie)[0] == 200,
          "an admin cannot remove themself (%s, %s)" % (st, me.get("name")))
    st, text, _ = ui_post("/users/%d/remove" % nid, tok, {"csrf": csrf})
    check(st == 200 and "notice ok" in text and "nina" not in text.split("<tbody>")[1],
          "an admin removes a user (%s)" % st)
    st, *_ = api(srv, "GET", "/api/v1/me", headers={"Cookie": "memsync_session=" + ntok})
    check(st == 401, "the removed user's session is over (%s)" % st)
    st, _, _ = login(srv, "nina@contoso.example", "nina-password-2",
                     {"X-Real-IP": "198.51.100.22"})
    check(st == 401, "and the removed user cannot sign in (%s)" % st)

    # --- every documented route answers; secrets never in any response --------------------------
    real = {"/api/v1/assets/hardware/{id}": target["id"], "/api/v1/sync-runs/{id}": last,
            "/api/v1/integrations/{id}": iid, "/api/v1/clients/{id}": c0["id"],
            "/api/v1/assets/software/{id}": sw[0]["id"],
            "/api/v1/assets/software/{id}/devices": sw[0]["id"]}
    prod = get_json(srv, "/api/v1/assets/products?page_size=1", admin_key)["data"][0]["id"]
    real["/api/v1/assets/products/{id}"] = real["/api/v1/assets/products/{id}/devices"] = prod
    # A webhook for its delivery log (a loopback target: refused at connect, nothing sent).
    st, js, text, _ = api(srv, "POST", "/api/v1/webhooks", admin_key,
                          {"url": "https://127.0.0.1:9/memsync", "events": ["asset.created"]})
    check(st == 201, "an admin subscribes a webhook (%s %s)" % (st, text[:200]))
    real["/api/v1/webhooks/{id}/deliveries"] = js["data"]["id"] if st == 201 else 1
    bodies = []
    for p, ops in paths.items():
        if "get" not in ops:
            continue
        url = p.replace("{id}", str(real.get(p, 1)))
        st, text, hdrs = req("GET", srv.url + url, headers={"x-api-key": admin_key})
        check(st == 200, "documented route %s answers 200 (%s)" % (url, st))
        for h in SECURITY_HEADERS:
            check(hget(hdrs, h), "%s has %s" % (url, h))
        bodies.append(text)
    for page in ("/assets", "/assets/%d" % target["id"], "/software", "/clients", "/runs",
                 "/runs/%d" % last, "/integrations", "/software/%d" % sw[0]["id"], "/api-keys",
                 "/users", "/"):
        st, text, hdrs = req("GET", srv.url + page, headers=cookie)
        check(st == 200, "UI page %s (%s)" % (page, st))
        bodies.append(text)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    ended = [a for a in hw if (a["operating_system"]["end_of_support"] or "9999") < today]
    current = [a for a in hw if (a["operating_system"]["end_of_support"] or "9999") >= today]
    check(ended and current, "the world has OS versions past their end of support, and others")
    for a, want in ((ended[0], True), (current[0], False)):
        st, text, _ = req("GET", srv.url + "/assets/%d" % a["id"], headers=cookie)
        said = "past support since %s" % a["operating_system"]["end_of_support"]
        check(st == 200 and (said in text) == want,
              "the detail marks an OS whose support ended (%s, %s)" %
              (a["operating_system"]["end_of_support"], want))
    # What a technician reads: sizes in GB, dates with their zone and age, links to the client
    # and to the device in Intune's admin center (in the customer's tenant).
    a = ended[0]
    st, text, _ = req("GET", srv.url + "/assets/%d" % a["id"], headers=cookie)
    intune = ("https://intune.microsoft.com/%s/#view/Microsoft_Intune_Devices/"
              "DeviceSettingsMenuBlade/~/overview/mdmDeviceId/%s" %
              (a["client"]["tenant_id"], a["source"]["intune_device_id"]))
    check(intune in text and 'id="open-in-intune"' in text, "the detail opens the device in Intune")
    check('href="/clients/%d"' % a["client"]["id"] in text, "the detail links to its client")
    check(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", text) and " ago</span>" in text,
          "dates carry their time zone and age")
    if a["storage"]["total_bytes"]:
        check(re.search(r">\d+(\.\d)? GB<", text) and
              ">%d<" % a["storage"]["total_bytes"] not in text, "storage is shown in GB")
    # The overview holds the same figures as `memsync insights`, for this account only.
    cli_rows = {r["client"]["id"]: r for r in ms.json("insights", "--format", "json")}
    for attempt in ("built", "cached"):
        st, text, _ = req("GET", srv.url + "/", headers=cookie)
        rows = re.findall(r'<tr><td><a href="/clients/(\d+)">(.*?)</tr>', text, re.S)
        check(st == 200 and len(rows) == len(cli_rows) > 0,
              "the overview (%s) lists every client (%s, %d of %d)" %
              (attempt, st, len(rows), len(cli_rows)))
        for cid, body in rows:
            cells = dict(re.findall(r'data-k="(\w+)">(?:<a [^>]*>)?([^<]*)<', body))
            want = cli_rows[int(cid)]
            check(all(cells[k] == ("" if want[k] is None else str(want[k]))
                      for k in ("devices", "unsupported_os", "stale", "encrypted_pct",
                                "compliant_pct")),
                  "overview row of client %s = memsync insights (%s)" % (cid, cells))
    st, text, _ = req("GET", srv.url + "/", headers={"Cookie": "memsync_session=" + otok})
    check(st == 200 and "No devices yet" in text and 'id="insight"' not in text,
          "another account's overview is empty")
    # ... and so does the API, cached with an ETag; stale_days as the CLI's --stale-days.
    st, js, _, hdrs = api(srv, "GET", "/api/v1/insights", admin_key)
    check(st == 200 and js["total_count"] == len(cli_rows) and js["next_cursor"] is None and
          {r["client"]["id"]: r for r in js["data"]} == cli_rows,
          "/api/v1/insights = memsync insights (%s)" % st)
    etag = hget(hdrs, "ETag")
    st, *_ = api(srv, "GET", "/api/v1/insights", admin_key, headers={"If-None-Match": etag[0]})
    check(etag and st == 304, "an unchanged insights answer is a 304 (%s)" % st)
    cli_long = {r["client"]["id"]: r for r in
                ms.json("insights", "--stale-days", "3650", "--format", "json")}
    js = get_json(srv, "/api/v1/insights?stale_days=3650", admin_key)
    check({r["client"]["id"]: r for r in js["data"]} == cli_long and js["stale_days"] == 3650,
          "stale_days=3650 = memsync insights --stale-days 3650")
    check(sum(r["stale"] for r in cli_long.values()) < sum(r["stale"] for r in cli_rows.values()),
          "fewer devices are stale after 10 years than after 30 days")
    for bad in ("0", "3651", "abc", "", "7x", "-1"):
        st, js, _, _ = api(srv, "GET", "/api/v1/insights?stale_days=" + bad, admin_key)
        check(st == 400 and "stale_days" in js["errors"][0]["detail"],
              "stale_days=%r is refused (%s)" % (bad, st))
    js = get_json(srv, "/api/v1/insights", other_key)
    check(js["total_count"] == 0 and js["data"] == [], "another account's insights are empty")
    metrics = [b for b in bodies if "memsync_devices" in b]
    check(metrics and "memsync_devices 120" in metrics[0] and
          'memsync_tenants{status="ok"}' in metrics[0] and
          "memsync_secret_days_to_expiry" in metrics[0] and
          "memsync_http_requests_total" in metrics[0] and
          'memsync_sync_last_duration_seconds{integration_id="%d"}' % iid in metrics[0] and
          metrics[0].count("memsync_sync_last_finished_timestamp_seconds{") == 1,
          "metrics has the documented series")
    logs = srv.stderr() + srv.stdout()
    for s in secrets:
        check(all(s not in b for b in bodies), "no response holds a secret")
        check(s not in logs, "the log holds no secret")
    for k in (admin_key, read_key, other_key, ui_key):
        check(k not in logs, "the log holds no API key")
    check("outlived their list answer" not in logs,
          "every list answer freed its JSON (the per-thread arena rewinds)")

    # --- user and key management from the command line ---------------------------------------
    rc, out, err = ms.run("user", "add", "argv-pw", "--password", "x" * 12)
    check(rc == 2, "passwords are never taken from argv")
    rc, out, err = ms.run("user", "add", "shorty", "--password-file", "-", stdin=b"short\n")
    check(rc != 0 and "at least" in err, "a short password is refused")
    rc, out, _ = ms.run("user", "list", check=0)
    check("victor" in out and "viewer" in out and "oscar" not in out and "$argon2" not in out,
          "user list shows the account's users, never hashes")
    ms.run("user", "passwd", "victor", "--password-file", "-", stdin=b"a-new-password-2\n",
           check=0)
    st, tok3, _ = login(srv, "victor", "a-new-password-2")
    check(st == 429, "the user limiter still holds after a password change (%s)" % st)
    st, tok3, _ = login(srv, "victor", "a-new-password-2", {"X-Real-IP": "198.51.100.7"})
    check(st == 303, "failures from one address do not lock the user out elsewhere (%s)" % st)
    ms.run("user", "add", "wendy", "--role", "viewer", "--password-file", "-",
           stdin=b"wendy-password-1\n", check=0)
    st, wtok, _ = login(srv, "wendy", "wendy-password-1", {"X-Real-IP": "198.51.100.8"})
    check(st == 303 and wtok, "a new user signs in")
    ms.run("user", "passwd", "wendy", "--password-file", "-", stdin=b"wendy-password-2\n",
           check=0)
    st, *_ = api(srv, "GET", "/api/v1/me", headers={"Cookie": "memsync_session=" + wtok})
    check(st == 401, "a password change ends the user's sessions (%s)" % st)
    ms.run("user", "remove", "wendy", check=0)
    st, _, _ = login(srv, "wendy", "wendy-password-2", {"X-Real-IP": "198.51.100.9"})
    check(st == 401, "a removed user cannot sign in (%s)" % st)
    rc, out, _ = ms.run("apikey", "list", check=0)
    kid = re.search(r"^(\d+)\s+test-read", out, re.M)
    check(kid is not None and read_key not in out and read_key[:10] in out,
          "apikey list shows each key's id and prefix, never the key")
    ms.run("apikey", "revoke", kid.group(1), check=0)
    st, *_ = api(srv, "GET", "/api/v1/clients", read_key)
    check(st == 401, "a revoked key is refused (%s)" % st)
    ms.run("apikey", "revoke", kid.group(1), check=1)

    # --- the embedded stylesheet and script are the files in www/ -------------------------------
    src = os.environ.get("MEMSYNC_SOURCE_DIR")
    if src:
        for name, ctype in (("app.css", "text/css"), ("app.js", "text/javascript")):
            st, text, hdrs = req("GET", srv.url + "/static/" + name)
            with open(os.path.join(src, "www", name), encoding="utf-8") as f:
                check(st == 200 and text == f.read() and
                      hget(hdrs, "Content-Type")[0].startswith(ctype),
                      "/static/%s is www/%s (run python3 www/embed.py after editing it)" %
                      (name, name))

    # --- limits --------------------------------------------------------------------------------
    st, js, _, _ = api(srv, "POST", "/api/v1/integrations", admin_key, b"{" + b" " * 70000 + b"}")
    check(st == 413, "a body over 64 KiB -> 413 (%s)" % st)
    st, js, _, _ = api(srv, "POST", "/api/v1/integrations", admin_key, b"[1,2")
    check(st == 400 and js["errors"][0]["code"] == "invalid_json", "malformed JSON -> 400")

    # --- a count the server cached changes as soon as another process's sync commits ---------
    tq = "/api/v1/assets/hardware?filter[client.tenant_id]=eq:%s&filter[id]=gt:0" % c0["tenant_id"]
    before = get_json(srv, tq, admin_key)["total_count"]
    check(get_json(srv, tq, admin_key)["total_count"] == before, "a repeated count is stable")
    sim.control({"op": "add_devices", "tenant": c0["tenant_id"], "count": 3})
    ms.run("sync", "--full")
    after = get_json(srv, tq, admin_key)["total_count"]
    check(after == before + 3, "count right after a CLI sync added 3 devices (%d -> %d)" %
          (before, after))

    cache_checks(sim, ms, srv, admin_key, other_key, iid, c0["tenant_id"])
    check(srv.stop() == 0, "serve stops cleanly on SIGTERM")

    # --- the scheduler runs an incremental sync once the interval has passed ------------------
    ms2 = Memsync(sim)
    ms2.env["MEMSYNC_VALIDATE_SAMPLE"] = "1"
    t0 = int(time.time())
    ms2.add_integration("--no-sync", check=0)
    ms2.run("sync", "--full", env={"MEMSYNC_NOW": str(t0)}, check=0)
    ms2.env["MEMSYNC_NOW"] = str(t0 + 7 * 3600)  # past the default 6-hour interval
    srv2 = Serve(ms2)
    key2 = apikey(ms2, "read")
    deadline = time.time() + 60
    runs = []
    while time.time() < deadline:
        runs = get_json(srv2, "/api/v1/sync-runs", key2)["data"]
        if len(runs) >= 2 and runs[0]["status"] != "running":
            break
        time.sleep(0.3)
    check(len(runs) == 2 and runs[0]["kind"] == "incremental" and runs[0]["status"] == "ok",
          "a due integration gets its incremental sync (%s)" % [(r["kind"], r["status"])
                                                                for r in runs])
    time.sleep(6)  # another scheduler pass: the fresh run must not be repeated
    check(get_json(srv2, "/api/v1/sync-runs", key2)["total_count"] == 2,
          "an integration that just synced is not synced again")
    check(srv2.stop() == 0, "second serve stops cleanly")
    sim.stop()
    # harness.api_check raised on any answer that did not match; this says it ran at all.
    check(harness.API_CHECKED[0] > 200,
          "every API answer was checked against /openapi.json (%d)" % harness.API_CHECKED[0])
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
