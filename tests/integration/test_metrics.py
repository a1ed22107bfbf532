"""serve's /metrics as an operator alerts on it, read with a strict exposition-format parser.

After a sync through the API with one failing tenant (no consent, a name that needs label
escaping): request counters by route template (never a raw id), method and status class;
memsync_build_info; per client memsync_client_last_success_timestamp_seconds and
memsync_client_up (0 for the failing tenant); memsync_secret_expiry_timestamp_seconds; the sync
duration histogram by kind. The parser checks the line grammar, TYPE before samples, one block
per family, label escaping, histogram buckets cumulative with +Inf equal to _count, and _sum.
"""
import math
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_api import Serve, api, apikey, get_json, wait_run  # noqa: E402

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ValueError("bad sample value %r" % s)
    return float(s)


def parse_labels(s, pos):
    """s[pos] is '{'. Returns (dict, position after '}')."""
    labels = {}
    pos += 1
    while True:
        if s[pos] == "}":
            return labels, pos + 1
        m = re.compile(LABEL).match(s, pos)
        if not m:
            raise ValueError("bad label name at %r" % s[pos:])
        name = m.group(0)
        pos = m.end()
        if s[pos:pos + 2] != '="':
            raise ValueError("label %s without =\"" % name)
        pos += 2
        val = []
        while True:
            c = s[pos]
            if c == "\\":
                nxt = s[pos + 1]
                if nxt not in '\\"n':
                    raise ValueError("bad escape \\%s" % nxt)
                val.append("\n" if nxt == "n" else nxt)
                pos += 2
            elif c == '"':
                pos += 1
                break
            elif c == "\n":
                raise ValueError("raw newline in a label value")
            else:
                val.append(c)
                pos += 1
        if name in labels:
            raise ValueError("label %s twice" % name)
        labels[name] = "".join(val)
        if s[pos] == ",":
            pos += 1
        elif s[pos] != "}":
            raise ValueError("expected , or } at %r" % s[pos:])


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            return base
    return name


def parse(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, value)]}}; raises on any
    violation of the text exposition format (version 0.0.4)."""
    if not text.endswith("\n"):
        raise ValueError("the exposition does not end with a newline")
    fams, types, done, current = {}, {}, set(), None

    def enter(fam):
        nonlocal current
        if fam != current:
            if fam in done:
                raise ValueError("family %s is split into two blocks" % fam)
            if current is not None:
                done.add(current)
            current = fam
        return fams.setdefault(fam, {"type": None, "help": None, "samples": []})

    for line in text[:-1].split("\n"):
        if line == "":
            raise ValueError("empty line")
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (%s) (.*)" % NAME, line)
            if not m:
                continue  # a plain comment
            kind, name, rest = m.groups()
            f = enter(name)
            if kind == "TYPE":
                if f["type"] is not None or f["samples"]:
                    raise ValueError("TYPE of %s after its samples or twice" % name)
                if rest not in TYPES:
                    raise ValueError("unknown type %s" % rest)
                f["type"] = types[name] = rest
            else:
                if f["help"] is not None:
                    raise ValueError("HELP of %s twice" % name)
                f["help"] = rest
            continue
        m = re.compile(NAME).match(line)
        if not m:
            raise ValueError("bad sample line %r" % line)
        name, pos, labels = m.group(0), m.end(), {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = parse_labels(line, pos)
        if pos >= len(line) or line[pos] != " ":
            raise ValueError("no value in %r" % line)
        parts = line[pos + 1:].split(" ")
        if len(parts) not in (1, 2):
            raise ValueError("bad value in %r" % line)
        value = parse_value(parts[0])
        fam = family_of(name, types)
        f = enter(fam)
        if f["type"] is None:
            raise ValueError("sample of %s before its TYPE" % fam)
        key = (name, tuple(sorted(labels.items())))
        if any((n, tuple(sorted(lb.items()))) == key for n, lb, _ in f["samples"]):
            raise ValueError("duplicate sample %r" % (key,))
        f["samples"].append((name, labels, value))
    for fam, f in fams.items():
        if f["type"] == "histogram":
            check_histogram(fam, f["samples"])
        if f["type"] == "counter" and not fam.endswith("_total"):
            raise ValueError("counter %s does not end in _total" % fam)
    return fams


def check_histogram(fam, samples):
    series = {}
    for name, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if name == fam + "_bucket":
            if "le" not in labels:
                raise ValueError("bucket of %s without le" % fam)
            s["buckets"].append((parse_value(labels["le"]), value))
        elif name == fam + "_sum":
            s["sum"] = value
        elif name == fam + "_count":
            s["count"] = value
        else:
            raise ValueError("%s in histogram %s" % (name, fam))
    for rest, s in series.items():
        bounds = [b for b, _ in s["buckets"]]
        counts = [c for _, c in s["buckets"]]
        if not bounds or bounds[-1] != math.inf:
            raise ValueError("%s%s has no +Inf bucket last" % (fam, rest))
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError("%s%s buckets out of order" % (fam, rest))
        if counts != sorted(counts):
            raise ValueError("%s%s buckets are not cumulative" % (fam, rest))
        if s["count"] is None or s["sum"] is None or s["count"] != counts[-1]:
            raise ValueError("%s%s: _count must equal the +Inf bucket, _sum present" % (fam, rest))


def samples(fams, name, **labels):
    fam = family_of(name, {f: v["type"] for f, v in fams.items()})
    return [(lb, v) for n, lb, v in fams.get(fam, {"samples": []})["samples"]
            if n == name and all(lb.get(k) == w for k, w in labels.items())]


class ParserSelfTest(unittest.TestCase):
    """The parser refuses what Prometheus would refuse."""

    def test_refuses(self):
        ok = ("# HELP a_total x\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 1\n"
              "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\n"
              "h_count 2\n")
        f = parse(ok)
        self.assertEqual(f["a_total"]["samples"][0][1]["x"], 'q"\\\n')
        bad = [
            "a 1\n",                                                      # no TYPE
            "# TYPE a gauge\na 1",                                        # no final newline
            "# TYPE a gauge\na{x=\"\\t\"} 1\n",                           # bad escape
            "# TYPE a gauge\na{x=\"1} 1\n",                               # unterminated
            "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n",            # split family
            "# TYPE a gauge\na 1\na 1\n",                                 # duplicate
            "# TYPE a counter\na 1\n",                                    # counter w/o _total
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"
            "h_count 1\n",                                                # not cumulative
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  # no +Inf
            "# TYPE a gauge\na one\n",                                    # bad value
        ]
        for text in bad:
            with self.assertRaises((ValueError, IndexError), msg=text):
                parse(text)


class Metrics(unittest.TestCase):
    def setUp(self):
        self.sim = harness.Sim("--tenants", "2", "--devices", "6", "--apps-per-device", "1",
                               "--seed", "21")
        self.ms = harness.Memsync(self.sim)

    def tearDown(self):
        self.sim.stop()
        self.ms.cleanup()

    def test_metrics_after_a_sync(self):
        tenants = [t["id"] for t in self.sim.world()["tenants"]]
        bad_name = 'Quote "Q" \\ Back'
        bad = self.sim.control({"op": "add_tenant", "name": bad_name, "devices": 3,
                                "consented": False})["results"][0]["tenant"]
        pf, sf = self.ms.write_secrets()
        s = self.sim.env
        self.ms.run("integration", "add", "--partner-tenant-id",
                    s["MEMSYNC_SIM_PARTNER_TENANT_ID"], "--partner-app-id",
                    s["MEMSYNC_SIM_PARTNER_APP_ID"], "--partner-app-secret-file", pf,
                    "--sync-app-id", s["MEMSYNC_SIM_SYNC_APP_ID"], "--sync-app-secret-file", sf,
                    check=None)
        _, version, _ = self.ms.run("--version", check=0)
        srv = Serve(self.ms)
        try:
            key = apikey(self.ms, "admin")
            iid = get_json(srv, "/api/v1/integrations", key)["data"][0]["id"]
            earlier = get_json(srv, "/api/v1/sync-runs?page_size=1", key)["data"]
            st, _, text, _ = api(srv, "POST", "/api/v1/integrations/%d/sync" % iid, key)
            self.assertEqual(st, 202, text)
            # This run, not the one before it: the clients below must be read after it.
            run = wait_run(srv, key, iid, after=earlier[0]["id"] if earlier else 0)
            st, _, _, _ = api(srv, "GET", "/api/v1/assets/hardware/987654", key)
            self.assertEqual(st, 404)
            clients = {c["tenant_id"]: c for c in get_json(srv, "/api/v1/clients", key)["data"]}
            integ = get_json(srv, "/api/v1/integrations/%d" % iid, key)["data"]
            # The run's row is finished a moment before the scheduler counts it.
            deadline = time.time() + 30
            while True:
                st, _, text, hdrs = api(srv, "GET", "/metrics", key)
                if ('memsync_sync_duration_seconds_count{kind="full"} 1' in text or
                        time.time() > deadline):
                    break
                time.sleep(0.1)
        finally:
            srv.stop()
        self.assertEqual(st, 200)
        self.assertTrue(any(k.lower() == "content-type" and v.startswith("text/plain")
                            for k, v in hdrs))
        fams = parse(text)
        for fam, f in fams.items():
            self.assertTrue(fam.startswith("memsync_"), fam)
            self.assertIsNotNone(f["help"], "HELP of " + fam)

        # Build info.
        self.assertEqual(samples(fams, "memsync_build_info"),
                         [({"version": version.split()[-1]}, 1.0)])

        # Requests by route template, method and status class; no raw ids.
        reqs = samples(fams, "memsync_http_requests_total")
        for lb, _ in reqs:
            self.assertEqual(set(lb), {"route", "method", "code"})
            self.assertRegex(lb["code"], r"^[1-5]xx$")
            self.assertNotRegex(lb["route"], r"/\d+(/|$)", "a raw id in a route label")

        def count(route, method, code):
            return sum(v for lb, v in reqs if lb == {"route": route, "method": method,
                                                     "code": code})
        self.assertEqual(count("/api/v1/integrations/{id}/sync", "POST", "2xx"), 1)
        self.assertGreaterEqual(count("/api/v1/sync-runs/{id}", "GET", "2xx"), 1)
        self.assertEqual(count("/api/v1/assets/hardware/{id}", "GET", "4xx"), 1)
        self.assertEqual(count("/api/v1/clients", "GET", "2xx"), 1)

        # Per client: last success and up, the failing tenant down, its name escaped.
        self.assertEqual(clients[bad]["status"], "error")
        up = {lb["tenant_id"]: (lb, v) for lb, v in samples(fams, "memsync_client_up")}
        self.assertEqual(set(up), set(tenants) | {bad})
        self.assertEqual(up[bad][1], 0)
        self.assertEqual(up[bad][0]["client"], bad_name)
        self.assertEqual(up[bad][0]["integration_id"], str(iid))
        last = {lb["tenant_id"]: v for lb, v in
                samples(fams, "memsync_client_last_success_timestamp_seconds")}
        self.assertNotIn(bad, last, "a tenant that never synced has no last success")
        for t in tenants:
            self.assertEqual(up[t][1], 1)
            self.assertEqual(clients[t]["status"], "ok")
            self.assertAlmostEqual(last[t], harness_ts(clients[t]["last_sync_at"]), delta=1)

        # Key expiry as a timestamp per integration and app.
        exp = {lb["app"]: v for lb, v in
               samples(fams, "memsync_secret_expiry_timestamp_seconds",
                       integration_id=str(iid))}
        for app in ("partner", "sync"):
            want = (integ.get(app + "_app_secret") or {}).get("expires_at")
            if want:
                self.assertAlmostEqual(exp[app], harness_ts(want), delta=1)
            else:
                self.assertNotIn(app, exp)

        # The sync duration histogram: one full run, none incremental.
        self.assertNotEqual(run["status"], "running")
        self.assertEqual(samples(fams, "memsync_sync_duration_seconds_count", kind="full"),
                         [({"kind": "full"}, 1.0)])
        self.assertEqual(
            samples(fams, "memsync_sync_duration_seconds_count", kind="incremental"),
            [({"kind": "incremental"}, 0.0)])
        inf = samples(fams, "memsync_sync_duration_seconds_bucket", kind="full", le="+Inf")
        self.assertEqual(inf[0][1], 1.0)
        self.assertEqual(fams["memsync_sync_duration_seconds"]["type"], "histogram")


def harness_ts(s):
    """RFC 3339 UTC ("2026-12-07T16:50:00Z") to epoch seconds."""
    import calendar
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))


if __name__ == "__main__":
    unittest.main()
