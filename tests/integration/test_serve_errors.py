"""`memsync serve` never answers a failure as if it were data.

- A body that outgrows its buffer (client names that escape past the 16 MiB response limit) is
  a 500 with a short error page or JSON and a logged cause, never a page cut mid-HTML with 200.
- A store read that fails (a table renamed away under the server) is an error page or JSON
  error, never "No devices yet" or an empty list.
- A database another process keeps locked (BEGIN EXCLUSIVE) makes writes answer 503 with "the
  database is busy" (UI) or the JSON error "busy" (API) once the busy timeout (5 s) passes.
- Filters too long for the old link buffers stay whole in the page's links; an API filter
  list too long to keep is refused (400), never cut.
- Requests arriving together for the overview or the insights answer (single flight) all get
  the same complete answer.

Standard library only; SQLite only (the failures are made through the database file).
"""
import json
import os
import re
import sqlite3
import sys
import threading
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_api import Serve, api, apikey, get_json, login, req, user_add  # noqa: E402

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def html_esc(s):
    """As ui_esc() writes text."""
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#39;")):
        s = s.replace(a, b)
    return s


@unittest.skipIf(os.environ.get("MEMSYNC_TEST_PG_URL"), "SQLite only")
class ServeErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = harness.Sim("--tenants", "4", "--devices", "6", "--apps-per-device", "1",
                              "--seed", "23")
        cls.ms = harness.Memsync(cls.sim)
        cls.ms.add_integration()
        cls.ms.run("sync", check=0)
        cls.key = apikey(cls.ms, "admin")
        user_add(cls.ms, "admin", "admin", "admin-password-1")
        cls.srv = Serve(cls.ms)
        st, tok, _ = login(cls.srv, "admin", "admin-password-1")
        assert st == 303, st
        cls.cookie = {"Cookie": "memsync_session=" + tok}
        st, text, _ = req("GET", cls.srv.url + "/api-keys", headers=cls.cookie)
        cls.csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', text).group(1)
        # Every pool thread opens its database connection on first use; under a lock that open
        # fails before any handler runs. Requests in parallel reach every thread first.
        warm = [threading.Thread(target=api, args=(cls.srv, "GET", "/api/v1/me", cls.key))
                for _ in range(24)]
        for t in warm:
            t.start()
        for t in warm:
            t.join()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.sim.stop()
        cls.ms.cleanup()

    def page(self, path):
        return req("GET", self.srv.url + path, headers=self.cookie)

    def db(self):
        return sqlite3.connect(self.ms.db, isolation_level=None, timeout=30)

    def test_body_past_its_limit_is_a_500(self):
        st, text, _ = self.page("/clients")
        self.assertEqual(st, 200)
        names = {i: n for i, n in self.ms.sql("SELECT id, name FROM client")}
        self.assertGreaterEqual(len(names), 4)
        # Every '&' is 5 bytes of HTML ("&amp;"), every U+0001 6 of JSON ("\u0001"): 1.5 M
        # characters a name, four names, is past the 16 MiB limit either way.
        huge = "&" * 750000 + "\x01" * 750000
        con = self.db()
        try:
            con.execute("UPDATE client SET name = ?", (huge,))
            st, text, hdrs = self.page("/clients")
            self.assertEqual(st, 500, "an oversized page is not sent as it is")
            self.assertIn("could not be built", text)
            self.assertNotIn("&amp;&amp;", text, "no piece of the page that did not fit")
            self.assertTrue(text.rstrip().endswith("</html>"))
            self.assertIn("text/html", dict((k.lower(), v) for k, v in hdrs)["content-type"])
            self.assertRegex(self.srv.stderr(), r"could not be built method=GET route=/clients "
                                                r"status=200 error=\"too big\"")
            st, js, text, _ = api(self.srv, "GET", "/api/v1/clients", self.key)
            self.assertEqual(st, 500)
            self.assertEqual(js["errors"][0]["code"], "internal")
        finally:
            for i, n in names.items():
                con.execute("UPDATE client SET name = ? WHERE id = ?", (n, i))
            con.close()
        st, text, _ = self.page("/clients")
        self.assertEqual(st, 200)
        for n in names.values():
            self.assertIn(html_esc(n or ""), text)

    def test_failed_read_is_an_error_not_an_empty_list(self):
        st, text, _ = self.page("/assets")
        self.assertEqual(st, 200)
        self.assertNotIn("No devices yet", text)
        con = self.db()
        try:
            con.execute("ALTER TABLE hardware_asset RENAME TO hardware_asset_away")
            for path in ("/assets", "/"):
                st, text, _ = self.page(path)
                self.assertEqual(st, 500, path)
                self.assertNotIn("No devices yet", text, path)
                self.assertIn("could not be read from the database", text, path)
            st, js, _, _ = api(self.srv, "GET", "/api/v1/assets/hardware?page_size=5", self.key)
            self.assertEqual(st, 500)
            self.assertNotIn("data", js)
            self.assertRegex(self.srv.stderr(),
                             r"ui: a database call failed route=/assets error=\".*hardware_asset")
        finally:
            con.execute("ALTER TABLE hardware_asset_away RENAME TO hardware_asset")
            con.close()
        st, text, _ = self.page("/assets")
        self.assertEqual(st, 200)
        self.assertNotIn("No devices yet", text)

    def test_unreadable_session_is_an_error_not_a_sign_in(self):
        """A session the store cannot read is a database failure, not a signed-out user."""
        con = self.db()
        try:
            con.execute("ALTER TABLE user_session RENAME TO user_session_away")
            st, text, hdrs = self.page("/assets")
            self.assertEqual(st, 500, "not a redirect to sign in")
            self.assertNotIn("location", dict((k.lower(), v) for k, v in hdrs))
            self.assertIn("could not be read from the database", text)
        finally:
            con.execute("ALTER TABLE user_session_away RENAME TO user_session")
            con.close()
        st, _, _ = self.page("/assets")
        self.assertEqual(st, 200)

    def test_locked_database_is_busy(self):
        iid = get_json(self.srv, "/api/v1/integrations", self.key)["data"][0]["id"]
        con = self.db()
        try:
            con.execute("BEGIN EXCLUSIVE")
            st, text, hdrs = req("POST", self.srv.url + "/api-keys",
                                 urllib.parse.urlencode({"csrf": self.csrf, "name": "during lock",
                                                         "scope": "read"}).encode(),
                                 dict(FORM, **self.cookie))
            self.assertEqual(st, 503)
            self.assertIn("The database is busy", text)
            self.assertNotIn(self.ms.db, text, "the database file is only in the log")
            self.assertNotIn("new-key", text, "no key was made")
            st, js, _, hdrs = api(self.srv, "PATCH", "/api/v1/integrations/%d" % iid, self.key,
                                  {"name": "Renamed during the lock"})
            self.assertEqual(st, 503)
            self.assertEqual(js["errors"][0]["code"], "busy")
            self.assertIn("Retry-After", dict(hdrs))
            # Reads still answer from the last commit (WAL): the data, not an empty list.
            st, js, _, _ = api(self.srv, "GET", "/api/v1/clients", self.key)
            if st == 200:
                self.assertGreater(len(js["data"]), 0)
        finally:
            con.execute("ROLLBACK")
            con.close()
        self.assertIn("is locked by another process", self.srv.stderr())
        st, js, _, _ = api(self.srv, "PATCH", "/api/v1/integrations/%d" % iid, self.key,
                           {"name": "Renamed after the lock"})
        self.assertEqual(st, 200)

    def test_long_filters_are_kept_or_refused(self):
        search = "a b" * 1000  # 5,000 bytes percent-encoded: past the 4 KiB links once had
        enc = urllib.parse.quote(search, safe="")
        st, text, _ = self.page("/assets?search=" + enc)
        self.assertEqual(st, 200)
        self.assertIn("hardware.csv?search=" + enc + '"', text, "the export keeps the search")
        self.assertIn("No device matches these filters", text)
        st, js, _, _ = api(self.srv, "GET", "/api/v1/assets/hardware?filter[type]=in:" +
                           ",".join(["WORKSTATION"] * 1000), self.key)
        self.assertEqual(st, 400)
        self.assertIn("too long", js["errors"][0]["detail"])

    def test_parallel_requests_share_one_answer(self):
        iid = get_json(self.srv, "/api/v1/integrations", self.key)["data"][0]["id"]
        for rnd in range(2):
            # A client write bumps the data version: nothing cached answers the next requests.
            st, _, _, _ = api(self.srv, "PATCH", "/api/v1/integrations/%d" % iid, self.key,
                              {"name": "Flight %d" % rnd})
            self.assertEqual(st, 200)
            got = {}

            def get(i):
                if i % 2:
                    got[i] = api(self.srv, "GET", "/api/v1/insights", self.key)[:3:2]
                else:
                    got[i] = self.page("/")[:2]

            ts = [threading.Thread(target=get, args=(i,)) for i in range(12)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            pages = {got[i] for i in got if i % 2 == 0}
            answers = {got[i] for i in got if i % 2}
            self.assertEqual(len(pages), 1, "every overview is the same page")
            self.assertEqual(len(answers), 1, "every insights answer is the same")
            st, text = pages.pop()
            self.assertEqual(st, 200)
            self.assertIn('id="insight"', text)
            st, text = answers.pop()
            self.assertEqual(st, 200)
            self.assertGreater(len(json.loads(text)["data"]), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
