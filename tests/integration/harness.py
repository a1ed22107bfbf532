"""Shared helpers for memsync's integration tests: start `memsync sim` on 127.0.0.1 port 0, run
the memsync binary in a scratch directory, and talk to the simulator like a Microsoft client.

Standard library only (Debian's python3), but for python3-jsonschema: every answer of a
`memsync serve` API (registered with serve_started) is checked against the server's own
/openapi.json (api_check). Every process started here is stopped at exit.
"""
import atexit
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

BIN = os.environ.get("MEMSYNC_BIN", "memsync")
FIXTURE_DIR = os.environ.get(
    "FIXTURE_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "microsoft"))

_procs = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


atexit.register(_cleanup)


# The fixed "now" of the simulated worlds the tests start (memsync sim --epoch).
SIM_EPOCH = "2026-06-01T00:00:00Z"


class Sim:
    """A running `memsync sim`; attributes env (dict of the env file) and base URLs."""

    def __init__(self, *args, workdir=None, epoch=SIM_EPOCH):
        self.dir = workdir or tempfile.mkdtemp(prefix="memsync-sim-")
        self.env_file = os.path.join(self.dir, "sim.env")
        if os.path.exists(self.env_file):
            os.unlink(self.env_file)
        self.log = open(os.path.join(self.dir, "sim.log"), "wb")
        cmd = [BIN, "sim", "--listen", "127.0.0.1:0", "--env-file", self.env_file] + list(args)
        # The tests' dates do not move with today (epoch=None: the simulator's own "now").
        if epoch is not None and "--epoch" not in args:
            cmd += ["--epoch", epoch]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        _procs.append(self.proc)
        deadline = time.time() + 30
        while not os.path.exists(self.env_file):
            if self.proc.poll() is not None:
                raise RuntimeError("sim exited: " + self.read_log())
            if time.time() > deadline:
                raise RuntimeError("sim did not start: " + self.read_log())
            time.sleep(0.05)
        self.env = parse_env_file(self.env_file)
        self.login = self.env["MEMSYNC_LOGIN_URL"]
        self.graph = self.env["MEMSYNC_GRAPH_URL"]
        self.pc = self.env["MEMSYNC_PARTNER_CENTER_URL"]
        u = urllib.parse.urlsplit(self.graph)
        self.root = "%s://%s" % (u.scheme, u.netloc)

    def read_log(self):
        self.log.flush()
        with open(os.path.join(self.dir, "sim.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()

    # -- talking to the simulator as a client --------------------------------------------------
    def token(self, tenant, client_id, secret, resource="https://graph.microsoft.com"):
        form = urllib.parse.urlencode({
            "grant_type": "client_credentials", "client_id": client_id,
            "client_secret": secret, "scope": resource + "/.default"}).encode()
        st, body, _ = http("POST", "%s/%s/oauth2/v2.0/token" % (self.login, tenant), form,
                           {"Content-Type": "application/x-www-form-urlencoded"})
        if st != 200:
            raise RuntimeError("token %s: %s" % (st, body))
        return json.loads(body)["access_token"]

    def sync_token(self, tenant):
        return self.token(tenant, self.env["MEMSYNC_SIM_SYNC_APP_ID"],
                          self.env["MEMSYNC_SIM_SYNC_APP_SECRET"])

    def graph_all(self, tenant, path):
        """Follows @odata.nextLink from {graph}/path and returns every item."""
        tok = self.sync_token(tenant)
        url = self.graph + path
        items = []
        while url:
            st, body, _ = http("GET", url, None, {"Authorization": "Bearer " + tok})
            if st != 200:
                raise RuntimeError("GET %s: %s %s" % (url, st, body[:300]))
            page = json.loads(body)
            items.extend(page["value"])
            url = page.get("@odata.nextLink")
        return items

    def customers(self):
        tok = self.token(self.env["MEMSYNC_SIM_PARTNER_TENANT_ID"],
                         self.env["MEMSYNC_SIM_PARTNER_APP_ID"],
                         self.env["MEMSYNC_SIM_PARTNER_APP_SECRET"],
                         "https://api.partnercenter.microsoft.com")
        url = self.pc + "/v1/customers?size=500"
        headers = {"Authorization": "Bearer " + tok}
        items = []
        while True:
            st, body, _ = http("GET", url, None, headers)
            if st != 200:
                raise RuntimeError("customers %s %s" % (st, body[:300]))
            page = json.loads(body)
            items.extend(page["items"])
            nxt = page.get("links", {}).get("next")
            if not nxt:
                return items
            url = self.pc + (nxt["uri"] if nxt["uri"].startswith("/v1") else "/v1" + nxt["uri"])
            headers = {"Authorization": "Bearer " + tok}
            for h in nxt.get("headers", []):
                headers[h["key"]] = h["value"]

    def world(self):
        st, body, _ = http("GET", self.root + "/_sim/world")
        assert st == 200, body
        return json.loads(body)

    def control(self, cmd):
        st, body, _ = http("POST", self.root + "/_sim/control", json.dumps(cmd).encode(),
                           {"Content-Type": "application/json"})
        if st not in (200, 201, 204):
            raise RuntimeError("control %s: %s %s" % (cmd, st, body))
        return json.loads(body) if body.strip() else None

    def stats(self):
        st, body, _ = http("GET", self.root + "/_sim/stats")
        assert st == 200, body
        return json.loads(body)


# The reconcile rules' tests retire a device at the first complete listing that lacks it; the
# retirement policy (after repeated absence, with a guard against mass retirement) has its own
# tests in test_real_retire.py.
RETIRE_AT_ONCE = {"MEMSYNC_RETIRE_AFTER_SYNCS": "1", "MEMSYNC_RETIRE_AFTER_HOURS": "0",
                  "MEMSYNC_RETIRE_GUARD_PCT": "0"}


def parse_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            if k.startswith("export "):
                k = k[7:]
            parts = shlex.split(v)
            env[k] = parts[0] if parts else ""
    return env


def http(method, url, body=None, headers=None, timeout=60):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            ans = r.status, r.read().decode("utf-8"), dict(r.headers)
    except urllib.error.HTTPError as e:
        ans = e.code, e.read().decode("utf-8", "replace"), dict(e.headers)
    api_check(method, url, *ans)
    return ans


# -- every API answer against /openapi.json -------------------------------------------------------
_api_bases = {}  # base URL of a `memsync serve` -> its OpenAPI document (fetched when first used)
API_CHECKED = [0]  # answers checked, for tests that want to see the check ran


def serve_started(base):
    """Registers a `memsync serve` at base (http://127.0.0.1:PORT): from now on every answer
    http() (or api_check's other callers) get from its API is checked against its document."""
    _api_bases.setdefault(base.rstrip("/"), None)


def _api_doc(base):
    if _api_bases.get(base) is None:
        with urllib.request.urlopen(base + "/openapi.json", timeout=60) as r:
            _api_bases[base] = json.loads(r.read().decode("utf-8"))
    return _api_bases[base]


def _is_api_path(path):
    return path.startswith("/api/") or path in ("/healthz", "/metrics", "/openapi.json")


def _template_of(doc, path):
    segs = [s for s in path.split("/") if s]
    for tpl in doc["paths"]:
        t = [s for s in tpl.split("/") if s]
        if len(t) == len(segs) and all(a == b or (a.startswith("{") and a.endswith("}"))
                                       for a, b in zip(t, segs)):
            return tpl
    return None


def _deref(doc, obj):
    while isinstance(obj, dict) and "$ref" in obj and len(obj) == 1:
        node = doc
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


_validators = {}  # id of an answer's schema (its document stays loaded) -> its validator


def _validate(doc, schema, value, what):
    try:
        import jsonschema
    except ImportError:
        raise AssertionError("the API checks need python3-jsonschema (scripts/deps.sh test)")
    v = _validators.get(id(schema))
    if v is None:
        root = dict(schema)
        root["components"] = doc["components"]  # so "#/components/..." resolves from here
        v = _validators[id(schema)] = jsonschema.Draft202012Validator(root)
    errors = sorted(v.iter_errors(value), key=str)
    if errors:
        e = errors[0]
        raise AssertionError("%s does not match /openapi.json: %s at %s" % (
            what, e.message[:400], "/".join(str(p) for p in e.absolute_path)))


def api_check(method, url, status, body, headers):
    """Checks one answer of a registered `memsync serve` against its /openapi.json: the status is
    one the operation documents (or its "default"), the content type one the answer documents,
    and a JSON body matches the answer's schema ($refs resolved). AssertionError when not."""
    u = urllib.parse.urlsplit(url)
    base = "%s://%s" % (u.scheme, u.netloc)
    if base not in _api_bases or not _is_api_path(u.path) or u.path == "/openapi.json":
        return
    doc = _api_doc(base)
    what = "%s %s -> %s" % (method, u.path, status)
    hdrs = headers.items() if isinstance(headers, dict) else headers
    ctype = next((v for k, v in hdrs if k.lower() == "content-type"), "")
    ctype = ctype.split(";")[0].strip()
    tpl = _template_of(doc, u.path)
    op = doc["paths"][tpl].get("get" if method == "HEAD" else method.lower()) if tpl else None
    if op is None:
        # No such route or not this method: only an error answer may come back.
        if status < 400:
            raise AssertionError("%s: the document has no such operation" % what)
        resp = _deref(doc, {"$ref": "#/components/responses/Error"})
    else:
        rs = op["responses"]
        resp = rs.get(str(status)) or rs.get("%dXX" % (status // 100)) or rs.get("default")
        if resp is None or (status < 400 and str(status) not in rs):
            raise AssertionError("%s: status not documented (has %s)" % (what, sorted(rs)))
        resp = _deref(doc, resp)
    if method == "HEAD" or status == 304 or body == "":
        API_CHECKED[0] += 1
        return
    content = resp.get("content", {})
    if ctype not in content:
        raise AssertionError("%s: content type %r not documented (has %s)" % (
            what, ctype, sorted(content)))
    if ctype == "application/json":
        try:
            value = json.loads(body)
        except ValueError:
            raise AssertionError("%s: the body is not JSON: %r" % (what, body[:200]))
        _validate(doc, content[ctype]["schema"], value, what)
    API_CHECKED[0] += 1


class Memsync:
    """Runs the memsync binary in its own directory with the simulator's settings."""

    def __init__(self, sim=None, workdir=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="memsync-")
        self.db = os.path.join(self.dir, "memsync.db")
        pg = os.environ.get("MEMSYNC_TEST_PG_URL")
        if pg:
            # A fresh database per instance on the test cluster (scripts/pg-test-cluster.sh).
            import uuid
            name = "t" + uuid.uuid4().hex[:16]
            subprocess.run(["psql", "-q", pg, "-c", "CREATE DATABASE " + name], check=True,
                           capture_output=True)
            self.db = pg.replace("/postgres?", "/%s?" % name, 1)
        self.env = dict(os.environ)
        self.env.pop("MEMSYNC_PARTNER_APP_SECRET", None)
        self.env.pop("MEMSYNC_SYNC_APP_SECRET", None)
        self.env["MEMSYNC_DB"] = self.db
        self.env["MEMSYNC_NO_PROGRESS"] = "1"
        self.sim = sim
        if sim is not None:
            for k in ("MEMSYNC_LOGIN_URL", "MEMSYNC_GRAPH_URL", "MEMSYNC_PARTNER_CENTER_URL",
                      "MEMSYNC_CA_FILE"):
                if k in sim.env:
                    self.env[k] = sim.env[k]

    def run(self, *args, stdin=None, check=None, timeout=600, env=None):
        e = dict(self.env)
        if env:
            e.update(env)
        p = subprocess.run([BIN] + list(args), cwd=self.dir, env=e, input=stdin,
                           capture_output=True, timeout=timeout)
        out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        if check is not None and p.returncode != check:
            raise AssertionError("memsync %s: exit %d (wanted %d)\nstdout:%s\nstderr:%s" % (
                " ".join(args), p.returncode, check, out[-3000:], err[-3000:]))
        return p.returncode, out, err

    def sql(self, query):
        """Rows of a read-only query against memsync's database, SQLite or PostgreSQL."""
        if self.db.startswith("postgresql://"):
            p = subprocess.run(["psql", "-At", "-F", "\t", self.db, "-c", query],
                               capture_output=True, check=True)
            rows = []
            for line in p.stdout.decode().splitlines():
                rows.append(tuple(None if v == "" else int(v) if v.lstrip("-").isdigit() else v
                                  for v in line.split("\t")))
            return rows
        import sqlite3
        con = sqlite3.connect(self.db)
        try:
            return con.execute(query).fetchall()
        finally:
            con.close()

    # Titles whose stored device_count differs from their active installs on active devices
    # (the reconcile keeps the count as it goes; nothing may make it drift). The installs are
    # counted per title first: software_install has no index by title, and joining it to each
    # title costs seconds per check on a few thousand installs.
    TITLE_COUNT_DRIFT = (
        "SELECT t.id, t.device_count, coalesce(n.active, 0) FROM software_title t "
        "LEFT JOIN (SELECT i.title_id, count(*) AS active FROM software_install i "
        "JOIN hardware_asset h ON h.id = i.asset_id AND h.retired_at IS NULL "
        "WHERE i.removed_at IS NULL GROUP BY i.title_id) n ON n.title_id = t.id "
        "WHERE t.device_count <> coalesce(n.active, 0)")

    def title_count_drift(self):
        """(title id, stored, actual) for every title whose device_count is wrong; [] before
        the database has its tables."""
        if self.db.startswith("postgresql://"):
            exists = self.sql("SELECT to_regclass('software_title') IS NOT NULL")[0][0] == "t"
        else:
            exists = os.path.exists(self.db) and self.sql(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'software_title'")[0][0] == 1
        return self.sql(self.TITLE_COUNT_DRIFT) if exists else []

    def write_secrets(self):
        s = self.sim.env
        pf, sf = os.path.join(self.dir, "partner.secret"), os.path.join(self.dir, "sync.secret")
        with open(pf, "w") as f:
            f.write(s["MEMSYNC_SIM_PARTNER_APP_SECRET"] + "\n")
        with open(sf, "w") as f:
            f.write(s["MEMSYNC_SIM_SYNC_APP_SECRET"] + "\n")
        os.chmod(pf, 0o600)
        os.chmod(sf, 0o600)
        return pf, sf

    def add_integration(self, *extra, check=0):
        pf, sf = self.write_secrets()
        s = self.sim.env
        return self.run("integration", "add",
                        "--partner-tenant-id", s["MEMSYNC_SIM_PARTNER_TENANT_ID"],
                        "--partner-app-id", s["MEMSYNC_SIM_PARTNER_APP_ID"],
                        "--partner-app-secret-file", pf,
                        "--sync-app-id", s["MEMSYNC_SIM_SYNC_APP_ID"],
                        "--sync-app-secret-file", sf, *extra, check=check)

    def json(self, *args):
        _, out, _ = self.run(*args, check=0)
        return json.loads(out)

    def jsonl(self, *args):
        _, out, _ = self.run(*args, check=0)
        return [json.loads(l) for l in out.splitlines() if l.strip()]

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# -- the mapping rules of docs/API.md "Fields", written independently of the C code ---------------------
PLACEHOLDER_SERIALS = {
    "", "to be filled by o.e.m.", "system serial number", "default string", "0", "0123456789",
    "123456789", "none", "n/a", "not specified", "not available", "unknown",
}


def expect_serial(raw):
    if raw is None:
        return None
    s = raw.strip()
    if s.lower() in PLACEHOLDER_SERIALS or (s and set(s) <= {"0"}):
        return None
    return s


def expect_str(v):
    return v if v not in ("", None) else None


def expect_date(v):
    if v is None or v.startswith("0001-01-01"):
        return None
    # Graph sends "2024-04-13T20:23:18Z" or with fractions/offsets; memsync normalises to Z.
    import datetime
    s = v.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        frac = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        s = head + rest[i:]
    dt = datetime.datetime.fromisoformat(s).astimezone(datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def expect_ownership(v):
    return v if v in ("company", "personal") else "unknown"
