"""Signed webhook deliveries (`memsync webhook test`) against a small HTTP receiver on
127.0.0.1 that checks the signature with the recipe of docs/API.md "Webhooks": the signature
verifies, a failing answer is reported, redirects are not followed, and targets are refused
before anything is sent when they are plain http to a host not allowed or resolve to a loopback
address (by address or by name) without the tests' permission."""
import hashlib
import hmac
import http.server
import json
import os
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


class Receiver:
    def __init__(self):
        self.got = []
        self.answers = []  # (status, body, headers) to give, in order; then 200
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                rec.got.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                "valid": verify(SECRET, self.headers.get("Memsync-Signature", ""),
                                                body)})
                st, text, hdrs = rec.answers.pop(0) if rec.answers else (200, b"ok", {})
                self.send_response(st)
                for k, v in hdrs.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, host="127.0.0.1", path="/hook"):
        return "http://%s:%d%s" % (host, self.port, path)

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


if __name__ == "__main__":
    unittest.main()
