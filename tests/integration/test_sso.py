"""Single sign-on with Microsoft Entra ID end to end over HTTP, against the simulator's sign-in
endpoints: the sign-in page's button, the authorization code flow with PKCE, just-in-time users
keyed by (tenant, object id) with the role their groups or app roles map to, the refusals (wrong
audience, tenant, issuer, nonce, signature, algorithm, expiry, state, replay, unmapped user), a
rotated signing key picked up, local sign-in turned off only after SSO worked, `memsync key
rotate` re-sealing the client secret, and the CLI (`memsync account sso ...`).

Standard library only; serve and the simulator listen on 127.0.0.1 port 0.
"""
import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Memsync, Sim, http  # noqa: E402
from test_api import Serve, hget, req  # noqa: E402

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, flush=True)


def cookies_of(hdrs):
    out = {}
    for c in hget(hdrs, "Set-Cookie"):
        m = re.match(r"([a-z_]+)=([^;]*);", c)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def location(hdrs):
    return (hget(hdrs, "Location") or [""])[0]


def oidc(sim, body=None):
    if body is None:
        st, text, _ = http("GET", sim.root + "/_sim/oidc")
    else:
        st, text, _ = http("POST", sim.root + "/_sim/oidc", json.dumps(body).encode(),
                           {"Content-Type": "application/json"})
    assert st == 200, (st, text)
    return json.loads(text)


class Flow:
    """One browser: starts a sign-in, picks a user at the simulator, comes back."""

    def __init__(self, srv, ip="127.0.0.9"):
        self.srv = srv
        self.ip = ip

    def start(self, account="default"):
        st, _, hdrs = req("GET", self.srv.url + "/auth/sso?account=" + account, None,
                          {"X-Real-IP": self.ip})
        self.cookie = cookies_of(hdrs).get("memsync_sso", "")
        self.authorize = location(hdrs)
        return st

    def pick(self, upn):
        st, text, hdrs = req("GET", self.authorize + "&login_hint=" + urllib.parse.quote(upn))
        assert st == 302, (st, text[:300])
        self.callback = location(hdrs)
        return self.callback

    def back(self, url=None, cookie=None):
        h = {"X-Real-IP": self.ip}
        c = self.cookie if cookie is None else cookie
        if c:
            h["Cookie"] = "memsync_sso=" + c
        st, text, hdrs = req("GET", url or self.callback, None, h)
        return st, text, cookies_of(hdrs), location(hdrs)

    def sign_in(self, upn, account="default"):
        st = self.start(account)
        assert st == 303 and self.cookie, (st, self.cookie)
        self.pick(upn)
        return self.back()


def main():
    sim = Sim()
    ms = Memsync(sim)
    srv = Serve(ms)
    m = re.search(r'created user "admin" with password (\S+)', srv.stdout())
    admin_pw = m.group(1)
    cfg = oidc(sim)
    tenant = sim.env["MEMSYNC_SIM_PARTNER_TENANT_ID"]
    client = sim.env["MEMSYNC_SIM_SSO_CLIENT_ID"]
    secret = sim.env["MEMSYNC_SIM_SSO_CLIENT_SECRET"]
    check(client == cfg["client_id"], "the env file names the sim's sign-in app")
    users = {u["name"].split()[0].lower(): u["preferred_username"] for u in cfg["users"]}
    redirect = srv.url + "/auth/sso/callback"
    mapping = "%s=admin,%s=viewer" % (cfg["admin_group"], cfg["viewer_group"])

    # No SSO yet: no button, no start, local sign-in cannot be turned off.
    st, text, _ = req("GET", srv.url + "/login")
    check(st == 200 and "Sign in with Microsoft" not in text, "no button without SSO")
    st = Flow(srv).start()
    check(st == 404, "starting SSO on an account without it is a 404 page (%s)" % st)
    rc, _, err = ms.run("account", "local-signin", "off")
    check(rc != 0 and "until a sign-in with Microsoft has worked" in err,
          "local sign-in cannot be turned off before SSO worked (%s %s)" % (rc, err))

    # CLI checks its input and never takes the secret from argv.
    rc, _, err = ms.run("account", "sso", "set", "--tenant", "not-a-guid", "--client-id", client,
                        "--redirect-uri", redirect, "--map", mapping, "--secret-file", "-",
                        stdin=(secret + "\n").encode())
    check(rc == 2 and "GUID" in err, "a tenant that is not a GUID is refused (%s %s)" % (rc, err))
    rc, _, err = ms.run("account", "sso", "set", "--tenant", tenant, "--client-id", client,
                        "--redirect-uri", redirect, "--map", "x=owner", "--secret-file", "-",
                        stdin=(secret + "\n").encode())
    check(rc == 2 and "role mapping" in err, "a mapping to an unknown role is refused (%s)" % err)
    rc, _, err = ms.run("account", "sso", "set", "--tenant", tenant, "--client-id", client,
                        "--redirect-uri", redirect, "--map", mapping)
    check(rc == 2 and "client secret" in err, "the first set needs a secret (%s)" % err)
    ms.run("account", "sso", "set", "--tenant", tenant, "--client-id", client, "--redirect-uri",
           redirect, "--map", mapping + ",memsync.admin=admin", "--secret-file", "-",
           stdin=(secret + "\n").encode(), check=0)
    rc, out, _ = ms.run("account", "sso", "show", check=0)
    check(tenant in out and client in out and secret not in out and secret[:3] + "..." in out
          and "last worked:   never" in out, "sso show: settings and hint, never the secret")
    check(secret not in str(ms.sql("SELECT secret_sealed FROM account_sso")),
          "the client secret is sealed in the database")

    st, text, _ = req("GET", srv.url + "/login")
    check("Sign in with Microsoft" in text and "/auth/sso?account=default" in text,
          "the sign-in page shows the button")

    # The authorize URL carries PKCE S256, state and nonce; the simulator lists the users.
    f = Flow(srv)
    check(f.start() == 303, "start redirects to Microsoft")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(f.authorize).query)
    check(q.get("code_challenge_method") == ["S256"] and len(q.get("code_challenge", [""])[0])
          == 43 and len(q.get("state", [""])[0]) == 43 and len(q.get("nonce", [""])[0]) == 43
          and q.get("redirect_uri") == [redirect], "authorize URL: PKCE S256, state, nonce")
    st, text, _ = req("GET", f.authorize)
    check(st == 200 and users["ada"] in text, "the simulator's page lists its users")

    # Ada (admin group): a session, an admin, made just in time, keyed by tid + oid.
    f.pick(users["ada"])
    st, text, ck, loc = f.back()
    check(st == 303 and loc == "/assets" and "memsync_session" in ck,
          "Ada signs in (%s %s %s)" % (st, loc, text[:300]))
    sess = ck.get("memsync_session", "")
    st, text, _ = req("GET", srv.url + "/users", None, {"Cookie": "memsync_session=" + sess})
    check(st == 200 and users["ada"] in text, "Ada is an admin (the Users page opens)")
    row = ms.sql("SELECT name, role, sso_tid, sso_oid, password_hash FROM app_user WHERE "
                 "sso_oid IS NOT NULL")[0]
    check(users["ada"] in row and "admin" in row and tenant in row and "!sso" in row,
          "the user row: name, role, tid, oid, no password (%s)" % (row,))
    rc, out, _ = ms.run("account", "sso", "show", check=0)
    check("last worked:   never" not in out, "the first sign-in is recorded")

    # Replay of the same answer, a forged state, no cookie.
    st, text, _, _ = f.back()
    check(st == 400 and "expired" in text, "the same answer twice is refused (%s)" % st)
    f2 = Flow(srv)
    f2.start()
    cb = f2.pick(users["ada"])
    st, text, _, _ = f2.back(re.sub(r"state=[^&]+", "state=forged", cb))
    check(st == 403 and "state mismatch" in text, "a forged state is refused (%s)" % st)
    f3 = Flow(srv)
    f3.start()
    f3.pick(users["ada"])
    st, text, _, _ = f3.back(cookie="")
    check(st == 400 and "not started in this browser" in text, "no cookie, no sign-in (%s)" % st)
    f4 = Flow(srv)
    f4.start()
    st, text, _, _ = f4.back(srv.url + "/auth/sso/callback?error=access_denied&"
                             "error_description=AADSTS50105%3A+not+assigned")
    check(st == 403 and "access_denied" in text and "AADSTS50105" in text,
          "Microsoft's own refusal is told (%s)" % st)

    # Same person again: found by oid, not duplicated.
    st, _, ck, _ = Flow(srv).sign_in(users["ada"])
    n = ms.sql("SELECT count(*) FROM app_user WHERE sso_oid IS NOT NULL")[0][0]
    check(st == 303 and n == 1, "a second sign-in finds the same user (%s users)" % n)

    # Viewer, app role, unmapped.
    st, _, ck, _ = Flow(srv).sign_in(users["victor"])
    st2, _, _ = req("GET", srv.url + "/users", None,
                    {"Cookie": "memsync_session=" + ck.get("memsync_session", "")})
    check(st == 303 and st2 == 403, "Victor is a viewer (%s, users page %s)" % (st, st2))
    st, _, ck, _ = Flow(srv).sign_in(users["rita"])
    check(st == 303 and ms.sql("SELECT role FROM app_user WHERE name = '%s'" %
                               users["rita"]) == [("admin",)], "an app role maps to admin")
    st, text, ck, _ = Flow(srv).sign_in(users["otto"])
    check(st == 403 and "none of the groups" in text and "memsync_session" not in ck,
          "a user in no mapped group is refused (%s)" % st)

    # The role follows the mapping at each sign-in.
    ms.run("account", "sso", "set", "--tenant", tenant, "--client-id", client, "--redirect-uri",
           redirect, "--map", "%s=admin,%s=admin" % (cfg["admin_group"], cfg["viewer_group"]),
           check=0)
    Flow(srv).sign_in(users["victor"])
    check(ms.sql("SELECT role FROM app_user WHERE name = '%s'" % users["victor"]) == [("admin",)],
          "a new mapping changes the role at the next sign-in")

    # Each bad token gets its own clear page, and no session.
    for fault, words in (("wrong_aud", "another application"), ("wrong_tid", "another tenant"),
                         ("wrong_iss", "unknown issuer"), ("wrong_nonce", "nonce mismatch"),
                         ("bad_signature", "bad signature"), ("alg_none", "RS256"),
                         ("alg_hs256", "RS256"), ("expired", "out of date")):
        oidc(sim, {"next_fault": fault})
        st, text, ck, _ = Flow(srv).sign_in(users["ada"])
        check(st == 403 and words in text and "memsync_session" not in ck and "eyJ" not in text,
              "%s: refused with its page, no token shown (%s)" % (fault, st))

    # A rotated key (the old one removed) is fetched again on the unknown kid.
    oidc(sim, {"rotate": True, "keep_old": False})
    st, text, _, _ = Flow(srv).sign_in(users["ada"])
    check(st == 303, "a rotated signing key is picked up (%s %s)" % (st, text[:200]))
    oidc(sim, {"next_fault": "unknown_kid"})
    st, text, _, _ = Flow(srv).sign_in(users["ada"])
    check(st == 403 and "bad signature" in text, "a key the tenant does not publish is refused")
    log = srv.stderr()
    check(log.count("sso signing keys read again") == 1,
          "the unknown kid refetch is rate-limited (%d)" % log.count("sso signing keys read again"))

    # An account requiring two-step sign-in of local users leaves SSO users to Entra's.
    ms.run("account", "require-totp", "on", check=0)
    st, _, ck, _ = Flow(srv).sign_in(users["ada"])
    st2, _, h2 = req("GET", srv.url + "/assets", None,
                     {"Cookie": "memsync_session=" + ck.get("memsync_session", "")})
    check(st == 303 and st2 == 200, "an SSO user is not sent to TOTP enrolment (%s %s %s)" %
          (st, st2, location(h2)))
    ms.run("account", "require-totp", "off", check=0)

    # Local sign-in off now that SSO worked; back on.
    ms.run("account", "local-signin", "off", check=0)
    form = urllib.parse.urlencode({"name": "admin", "password": admin_pw, "next": "/assets"})
    st, text, _ = req("POST", srv.url + "/login", form.encode(),
                      {"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 403 and "Sign in with Microsoft" in text, "password sign-in off (%s)" % st)
    # The same answer with a wrong password: it must not tell that the password was right.
    bad = urllib.parse.urlencode({"name": "admin", "password": admin_pw + "x", "next": "/assets"})
    st_bad, text_bad, _ = req("POST", srv.url + "/login", bad.encode(),
                              {"Content-Type": "application/x-www-form-urlencoded"})
    check(st_bad == st and "Sign in with Microsoft" in text_bad,
          "password sign-in off answers alike for a wrong password (%s)" % st_bad)
    ms.run("account", "local-signin", "on", check=0)
    st, _, _ = req("POST", srv.url + "/login", form.encode(),
                   {"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 303, "password sign-in on again (%s)" % st)

    # The settings page for an admin.
    st, text, _ = req("GET", srv.url + "/settings/sso", None, {"Cookie": "memsync_session=" + sess})
    check(st == 200 and tenant in text and secret not in text, "the settings page (%s)" % st)
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', text).group(1)
    form = {"csrf": csrf, "tenant": tenant, "client_id": client, "secret": "",
            "redirect_uri": redirect, "map": "%s=admin\n%s=viewer" % (cfg["admin_group"],
                                                                    cfg["viewer_group"])}
    h = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": "memsync_session=" + sess,
         "Origin": srv.url}
    st, text, _ = req("POST", srv.url + "/settings/sso", urllib.parse.urlencode(form).encode(), h)
    check(st == 200 and "Saved" in text, "the settings page saves, keeping the secret (%s)" % st)
    form["map"] = "x=owner"
    st, text, _ = req("POST", srv.url + "/settings/sso", urllib.parse.urlencode(form).encode(), h)
    check(st == 400 and "role mapping" in text, "the settings page refuses a bad mapping (%s)" % st)
    st, _, ck, _ = Flow(srv).sign_in(users["victor"])
    check(st == 303, "sign-in works after saving from the page (%s)" % st)

    # Key rotation re-seals the client secret: sign-in still works.
    rc, _, err = ms.run("key", "rotate")
    check(rc == 0, "key rotate (%s)" % err)
    srv.stop()
    srv = Serve(ms, name="serve2")
    ms.run("account", "sso", "set", "--tenant", tenant, "--client-id", client, "--redirect-uri",
           srv.url + "/auth/sso/callback", "--map", mapping, check=0)  # the stored secret stays
    st, text, _, _ = Flow(srv).sign_in(users["ada"])
    check(st == 303, "after key rotate the re-sealed secret still works (%s %s)" % (st, text[:300]))

    # Off: no button, users stay, local sign-in on.
    ms.run("account", "sso", "off", check=0)
    st, text, _ = req("GET", srv.url + "/login")
    check("Sign in with Microsoft" not in text, "sso off removes the button")

    srv.stop()
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
