"""Two-step sign-in (TOTP) end to end over HTTP: enrolment from the Security page, sign-in that
needs the code after the password, wrong and replayed codes refused, single-use recovery codes,
the account's rule forcing enrolment, key rotation keeping the secrets, and the admin resets
(web UI and `memsync user reset-totp`).

Python computes the codes from the secret the enrolment page shows (RFC 6238: HMAC-SHA1, 30 s
steps, 6 digits). Standard library only; serve listens on 127.0.0.1 port 0.
"""
import base64
import hashlib
import hmac
import os
import re
import struct
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Memsync  # noqa: E402
from test_api import Serve, hget, req, user_add  # noqa: E402

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, flush=True)


def totp(secret, offset=0):
    """The code of the step `offset` steps from now."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    counter = int(time.time()) // 30 + offset
    h = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    o = h[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)


def cookies_of(hdrs):
    out = {}
    for c in hget(hdrs, "Set-Cookie"):
        m = re.match(r"([a-z_]+)=([^;]*);", c)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def form_post(srv, path, fields, cookie, ip):
    h = {"Content-Type": "application/x-www-form-urlencoded", "X-Real-IP": ip}
    if cookie:
        h["Cookie"] = cookie
    st, text, hdrs = req("POST", srv.url + path, urllib.parse.urlencode(fields).encode(), h)
    return st, text, hdrs


def get(srv, path, cookie, ip="127.0.0.1"):
    return req("GET", srv.url + path, None, {"Cookie": cookie, "X-Real-IP": ip})


def location(hdrs):
    return (hget(hdrs, "Location") or [""])[0]


def form_csrf(text):
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', text)
    return m.group(1) if m else None


def password(srv, name, pw, ip):
    """POST /login: (status, Location, cookies)."""
    st, _, hdrs = form_post(srv, "/login", {"name": name, "password": pw, "next": "/clients"},
                            None, ip)
    return st, location(hdrs), cookies_of(hdrs)


def session(srv, name, pw, ip):
    st, loc, ck = password(srv, name, pw, ip)
    assert st == 303 and "memsync_session" in ck, (name, st, loc, ck)
    tok = ck["memsync_session"]
    st, text, _ = get(srv, "/security", "memsync_session=" + tok, ip)
    return tok, form_csrf(text)


def pending_code(srv, pending, code, ip):
    """GET the code page for its form token, POST the code: (status, text, cookies, Location)."""
    cookie = "memsync_pending=" + pending
    st, text, _ = get(srv, "/login/totp", cookie, ip)
    assert st == 200, (st, text[:300])
    st, text, hdrs = form_post(srv, "/login/totp", {"csrf": form_csrf(text), "code": code},
                               cookie, ip)
    return st, text, cookies_of(hdrs), location(hdrs)


def enrol_self(srv, tok, csrf, ip):
    """The Security page's enrolment: returns (secret, recovery codes, step used)."""
    cookie = "memsync_session=" + tok
    st, text, _ = form_post(srv, "/security/totp/start", {"csrf": csrf}, cookie, ip)
    m = re.search(r'id="totp-secret">([A-Z2-7]+)<', text)
    check(st == 200 and m and "<svg" in text, "the Security page shows a secret and its QR code "
          "(%s)" % st)
    secret = m.group(1)
    st, text, _ = form_post(srv, "/security/totp/confirm", {"csrf": csrf, "code": "000000"
                                                            if totp(secret) != "000000"
                                                            else "111111"}, cookie, ip)
    check(st == 400 and "wrong" in text, "a wrong code does not confirm the enrolment (%s)" % st)
    st, text, _ = form_post(srv, "/security/totp/confirm", {"csrf": csrf, "code": totp(secret)},
                            cookie, ip)
    codes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", text)
    check(st == 200 and len(codes) == 10, "confirming shows 10 recovery codes once (%s, %d)" %
          (st, len(codes)))
    return secret, codes


def main():
    ms = Memsync()
    srv = Serve(ms)
    m = re.search(r'created user "admin" with password (\S+)', srv.stdout())
    admin_pw = m.group(1)
    user_add(ms, "tina", "viewer", "tina-password-1")
    user_add(ms, "uma", "viewer", "uma-password-1")
    user_add(ms, "vera", "viewer", "vera-password-1")
    user_add(ms, "rita", "viewer", "rita-password-1")

    # --- enrolment from the Security page ---------------------------------------------------
    tok, csrf = session(srv, "tina", "tina-password-1", "198.51.100.1")
    check(csrf is not None, "the Security page has a form token")
    secret, codes = enrol_self(srv, tok, csrf, "198.51.100.1")
    rows = ms.sql("SELECT totp_secret_sealed, totp_enrolled_at FROM app_user WHERE name = 'tina'")
    check(rows and rows[0][0].startswith("v1:") and secret not in rows[0][0] and rows[0][1],
          "the stored secret is sealed with the vault, never plain")
    hashes = ms.sql("SELECT code_hash FROM user_recovery_code r JOIN app_user u ON "
                    "u.id = r.user_id WHERE u.name = 'tina'")
    check(len(hashes) == 10 and all(h[0].startswith("$argon2id$") for h in hashes) and
          not any(c in h[0] for h in hashes for c in codes),
          "recovery codes are stored hashed (%d)" % len(hashes))
    st, text, _ = get(srv, "/security", "memsync_session=" + tok)
    check("On since" in text and "10 recovery codes left" in text, "the Security page says on")
    form_post(srv, "/logout", {"csrf": csrf}, "memsync_session=" + tok, "198.51.100.1")

    # --- the password alone is not enough ---------------------------------------------------
    ip = "198.51.100.2"
    st, loc, ck = password(srv, "tina", "tina-password-1", ip)
    check(st == 303 and loc == "/login/totp" and "memsync_session" not in ck and
          ck.get("memsync_pending"), "a right password asks for the code, no session (%s %s %s)"
          % (st, loc, sorted(ck)))
    pending = ck.get("memsync_pending", "")
    st, _, _ = get(srv, "/clients", "memsync_pending=" + pending)
    check(st == 303, "the pending sign-in reaches nothing else (%s)" % st)
    st, _, _ = req("GET", srv.url + "/api/v1/clients", None,
                   {"Cookie": "memsync_session=" + pending})
    check(st == 401, "the pending token is not a session for the API (%s)" % st)
    st, text, ck, _ = pending_code(srv, pending, "123456" if totp(secret, 1) != "123456"
                                   else "654321", ip)
    check(st == 401 and "wrong or expired" in text and "memsync_session" not in ck,
          "a wrong code is refused (%s)" % st)
    st, text, _ = form_post(srv, "/login/totp", {"csrf": "0" * 64, "code": totp(secret, 1)},
                            "memsync_pending=" + pending, ip)
    check(st == 403, "the code form needs its form token (%s)" % st)
    # The enrolment used this step's code: the next step's code is the one to use now.
    code = totp(secret, 1)
    st, text, ck, loc = pending_code(srv, pending, code, ip)
    check(st == 303 and loc == "/clients" and ck.get("memsync_session") and
          ck.get("memsync_pending") == "", "the right code signs in (%s %s)" % (st, loc))
    tok = ck.get("memsync_session", "")
    st, _, _ = get(srv, "/clients", "memsync_session=" + tok)
    check(st == 200, "the new session works (%s)" % st)
    st, _, _ = get(srv, "/login/totp", "memsync_pending=" + pending, ip)
    check(st == 303, "the pending sign-in is over once used (%s)" % st)

    # --- the same code again is refused -----------------------------------------------------
    st, loc, ck = password(srv, "tina", "tina-password-1", ip)
    st, text, ck, _ = pending_code(srv, ck.get("memsync_pending", ""), code, ip)
    check(st == 401 and "already used" in text and "memsync_session" not in ck,
          "a replayed code is refused (%s)" % st)

    # --- a recovery code works once ---------------------------------------------------------
    ip = "198.51.100.3"
    st, loc, ck = password(srv, "tina", "tina-password-1", ip)
    st, text, ck, loc = pending_code(srv, ck.get("memsync_pending", ""), codes[0].upper(), ip)
    check(st == 303 and ck.get("memsync_session") and loc.startswith("/security"),
          "a recovery code signs in (%s %s)" % (st, loc))
    st, text, _ = get(srv, "/security?recovery=1", "memsync_session=" + ck["memsync_session"])
    check("9 recovery codes left" in text, "one recovery code is used up")
    st, loc, ck = password(srv, "tina", "tina-password-1", ip)
    st, text, ck, _ = pending_code(srv, ck.get("memsync_pending", ""), codes[0], ip)
    check(st == 401 and "memsync_session" not in ck, "the same recovery code is refused (%s)" % st)

    # --- wrong codes are limited ------------------------------------------------------------
    ip = "198.51.100.4"
    st, loc, ck = password(srv, "tina", "tina-password-1", ip)
    pend = ck.get("memsync_pending", "")
    statuses = []
    for _ in range(6):
        cookie = "memsync_pending=" + pend
        st, text, _ = get(srv, "/login/totp", cookie, ip)
        if st != 200:
            statuses.append("gone")
            break
        st, text, _ = form_post(srv, "/login/totp", {"csrf": form_csrf(text), "code": "000001"},
                                cookie, ip)
        statuses.append(st)
    check(statuses[-1] in (429, "gone") and 200 not in statuses and 303 not in statuses,
          "wrong codes end the pending sign-in or hit the limiter (%s)" % statuses)
    st, loc, ck = password(srv, "tina", "tina-password-1", ip)
    check(st == 429, "the sign-in limiter counts wrong codes like wrong passwords (%s)" % st)

    # --- turning it off takes a current code ------------------------------------------------
    tok_v, csrf_v = session(srv, "vera", "vera-password-1", "198.51.100.5")
    _, vcodes = enrol_self(srv, tok_v, csrf_v, "198.51.100.5")
    st, text, _ = form_post(srv, "/security/totp/disable", {"csrf": csrf_v, "code": "000002"},
                            "memsync_session=" + tok_v, "198.51.100.5")
    check(st == 401 and "On since" in text, "a wrong code does not turn it off (%s)" % st)
    st, text, _ = form_post(srv, "/security/totp/disable", {"csrf": csrf_v, "code": vcodes[1]},
                            "memsync_session=" + tok_v, "198.51.100.5")
    check(st == 200 and "Two-step sign-in is off" in text, "a recovery code turns it off (%s)" %
          st)
    st, loc, ck = password(srv, "vera", "vera-password-1", "198.51.100.5")
    check(st == 303 and "memsync_session" in ck, "then the password alone signs in (%s)" % st)

    # --- key rotation re-seals the secrets --------------------------------------------------
    tok_r, csrf_r = session(srv, "rita", "rita-password-1", "198.51.100.6")
    rsecret, _ = enrol_self(srv, tok_r, csrf_r, "198.51.100.6")
    before = ms.sql("SELECT totp_secret_sealed FROM app_user WHERE name = 'rita'")[0][0]
    rc, out, err = ms.run("key", "rotate")
    check(rc == 0, "key rotate (%s)" % err)
    after = ms.sql("SELECT totp_secret_sealed FROM app_user WHERE name = 'rita'")[0][0]
    check(before != after and before.split(":")[1] != after.split(":")[1],
          "key rotate re-seals the TOTP secrets under the new key")
    st, loc, ck = password(srv, "rita", "rita-password-1", "198.51.100.6")
    st, text, ck, loc = pending_code(srv, ck.get("memsync_pending", ""), totp(rsecret, 1),
                                     "198.51.100.6")
    check(st == 303 and ck.get("memsync_session"),
          "after key rotate the code still signs in (%s %s)" % (st, text[:300]))

    # --- admins: the web UI's reset, viewers refused ----------------------------------------
    tok_a, csrf_a = session(srv, "admin", admin_pw, "198.51.100.7")
    st, text, _ = get(srv, "/security", "memsync_session=" + tok_a)
    rid = re.search(r'action="/users/(\d+)/totp/reset"', text)
    check(st == 200 and rid and "optional" in text, "the admin sees who has it on (%s)" % st)
    st, text, _ = form_post(srv, "/security/require", {"csrf": csrf_v, "on": "1"},
                            "memsync_session=" + tok_v, "198.51.100.5")
    check(st == 403, "a viewer cannot require it (%s)" % st)
    if rid:
        st, text, _ = form_post(srv, "/users/%s/totp/reset" % rid.group(1),
                                {"csrf": csrf_v}, "memsync_session=" + tok_v, "198.51.100.5")
        check(st == 403, "a viewer cannot reset another user (%s)" % st)
        st, text, _ = form_post(srv, "/users/%s/totp/reset" % rid.group(1), {"csrf": csrf_a},
                                "memsync_session=" + tok_a, "198.51.100.7")
        check(st == 200 and "was reset" in text, "the admin resets a user's second factor (%s)" %
              st)
        rows = ms.sql("SELECT totp_secret_sealed FROM app_user WHERE id = %s" % rid.group(1))
        check(rows and rows[0][0] is None, "the reset removed the secret")

    # --- the account's rule forces enrolment ------------------------------------------------
    rc, out, err = ms.run("account", "require-totp", "on")
    check(rc == 0 and "required" in out, "memsync account require-totp on (%s)" % err)
    st, _, hdrs = get(srv, "/clients", "memsync_session=" + tok_v)
    check(st == 303 and location(hdrs) == "/security",
          "a session without a second factor goes to the Security page (%s)" % st)
    st, text, _ = form_post(srv, "/integrations", {"csrf": csrf_v},
                            "memsync_session=" + tok_v, "198.51.100.5")
    check(st == 403 and "requires two-step sign-in" in text,
          "and cannot post anything else (%s)" % st)
    ip = "198.51.100.8"
    st, loc, ck = password(srv, "uma", "uma-password-1", ip)
    check(st == 303 and loc == "/login/totp/enrol" and "memsync_session" not in ck,
          "with the rule on, the password leads to enrolment, no session (%s %s)" % (st, loc))
    cookie = "memsync_pending=" + ck.get("memsync_pending", "")
    st, _, _ = get(srv, "/login/totp", cookie, ip)
    st2, _, _ = get(srv, "/clients", cookie, ip)
    check(st == 303 and st2 == 303, "the enrolment step reaches nothing else (%s %s)" % (st, st2))
    st, text, _ = get(srv, "/login/totp/enrol", cookie, ip)
    m = re.search(r'id="totp-secret">([A-Z2-7]+)<', text)
    check(st == 200 and m and "<svg" in text, "the enrolment page shows secret and QR (%s)" % st)
    usecret = m.group(1) if m else "A" * 32
    st, text, hdrs = form_post(srv, "/login/totp/enrol",
                               {"csrf": form_csrf(text), "code": totp(usecret)}, cookie, ip)
    ck = cookies_of(hdrs)
    ucodes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", text)
    check(st == 200 and len(ucodes) == 10 and ck.get("memsync_session"),
          "confirming signs in and shows the recovery codes once (%s %d)" % (st, len(ucodes)))
    st, _, _ = get(srv, "/clients", "memsync_session=" + ck.get("memsync_session", ""))
    check(st == 200, "then everything is reachable (%s)" % st)

    # --- reset-totp from the command line ---------------------------------------------------
    rc, out, err = ms.run("user", "reset-totp", "tina")
    check(rc == 0, "memsync user reset-totp (%s)" % err)
    rc, out, err = ms.run("user", "reset-totp", "nobody")
    check(rc == 1 and "no user named nobody" in err, "reset-totp of an unknown user fails")
    ip = "198.51.100.9"
    st, loc, ck = password(srv, "tina", "tina-password-1", ip)
    check(st == 303 and loc == "/login/totp/enrol",
          "after the reset tina has no second factor: the rule asks her to enrol (%s)" % loc)
    rc, out, err = ms.run("account", "require-totp", "off")
    check(rc == 0, "memsync account require-totp off")
    st, loc, ck = password(srv, "tina", "tina-password-1", ip)
    check(st == 303 and "memsync_session" in ck, "rule off: the password alone signs in (%s %s)"
          % (st, loc))
    rc, out, err = ms.run("user", "list")
    check("TOTP" in out and re.search(r"uma\s.*\syes", out) and re.search(r"tina\s.*\sno", out),
          "user list shows who has two-step sign-in (%s)" % out)
    rc, out, err = ms.run("account", "require-totp", "maybe")
    check(rc == 2, "a bad value is a usage error")

    logs = srv.stderr()
    for s in [secret, usecret, rsecret] + codes + ucodes:
        check(s not in logs, "no secret or code in the log")
    srv.stop()
    ms.cleanup()
    if FAILS:
        print("%d failures" % len(FAILS))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
