"""Signed webhook deliveries (`memsync webhook test`) against a small HTTP receiver on
127.0.0.1 that checks the signature with the recipe of docs/API.md "Webhooks": the signature
verifies, a failing answer is reported, redirects are not followed, HTTPS targets have their
certificate checked, and targets are refused before anything is sent when they are plain http to
a host not allowed or resolve to a loopback address (by address or by name) without the tests'
permission. Through `memsync serve` (Subscriptions): signed deliveries from syncs over HTTPS
with a throwaway CA, retried and kept across a restart; a slow receiver beside a fast one;
secret.expiring once per level; the pause after a period of failed tries and the resume."""
import hashlib
import hmac
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SECRET = "whsec-test-0123456789abcdef0123456789"


def verify(secret, header, body, tolerance=300):
    """The recipe of docs/API.md "Webhooks"."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = int(parts["t"])
    if abs(time.time() - t) > tolerance:
        return False
    mac = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts["v1"])


def write_sql(ms, statement):
    """One write against memsync's database, SQLite or PostgreSQL (tests only)."""
    import subprocess
    if ms.db.startswith("postgresql://"):
        subprocess.run(["psql", "-q", ms.db, "-c", statement], check=True, capture_output=True)
        return
    import sqlite3
    con = sqlite3.connect(ms.db)
    try:
        con.execute(statement)
        con.commit()
    finally:
        con.close()


def make_tls(folder):
    """A throwaway CA and a certificate for 127.0.0.1 it signed (openssl CLI): (ca, cert, key)."""
    ca, ca_key = os.path.join(folder, "ca.pem"), os.path.join(folder, "ca.key")
    cert, key = os.path.join(folder, "rx.pem"), os.path.join(folder, "rx.key")
    csr, ext = os.path.join(folder, "rx.csr"), os.path.join(folder, "rx.ext")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subprocess.run(["openssl", "req", "-x509"] + ec + [
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=memsync test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign"], check=True, capture_output=True)
    subprocess.run(["openssl", "req"] + ec + ["-keyout", key, "-out", csr,
                                              "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext],
                   check=True, capture_output=True)
    return ca, cert, key


class Receiver:
    def __init__(self, tls=None, delay=0):
        """tls: (cert, key) to answer HTTPS; delay: seconds each answer waits."""
        self.got = []
        self.answers = []  # (status, body, headers) to give, in order; then 200
        self.tls = tls
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                st, text, hdrs = rec.answers.pop(0) if rec.answers else (200, b"ok", {})
                got = {"path": self.path, "headers": dict(self.headers), "body": body,
                       "status": st, "at": time.monotonic(),
                       "valid": verify(SECRET, self.headers.get("Memsync-Signature", ""), body)}
                rec.got.append(got)
                if delay:
                    time.sleep(delay)
                got["answered"] = time.monotonic()
                self.send_response(st)
                for k, v in hdrs.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, host="127.0.0.1", path="/hook"):
        return "%s://%s:%d%s" % ("https" if self.tls else "http", host, self.port, path)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class Webhooks(unittest.TestCase):
    def setUp(self):
        self.ms = harness.Memsync()
        self.rx = Receiver()
        self.secret_file = os.path.join(self.ms.dir, "hook.secret")
        with open(self.secret_file, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(self.secret_file, 0o600)
        self.allowed = {"MEMSYNC_WEBHOOK_ALLOW_LOOPBACK": "1",
                        "MEMSYNC_WEBHOOK_HTTP_HOSTS": "127.0.0.1, localhost"}

    def tearDown(self):
        self.rx.stop()
        self.ms.cleanup()

    def send(self, url, env=None, event="test"):
        return self.ms.run("webhook", "test", url, "--secret-file", self.secret_file,
                           "--event", event, env=env)

    def test_signed_delivery(self):
        rc, out, err = self.send(self.rx.url(), env=self.allowed, event="asset.created")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^status=200 latency_ms=\d+\n$")
        self.assertEqual(len(self.rx.got), 1)
        got = self.rx.got[0]
        self.assertTrue(got["valid"], got)
        self.assertEqual(got["headers"]["Memsync-Event"], "asset.created")
        self.assertEqual(got["headers"]["Content-Type"], "application/json")
        body = json.loads(got["body"])
        self.assertEqual(body["event"], "asset.created")
        self.assertEqual(got["headers"]["Memsync-Delivery"], body["id"])
        self.assertNotIn(SECRET, out + err)
        # The receiver's check fails for another secret or a changed body.
        sig = got["headers"]["Memsync-Signature"]
        self.assertFalse(verify("another", sig, got["body"]))
        self.assertFalse(verify(SECRET, sig, got["body"] + b" "))

    def test_failures_and_redirects(self):
        self.rx.answers = [(500, b"boom", {}),
                           (302, b"", {"Location": self.rx.url(path="/elsewhere")}),
                           (200, b"x" * (1 << 20), {})]
        rc, out, _ = self.send(self.rx.url(), env=self.allowed)
        self.assertEqual((rc, out.split()[0]), (1, "status=500"))
        rc, out, _ = self.send(self.rx.url(), env=self.allowed)
        self.assertEqual((rc, out.split()[0]), (1, "status=302"))
        self.assertEqual([g["path"] for g in self.rx.got], ["/hook", "/hook"],
                         "the redirect is not followed")
        rc, out, err = self.send(self.rx.url(), env=self.allowed)  # a large answer is drained
        self.assertEqual((rc, out.split()[0]), (0, "status=200"), err)

    def test_https_checks_the_certificate(self):
        ca, cert, key = make_tls(self.ms.dir)
        rx = Receiver(tls=(cert, key))
        try:
            loop = {"MEMSYNC_WEBHOOK_ALLOW_LOOPBACK": "1"}
            # Without the CA the receiver's certificate is not trusted: nothing is delivered.
            rc, out, err = self.send(rx.url(), env=dict(loop, MEMSYNC_CA_FILE=""))
            self.assertNotEqual(rc, 0)
            self.assertIn("certificate", err.lower())
            self.assertEqual(rx.got, [])
            rc, out, err = self.send(rx.url(), env=dict(loop, MEMSYNC_CA_FILE=ca))
            self.assertEqual(rc, 0, err)
            self.assertTrue(rx.got[0]["valid"])
        finally:
            rx.stop()

    def test_refusals(self):
        # Plain http to a host not allowed.
        rc, _, err = self.send(self.rx.url(), env={"MEMSYNC_WEBHOOK_ALLOW_LOOPBACK": "1"})
        self.assertEqual(rc, 2)
        self.assertIn("https", err)
        # http allowed for the host, but loopback is not: refused by address, by IP or by name
        # (the name's resolved address is what is checked).
        hosts = {"MEMSYNC_WEBHOOK_HTTP_HOSTS": "127.0.0.1,localhost"}
        for host in ("127.0.0.1", "localhost"):
            rc, _, err = self.send(self.rx.url(host=host), env=hosts)
            self.assertEqual(rc, 2, err)
            self.assertIn("address", err)
        # Private ranges are refused without the setting, at connect time (nothing listens
        # there; the refusal comes before any connection).
        rc, _, err = self.send("https://10.255.255.1/hook")
        self.assertEqual(rc, 2, err)
        rc, _, err = self.send("https://[::1]:%d/hook" % self.rx.port)
        self.assertEqual(rc, 2, err)
        rc, _, err = self.send("https://user:pw@example.com/hook")
        self.assertEqual(rc, 2, err)
        self.assertEqual(self.rx.got, [], "nothing reached the receiver")


class Subscriptions(unittest.TestCase):
    """Deliveries from syncs against the simulator through `memsync serve`'s webhook thread."""

    def setUp(self):
        from test_api import Serve, api, apikey
        self.Serve, self.api = Serve, api
        self.sim = harness.Sim("--tenants", "2", "--devices", "4", "--seed", "31",
                               "--apps-per-device", "1")
        self.ms = harness.Memsync(self.sim)
        self.ms.env.update(harness.RETIRE_AT_ONCE)
        self.ms.env.update({"MEMSYNC_WEBHOOK_ALLOW_LOOPBACK": "1",
                            "MEMSYNC_WEBHOOK_HTTP_HOSTS": "127.0.0.1",
                            "MEMSYNC_WEBHOOK_BACKOFF_S": "1"})
        self.ms.add_integration()
        self.key = apikey(self.ms, "admin")
        self.rx = Receiver()
        self.srv = None
        self.tenants = [t["id"] for t in self.sim.world()["tenants"]]

    def tearDown(self):
        if self.srv:
            self.srv.stop()
            self.srv.out.close()
            self.srv.err.close()
        self.rx.stop()
        self.sim.stop()
        self.ms.cleanup()

    def subscribe(self, events):
        st, js, text, _ = self.api(self.srv, "POST", "/api/v1/webhooks", self.key,
                                   {"url": self.rx.url(), "events": events})
        self.assertEqual(st, 201, text)
        return js["data"]

    def wait(self, cond, what, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.2)
        self.fail("timed out waiting for " + what + ": " + repr(
            [(g["headers"].get("Memsync-Event"), g["valid"]) for g in self.rx.got]))

    def delivered(self):
        """Successful deliveries by delivery id (each at most once)."""
        ok = {}
        for g in self.rx.got:
            if g.get("status") == 200:
                did = g["headers"]["Memsync-Delivery"]
                self.assertNotIn(did, ok, "delivered twice")
                ok[did] = g
        return ok

    def test_signed_retried_and_kept_across_a_restart(self):
        # Over HTTPS with certificate checks on: the receiver's certificate is signed by a CA
        # made here, which memsync trusts through MEMSYNC_CA_FILE; no plain http host allowed.
        ca, cert, key = make_tls(self.ms.dir)
        self.rx.stop()
        self.rx = Receiver(tls=(cert, key))
        self.ms.env["MEMSYNC_CA_FILE"] = ca
        del self.ms.env["MEMSYNC_WEBHOOK_HTTP_HOSTS"]
        self.srv = self.Serve(self.ms)
        hook = self.subscribe(["asset.created", "asset.retired", "client.failed",
                               "sync.finished"])
        self.assertTrue(hook["url"].startswith("https://"))
        secret = hook["secret"]
        self.assertTrue(secret.startswith("whsec_"))
        st, js, _, _ = self.api(self.srv, "GET", "/api/v1/webhooks", self.key)
        self.assertNotIn(secret, json.dumps(js), "the secret is shown once")
        self.assertEqual(js["data"][0]["events"], ["asset.created", "asset.retired",
                                                   "client.failed", "sync.finished"])
        # A key rotation re-seals the subscription's secret: deliveries stay signed with it.
        self.ms.run("key", "rotate", check=0)
        global SECRET
        old, SECRET = SECRET, secret
        try:
            # The receiver refuses the first two deliveries with 500.
            self.rx.answers = [(500, b"no", {}), (500, b"no", {})]
            res = self.sim.control([{"op": "remove_devices", "tenant": self.tenants[0],
                                     "last": 1},
                                    {"op": "add_devices", "tenant": self.tenants[0], "count": 2},
                                    {"op": "revoke_consent", "tenant": self.tenants[1]}])
            self.ms.run("sync", "--full")
            # A restart once the first refusal came: nothing queued is lost.
            self.wait(lambda: len(self.rx.got) >= 1, "a first delivery")
            self.srv.stop()
            self.srv.out.close()
            self.srv.err.close()
            self.srv = self.Serve(self.ms, name="serve2")
            self.wait(lambda: len([g for g in self.rx.got if g["status"] == 200]) >= 5,
                      "five deliveries")
            time.sleep(1.5)
            ok = self.delivered()
            self.assertTrue(all(g["valid"] for g in self.rx.got), "every delivery is signed")
            events = sorted(g["headers"]["Memsync-Event"] for g in ok.values())
            self.assertEqual(events, ["asset.created", "asset.created", "asset.retired",
                                      "client.failed", "sync.finished"])
            bodies = {g["headers"]["Memsync-Event"]: json.loads(g["body"]) for g in ok.values()}
            self.assertEqual(bodies["client.failed"]["data"]["client"]["tenant_id"],
                             self.tenants[1])
            self.assertEqual(bodies["asset.retired"]["data"]["asset"]["intune_device_id"],
                             res["results"][0]["removed"][0])
            self.assertEqual(bodies["sync.finished"]["data"]["status"], "partial")
            self.assertEqual(len(self.rx.got), 7, "two refusals, five successes")
            st, js, _, _ = self.api(self.srv, "GET",
                                    "/api/v1/webhooks/%d/deliveries" % hook["id"], self.key)
            self.assertEqual(st, 200)
            log = js["data"]
            self.assertEqual(len(log), 5)
            self.assertEqual({d["state"] for d in log}, {"delivered"})
            self.assertEqual(sum(d["attempts"] for d in log), 7)
            self.assertTrue(all(d["response_status"] == 200 and d["latency_ms"] >= 0
                                for d in log))
        finally:
            SECRET = old

    def test_a_slow_target_does_not_hold_the_others(self):
        slow = Receiver(delay=5)
        try:
            self.srv = self.Serve(self.ms)
            # The slow one is subscribed first: its delivery is queued first.
            st, js, text, _ = self.api(self.srv, "POST", "/api/v1/webhooks", self.key,
                                       {"url": slow.url(), "events": ["asset.created"]})
            self.assertEqual(st, 201, text)
            self.subscribe(["asset.created"])
            self.sim.control({"op": "add_devices", "tenant": self.tenants[0], "count": 1})
            self.ms.run("sync", "--full")
            self.wait(lambda: len(self.rx.got) == 1 and len(slow.got) == 1
                      and "answered" in slow.got[0], "both deliveries")
            self.assertLess(self.rx.got[0]["at"], slow.got[0]["answered"],
                            "the fast target was sent its delivery while the slow one waited")
            # The slow answer is recorded too.
            self.wait(lambda: self.ms.sql("SELECT count(*) FROM webhook_delivery WHERE state = "
                                          "'delivered'")[0][0] == 2, "both recorded")
        finally:
            slow.stop()

    def test_secret_expiring(self):
        from datetime import datetime, timedelta, timezone
        self.srv = self.Serve(self.ms)
        hook = self.subscribe(["secret.expiring"])
        secret = hook["secret"]

        def expire_in(days):
            at = datetime.now(timezone.utc) + timedelta(days=days, hours=1)
            self.sim.control({"op": "expire_secret", "app": "sync",
                              "expires": at.strftime("%Y-%m-%dT%H:%M:%SZ")})
            self.ms.run("sync")  # reads the secret's expiry from Microsoft
            return at

        def events():
            return [json.loads(g["body"]) for g in self.rx.got if g["status"] == 200]
        global SECRET
        old, SECRET = SECRET, secret
        try:
            time.sleep(1.5)
            self.assertEqual(self.rx.got, [], "two years left: nothing to say")
            at = expire_in(10)
            self.wait(lambda: len(self.rx.got) >= 1, "secret.expiring")
            body = events()[0]
            self.assertEqual(body["event"], "secret.expiring")
            self.assertEqual(body["data"]["integration_id"], 1)
            self.assertEqual(body["data"]["secret"], "sync")
            self.assertEqual(body["data"]["level"], "warn_14")
            self.assertEqual(body["data"]["days_left"], 10)
            self.assertEqual(body["data"]["expires_at"], at.strftime("%Y-%m-%dT%H:%M:%SZ"))
            self.assertIn("rotate-secret 1 --sync", body["data"]["message"])
            self.assertTrue(self.rx.got[0]["valid"])
            raw = b"".join(g["body"] for g in self.rx.got).decode()
            for name in ("MEMSYNC_SIM_SYNC_APP_SECRET", "MEMSYNC_SIM_PARTNER_APP_SECRET"):
                self.assertNotIn(self.sim.env[name], raw, "never the secret")
            # Once per level: more syncs and a restart say nothing more.
            self.ms.run("sync")
            self.srv.stop()
            self.srv.out.close()
            self.srv.err.close()
            self.srv = self.Serve(self.ms, name="serve2")
            time.sleep(2.5)
            self.assertEqual(len(self.rx.got), 1)
            # The next level is its own warning.
            expire_in(3)
            self.wait(lambda: len(self.rx.got) >= 2, "the 7-day warning")
            time.sleep(1.5)
            self.assertEqual([(e["data"]["level"], e["data"]["days_left"]) for e in events()],
                             [("warn_14", 10), ("warn_7", 3)])
            self.assertEqual(self.ms.sql("SELECT count(*) FROM webhook_expiry_sent")[0][0], 2)
        finally:
            SECRET = old

    def test_only_what_follows_the_subscription(self):
        # The dispatcher may be behind when a subscription is made (serve just started, or a
        # large sync being queued a batch at a time): the new subscription is sent only what is
        # committed after it. Rewinding the dispatcher's position to before the first sync
        # makes that deterministic.
        self.srv = self.Serve(self.ms)
        self.subscribe(["asset.created", "sync.finished"])
        self.srv.stop()
        self.srv.out.close()
        self.srv.err.close()
        self.assertGreater(self.ms.sql("SELECT count(*) FROM change_event")[0][0], 0)
        write_sql(self.ms, "UPDATE webhook_position SET change_seq = 0, run_id = 0")
        self.srv = self.Serve(self.ms, name="serve2")
        time.sleep(2.5)  # two dispatcher steps
        self.assertEqual(self.rx.got, [], "nothing from before the subscription")
        self.assertEqual(self.ms.sql("SELECT count(*) FROM webhook_delivery")[0][0], 0)
        self.sim.control({"op": "add_devices", "tenant": self.tenants[0], "count": 1})
        self.ms.run("sync", "--full")
        self.wait(lambda: len(self.rx.got) >= 2, "two deliveries")
        time.sleep(1.5)
        self.assertEqual(sorted(g["headers"]["Memsync-Event"] for g in self.rx.got),
                         ["asset.created", "sync.finished"])

    def test_refused_subscriptions_and_pause(self):
        # A subscription pauses when every try failed for MEMSYNC_WEBHOOK_RETRY_FOR_S (a day)
        # since its last delivered one; its queue is kept for the resume.
        self.ms.env["MEMSYNC_WEBHOOK_RETRY_FOR_S"] = "3"
        self.srv = self.Serve(self.ms)
        for body in ({"url": "http://hooks.example.com/x", "events": ["asset.created"]},
                     {"url": "https://u:p@hooks.example.com/x", "events": ["asset.created"]},
                     {"url": "https://hooks.example.com/x", "events": ["asset.deleted"]},
                     {"url": "https://hooks.example.com/x", "events": []}):
            st, js, text, _ = self.api(self.srv, "POST", "/api/v1/webhooks", self.key, body)
            self.assertEqual(st, 400, text)
        from test_api import apikey
        read = apikey(self.ms, "read")
        st, _, _, _ = self.api(self.srv, "GET", "/api/v1/webhooks", read)
        self.assertEqual(st, 403)
        hook = self.subscribe(["asset.created"])
        self.rx.answers = [(500, b"no", {})] * 50
        self.sim.control({"op": "add_devices", "tenant": self.tenants[0], "count": 1})
        self.ms.run("sync", "--full")

        def paused():
            st, js, _, _ = self.api(self.srv, "GET", "/api/v1/webhooks", self.key)
            return js["data"][0]["paused"]
        self.wait(paused, "the subscription to pause")
        tries = len(self.rx.got)
        self.assertGreaterEqual(tries, 2, "retried before the pause")
        st, js, _, _ = self.api(self.srv, "GET", "/api/v1/webhooks", self.key)
        self.assertIn("every delivery failed since", js["data"][0]["paused_reason"])
        self.assertIn("the target answered 500", js["data"][0]["paused_reason"])
        self.assertIsNotNone(js["data"][0]["failing_since"])
        self.assertRegex(self.srv.stderr(), r"webhook paused id=%d failing_since=\S+ attempts=%d"
                         % (hook["id"], tries))
        st, js, _, _ = self.api(self.srv, "GET",
                                "/api/v1/webhooks/%d/deliveries" % hook["id"], self.key)
        self.assertEqual(js["data"][0]["state"], "queued", "kept for the resume")
        self.assertEqual(js["data"][0]["response_status"], 500)
        time.sleep(1.5)
        self.assertEqual(len(self.rx.got), tries, "a paused subscription is not tried")
        # Resumed: tried at once, with a new period to succeed. Its first try fails, and the
        # next (after the backoff, longer than the period) succeeds: the failing time counts
        # from the first failure since the resume, not from when the delivery was queued.
        self.rx.answers = [(500, b"no", {})]
        st, _, _, _ = self.api(self.srv, "POST", "/api/v1/webhooks/%d/resume" % hook["id"],
                               self.key, {})
        self.assertEqual(st, 200)
        self.wait(lambda: any(g["status"] == 200 for g in self.rx.got), "the delivery")
        self.assertEqual(len(self.rx.got), tries + 2)
        st, js, _, _ = self.api(self.srv, "GET", "/api/v1/webhooks", self.key)
        self.assertEqual((js["data"][0]["paused"], js["data"][0]["failing_since"]), (False, None))
        st, js, _, _ = self.api(self.srv, "GET",
                                "/api/v1/webhooks/%d/deliveries" % hook["id"], self.key)
        self.assertEqual((js["data"][0]["state"], js["data"][0]["attempts"]),
                         ("delivered", tries + 2))
        st, js, _, _ = self.api(self.srv, "DELETE", "/api/v1/webhooks/%d" % hook["id"], self.key)
        self.assertEqual(st, 200)
        st, js, _, _ = self.api(self.srv, "GET", "/api/v1/webhooks", self.key)
        self.assertEqual(js["data"], [])

    def test_admin_page(self):
        import re
        import urllib.parse
        from test_api import csrf_of, login, req, user_add
        self.srv = self.Serve(self.ms)
        user_add(self.ms, "hooks@contoso.example", "admin", "hooks-password-1")
        user_add(self.ms, "view@contoso.example", "viewer", "view-password-1")
        _, tok, _ = login(self.srv, "hooks@contoso.example", "hooks-password-1")
        _, vtok, _ = login(self.srv, "view@contoso.example", "view-password-1")
        csrf = csrf_of(self.srv, tok)
        form_h = {"Content-Type": "application/x-www-form-urlencoded",
                  "Cookie": "memsync_session=" + tok}

        def post(path, fields, h=form_h):
            return req("POST", self.srv.url + path, urllib.parse.urlencode(fields).encode(), h)
        st, text, _ = req("GET", self.srv.url + "/webhooks",
                          headers={"Cookie": "memsync_session=" + vtok})
        self.assertEqual(st, 403, "viewers do not manage webhooks")
        st, text, _ = post("/webhooks", {"csrf": csrf, "url": "http://hooks.example.com/",
                                         "ev_asset.created": "1"})
        self.assertEqual(st, 400)
        self.assertIn("https", text)
        st, text, _ = post("/webhooks", {"url": self.rx.url(), "ev_asset.created": "1"})
        self.assertEqual(st, 403, "no CSRF token, no change")
        st, text, _ = post("/webhooks", {"csrf": csrf, "url": self.rx.url(),
                                         "ev_asset.created": "1", "ev_client.failed": "1"})
        self.assertEqual(st, 200, text[:300])
        secret = re.search(r'<code class="secret">(whsec_[0-9a-f]{64})</code>', text).group(1)
        st, text, _ = req("GET", self.srv.url + "/webhooks",
                          headers={"Cookie": "memsync_session=" + tok})
        self.assertNotIn(secret, text, "the secret is shown once")
        self.assertIn("Events: client.failed,asset.created.", text)
        global SECRET
        old, SECRET = SECRET, secret
        try:
            self.sim.control({"op": "add_devices", "tenant": self.tenants[0], "count": 1})
            self.ms.run("sync", "--full")
            self.wait(lambda: len(self.rx.got) >= 1, "a delivery")
            self.assertTrue(self.rx.got[0]["valid"])
        finally:
            SECRET = old
        time.sleep(1.5)
        st, text, _ = req("GET", self.srv.url + "/webhooks",
                          headers={"Cookie": "memsync_session=" + tok})
        self.assertRegex(text, r"<td>asset.created</td><td>delivered</td><td>1</td><td>200</td>"
                               r"<td>\d+ ms</td>")
        hid = re.search(r'id="webhook-(\d+)"', text).group(1)
        st, text, _ = post("/webhooks/%s/remove" % hid, {"csrf": csrf})
        self.assertEqual(st, 200)
        self.assertNotIn('id="webhook-', text)


if __name__ == "__main__":
    unittest.main()
